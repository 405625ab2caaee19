"""Node counts and -O2 pipeline time of two revisions of mlc, side by side (a before/after table).

    python benchmarks/compare_revisions.py --base f818c65 --head WORKTREE --runs 3 --markdown out.md [--json out.json]
    python benchmarks/compare_revisions.py --base f818c65 --head 0505d3e --only 'light_|zoo/bert'   # a subset

A commit is unpacked by `git archive` into /tmp/mlc-rev-<sha> (git state untouched); WORKTREE is this checkout's
files now. Each revision is laid out as Python imports it (mlc -> compiler/, mlc.passes -> passes/, mlc.backends ->
backends/) in a folder of symbolic links, as `.ci/typecheck.py` does, first on PYTHONPATH of a worker process of this
python, which must import all three from that revision's tree (not from the editable install). Models:
`models/*.onnx`, onnx's `light_*.onnx`, `~/.cache/mlc-zoo/*.onnx`. Per model and revision: main-graph nodes (as
benchmarks/bench_reduction.py counts) after the portable -O2 and the onnxruntime target's -O3, or the error; the -O2
PassManager.run wall time (import not timed), median of --runs, revisions interleaved model by model, alternating.
`ratio` is after/before of the two medians; `paired` is the median over runs of after/before within one run (the two
timings of a run are taken back to back, so a burst of load on this shared machine, which can double a 20 ms model's
time for seconds, moves both): the figure to trust when the two disagree.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import onnx  # its wheel holds the light models; the workers import mlc, this process does not

REPO = Path(__file__).resolve().parents[1]
ZOO = Path.home() / ".cache" / "mlc-zoo"
PIPELINES = {"O2": ("O2", None), "O3-ort": ("O3", "onnxruntime")}
SIDES = ("before", "after")


def unpack(rev: str) -> tuple[str, Path]:
    """(label, tree) of a revision: a commit unpacked under /tmp, or this checkout for WORKTREE."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), *args], check=True, capture_output=True, text=True).stdout
    if rev == "WORKTREE":
        return f"WORKTREE (on {git('rev-parse', '--short', 'HEAD').strip()})", REPO
    sha = git("rev-parse", "--short=10", f"{rev}^{{commit}}").strip()
    tree = Path(tempfile.gettempdir()) / f"mlc-rev-{sha}"
    if not tree.is_dir():  # unpacked beside, then renamed: a tree that is there is whole
        part = tempfile.mkdtemp(prefix=f"{tree.name}.", dir=tree.parent)
        subprocess.run(f"git -C '{REPO}' archive {sha} | tar -x -C '{part}'", shell=True, check=True)
        Path(part).rename(tree)
    return sha, tree


def layout(tree: Path, folder: Path) -> None:
    """`folder/mlc` as Python imports the package: symbolic links into `tree`."""
    (package := folder / "mlc").mkdir(parents=True)
    for entry in [e for e in (tree / "compiler").iterdir() if e.name != "__pycache__"]:
        (package / entry.name).symlink_to(entry)
    (package / "passes").symlink_to(tree / "passes")
    (package / "backends").symlink_to(tree / "backends")


class Worker:
    """A process that imports one revision's mlc and answers requests, a JSON line each way."""

    def __init__(self, label: str, tree: Path, scratch: Path) -> None:
        self.label, folder = label, Path(tempfile.mkdtemp(prefix=re.sub(r"\W", "_", label), dir=scratch))
        layout(tree, folder)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])}
        self.log = folder.with_suffix(".log").open("w")
        self.process = subprocess.Popen([sys.executable, __file__, "--worker"], cwd=folder, env=env, text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log)
        for module, file in self.ask("where").items():
            if not Path(file).resolve().is_relative_to(tree.resolve()):
                sys.exit(f"{label}: {module} imports from {file}, not from {tree}")

    def ask(self, request: str, model: str = "") -> dict[str, Any]:
        assert self.process.stdin and self.process.stdout
        print(json.dumps([request, model]), file=self.process.stdin, flush=True)
        line = self.process.stdout.readline()
        if not line:
            tail = Path(self.log.name).read_text().strip().splitlines()[-15:]
            sys.exit(f"{self.label}: the worker died:\n" + "\n".join(tail))
        return dict(json.loads(line))


def serve() -> int:
    """The worker's loop: a JSON request per line of stdin, a JSON reply per line of stdout."""
    protocol = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # what mlc and onnxruntime print goes to the log, not into the protocol
    sys.stdout = sys.stderr
    import mlc.backends
    import mlc.passes
    from mlc.onnx_io.exporter import export_onnx
    from mlc.onnx_io.importer import import_onnx
    from mlc.pass_manager import PassManager
    from mlc.pipelines import build_pipeline

    def nodes(path: str, level: str, target: str | None) -> int | str:
        try:
            graph = import_onnx(Path(path))
            PassManager(build_pipeline(level, target=target)).run(graph)
            model = export_onnx(graph)
        except Exception as error:  # noqa: BLE001 - a pipeline failing on a model is a result
            return f"error: {type(error).__name__}: {str(error).splitlines()[0][:80] if str(error) else ''}"
        constants = {t.name for t in model.graph.initializer}
        return sum(1 for n in model.graph.node
                   if not (n.op_type == "ConstantOfShape" and n.input and n.input[0] in constants))

    def o2_ms(path: str) -> float | None:
        graph, passes = import_onnx(Path(path)), build_pipeline("O2")
        gc.collect()
        start = time.perf_counter()
        try:
            PassManager(passes).run(graph)
        except Exception:  # noqa: BLE001 - the node count reports it
            return None
        return (time.perf_counter() - start) * 1e3

    for line in sys.stdin:
        op, model = json.loads(line)
        reply = ({m.__name__: m.__file__ for m in (mlc, mlc.passes, mlc.backends)} if op == "where" else
                 {name: nodes(model, *pipeline) for name, pipeline in PIPELINES.items()} if op == "count" else
                 {"ms": o2_ms(model)})
        print(json.dumps(reply), file=protocol, flush=True)
    return 0


def models(only: str | None) -> dict[str, Path]:
    light = Path(onnx.__file__).resolve().parent / "backend" / "test" / "data" / "light"
    found = {p.stem: p for p in [*sorted((REPO / "models").glob("*.onnx")), *sorted(light.glob("light_*.onnx"))]}
    found.update({f"zoo/{p.stem}": p for p in sorted(ZOO.glob("*.onnx"))})
    return {name: path for name, path in found.items() if only is None or re.search(only, name)}


def compare(base: Worker, head: Worker, paths: dict[str, Path], runs: int) -> list[dict[str, Any]]:
    rows = [{"model": name, **{f"{k} {side}": v for side, w in zip(SIDES, (base, head), strict=True)
                               for k, v in w.ask("count", str(path)).items()}} for name, path in paths.items()]
    samples: dict[tuple[str, str], list[float]] = {}
    for run in range(runs):
        for name, path in paths.items():
            for side, worker in list(zip(SIDES, (base, head), strict=True))[::1 if run % 2 == 0 else -1]:
                samples.setdefault((name, side), []).append(worker.ask("time", str(path))["ms"])  # None: failed
        print(f"run {run + 1}/{runs} done", file=sys.stderr)
    for row in rows:
        for side in SIDES:
            times = [t for t in samples.get((row["model"], side), []) if t is not None]
            row[f"O2 ms {side}"] = round(statistics.median(times), 1) if times else None
            row[f"O2 ms samples {side}"] = [round(t, 1) for t in times]
        row["ratio"] = round(row["O2 ms after"] / b, 3) if (b := row["O2 ms before"]) and row["O2 ms after"] else None
        pairs = [a / b for b, a in zip(samples.get((row["model"], "before"), []),
                                       samples.get((row["model"], "after"), []), strict=True) if a and b]
        row["paired"] = round(statistics.median(pairs), 3) if pairs else None
    return rows


def markdown(rows: list[dict[str, Any]], labels: tuple[str, str], cpu: str, runs: int) -> str:
    columns = [f"{figure} {side}" for figure in ("O2", "O3-ort", "O2 ms") for side in SIDES] + ["ratio", "paired"]
    lines = [f"before: `{labels[0]}`, after: `{labels[1]}`; {cpu}; -O2 ms: median of {runs} interleaved runs",
             "", "| model | " + " | ".join(columns) + " |", "|---|" + "--:|" * len(columns)]
    lines += [f"| {r['model']} | " + " | ".join(str(r[c]).replace("|", "/") for c in columns) + " |" for r in rows]
    totals = {c: sum(r[c] for r in rows if all(isinstance(r[f"{c.rsplit(' ', 1)[0]} {s}"], int | float) for s in SIDES))
              for c in columns[:-2]}  # over the models where both sides have a figure
    ratio = totals["O2 ms after"] / totals["O2 ms before"] if totals["O2 ms before"] else 0.0
    paired = [r["paired"] for r in rows if r["paired"]]
    lines.append("| **total** | " + " | ".join(f"{totals[c]:.1f}" if "ms" in c else str(totals[c])
                                               for c in columns[:-2]) + f" | {ratio:.3f} | |")
    lines.append("")
    lines.append(f"per model: ratio of medians above 1.00 on {sum(1 for r in rows if (r['ratio'] or 0) > 1)}, "
                 f"worst {max((r['ratio'] or 0) for r in rows):.3f}; paired ratio above 1.00 on "
                 f"{sum(1 for p in paired if p > 1)}, worst {max(paired, default=0):.3f}, "
                 f"median {statistics.median(paired) if paired else 0:.3f}")
    failed = {c: sum(1 for r in rows if isinstance(r[c], str)) for c in columns[:4]}
    changed = [r["model"] for r in rows if any(r[f"{p} before"] != r[f"{p} after"] for p in PIPELINES)]
    lines += ["", f"{len(rows)} models; pipeline errors per column: {failed}",
              f"node counts that differ: {', '.join(changed) if changed else 'none'}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="f818c65", help="git revision, or WORKTREE")
    parser.add_argument("--head", default="WORKTREE", help="git revision, or WORKTREE (this checkout's files)")
    parser.add_argument("--runs", type=int, default=3, help="timed -O2 runs per model and revision")
    parser.add_argument("--only", help="regular expression: models whose name matches")
    parser.add_argument("--markdown", type=Path, help="write the table here")
    parser.add_argument("--json", type=Path, help="write every figure and sample here")
    args = parser.parse_args(argv)
    (base_label, base_tree), (head_label, head_tree) = unpack(args.base), unpack(args.head)
    with tempfile.TemporaryDirectory(prefix="mlc-compare-") as scratch:
        workers = Worker(base_label, base_tree, Path(scratch)), Worker(head_label, head_tree, Path(scratch))
        rows = compare(*workers, models(args.only), args.runs)
        for worker in workers:
            worker.process.communicate()  # stdin closed: the worker ends
    found = re.search(r"^Model name:\s*(.+)$", subprocess.run(["lscpu"], capture_output=True, text=True).stdout, re.M)
    cpu = f"{found[1].strip() if found else 'unknown CPU'}, {os.cpu_count()} CPUs"
    text = markdown(rows, (base_label, head_label), cpu, args.runs)
    print(text, end="")
    if args.markdown:
        args.markdown.write_text(text)
    if args.json:
        args.json.write_text(json.dumps({"before": base_label, "after": head_label, "cpu": cpu,
                                         "runs": args.runs, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(serve() if sys.argv[1:] == ["--worker"] else main())
