"""Is onnxruntime's SkipLayerNormalization worth fusing on CPU? (run by hand, not a test)

    python benchmarks/bench_skip_layernorm.py [--runs 1000]

For each shape [batch, sequence, hidden] the same computation, LayerNormalization(x + bias +
residual), runs three ways under onnxruntime's CPU execution provider at ORT_ENABLE_ALL:

* `SkipLayerNormalization`: the com.microsoft composite (what `fuse-skip-layernorm` emits);
* `Add+Add+LN, ORT fuses`: the ai.onnx ops; onnxruntime's own SkipLayerNormFusion turns them
  into the composite at session start, so this should time like the first;
* `Add+Add+LN`: the same ops with SkipLayerNormFusion disabled (`disabled_optimizers`).

Default sessions (thread spinning on); the three take turns in blocks of 20 timed runs after 2
untimed ones; medians in microseconds. The figures decide what the onnxruntime backend does on
CPU: see `OnnxRuntimeBackend.composites`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

SHAPES = [(1, 16, 128), (1, 32, 128), (1, 64, 128), (1, 128, 128), (1, 128, 768), (8, 128, 768)]
BLOCK = 20


def _model(fused: bool, shape: tuple[int, int, int]) -> onnx.ModelProto:
    hidden = shape[-1]
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal(hidden).astype(np.float32), name)
               for name in ("gamma", "beta", "bias")]
    inputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape)) for name in ("x", "residual")]
    if fused:
        nodes = [helper.make_node("SkipLayerNormalization", ["x", "residual", "gamma", "beta", "bias"], ["y"],
                                  domain="com.microsoft", epsilon=1e-12)]
    else:
        nodes = [helper.make_node("Add", ["x", "bias"], ["biased"]),
                 helper.make_node("Add", ["biased", "residual"], ["summed"]),
                 helper.make_node("LayerNormalization", ["summed", "gamma", "beta"], ["y"], axis=-1, epsilon=1e-12)]
    graph = helper.make_graph(nodes, "skip_layernorm", inputs,
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(shape))], weights)
    return helper.make_model(graph, ir_version=9,
                             opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])


def _session(model: onnx.ModelProto, disabled: list[str]) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"],
                                disabled_optimizers=disabled)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000, help="timed runs per variant and shape (default 1000)")
    args = parser.parse_args()
    print(f"onnxruntime {ort.__version__}\n")
    print("| shape | SkipLayerNormalization µs | Add+Add+LN, ORT fuses µs | Add+Add+LN µs | composite / ops |")
    print("|---|--:|--:|--:|--:|")
    for shape in SHAPES:
        sessions = {"composite": _session(_model(True, shape), []),
                    "ort_fuses": _session(_model(False, shape), []),
                    "ops": _session(_model(False, shape), ["SkipLayerNormFusion"])}
        rng = np.random.default_rng(1)
        feeds = {name: rng.standard_normal(shape).astype(np.float32) for name in ("x", "residual")}
        want = sessions["ops"].run(None, feeds)[0]
        for key, s in sessions.items():
            np.testing.assert_allclose(s.run(None, feeds)[0], want, atol=1e-4, err_msg=key)
        samples: dict[str, list[float]] = {key: [] for key in sessions}
        for _ in range(max(args.runs // BLOCK, 1)):
            for key, s in sessions.items():
                for _ in range(2):
                    s.run(None, feeds)
                for _ in range(BLOCK):
                    start = time.perf_counter()
                    s.run(None, feeds)
                    samples[key].append((time.perf_counter() - start) * 1e6)
        med = {key: statistics.median(v) for key, v in samples.items()}
        print(f"| {'x'.join(map(str, shape))} | {med['composite']:.1f} | {med['ort_fuses']:.1f} | {med['ops']:.1f} | "
              f"{med['composite'] / med['ops']:.2f}x |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
