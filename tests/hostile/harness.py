"""Run the hostile corpus through every `mlc` command, each in a fresh process, and judge it.

Each (case, command) runs as `python -m mlc.cli ...` under `RLIMIT_AS` (4 GiB, no core files)
and a timeout, with the case's `work/` folder as working folder, HOME and TMPDIR, and under
`strace -f` recording every open and stat; the record is read back to find any file outside the
case's folders that mlc touched (the bait in `outside/`, by path or by inode, or any path that is
not the system's, Python's or mlc's own). Without a working strace that check is skipped, and
the outcome says why.

The contract of a refusal: exit 2 (or what the case allows, 1 for numbers), exactly one line on
stderr, starting `mlc: error: ` and naming the model file and what the case names (node, tensor,
attribute), no traceback, no signal death, no exit 70, no read outside, within the time limit.
A valid case must exit 0 with nothing on stderr but mlc's own lines.

`python -m tests.hostile.report` runs the corpus and prints the counts by command and verdict.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import subprocess
import sys
import sysconfig
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tests.hostile.corpus import CASES, Case, CaseDir, materialize, tiny, write

MEMORY_LIMIT = 4 << 30  # RLIMIT_AS of every run
TIMEOUT_S = 150.0  # per run (an llvm compile of a small model takes ~10 s)
STRACE = shutil.which("strace") or "/usr/bin/strace"
ROOT = Path(__file__).resolve().parents[2]
ARTIFACT_NAME = "artifact.mlc"

VERDICTS = ("ok", "signal", "timeout", "outside-read", "traceback", "exit-70", "accepted", "failed-valid",
            "wrong-exit", "stderr", "unnamed", "skipped")


@dataclass
class Outcome:
    case: str
    command: str
    argv: list[str]
    exit: int | None  # None: timed out
    stderr: str
    seconds: float
    max_rss_mb: float
    outside: list[str] = field(default_factory=list)  # touched paths outside the case's folders
    traced: str = ""  # "" when strace recorded the run, else why not
    verdict: str = ""
    detail: str = ""

    @property
    def first_line(self) -> str:
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        return lines[0] if lines else ""


# ===================================================================== running
def mlc_argv(command: str, path: Path, work: Path) -> list[str]:
    """The command line of one corpus command on `path`."""
    base = [sys.executable, "-m", "mlc.cli"]
    if command == "inspect":
        return [*base, "inspect", str(path)]
    if command == "compile-ort":
        return [*base, "compile", str(path), "--target", "onnxruntime", "-o", str(work / "out.onnxruntime")]
    if command == "compile-llvm":
        return [*base, "compile", str(path), "--target", "llvm", "-o", str(work / "out.llvm")]
    if command == "debug":
        return [*base, "debug", str(path)]
    if command == "optimize":
        return [*base, "optimize", str(path), "-o", str(work / "out.onnx")]
    if command == "run":
        return [*base, "run", str(path)]
    raise ValueError(f"unknown corpus command {command!r}")


def _limits() -> None:
    """In the child, before exec: the address-space limit, no core files."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _environment(work: Path, mlc_path: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    if mlc_path:  # another mlc (a checkout laid out as a package folder), e.g. to measure before a fix
        env["PYTHONPATH"] = mlc_path
    for name, sub in (("HOME", "home"), ("XDG_CACHE_HOME", "cache"), ("TMPDIR", "tmp")):
        (work / sub).mkdir(parents=True, exist_ok=True)
        env[name] = str(work / sub)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"])
    env.update(PYTHONDONTWRITEBYTECODE="1", OMP_NUM_THREADS="1", TVM_NUM_THREADS="1", PYTHONWARNINGS="default",
               COLUMNS="200")
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


_strace_state: str | None = None
# --seccomp-bpf: only the traced calls stop the process (a Python start makes thousands of others)
_STRACE_FLAGS = ["-f", "-qq", "--seccomp-bpf"]


def strace_unavailable() -> str:
    """Why strace cannot trace a run here ("" when it can)."""
    global _strace_state
    if _strace_state is None:
        if not Path(STRACE).exists():
            _strace_state = f"{STRACE} not found"
        else:
            try:
                done = subprocess.run([STRACE, *_STRACE_FLAGS, "-e", "trace=openat", "-o", "/dev/null", "true"],
                                      capture_output=True, text=True, timeout=30)
                if done.returncode != 0 and "--seccomp-bpf" in _STRACE_FLAGS:  # an older strace, or no seccomp
                    _STRACE_FLAGS.remove("--seccomp-bpf")
                    done = subprocess.run([STRACE, *_STRACE_FLAGS, "-e", "trace=openat", "-o", "/dev/null", "true"],
                                          capture_output=True, text=True, timeout=30)
                _strace_state = "" if done.returncode == 0 else f"strace cannot trace here: {done.stderr.strip()[:200]}"
            except (OSError, subprocess.TimeoutExpired) as error:
                _strace_state = f"strace cannot run: {error}"
    return _strace_state


TRACED_CALLS = "open,openat,openat2,%stat,%lstat,newfstatat,statx,readlink,readlinkat,execve"


def run_argv(argv: list[str], work: Path, trace: Path | None, timeout: float = TIMEOUT_S,
             mlc_path: str | None = None) -> tuple[int | None, str, float, float]:
    """(exit code, negative for a signal, None on timeout; stderr; seconds; peak RSS in MB of the
    process and its children) of `argv`, traced into `trace`."""
    command = argv
    if trace is not None:
        command = [STRACE, *_STRACE_FLAGS, "-y", "-s", "65535", "-e", f"trace={TRACED_CALLS}", "-o", str(trace), "--",
                   *argv]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=work, env=_environment(work, mlc_path), stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=_limits,
                               start_new_session=True)
    assert process.stderr is not None
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.append(process.stderr.read()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    code: int | None = None
    rss = 0.0
    while True:  # os.wait4 (not Popen.wait) for the child's own resource usage
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            code = os.waitstatus_to_exitcode(status)
            process.returncode = code
            rss = usage.ru_maxrss / 1024
            break
        if time.perf_counter() - started > timeout:
            os.killpg(process.pid, 9)
            _, _, usage = os.wait4(process.pid, 0)
            process.returncode = -9
            break
        time.sleep(0.02)
    reader.join(timeout=30)
    process.stderr.close()
    return code, b"".join(chunks).decode("utf-8", "replace"), time.perf_counter() - started, rss


def run_case(c: Case, command: str, root: Path, base_artifact: Path | None = None, *, trace: bool = True,
             timeout: float = TIMEOUT_S, mlc_path: str | None = None) -> Outcome:
    """Write case `c` into `root/<command>` and run `command` on it; the outcome is judged."""
    folder = root / command
    if folder.exists():
        shutil.rmtree(folder)
    d, path = materialize(c, folder, base_artifact)
    argv = mlc_argv(command, path, d.work)
    why_not = strace_unavailable() if trace else "tracing turned off"
    log = folder / "strace.log" if not why_not else None
    code, err, seconds, rss = run_argv(argv, d.work, log, timeout, mlc_path)
    outcome = Outcome(c.id, command, argv, code, err, seconds, rss, traced=why_not)
    if log is not None:
        outcome.outside = outside_accesses(log, d, [mlc_path] if mlc_path else [])
    judge(c, outcome, path)
    return outcome


# ===================================================================== reads outside
_CALL = re.compile(r"^(?P<pid>\d+)\s+(?P<call>\w+)\((?P<args>.*)")
_DIRFD = re.compile(r"^(?:AT_FDCWD(?:<(?P<cwd>[^>]*)>)?|-?\d+(?:<(?P<fdpath>[^>]*)>)?)\s*,\s*")
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')
_OPENED = re.compile(r"=\s*\d+<(?P<path>[^>]*)>\s*$")
_AT_CALLS = ("openat", "openat2", "newfstatat", "statx", "readlinkat")


def _ignored_roots() -> list[str]:
    """The system's, Python's and mlc's own files: what any run of mlc reads."""
    roots = {"/usr", "/lib", "/lib32", "/lib64", "/bin", "/sbin", "/etc", "/proc", "/sys", "/dev", "/run",
             "/var/lib", "/var/cache", "/opt", "/.dockerenv", sys.prefix, sys.base_prefix, sys.exec_prefix, str(ROOT),
             str(Path(sys.executable).resolve().parent)}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        roots.add(sysconfig.get_path(key))
    return sorted({os.path.realpath(r) for r in roots} | roots)


IGNORED = _ignored_roots()
IGNORED_ANCESTORS = {str(p) for root in IGNORED for p in Path(root).parents}
# the interpreter looks for its standard library zip beside every candidate prefix at startup
_STARTUP_PROBE = re.compile(r"/lib/python3\d*\.zip$|/pyvenv\.cfg$")


def _under(path: str, roots: Iterable[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def _unescape(text: str) -> str:
    return text.encode("latin-1", "backslashreplace").decode("unicode_escape").encode("latin-1").decode(
        "utf-8", "replace")


@dataclass(frozen=True)
class Access:
    call: str
    path: str  # absolute, normalized, as asked
    follow: bool  # a final symbolic link is followed
    directory: bool  # an open of a folder
    opened: str  # for a successful open: the file the kernel opened


def accesses(log: Path, cwd: Path) -> Iterable[Access]:
    """Every path-naming call of a strace log (`-y`: descriptors shown with their paths)."""
    for line in log.read_text(errors="replace").splitlines():
        match = _CALL.match(line)
        if match is None or match["call"] == "execve":
            continue
        call, args = match["call"], match["args"]
        base = str(cwd)
        if call in _AT_CALLS:
            at = _DIRFD.match(args)
            if at is None:
                continue
            base = at["cwd"] or at["fdpath"] or ("" if not args.startswith("AT_FDCWD") else str(cwd))
            args = args[at.end():]
        strings = _STRING.match(args.lstrip())
        if strings is None:
            continue
        raw = _unescape(strings.group(1))
        if not raw or (not raw.startswith("/") and not base):  # fd-based (AT_EMPTY_PATH), or an unknown folder
            continue
        rest = args[strings.end():]
        opened = _OPENED.search(line)
        path = os.path.normpath(raw if raw.startswith("/") else os.path.join(base, raw))
        yield Access(call, path, not (call in ("lstat", "readlink", "readlinkat") or "NOFOLLOW" in rest),
                     "O_DIRECTORY" in rest, opened["path"] if opened else "")


def _real(path: str, follow: bool) -> str:
    if follow:
        return os.path.realpath(path)
    head, tail = os.path.split(path)
    return os.path.join(os.path.realpath(head), tail)


def outside_accesses(log: Path, d: CaseDir, also_ignored: Sequence[str] = ()) -> list[str]:
    """Paths the traced run opened or examined outside the case's model and work folders
    (`also_ignored`: more folders of code, such as another mlc on PYTHONPATH)."""
    ignored = [*IGNORED, *also_ignored]
    allowed = [os.path.realpath(d.model_dir), os.path.realpath(d.work), str(d.model_dir), str(d.work)]
    bait_dirs = [os.path.realpath(d.outside), str(d.outside)]
    folders: list[str | Path] = [d.model_dir, d.work, *also_ignored]
    ancestors = {str(p) for folder in folders for p in [*Path(folder).parents, *Path(os.path.realpath(folder)).parents]}
    found: dict[str, None] = {}
    for a in accesses(log, d.work):
        real = _real(a.path, a.follow)
        if any(_under(p, bait_dirs) for p in (a.path, real, a.opened) if p):
            found[f"{a.call} {a.path}"] = None
        elif a.opened and _bait_inode(a.opened, d):
            found[f"{a.call} {a.path} (the bait, through a link)"] = None
        elif _under(real, allowed) or _under(a.path, allowed):
            continue
        elif _under(a.path, ignored) or _under(real, ignored):
            continue
        elif (a.path in ancestors or real in ancestors or a.path in IGNORED_ANCESTORS) and (
                not a.call.startswith("open") or a.directory):
            continue
        elif not a.call.startswith("open") and _STARTUP_PROBE.search(a.path):
            continue
        else:
            found[f"{a.call} {a.path}"] = None
    return list(found)


def _bait_inode(path: str, d: CaseDir) -> bool:
    """Whether `path` is one of the bait files (a hard link reaches it under another name)."""
    try:
        info = os.stat(path)
    except OSError:
        return False
    for item in d.outside.rglob("*"):
        if item.is_file() and not item.is_symlink():
            mine = item.stat()
            if (mine.st_dev, mine.st_ino) == (info.st_dev, info.st_ino):
                return True
    return False


# ===================================================================== judging
def _mlc_line(line: str) -> bool:
    return line.startswith("mlc: ")


def judge(c: Case, o: Outcome, path: Path) -> None:
    """Set `o.verdict` (one of VERDICTS) and `o.detail`: the first broken rule of the contract."""
    lines = [line for line in o.stderr.splitlines() if line.strip()]
    shown = path.name

    def verdict(name: str, detail: str = "") -> None:
        o.verdict, o.detail = name, detail

    if o.exit is None:
        return verdict("timeout", f"still running after {o.seconds:.0f} s")
    if o.exit < 0 or o.exit >= 128:
        signal = -o.exit if o.exit < 0 else o.exit - 128
        return verdict("signal", f"killed by signal {signal}")
    if o.outside:
        return verdict("outside-read", "; ".join(o.outside[:3]))
    if "Traceback" in o.stderr:
        return verdict("traceback", o.first_line)
    if o.exit == 3 and o.command == "compile-llvm":
        return verdict("skipped", "llvm target unavailable: " + o.first_line)
    if o.exit == 70:
        return verdict("exit-70", o.first_line)
    if o.command in c.valid:
        if o.exit != 0:
            return verdict("failed-valid", f"exit {o.exit}: {o.first_line}")
        foreign = [line for line in lines if not _mlc_line(line) or line.startswith("mlc: error")]
        if foreign:
            return verdict("stderr", f"{len(foreign)} foreign line(s): {foreign[0][:200]}")
        return verdict("ok")
    if o.exit == 0:
        return verdict("accepted", "exit 0 on an invalid input")
    if o.exit not in c.exits:
        return verdict("wrong-exit", f"exit {o.exit}: {o.first_line}")
    if len(lines) != 1 or not lines[0].startswith("mlc: error: "):
        first = next((line for line in lines if not line.startswith("mlc: error: ")), lines[0] if lines else "")
        return verdict("stderr", f"{len(lines)} line(s) on stderr: {first[:200]}")
    missing = [name for name in (shown, *c.names) if name not in lines[0]]
    if missing:
        return verdict("unnamed", f"does not name {', '.join(missing)}: {lines[0][:300]}")
    return verdict("ok")


# ===================================================================== the whole corpus
def build_base_artifact(root: Path, mlc_path: str | None = None) -> tuple[Path | None, str]:
    """An onnxruntime artifact of the small conv model, the one the artifact cases tamper with."""
    folder = root / "base"
    model = write(folder / "model" / "tiny.onnx", tiny())
    work = folder / "work"
    work.mkdir(parents=True, exist_ok=True)
    artifact = work / ARTIFACT_NAME
    argv = [sys.executable, "-m", "mlc.cli", "compile", str(model), "--target", "onnxruntime", "-o", str(artifact)]
    code, err, _, _ = run_argv(argv, work, None, mlc_path=mlc_path)
    if code != 0:
        return None, f"the base artifact did not compile (exit {code}): {err.strip()[:300]}"
    return artifact, ""


def selected(cases: Sequence[Case], commands: Sequence[str] | None = None) -> list[tuple[Case, str]]:
    return [(c, command) for c in cases for command in c.commands if commands is None or command in commands]


def run_corpus(root: Path, cases: Sequence[Case] = CASES, commands: Sequence[str] | None = None, *, jobs: int = 2,
               trace: bool = True, progress: Callable[[Outcome], None] | None = None,
               mlc_path: str | None = None) -> list[Outcome]:
    """Every (case, command), `jobs` at a time; artifact cases get a base artifact compiled first.
    `mlc_path`: run the mlc package found in this folder instead of the installed one."""
    base, why = (None, "")
    pairs = selected(cases, commands)
    if any(c.artifact for c, _ in pairs):
        base, why = build_base_artifact(root, mlc_path)

    def one(pair: tuple[Case, str]) -> Outcome:
        c, command = pair
        if c.artifact and base is None:
            o = Outcome(c.id, command, [], 0, "", 0.0, 0.0, verdict="skipped", detail=why)
        else:
            o = run_case(c, command, root / c.id, base, trace=trace, mlc_path=mlc_path)
        if progress is not None:
            progress(o)
        return o

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(one, pairs))


def table(outcomes: Sequence[Outcome]) -> str:
    """Counts by command (rows) and verdict (columns), with a total row."""
    counts = Counter((o.command, o.verdict) for o in outcomes)
    commands = list(dict.fromkeys(o.command for o in outcomes))
    verdicts = [v for v in VERDICTS if any(o.verdict == v for o in outcomes)]
    width = max([len(c) for c in commands] + [5])
    head = f"{'command':{width}s} " + " ".join(f"{v:>12s}" for v in verdicts) + f" {'total':>7s}"
    rows = [head, "-" * len(head)]
    for command in [*commands, "total"]:
        cells = [sum(n for (cmd, v), n in counts.items() if v == verdict and command in (cmd, "total"))
                 for verdict in verdicts]
        rows.append(f"{command:{width}s} " + " ".join(f"{n:>12d}" for n in cells) + f" {sum(cells):>7d}")
    return "\n".join(rows)


def failures(outcomes: Sequence[Outcome]) -> str:
    bad = [o for o in outcomes if o.verdict not in ("ok", "skipped")]
    return "\n".join(f"{o.case:34s} {o.command:13s} {o.verdict:13s} {o.detail[:160]}" for o in bad)


def save(outcomes: Sequence[Outcome], path: Path) -> None:
    path.write_text(json.dumps([asdict(o) for o in outcomes], indent=1))


__all__ = ["VERDICTS", "Outcome", "failures", "judge", "run_case", "run_corpus", "strace_unavailable", "table"]
