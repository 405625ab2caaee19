"""Helpers of the transformer fusions (GELU, LayerNorm, attention): ops and producers in the
standard domain, pattern constants matched within a tolerance, single readers, the contrib
dtypes onnxruntime's kernels take."""

from __future__ import annotations

from collections.abc import Iterable

from mlc.ir.core import Node, Value
from mlc.ir.dtypes import DType
from mlc.ir.types import Dim, TensorType
from mlc.passes._match_basics import STANDARD, const_array

MS_DOMAIN = "com.microsoft"
# onnxruntime's CPU kernels of Gelu, BiasGelu and SkipLayerNormalization take float32 and float16
# (double Gelu falls back to a function body whose Erf has no double kernel).
CONTRIB_DTYPES = (DType.FLOAT, DType.FLOAT16)
# Constants of a pattern (0.5, sqrt 2, 0.7978845, 0.044715, ...) match within this relative
# tolerance: exporters and hand-written models round them to 5 or 6 significant digits.
CONST_RTOL = 1e-4


def where(node: Node) -> str:
    """How remarks name a node: its name quoted, or its op and output when it has none."""
    if node.name:
        return repr(node.name)
    out = node.outputs[0] if node.outputs else None
    return f"{node.op_type} -> %{out.name}" if out is not None else node.op_type


def is_op(node: Node | None, *op_types: str) -> bool:
    """`node` is one of the standard-domain `op_types`."""
    return node is not None and node.op_type in op_types and node.domain in STANDARD


def producer(value: Value | None, *op_types: str) -> Node | None:
    """The node producing `value` when it is one of the standard `op_types`."""
    node = value.producer if value is not None else None
    return node if node is not None and is_op(node, *op_types) else None


def const_scalar(value: Value | None) -> float | None:
    """The value of a constant scalar or one-element float/int tensor."""
    array = const_array(value)
    if array is None or array.size != 1 or array.dtype.kind not in "fiu":
        return None
    return float(array.reshape(-1)[0])


def is_close(value: Value | None, target: float) -> bool:
    """`value` is a constant scalar (or one-element tensor) within CONST_RTOL of `target`."""
    got = const_scalar(value)
    return got is not None and abs(got - target) <= CONST_RTOL * abs(target)


def other_input(node: Node, value: Value) -> Value | None:
    """The operand of binary `node` that is not `value` (`value` itself for Mul(v, v))."""
    a, b = (*node.inputs, None, None)[:2]
    if a is value:
        return b
    if b is value:
        return a
    return None


def dims_of(value: Value | None) -> tuple[Dim, ...] | None:
    if value is None or not isinstance(value.type, TensorType):
        return None
    return value.type.shape


def sole_reader(value: Value | None, *op_types: str) -> Node | None:
    """The one reader of `value` when it has exactly one use and is no graph output; with
    `op_types`, only when that reader is one of them (standard domain)."""
    if value is None or value.is_graph_output or len(value.uses) != 1:
        return None
    node = value.uses[0][0]
    return node if not op_types or is_op(node, *op_types) else None


def read_only_by(value: Value | None, nodes: Iterable[Node]) -> bool:
    """Every reader of `value` is one of `nodes`, and it is no graph output."""
    if value is None or value.is_graph_output:
        return False
    allowed = {id(n) for n in nodes}
    return all(id(node) in allowed for node, _ in value.uses)
