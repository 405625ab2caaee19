"""How long `-O2` takes on the zoo's largest models, against onnxsim and onnxslim (run by hand).

    python -m models.zoo.build                       # the zoo, into ~/.cache/mlc-zoo/
    python benchmarks/time_zoo_pipeline.py           # the largest by nodes and by bytes, 5 runs each
    python benchmarks/time_zoo_pipeline.py --runs 3 --markdown benchmarks/results/zoo_pipeline_time.md

"Largest" two ways, since they load a pipeline differently: the most nodes (shape plumbing: every
pass walks every node; a TorchScript Swin) and the most bytes (weights: folding, hashing, the final
numeric check run real convolutions; an FCN). Each tool takes the model's file and returns the
model in memory, as `bench_real_exports.timing` runs them: onnxsim, onnxslim, mlc -O2 without a
numeric check, and `mlc.optimize` (what `mlc optimize` does, with its final check against
onnxruntime). Runs are interleaved so that the shared machine's noise hits every tool alike;
medians are quoted with the CPU they ran on.
"""

from __future__ import annotations

import argparse
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

import onnx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_real_exports import timing  # a sibling script, not a package
from bench_reduction import count_nodes
from bench_zoo import DEFAULT_CACHE, cpu_name


def largest(cache: Path) -> dict[str, Path]:
    """The zoo's model with the most main-graph nodes and the one with the most bytes."""
    models = sorted(cache.glob("*.onnx"))
    if not models:
        raise SystemExit(f"{cache}: no models (build them with `python -m models.zoo.build`)")
    by_bytes = max(models, key=lambda p: p.stat().st_size)
    by_nodes = max(models, key=lambda p: count_nodes(onnx.load(str(p), load_external_data=False)))
    return {"most nodes": by_nodes, "most bytes": by_bytes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help=f"the zoo (default {DEFAULT_CACHE})")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per tool (default 5)")
    parser.add_argument("--markdown", type=Path, help="also write the tables here")
    args = parser.parse_args(argv)
    lines = ["# -O2 pipeline time on the zoo's largest models\n",
             f"`python benchmarks/time_zoo_pipeline.py --runs {args.runs}` "
             f"({datetime.now(UTC):%Y-%m-%d %H:%M} UTC), CPU: {cpu_name()}, python {platform.python_version()}\n"]
    for kind, path in largest(args.cache).items():
        size = path.stat().st_size / 2**20
        nodes = count_nodes(onnx.load(str(path), load_external_data=False))
        times = timing(path, args.runs)
        base = times["onnxsim"]["median_s"]
        lines.append(f"\n## {kind}: {path.name} ({nodes} nodes, {size:.0f} MiB)\n")
        lines.append("| tool | median s | onnxsim / tool |\n|---|--:|--:|")
        for tool, value in times.items():
            lines.append(f"| {tool} | {value['median_s']:.3f} | {base / value['median_s']:.2f}x |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
