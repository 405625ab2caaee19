"""What checking the numbers after every pass costs, on ResNet-50 with real (seeded) weights.

    python benchmarks/bench_debug.py [--runs 5]

The same 10-pass pipeline runs through `mlc debug`'s engine with `--verify none` (import, export
of the input for later comparison, the passes: the unchecked pipeline), `--verify final` and `--verify each`, the
three interleaved run by run so that machine noise hits them alike; medians and ratios to the
unchecked run are printed. Two pipelines: the exact cleanups (one pass changes the graph) and the
same with the test-only perturbation at epsilon = 1e-7 (float noise, a second changing pass,
still passing), and a worst case where all ten passes change the graph. A pass that changes
nothing is not re-checked: its output is its input.
Goal (issue 4): `each` under 5x the unchecked pipeline.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "models"))

CLEAN = ["eliminate-identity", "dedupe-constants", "cse", "dce", "eliminate-identity", "cse", "dedupe-constants",
         "dce", "eliminate-identity", "cse"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    import make_resnet50

    from mlc.debugger import load_plugin
    from mlc.pipelines import build_pipeline
    from mlc.runner import CheckOptions, run_pipeline

    cache = Path.home() / ".cache" / "mlc-test-models" / "resnet50-seed0.onnx"
    if not cache.exists():
        make_resnet50.build(cache)
    load_plugin(str(ROOT / "tests" / "perturb_pass.py"))
    perturbed = list(CLEAN)
    perturbed[6] = "perturb-weights{node=n78,epsilon=1e-07}"
    import onnx

    model = onnx.load(str(cache), load_external_data=False)
    convs = [n.name for n in model.graph.node if n.op_type == "Conv"][::5][:10]
    every = [f"perturb-weights{{node={c},epsilon=1e-07}}" for c in convs]
    pipelines = {"clean (1 changing pass)": CLEAN, "with 1e-7 perturbation (2 changing)": perturbed,
                 "worst case: all 10 change (1e-7 each)": every}
    run_pipeline(cache, build_pipeline(passes="dce"), CheckOptions(verify="each"))  # warm the caches
    print(f"ResNet-50 (seeded weights), {args.runs} interleaved runs per mode; times in seconds (median)")
    print(f"{'pipeline':38} {'none':>7} {'final':>7} {'each':>7} {'final/none':>11} {'each/none':>10} {'checks':>7}")
    for label, specs in pipelines.items():
        times: dict[str, list[float]] = {"none": [], "final": [], "each": []}
        checks = 0
        for _ in range(args.runs):
            for mode in times:
                passes = build_pipeline(passes=",".join(specs))
                started = time.perf_counter()
                result = run_pipeline(cache, passes, CheckOptions(verify=mode, second_opinion=False))
                times[mode].append(time.perf_counter() - started)
                assert result.verdict in ("ok", "unchecked"), result.verdict
                if mode == "each":
                    checks = sum(1 for r in result.records if r.check is not None)
        med = {m: statistics.median(v) for m, v in times.items()}
        print(f"{label:38} {med['none']:7.2f} {med['final']:7.2f} {med['each']:7.2f} "
              f"{med['final'] / med['none']:10.2f}x {med['each'] / med['none']:9.2f}x {checks:7d}")


if __name__ == "__main__":
    main()
