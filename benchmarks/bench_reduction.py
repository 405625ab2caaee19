"""Graph reduction and pipeline speed against onnxsim, onnxslim and onnxruntime's offline optimizer.

    pip install -e '.[bench]'                       # onnxsim 0.8.1, onnxslim 0.1.98
    python benchmarks/bench_reduction.py            # table of node counts + densenet timing
    python benchmarks/bench_reduction.py --json out.json --runs 7

For each light model of the onnx wheel: node counts of the original, onnxsim, onnxslim, ORT's
offline optimizer at `basic` and `extended` (the optimized model ORT saves), mlc -O2 (ai.onnx ops
only) and mlc -O3 for the onnxruntime target (with onnxruntime's contrib composites). Counts are
main-graph nodes, not counting `ConstantOfShape` nodes fed by a constant: those are how the light
models (and mlc's exporter, for large all-equal constants) store weights, which the peers store as
initializers instead, so counting them would compare storage, not graphs.

Then the time each tool takes on `light_densenet121` (median of interleaved runs, file in, model
out in memory): onnxsim, onnxslim, mlc -O2 without numeric checks, and mlc -O2 with the final
check against onnxruntime (what `mlc compile` does by default).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import onnx
import onnxruntime as ort

from mlc.onnx_io.exporter import export_onnx
from mlc.onnx_io.importer import import_onnx
from mlc.pass_manager import PassManager
from mlc.pipelines import build_pipeline

LIGHT = Path(onnx.__file__).resolve().parent / "backend" / "test" / "data" / "light"
MODELS = ["bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50", "shufflenet", "squeezenet",
          "vgg19", "zfnet512"]


def count_nodes(model: onnx.ModelProto) -> int:
    constants = {t.name for t in model.graph.initializer}
    return sum(1 for n in model.graph.node
               if not (n.op_type == "ConstantOfShape" and n.input and n.input[0] in constants))


def run_onnxsim(path: Path) -> onnx.ModelProto:
    import onnxsim

    model, ok = onnxsim.simplify(onnx.load(str(path)))
    if not ok:
        raise RuntimeError("onnxsim's own check failed")
    return model


def run_onnxslim(path: Path) -> onnx.ModelProto:
    import onnxslim

    return onnxslim.slim(onnx.load(str(path)))


def run_ort(path: Path, level: str) -> onnx.ModelProto:
    options = ort.SessionOptions()
    options.graph_optimization_level = {"basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                                        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED}[level]
    options.log_severity_level = 3
    with tempfile.TemporaryDirectory() as tmp:
        options.optimized_model_filepath = str(Path(tmp) / "opt.onnx")
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return onnx.load(options.optimized_model_filepath)


def run_mlc(path: Path, level: str, target: str = "onnxruntime") -> onnx.ModelProto:
    graph = import_onnx(path)
    PassManager(build_pipeline(level, target=target)).run(graph)
    return export_onnx(graph)


def run_mlc_checked(path: Path, level: str = "O2") -> onnx.ModelProto:
    from mlc.runner import CheckOptions, run_pipeline

    result = run_pipeline(path, build_pipeline(level), CheckOptions(verify="final"))
    if result.verdict == "fail":
        raise RuntimeError(f"mlc -{level}: numbers changed")
    return export_onnx(result.graph)


def attempt(fn: Callable[[], onnx.ModelProto]) -> int | str:
    try:
        return count_nodes(fn())
    except Exception as error:  # noqa: BLE001 - a peer failing on a model is a result
        return f"error: {str(error).splitlines()[0][:60] if str(error) else type(error).__name__}"


def reduction_table() -> list[dict[str, object]]:
    rows = []
    for name in MODELS:
        path = LIGHT / f"light_{name}.onnx"
        row: dict[str, object] = {"model": name, "original": count_nodes(onnx.load(str(path)))}
        row["onnxsim"] = attempt(lambda p=path: run_onnxsim(p))
        row["onnxslim"] = attempt(lambda p=path: run_onnxslim(p))
        row["ort basic"] = attempt(lambda p=path: run_ort(p, "basic"))
        row["ort extended"] = attempt(lambda p=path: run_ort(p, "extended"))
        row["mlc -O2"] = attempt(lambda p=path: run_mlc(p, "O2"))
        row["mlc -O3 ort"] = attempt(lambda p=path: run_mlc(p, "O3"))
        rows.append(row)
        print(f"  {name}: {row}", file=sys.stderr)
    return rows


def timing(runs: int) -> dict[str, dict[str, float]]:
    path = LIGHT / "light_densenet121.onnx"
    tools: dict[str, Callable[[], onnx.ModelProto]] = {
        "onnxsim": lambda: run_onnxsim(path),
        "onnxslim": lambda: run_onnxslim(path),
        "mlc -O2": lambda: run_mlc(path, "O2"),
        "mlc -O2 + check": lambda: run_mlc_checked(path),
    }
    samples: dict[str, list[float]] = {k: [] for k in tools}
    for fn in tools.values():
        fn()  # warm-up (imports, caches)
    for _ in range(runs):
        for key, fn in tools.items():  # interleaved: machine noise hits every tool alike
            start = time.perf_counter()
            fn()
            samples[key].append(time.perf_counter() - start)
    return {k: {"median_s": statistics.median(v), "runs": len(v)} for k, v in samples.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timing runs per tool (default 7)")
    parser.add_argument("--json", metavar="FILE", help="also write the raw figures as JSON")
    args = parser.parse_args()
    rows = reduction_table()
    columns = list(rows[0])
    print("| " + " | ".join(columns) + " |")
    print("|" + "|".join("---" if c == "model" else "--:" for c in columns) + "|")
    for row in rows:
        print("| " + " | ".join(str(row[c]) for c in columns) + " |")
    times = timing(args.runs)
    base = times["onnxsim"]["median_s"]
    print("\n| light_densenet121 | median s | vs onnxsim |\n|---|--:|--:|")
    for key, value in times.items():
        print(f"| {key} | {value['median_s']:.3f} | {base / value['median_s']:.2f}x |")
    if args.json:
        Path(args.json).write_text(json.dumps({"nodes": rows, "timing": times}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
