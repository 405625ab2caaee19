"""The matching vocabulary of the fusion passes: which domains are standard, constants read as
arrays, shapes and dtypes of values, and whether a value's readers or name block a rewrite."""

from __future__ import annotations

import numpy as np

from mlc.ir.core import STANDARD_DOMAINS, Graph, Node, Value
from mlc.ir.dtypes import DType
from mlc.ir.tensor import Tensor, TensorDataUnavailable
from mlc.ir.types import TensorType

STANDARD = STANDARD_DOMAINS  # ("",): the importer spells the standard domain one way
FLOAT_DTYPES = (DType.FLOAT, DType.FLOAT16, DType.DOUBLE, DType.BFLOAT16)
AFFINE_PRODUCERS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def label(node: Node) -> str:
    """How remarks name a node: `Conv 'c1'`, or the bare op type when it has no name."""
    return f"{node.op_type} {node.name!r}" if node.name else node.op_type


def const_array(value: Value | None, *, constant_nodes: bool = False) -> np.ndarray | None:
    """The values of a constant no caller can override, or None (graph inputs with defaults,
    node outputs, digests without data are not constants a fusion may bake in). With
    `constant_nodes`, the output of a `Constant` node with a tensor `value` counts too (for passes
    that run before fold-constants has turned those into initializers)."""
    if value is None:
        return None
    try:
        if constant_nodes and value.producer is not None:
            node = value.producer
            tensor = node.attr("value") if node.op_type == "Constant" and node.domain in STANDARD else None
            return tensor.numpy() if isinstance(tensor, Tensor) and tensor.has_data else None
        if not value.is_constant or not isinstance(value.const, Tensor) or not value.const.has_data:
            return None
        return value.const.numpy()
    except TensorDataUnavailable:  # external data that cannot be read: not a constant to bake in
        return None


def input_at(node: Node, index: int) -> Value | None:
    """Input `index`, or None when it is omitted or past the end."""
    return node.inputs[index] if index < len(node.inputs) else None


def static_shape(value: Value | None) -> tuple[int, ...] | None:
    """The value's shape when every dim is a known int."""
    if value is None or not isinstance(value.type, TensorType) or not value.type.is_static:
        return None
    assert value.type.shape is not None
    return tuple(int(d) for d in value.type.shape)  # type: ignore[arg-type]


def dtype_of(value: Value | None) -> DType | None:
    if value is None or not isinstance(value.type, TensorType):
        return None
    return value.type.dtype


def output_name_blocked(out: Value, source: Value, graph: Graph) -> bool:
    """When a node passing `source` through is removed and `out` is a graph output, `source` must
    take its name: impossible when `source` is a graph input, a constant, another graph output or
    a value of an enclosing graph (the interface needs two distinct names)."""
    return out.is_graph_output and (source.producer is None or source.is_graph_output or source.graph is not graph)


def reader_problem(value: Value) -> str | None:
    """Why a fusion cannot swallow the node producing `value`: someone else needs the value."""
    if value.is_graph_output:
        return "its output is a graph output"
    count = len(value.uses)
    if count != 1:
        return f"its output has {count} readers"
    return None
