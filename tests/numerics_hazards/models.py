"""Small models with numeric hazards, built with onnx.helper (IR 8, opset 17), and how to run
them on onnxruntime as the reference does (graph optimizer off)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
FLOAT16_MAX = 65504.0


def save(nodes: list[onnx.NodeProto], inits: dict[str, np.ndarray], inputs: dict[str, tuple[int, list[int]]],
         outputs: dict[str, tuple[int, list[int] | None]], path: Path) -> Path:
    """A checked model at `path`; `inputs`/`outputs` map names to (element type, shape)."""
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(k, t, s) for k, (t, s) in inputs.items()],
        [helper.make_tensor_value_info(k, t, s) for k, (t, s) in outputs.items()],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def conv_bn_fp16(path: Path, *, weight: float = 1e3, gamma: float = 0.3, var: float = 1e-8) -> Path:
    """x -> Mul(1e-3) -> Conv (float16, weights ~`weight`) -> BatchNormalization (tiny `var`).

    The BN scale gamma/sqrt(var + 1e-5) is ~95 (var 1e-8 is 0 in float16), so the folded weights
    W*s reach ~3e5: Inf in float16. Unfused, the network stays finite: the Mul keeps the
    activations small, the Conv result is ~5, and times 95 it is a few hundred."""
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((4, 3, 3, 3)) * weight).astype(np.float16)
    inits = {"w": w, "b": np.zeros(4, np.float16), "gamma": np.full(4, gamma, np.float16),
             "beta": np.linspace(-1, 1, 4).astype(np.float16), "mean": np.full(4, 0.5, np.float16),
             "var": np.full(4, var, np.float16), "k": np.array(1e-3, np.float16)}
    nodes = [helper.make_node("Mul", ["x", "k"], ["xs"]),
             helper.make_node("Conv", ["xs", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("BatchNormalization", ["c", "gamma", "beta", "mean", "var"], ["y"], epsilon=1e-5,
                              name="bn")]
    return save(nodes, inits, {"x": (TensorProto.FLOAT16, [1, 3, 8, 8])}, {"y": (TensorProto.FLOAT16, [1, 4, 8, 8])},
                path)


def reference_outputs(path: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """onnxruntime on the original model with its graph optimizer off (as mlc's reference runs:
    its own Conv+BN fusion would overflow float16 just like a naive fold)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))


def fp16_feeds(seed: int = 1) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(seed).uniform(-1, 1, (1, 3, 8, 8)).astype(np.float16)}


def subnormal_matmul(path: Path, dtype: int = TensorProto.FLOAT) -> Path:
    """y = MatMul(x, W) * s with W all subnormal (float32 5e-40 / float16 1e-6 steps) and `s` a graph
    input: fed with a large s (1e38 / 1e4) the outputs are normal numbers that an engine flushing
    subnormal operands to zero would compute as 0; fed with s = 1 they are themselves subnormal."""
    np_dtype = np.float32 if dtype == TensorProto.FLOAT else np.float16
    tiny = 5e-40 if dtype == TensorProto.FLOAT else 1e-6
    w = (np.arange(1, 17).reshape(4, 4) * tiny).astype(np_dtype)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"], name="matmul"), helper.make_node("Mul", ["m", "s"], ["y"])]
    return save(nodes, {"w": w}, {"x": (dtype, [2, 4]), "s": (dtype, [1])}, {"y": (dtype, [2, 4])}, path)


def subnormal_feeds(dtype: int, *, amplify: bool) -> dict[str, np.ndarray]:
    np_dtype = np.float32 if dtype == TensorProto.FLOAT else np.float16
    scale = (1e38 if dtype == TensorProto.FLOAT else 1e4) if amplify else 1.0
    return {"x": np.linspace(0.5, 1.0, 8).reshape(2, 4).astype(np_dtype), "s": np.array([scale], np_dtype)}


def save_feeds(feeds: dict[str, np.ndarray], path: Path) -> str:
    np.savez(path, **feeds)
    return str(path)
