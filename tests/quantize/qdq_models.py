"""Small float MatMul chains and their QDQ versions, built by hand with onnx.helper, so that the
doctor and the search are tested against graphs whose quantization the test controls.

`outlier_chain` makes the case plain min-max quantization cannot handle: the first layer writes
one column a thousand times larger than the rest, the second layer ignores that column, so the
u8 scale of its input (set by the outlier) crushes every value it actually uses."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13


def outlier_chain(seed: int = 0, width: int = 16, classes: int = 10, outlier: float = 1000.0
                  ) -> tuple[onnx.ModelProto, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 0.5, (width, width)).astype(np.float32)
    w1[:, 0] *= outlier  # h1[:, 0] is the outlier column
    w2 = rng.normal(0, 0.5, (width, width)).astype(np.float32)
    w2[0, :] = 0.0  # the second layer ignores it
    w3 = rng.normal(0, 0.5, (width, classes)).astype(np.float32)
    return float_chain([w1, w2, w3]), [w1, w2, w3]


def float_chain(weights: Sequence[np.ndarray]) -> onnx.ModelProto:
    nodes, inits = [], []
    prev = "x"
    for i, w in enumerate(weights, 1):
        out = "y" if i == len(weights) else f"h{i}"
        inits.append(numpy_helper.from_array(w, f"W{i}"))
        nodes.append(helper.make_node("MatMul", [prev, f"W{i}"], [out], name=f"mm{i}"))
        prev = out
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                             ["N", weights[0].shape[0]])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", weights[-1].shape[1]])],
                              inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=10)


def activation_ranges(model: onnx.ModelProto, x: np.ndarray) -> dict[str, tuple[float, float]]:
    """Min-max of every MatMul input activation on `x` (the calibration a QDQ pass would do)."""
    import onnxruntime as ort

    names = [n.input[0] for n in model.graph.node]
    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    for name in names:
        if name != "x":
            exposed.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    session = ort.InferenceSession(exposed.SerializeToString(), providers=["CPUExecutionProvider"])
    values = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"x": x}), strict=True))
    values["x"] = x
    return {n: (float(values[n].min()), float(values[n].max())) for n in names}


def qdq_chain(model: onnx.ModelProto, ranges: dict[str, tuple[float, float]], keep_float: Sequence[str] = ()
              ) -> onnx.ModelProto:
    """u8 per-tensor activations (min-max, zero included), int8 symmetric per-column weights,
    QuantizeLinear/DequantizeLinear in front of every MatMul not in `keep_float`."""
    weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    nodes, inits = [], []
    for node in model.graph.node:
        if node.name in keep_float:
            nodes.append(node)
            inits.append(numpy_helper.from_array(weights[node.input[1]], node.input[1]))
            continue
        act, wname = node.input
        low, high = min(ranges[act][0], 0.0), max(ranges[act][1], 0.0)
        scale = max(high - low, 1e-8) / 255.0
        zero = int(np.clip(round(-low / scale), 0, 255))
        w = weights[wname]
        wscale = np.maximum(np.abs(w).max(axis=0), 1e-8) / 127.0
        wq = np.clip(np.round(w / wscale), -127, 127).astype(np.int8)
        inits += [numpy_helper.from_array(np.array(scale, np.float32), f"{act}_{node.name}_scale"),
                  numpy_helper.from_array(np.array(zero, np.uint8), f"{act}_{node.name}_zp"),
                  numpy_helper.from_array(wq, f"{wname}_q"),
                  numpy_helper.from_array(wscale.astype(np.float32), f"{wname}_scale"),
                  numpy_helper.from_array(np.zeros(w.shape[1], np.int8), f"{wname}_zp")]
        nodes += [helper.make_node("QuantizeLinear", [act, f"{act}_{node.name}_scale", f"{act}_{node.name}_zp"],
                                   [f"{act}_{node.name}_q"], name=f"{node.name}_q_in"),
                  helper.make_node("DequantizeLinear", [f"{act}_{node.name}_q", f"{act}_{node.name}_scale",
                                                        f"{act}_{node.name}_zp"],
                                   [f"{act}_{node.name}_dq"], name=f"{node.name}_dq_in"),
                  helper.make_node("DequantizeLinear", [f"{wname}_q", f"{wname}_scale", f"{wname}_zp"],
                                   [f"{wname}_dq"], name=f"{node.name}_dq_w", axis=1),
                  helper.make_node("MatMul", [f"{act}_{node.name}_dq", f"{wname}_dq"], list(node.output),
                                   name=node.name)]
    graph = helper.make_graph(nodes, "chain_qdq", list(model.graph.input), list(model.graph.output), inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=10)
