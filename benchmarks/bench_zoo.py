"""The model zoo through mlc: compile, run, numbers against torch, node counts against the peers, latency.

    python -m models.zoo.build                                   # the zoo, into ~/.cache/mlc-zoo/
    pip install -e '.[bench,tvm]'                                # onnxsim 0.8.1, onnxslim 0.1.98, TVM
    python benchmarks/bench_zoo.py                               # every model, targets onnxruntime and llvm
    python benchmarks/bench_zoo.py --only bert gpt2-dynamo --targets onnxruntime --timeout 120

Run by hand, never in CI. For each zoo model file (`NAME-ts.onnx`, `NAME-dynamo.onnx`) and each target:
`mlc.compile(model, target, out, inputs=NAME.inputs.npz)` (an `mlc.MlcError` is recorded as its exit code
and first line), `mlc.run(artifact, inputs)` (a target `T-static`, e.g. `llvm-static`, compiles for T with every input's
shape fixed to the model's inputs, as `--static-shape` does), the largest error against torch's outputs as
max(|got - ref| / (1e-4 + 1e-3 |ref|)) (ok when <= 1), and the median latency of the artifact against plain
onnxruntime on the original (taking turns in blocks). Per model, independent of the target: whether plain
onnxruntime runs the original at all (and its error against torch), and main-graph node counts of the
original, onnxsim 0.8.1, onnxslim 0.1.98 and `mlc optimize -O2` (counted as `bench_reduction.py` counts).

Every job runs in its own subprocess with a timeout (`--timeout`, default 300 s): a crash (a TVM segfault)
or a hang is a row, not the end of the run. Results are kept in `CACHE/bench_zoo.json` and merged: a run
with `--only` replaces those rows and keeps the others (`--fresh` starts over). The tables print to stdout
(one per target) and go, as markdown with the command, date, CPU and package versions, to `--markdown`
(default `benchmarks/results/zoo.md`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CACHE = Path.home() / ".cache" / "mlc-zoo"
DEFAULT_MARKDOWN = ROOT / "benchmarks" / "results" / "zoo.md"
EXPORTERS = ("ts", "dynamo")
TARGETS = ("onnxruntime", "llvm")
ATOL, RTOL = 1e-4, 1e-3


# ---------------------------------------------------------------------------------------------- worker side


def first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0][:240] if lines else type(error).__name__


def max_error(got: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> tuple[float, str]:
    """max(|got-ref| / (atol + rtol |ref|)) over every output, and where (output name)."""
    worst, where = 0.0, ""
    for name, expected in ref.items():
        if name not in got:
            return float("inf"), f"{name}: missing"
        actual = np.asarray(got[name])
        if actual.shape != expected.shape:
            return float("inf"), f"{name}: shape {list(actual.shape)} vs torch {list(expected.shape)}"
        a, e = actual.astype(np.float64), expected.astype(np.float64)
        both_nan = np.isnan(a) & np.isnan(e)
        err = np.where(both_nan, 0.0, np.abs(a - e) / (ATOL + RTOL * np.abs(e)))
        value = float(np.nanmax(np.where(np.isnan(err), np.inf, err))) if err.size else 0.0
        if value > worst or not where:
            worst, where = max(worst, value), name
    return worst, where


def count_nodes(path: Path | str) -> int:
    """Main-graph nodes, not counting ConstantOfShape fed by a constant (stored weights), as bench_reduction."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    constants = {t.name for t in model.graph.initializer}
    return sum(1 for n in model.graph.node
               if not (n.op_type == "ConstantOfShape" and n.input and n.input[0] in constants))


def _ort_session(path: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def job_model(model: Path, inputs: Path, reference: Path) -> dict[str, Any]:
    """Target-independent figures: plain onnxruntime on the original, node counts of the peers and mlc -O2."""
    import onnx

    import mlc

    feeds = dict(np.load(inputs))
    ref = dict(np.load(reference))
    row: dict[str, Any] = {}
    try:
        session = _ort_session(model)
        names = [o.name for o in session.get_outputs()]
        outputs = session.run(None, {i.name: feeds[i.name] for i in session.get_inputs()})
        row["ort"] = "ok"
        row["ort_error"], row["ort_error_at"] = max_error(dict(zip(names, outputs, strict=True)), ref)
    except Exception as error:  # noqa: BLE001 - plain onnxruntime failing on a model is a result
        row["ort"] = f"fails: {first_line(error)}"
    row["original"] = count_nodes(model)
    try:
        import onnxsim

        simplified, ok = onnxsim.simplify(onnx.load(str(model)))
        row["onnxsim"] = count_nodes_proto(simplified) if ok else "check failed"
    except Exception as error:  # noqa: BLE001 - a peer failing is a result
        row["onnxsim"] = f"error: {first_line(error)[:60]}"
    try:
        import onnxslim

        row["onnxslim"] = count_nodes_proto(onnxslim.slim(onnx.load(str(model))))
    except Exception as error:  # noqa: BLE001
        row["onnxslim"] = f"error: {first_line(error)[:60]}"
    with tempfile.TemporaryDirectory(prefix="bench-zoo-") as tmp:
        started = time.perf_counter()
        try:
            written = mlc.optimize(model, Path(tmp) / "opt.onnx", level=2, inputs=str(inputs))
            row["mlc_O2"] = count_nodes(written)
        except mlc.MlcError as error:
            row["mlc_O2"] = f"exit {error.exit_code}: {first_line(error)[:80]}"
        row["optimize_s"] = round(time.perf_counter() - started, 2)
    return row


def count_nodes_proto(model: Any) -> int:
    constants = {t.name for t in model.graph.initializer}
    return sum(1 for n in model.graph.node
               if not (n.op_type == "ConstantOfShape" and n.input and n.input[0] in constants))


def job_target(model: Path, inputs: Path, reference: Path, target: str, runs: int) -> dict[str, Any]:
    """Compile for `target`, run on the model's inputs, compare with torch, time against plain onnxruntime."""
    import mlc

    feeds = dict(np.load(inputs))
    ref = dict(np.load(reference))
    row: dict[str, Any] = {}
    static = None
    if target.endswith("-static"):  # every dynamic dim fixed to the inputs' shapes (`--static-shape`)
        target = target.removesuffix("-static")
        static = {name: list(value.shape) for name, value in feeds.items()}
    with tempfile.TemporaryDirectory(prefix="bench-zoo-") as tmp:
        started = time.perf_counter()
        try:
            folder = mlc.compile(model, target, Path(tmp) / f"artifact.{target}", inputs=str(inputs),
                                 static_shapes=static)
        except mlc.MlcError as error:
            row["compile_s"] = round(time.perf_counter() - started, 2)
            row["status"] = f"exit {error.exit_code}: {first_line(error)}"
            row["exit"] = error.exit_code
            return row
        row["compile_s"] = round(time.perf_counter() - started, 2)
        try:
            got = mlc.run(folder, feeds)
        except mlc.MlcError as error:
            row["status"] = f"run exit {error.exit_code}: {first_line(error)}"
            row["exit"] = error.exit_code
            return row
        row["error"], row["error_at"] = max_error(got, ref)
        row["status"] = "ok" if row["error"] <= 1.0 else "wrong"
        try:
            row["mlc_ms"], row["ort_ms"] = latency(mlc.load(folder), _ort_session(model), feeds, runs)
        except Exception as error:  # noqa: BLE001 - no timing is a result too
            row["bench"] = f"{type(error).__name__}: {first_line(error)}"
    return row


def latency(artifact: Any, session: Any, feeds: dict[str, np.ndarray], runs: int,
            block: int = 5) -> tuple[float, float]:
    """Medians (ms) of the artifact and of plain onnxruntime, taking turns in blocks of `block` timed runs, each
    block after 2 untimed ones: on 2 cores, single interleaved runs time the other session's spinning threads."""
    names = {i.name for i in session.get_inputs()}
    plain = {k: v for k, v in feeds.items() if k in names}
    wanted = set(artifact.input_names)
    ours = {k: v for k, v in feeds.items() if k in wanted}
    sides = [lambda: artifact.run(ours), lambda: session.run(None, plain)]
    samples: list[list[float]] = [[], []]
    while len(samples[0]) < runs:
        for side, call in enumerate(sides):
            for _ in range(2):
                call()
            for _ in range(block):
                started = time.perf_counter()
                call()
                samples[side].append((time.perf_counter() - started) * 1e3)
    return statistics.median(samples[0]), statistics.median(samples[1])


def worker(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    try:
        if spec["job"] == "model":
            row = job_model(Path(spec["model"]), Path(spec["inputs"]), Path(spec["reference"]))
        else:
            row = job_target(Path(spec["model"]), Path(spec["inputs"]), Path(spec["reference"]), spec["target"],
                             spec["runs"])
    except Exception as error:  # noqa: BLE001 - reported to the parent as this job's result
        row = {"status": f"runner error: {type(error).__name__}: {first_line(error)}",
               "traceback": traceback.format_exc(limit=-4)}
    Path(spec["result"]).write_text(json.dumps(row))
    return 0


# ---------------------------------------------------------------------------------------------- parent side


def run_job(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """One job in a fresh interpreter: a segfault or a hang becomes a row."""
    with tempfile.TemporaryDirectory(prefix="bench-zoo-job-") as tmp:
        spec = dict(spec, result=str(Path(tmp) / "result.json"))
        spec_path = Path(tmp) / "spec.json"
        spec_path.write_text(json.dumps(spec))
        log = Path(tmp) / "log.txt"
        started = time.perf_counter()
        with log.open("wb") as sink:
            process = subprocess.Popen([sys.executable, __file__, "--worker", str(spec_path)], stdout=sink,
                                       stderr=subprocess.STDOUT, start_new_session=True)
            try:
                code = process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)  # the job's own process group: TVM's build child too
                process.wait()
                return {"status": f"timeout after {timeout:.0f} s", "exit": "timeout",
                        "compile_s": round(time.perf_counter() - started, 1)}
        result = Path(spec["result"])
        if result.exists():
            return json.loads(result.read_text())
        tail = [line for line in log.read_text(errors="replace").splitlines() if line.strip()][-1:]
        name = signal.Signals(-code).name if code < 0 else f"exit {code}"
        return {"status": f"crashed ({name}): {tail[0][:200] if tail else ''}", "exit": name}


def discover(cache: Path, only: list[str] | None, exporters: tuple[str, ...]) -> list[dict[str, Any]]:
    """One item per (model, exporter): its file, or why the export failed."""
    items = []
    for meta in sorted(cache.glob("*.json")):
        if meta.name == "bench_zoo.json":
            continue
        record = json.loads(meta.read_text())
        if "exports" not in record:
            continue
        name = record["name"]
        for exporter in exporters:
            key = f"{name}-{exporter}"
            if only and name not in only and key not in only:
                continue
            status = record["exports"].get(exporter)
            if status is None:
                continue
            item = {"key": key, "name": name, "exporter": exporter, "family": record["family"],
                    "model": str(cache / status["file"]), "inputs": str(cache / f"{name}.inputs.npz"),
                    "reference": str(cache / f"{name}.torch.npz"), "torch": record["versions"].get("torch"),
                    "dynamic": status.get("dynamic"), "dynamic_failed": status.get("dynamic_failed")}
            if status["status"] != "ok":
                item["export_failed"] = status["reason"]
            items.append(item)
    return items


def fmt_err(value: Any) -> str:
    if value is None:
        return ""
    return "inf" if value == float("inf") else f"{value:.3g}"


def rows_for(target: str, store: dict[str, Any]) -> list[list[str]]:
    rows = []
    for key in sorted(store["models"]):
        model = store["models"][key]
        item = model["item"]
        counts = model.get("counts", {})
        result = model.get("targets", {}).get(target)
        exporter = item["exporter"] + ("" if item.get("dynamic", True) or "export_failed" in item else " (static)")
        if "export_failed" in item:
            rows.append([item["name"], exporter, "-", f"export failed: {item['export_failed'][-150:]}"] + [""] * 9)
            continue
        ort = counts.get("ort", "")
        if ort == "ok":
            ort = f"ok ({fmt_err(counts.get('ort_error'))})"
        if result is None:
            rows.append([item["name"], exporter, ort, "not run"] + [""] * 9)
            continue
        speedup = ""
        if result.get("mlc_ms") and result.get("ort_ms"):
            speedup = f"{result['ort_ms'] / result['mlc_ms']:.2f}x"
        status = result.get("status", "")
        if status == "wrong":
            status = f"wrong: {result.get('error_at', '')}"
        rows.append([item["name"], exporter, ort, status,
                     f"{result['compile_s']:.1f}" if "compile_s" in result else "",
                     fmt_err(result.get("error")),
                     str(counts.get("original", "")), str(counts.get("onnxsim", "")),
                     str(counts.get("onnxslim", "")), str(counts.get("mlc_O2", "")),
                     f"{result['mlc_ms']:.2f}" if result.get("mlc_ms") else "",
                     f"{result['ort_ms']:.2f}" if result.get("ort_ms") else "", speedup])
    return rows


COLUMNS = ["model", "exporter", "plain ORT (err)", "status", "compile s", "err vs torch", "nodes", "onnxsim",
           "onnxslim", "mlc -O2", "mlc ms", "ORT ms", "speedup"]


def failures(target: str, store: dict[str, Any]) -> dict[str, list[str]]:
    """Failed rows of `target` grouped by their message with numbers and names blurred."""
    groups: dict[str, list[str]] = {}
    for key in sorted(store["models"]):
        result = store["models"][key].get("targets", {}).get(target)
        if not result or result.get("status") == "ok":
            continue
        status = result.get("status", "")
        if status == "wrong":
            status = f"wrong numbers (max err {fmt_err(result.get('error'))} at {result.get('error_at')})"
        groups.setdefault(status, []).append(key)
    return groups


def git_state() -> str:
    """The checkout's commit, `+uncommitted` when its tracked files differ from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}+uncommitted" if dirty else head


def target_order(target: str) -> tuple[int, str]:
    base = target.removesuffix("-static")
    return (TARGETS.index(base) if base in TARGETS else len(TARGETS), target)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def versions(store: dict[str, Any]) -> dict[str, str]:
    import importlib.metadata as metadata

    found = {"python": platform.python_version()}
    for name in ("mlc", "onnx", "onnxruntime", "apache-tvm", "onnxsim", "onnxslim"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "missing"
    torches = sorted({m["item"].get("torch") or "?" for m in store["models"].values()})
    found["torch (exporters)"] = ", ".join(torches)
    return found


def reduction_summary(store: dict[str, Any]) -> list[str]:
    """How mlc -O2's node count compares with the better of onnxsim and onnxslim, over the models
    both peers simplified, and how long `mlc.optimize` took (with its final check)."""
    compared: list[tuple[str, int, int]] = []
    for key, model in sorted(store["models"].items()):
        counts = model.get("counts") or {}
        peers = [counts.get(k) for k in ("onnxsim", "onnxslim")]
        mine = counts.get("mlc_O2")
        if isinstance(mine, int) and all(isinstance(n, int) for n in peers):
            compared.append((key, mine, min(peers)))  # type: ignore[type-var]
    if not compared:
        return []
    worse = [(k, m, b) for k, m, b in compared if m > b]
    ratios = sorted(m / b for _, m, b in compared)
    lines = ["", "## -O2 node counts against min(onnxsim, onnxslim)", "",
             f"At or below on {len(compared) - len(worse)} of {len(compared)} models "
             f"({100 * (len(compared) - len(worse)) / len(compared):.0f} %); median ratio mlc / best peer "
             f"{statistics.median(ratios):.2f}, best {ratios[0]:.2f}, worst {ratios[-1]:.2f}."]
    lines += [f"* above: `{k}` {m} vs {b} (+{100 * (m - b) / b:.1f} %)" for k, m, b in worse]
    return lines


def markdown(store: dict[str, Any], targets: tuple[str, ...]) -> str:
    lines = ["# The model zoo through mlc", "",
             "Commands (a later one replaces the rows it ran):", "",
             *[f"* `{c.split('  (')[0]}`  ({c.split('  (')[-1]}" for c in store.get("commands", [])], "",
             f"CPU: {cpu_name()} ({os.cpu_count()} cores)  ",
             "Versions: " + ", ".join(f"{k} {v}" for k, v in versions(store).items()), "",
             "Models: `python -m models.zoo.build` (seeded random weights, `~/.cache/mlc-zoo/`): `-ts` is the "
             "TorchScript exporter (opset 17, dynamic axes), `-dynamo` the dynamo exporter (`dynamic_shapes`; "
             "`(static)` where that failed and the model was exported with static shapes). `plain ORT (err)`: "
             "does onnxruntime run the original, and its max error against torch. `err vs torch`: max over all "
             "outputs of |got - ref| / (1e-4 + 1e-3 |ref|) of the artifact on the model's own inputs; ok when "
             "<= 1. Node counts: main graph, as `bench_reduction.py` counts. `mlc ms` / `ORT ms`: medians of "
             "runs of the artifact (`mlc.load(folder).run`) and of plain onnxruntime (a default session) on the "
             "original, taking turns in blocks of 5 timed runs after 2 untimed ones; `speedup` = ORT / mlc "
             "(a shared machine: compare ratios, not absolute times). A target `T-static` compiles for T with "
             "every input's shape fixed to the model's inputs (`--static-shape`).", ""]
    for target in targets:
        rows = rows_for(target, store)
        ok = sum(1 for r in rows if r[3] == "ok")
        runs = sum(1 for r in rows if r[2].startswith("ok"))
        lines += [f"## Target `{target}`: {ok} of {len(rows)} ok (plain onnxruntime runs {runs})", "",
                  "| " + " | ".join(COLUMNS) + " |",
                  "|" + "|".join("---" if i < 4 else "--:" for i in range(len(COLUMNS))) + "|"]
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
        groups = failures(target, store)
        if groups:
            lines += ["", f"Failures on `{target}`, grouped:", ""]
            for message, keys in sorted(groups.items(), key=lambda kv: -len(kv[1])):
                lines.append(f"* {len(keys)} x `{message}`: {', '.join(keys)}")
        speedups = [float(r[12].rstrip("x")) for r in rows if r[12] and r[3] == "ok"]
        if speedups:
            lines += ["", f"Median speedup of the ok rows on `{target}`: {statistics.median(speedups):.2f}x"]
        lines.append("")
    lines += reduction_summary(store)
    exports = [m["item"] for m in store["models"].values() if "export_failed" in m["item"] or m["item"].get(
        "dynamic_failed")]
    if exports:
        lines += ["", "## Export problems", ""]
        for item in sorted(exports, key=lambda i: i["key"]):
            reason = item.get("export_failed") or f"dynamic shapes failed, exported static: {item['dynamic_failed']}"
            lines.append(f"* `{item['key']}`: {reason}")
    return "\n".join(lines).rstrip() + "\n"


def print_tables(store: dict[str, Any], targets: tuple[str, ...]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(markdown(store, targets))
        return
    console = Console(width=250)
    for target in targets:
        table = Table(title=f"target {target}")
        for i, column in enumerate(COLUMNS):
            table.add_column(column, justify="left" if i < 4 else "right", overflow="fold",
                             max_width=60 if column == "status" else None)
        for row in rows_for(target, store):
            table.add_row(*row, style=None if row[3] == "ok" else "red")
        console.print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help=f"the zoo (default {DEFAULT_CACHE})")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="models (bert) or model files (bert-ts)")
    parser.add_argument("--targets", nargs="+", default=list(TARGETS),
                        help="default: onnxruntime llvm; TARGET-static compiles with every input's shape fixed to "
                             "the model's inputs (mlc's --static-shape)")
    parser.add_argument("--exporters", nargs="+", default=list(EXPORTERS), choices=EXPORTERS)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per job (default 300)")
    parser.add_argument("--runs", type=int, default=30, help="timed runs per side for latency (default 30)")
    parser.add_argument("--markdown", type=Path, default=DEFAULT_MARKDOWN, help="where the markdown goes")
    parser.add_argument("--fresh", action="store_true", help="forget earlier results in CACHE/bench_zoo.json")
    parser.add_argument("--render", action="store_true", help="run nothing: tables and markdown from the store")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.worker)
    cache = args.cache.expanduser()
    store_path = cache / "bench_zoo.json"
    store: dict[str, Any] = {"models": {}}
    if store_path.exists() and not args.fresh:
        store = json.loads(store_path.read_text())
    if args.render:
        if not store["models"]:
            print(f"nothing in {store_path}", file=sys.stderr)
            return 2
        print_tables(store, tuple(store["targets"]))
        args.markdown.write_text(markdown(store, tuple(store["targets"])))
        return 0
    store["date"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = "python benchmarks/bench_zoo.py " + " ".join(sys.argv[1:] if argv is None else argv)
    store["commands"] = [*store.get("commands", []), f"{command}  ({store['date']}, mlc {git_state()})"]
    targets = tuple(args.targets)
    store["targets"] = sorted(set(store.get("targets", [])) | set(targets), key=target_order)
    items = discover(cache, args.only, tuple(args.exporters))
    if not items:
        print(f"no zoo models in {cache}: build them with `python -m models.zoo.build --out {cache}`", file=sys.stderr)
        return 2
    for n, item in enumerate(items, 1):
        entry = store["models"].setdefault(item["key"], {})
        entry["item"] = item
        if "export_failed" in item:
            entry.pop("counts", None)
            entry.pop("targets", None)
            print(f"[{n}/{len(items)}] {item['key']}: export failed: {item['export_failed']}", file=sys.stderr)
            continue
        spec = {k: item[k] for k in ("model", "inputs", "reference")}
        entry["counts"] = run_job(dict(spec, job="model"), args.timeout)
        print(f"[{n}/{len(items)}] {item['key']}: {entry['counts']}", file=sys.stderr)
        for target in targets:
            result = run_job(dict(spec, job="target", target=target, runs=args.runs), args.timeout)
            result["when"] = store["date"]
            entry.setdefault("targets", {})[target] = result
            print(f"    {target}: {result.get('status')} compile {result.get('compile_s')} s, "
                  f"err {fmt_err(result.get('error'))}", file=sys.stderr)
        store_path.write_text(json.dumps(store, indent=1, default=str))
    store_path.write_text(json.dumps(store, indent=1, default=str))
    all_targets = tuple(store["targets"])
    print_tables(store, all_targets)
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    args.markdown.write_text(markdown(store, all_targets))
    print(f"wrote {args.markdown}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
