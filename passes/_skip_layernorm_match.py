"""What `fuse-skip-layernorm` checks before SkipLayerNormalization may stand for Add (+ bias) +
LayerNormalization: the LayerNormalization fits the kernel (`layernorm_problem`), the sum is a
skip connection with an optional 1-D bias on either side (`split_sum`), and the two operands'
shapes are ones the kernel adds as Add would (`shape_problem`), proven on the symbolic shapes of
`_contrib_shapes.py`: dims equal by construction (the same symbol or expression) are equal.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlc.ir.core import Node, Value
from mlc.passes._contrib_shapes import ContribShapes
from mlc.passes._match_basics import const_array, dtype_of
from mlc.passes._symbolic import ONE, Shape, as_int
from mlc.passes._transformer_match import CONTRIB_DTYPES, is_op, other_input, sole_reader


@dataclass
class SkipSum:
    """input + skip (+ bias): the operands SkipLayerNormalization takes, and the Adds it replaces."""

    input: Value | None
    skip: Value | None
    bias: Value | None
    adds: list[Node]


def layernorm_problem(ln: Node, x: Value, shapes: ContribShapes) -> int | str:
    """The hidden size (gamma's length), or why this LayerNormalization is not the kernel's."""
    x_shape = shapes.shape(x)
    rank = None if x_shape is None else len(x_shape)
    axis = int(ln.attr("axis", -1))
    if rank is None or axis not in (-1, rank - 1):
        return f"it normalizes from axis {axis}, not the last axis alone" if rank is not None else \
            "its input's rank is unknown"
    if int(ln.attr("stash_type", 1)) != 1:
        return "stash_type is not 1 (float32 statistics)"
    if any(out is not None and (out.uses or out.is_graph_output) for out in ln.outputs[1:]):
        return "its Mean/InvStdDev outputs are read"
    gamma = ln.inputs[1] if len(ln.inputs) > 1 else None
    beta = ln.inputs[2] if len(ln.inputs) > 2 else None
    for value, what in ((gamma, "scale"), (beta, "bias")):
        shape = shapes.shape(value)
        if value is not None and (shape is None or len(shape) != 1):
            return f"its {what} is not known to be 1-D (SkipLayerNormalization takes 1-D gamma/beta)"
    gamma_shape = shapes.shape(gamma)
    hidden = as_int(gamma_shape[0]) if gamma_shape else None
    if hidden is None:
        return "the hidden size is not static"
    if dtype_of(x) not in CONTRIB_DTYPES:
        return "the input is not float32/float16 (onnxruntime's SkipLayerNormalization kernels)"
    return hidden


def _bias_of(node: Node, value: Value, hidden: int) -> Value | None:
    """The other operand of Add `node` when it is a 1-D constant of the hidden size."""
    other = other_input(node, value)
    array = const_array(other)
    if other is None or other is value or array is None or array.ndim != 1 or array.shape[0] != hidden:
        return None
    return other


def split_sum(add: Node, p: Value, q: Value, hidden: int) -> SkipSum:
    """Add(p, q) as input + skip + bias: the bias after (Add(Add(a, b), bias)) or before
    (Add(Add(m, bias), b)) the skip Add, or none."""
    for operand, other in ((p, q), (q, p)):  # bias after: Add(Add(a, b), bias)
        inner = other.producer
        if _bias_of(add, other, hidden) is operand and inner is not None and is_op(inner, "Add") \
                and sole_reader(other) is add:
            return SkipSum(inner.inputs[0], inner.inputs[1], operand, [inner, add])
    if const_array(p) is None and const_array(q) is None:
        for operand, other in ((p, q), (q, p)):  # bias before: Add(Add(m, bias), b)
            inner = operand.producer
            if inner is None or not is_op(inner, "Add") or sole_reader(operand) is not add:
                continue
            for m in inner.inputs:
                bias = _bias_of(inner, m, hidden) if m is not None else None
                if m is not None and bias is not None and const_array(m) is None:
                    return SkipSum(m, other, bias, [inner, add])
    return SkipSum(p, q, None, [add])


def shape_problem(a: Shape, b: Shape, shapes: ContribShapes) -> str | None:
    """Why SkipLayerNormalization(a, b) might not compute Add(a, b): onnxruntime's kernel refuses
    (at run time) last two dims that differ, but with a 3-D input of batch 1 and a skip of batch B
    it silently returns the input's shape. So the batch dim must be provably equal; the others
    must not be provably different (the same static dim or expression, or not both known)."""
    shown = f"{shapes.show(a)} + {shapes.show(b)}"
    if len(a) != len(b):
        return f"the Add's operands have different ranks ({shown})"
    if len(a) == 3 and (a[0] is None or a[0] != b[0]):
        return (f"the Add's operands are not provably of one batch size ({shown}): with a broadcast batch, "
                "SkipLayerNormalization would silently return the input's shape")
    for x, y in zip(a[-2:], b[-2:], strict=True):
        static = x is not None and y is not None and x.is_const and y.is_const
        if x != y and (static or x == ONE or y == ONE):
            return f"the Add broadcasts ({shown}), which SkipLayerNormalization does not"
    return None


__all__ = ["SkipSum", "layernorm_problem", "shape_problem", "split_sum"]
