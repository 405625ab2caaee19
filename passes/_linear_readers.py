"""The linear readers of a LayerNormalization's output, for `fold-residual-bias`.

Moving a residual bias b into beta (r' = r + b) is exact only when every other reader of r is a
linear layer `r @ W + c` whose bias c can absorb `-b @ W`. This module says how a reader computes
that (its weight, which input holds c, Gemm's beta) or why it is no such layer, and computes the
shifted bias. The rule in `fold_residual_bias.py` decides what to match and rewrites.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlc.ir.core import Node, Value
from mlc.numerics.narrowing import narrowing_problem
from mlc.passes._match_basics import const_array, input_at, label
from mlc.passes._transformer_match import MS_DOMAIN, is_op, sole_reader

BIASED_ACTIVATIONS = ("BiasGelu", "FastGelu")


@dataclass
class Shift:
    """One reader's bias, to become `bias - b @ weight` (weight already [hidden, width])."""

    node: Node
    index: int  # the bias input of `node`
    weight: np.ndarray
    factor: float  # Gemm's beta divides the shift: beta * c' = beta * c - alpha * b @ W


def _matmul_reader(node: Node) -> Shift | str:
    """MatMul(r, W) whose product is read by one bias Add or com.microsoft BiasGelu/FastGelu."""
    weight = const_array(node.inputs[1])
    product = node.outputs[0]
    if weight is None or weight.ndim != 2:
        return f"{label(node)} reads it with a weight that is not a constant matrix"
    reader = sole_reader(product)
    if reader is None:
        return f"the product of {label(node)} is not read by one bias Add"
    if is_op(reader, "Add"):
        index = 1 if reader.inputs[0] is product else 0
    elif reader.domain == MS_DOMAIN and reader.op_type in BIASED_ACTIVATIONS and reader.inputs[0] is product \
            and input_at(reader, 1) is not None:
        index = 1
    else:
        return f"the product of {label(node)} is read by {label(reader)}, not a bias Add"
    bias = const_array(reader.inputs[index])
    if bias is None or bias.shape != (weight.shape[1],):
        return f"{label(reader)} adds no constant vector of the product's width"
    return Shift(reader, index, weight, 1.0)


def _gemm_reader(node: Node) -> Shift | str:
    """Gemm(r, W, c) with transA=0: alpha folds into the weight, beta divides the shift."""
    weight = const_array(node.inputs[1])
    bias = const_array(input_at(node, 2))
    if weight is None or bias is None:
        return f"{label(node)} has no constant weight and bias"
    weight = weight.T if node.attr("transB", 0) else weight
    beta = float(node.attr("beta", 1.0))
    if bias.shape != (weight.shape[1],) or beta == 0.0:
        return f"{label(node)}'s bias is not a vector of its width"
    return Shift(node, 2, weight.astype(np.float64) * float(node.attr("alpha", 1.0)), beta)


def _attention_reader(node: Node) -> Shift | str:
    """com.microsoft Attention(r, W, c, ...): its packed QKV weight and bias."""
    weight, bias = const_array(input_at(node, 1)), const_array(input_at(node, 2))
    if weight is None or bias is None or weight.ndim != 2 or bias.shape != (weight.shape[1],):
        return f"{label(node)} has no constant packed weight and bias"
    return Shift(node, 2, weight, 1.0)


def linear_reader(node: Node, r: Value) -> Shift | str:
    """How reader `node` of r computes r @ W + c with c adjustable, or why it does not."""
    if is_op(node, "MatMul") and node.inputs[0] is r:
        return _matmul_reader(node)
    if is_op(node, "Gemm") and node.inputs[0] is r and not node.attr("transA", 0):
        return _gemm_reader(node)
    if node.domain == MS_DOMAIN and node.op_type == "Attention" and node.inputs[0] is r:
        return _attention_reader(node)
    return f"it is also read by {label(node)}, not a linear layer"


def shifted_bias(c: np.ndarray, b: np.ndarray, shift: Shift) -> np.ndarray:
    """c - b @ W / factor in float64 (the reader's new bias before rounding to c's type)."""
    return c.astype(np.float64) - (b.astype(np.float64) @ shift.weight.astype(np.float64)) / shift.factor


def shift_overflow(ln: Node, beta: np.ndarray, b: np.ndarray, shifts: list[Shift]) -> str | None:
    """Why beta + b or a reader's c - b @ W does not fit its type (None: they all do)."""
    why = narrowing_problem(beta.astype(np.float64) + b, beta.dtype, channel_axes=(), underflow=False,
                            what=f"shifted biases of {label(ln)}")
    for shift in shifts:
        c = const_array(shift.node.inputs[shift.index])
        assert c is not None
        why = why or narrowing_problem(shifted_bias(c, b, shift), c.dtype, channel_axes=(), underflow=False,
                                       what=f"shifted biases of {label(shift.node)}")
    return why


__all__ = ["BIASED_ACTIVATIONS", "Shift", "linear_reader", "shift_overflow", "shifted_bias"]
