"""mypy over the real module graph, against a ratchet of the errors known today.

`mypy compiler passes backends` checks the files, but cannot resolve `import mlc.x` (setuptools'
package-dir maps `mlc` to `compiler/`, `mlc.passes` to `passes/`, `mlc.backends` to `backends/`,
and mypy does not read editable installs), so with `ignore_missing_imports` every cross-module
type was Any and most errors went unseen. This lays the package out as Python imports it (a
temporary folder of symbolic links: mlc -> compiler's entries, mlc/passes -> passes, mlc/backends
-> backends) and runs `mypy -p mlc` there.

The IR (`mlc.ir`), the rewrite framework (`mlc.rewrite`) and the passes (`mlc.passes`) are checked
with `--strict`'s flags (pyproject.toml's per-module override), and have no known error.

The errors it found the first time are listed in `.ci/mypy-known.txt` (file, code and message; no
line numbers, so that edits elsewhere in a file do not churn it): CI fails on any error not in the
list, and says which listed ones are gone, so that the list only shrinks.

    python .ci/typecheck.py            # check (exit 1 on a new error)
    python .ci/typecheck.py --update   # rewrite the list from this tree (only to shrink it)
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KNOWN = ROOT / ".ci" / "mypy-known.txt"
_LINE = re.compile(r"^(?P<file>[^:]+):\d+(?::\d+)?: error: (?P<message>.*)$")


def run_mypy() -> list[str]:
    """mypy's errors, as `file: message [code]` without line numbers, sorted."""
    with tempfile.TemporaryDirectory(prefix="mlc-typecheck-") as folder:
        package = Path(folder) / "mlc"
        package.mkdir()
        for entry in (ROOT / "compiler").iterdir():
            if entry.name != "__pycache__":
                (package / entry.name).symlink_to(entry)
        (package / "passes").symlink_to(ROOT / "passes")
        (package / "backends").symlink_to(ROOT / "backends")
        done = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
                               "--cache-dir", str(Path(folder) / ".mypy_cache"), "-p", "mlc"],
                              cwd=folder, capture_output=True, text=True, check=False)
    errors = []
    for line in done.stdout.splitlines():
        match = _LINE.match(line)
        if match:
            errors.append(f"{match['file']}: {match['message']}")
    if done.returncode not in (0, 1) or (done.returncode == 1 and not errors):
        sys.exit(f"typecheck: mypy failed to run: {(done.stderr or done.stdout).strip()[:500]}")
    return sorted(errors)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", action="store_true", help="rewrite the known-error list from this tree")
    args = parser.parse_args(argv)
    errors = run_mypy()
    if args.update:
        KNOWN.write_text("".join(f"{e}\n" for e in errors))
        print(f"typecheck: {len(errors)} known errors written to {KNOWN.relative_to(ROOT)}")
        return 0
    known = collections.Counter(KNOWN.read_text().splitlines() if KNOWN.is_file() else [])
    found = collections.Counter(errors)
    new, gone = found - known, known - found
    for error in sorted(new.elements()):
        print(f"new: {error}")
    if gone:
        print(f"typecheck: {sum(gone.values())} known errors are fixed: shrink the list (python .ci/typecheck.py "
              "--update)")
    print(f"typecheck: {len(errors)} errors, {sum(new.values())} new, {sum(known.values())} known")
    return 1 if new else 0


if __name__ == "__main__":
    sys.exit(main())
