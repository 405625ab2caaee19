"""Shared helpers for the ONNX import/export tests: model building and onnxruntime runs."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper

IR_VERSION = 8
OPSET = 17


def make_model(nodes: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto],
               outputs: list[onnx.ValueInfoProto], initializers: list[onnx.TensorProto] = (),
               *, ir_version: int = IR_VERSION, opsets: dict[str, int] | None = None,
               functions: list[onnx.FunctionProto] = (), **graph_kwargs: Any) -> onnx.ModelProto:
    """A model stamped with an IR version and opsets onnxruntime 1.31 opens (onnx 1.23 would
    otherwise stamp IR 14 / opset 28)."""
    graph = helper.make_graph(nodes, "test", inputs, outputs, list(initializers), **graph_kwargs)
    opset_ids = [helper.make_opsetid(d, v) for d, v in (opsets or {"": OPSET}).items()]
    model = helper.make_model(graph, opset_imports=opset_ids, functions=list(functions))
    model.ir_version = ir_version
    return model


def run_ort(model: onnx.ModelProto | bytes | str, feeds: dict[str, np.ndarray]) -> list[Any]:
    """Run under onnxruntime, CPU, one thread, graph optimizations off (the reference setting)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def assert_bitwise(a: list[Any], b: list[Any]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape
        assert x.tobytes() == y.tobytes()
