"""Omit the initial states of LSTM, GRU and RNN nodes that are zeros: the ops' own default.

PyTorch's exporters pass `h0` (and an LSTM's `c0`) explicitly, built at run time for the dynamic
batch: `ConstantOfShape(Concat([layers], Unsqueeze(Gather(Shape(x), 0)), [hidden]))` from the
TorchScript exporter, `Expand(0.0, Concat(...))` from the dynamo exporter, sliced per layer
(`Slice`) or per direction. An omitted `initial_h` / `initial_c` means zeros of the right shape,
so

    zero-state   LSTM/GRU/RNN(..., initial_h = Z, initial_c = Z')   ->   the same op with the
                 inputs omitted, where Z is provably all +0.0: a constant of zeros,
                 ConstantOfShape with a zero value (or none), Expand of such a value, or a layout
                 op of zeros (Slice, Reshape, Squeeze, Unsqueeze, Transpose, Identity, Gather,
                 Split, Concat of zeros, Cast).

Only +0.0 counts: the zeros the op assumes are +0.0 (a -0.0 state can change the sign of a zero
output). A state of the wrong shape made the original fail; the rewrite serves every shape the
original accepts. What feeds the states becomes dead, for `dce`.
"""

from __future__ import annotations

import numpy as np

from mlc.ir.core import Node, Value
from mlc.ir.tensor import Tensor, TensorDataUnavailable
from mlc.pass_api import Numerics, register_pass
from mlc.passes._match_basics import STANDARD, input_at, label
from mlc.rewrite import IRBuilder, Match, Reject, Rule, RulePass

_STATES = {"LSTM": (5, 6), "GRU": (5,), "RNN": (5,)}
_LAYOUT = {"Slice", "Reshape", "Squeeze", "Unsqueeze", "Transpose", "Identity", "Flatten", "Split", "Expand", "Tile",
           "Cast", "CastLike"}


def _positive_zeros(array: np.ndarray) -> bool:
    if array.dtype.kind not in "iuf" or array.size == 0:
        return False
    return bool(np.all(array == 0) and not np.any(np.signbit(array)))


def _tensor_zeros(tensor: object) -> bool:
    if not isinstance(tensor, Tensor) or not tensor.has_data:
        return False
    try:
        if tensor.is_splat:
            return _positive_zeros(np.asarray(tensor.splat_value).reshape(1))
        return _positive_zeros(tensor.numpy())
    except (TensorDataUnavailable, TypeError):
        return False


def is_zeros(value: Value | None, depth: int = 0) -> bool:
    """Every element of `value` is +0.0 (or an integer 0), whatever its shape."""
    if value is None or depth > 16:
        return False
    if value.is_constant:
        return _tensor_zeros(value.const)
    node = value.producer
    if node is None or node.domain not in STANDARD:
        return False
    if node.op_type == "ConstantOfShape":
        fill = node.attributes.get("value")
        return fill is None or (fill.ref is None and _tensor_zeros(fill.value))
    if node.op_type == "Concat":
        return all(is_zeros(v, depth + 1) for v in node.inputs if v is not None)
    if node.op_type == "Gather":
        return is_zeros(node.inputs[0], depth + 1)
    if node.op_type in _LAYOUT:  # the data input is the first; shapes, axes, repeats do not add values
        return is_zeros(node.inputs[0], depth + 1)
    return False


class ZeroState(Rule):
    """One rule per state input (`initial_h`, an LSTM's `initial_c`), so each dropped state is one
    rewrite, as `--max-rewrites` bisection expects."""

    ops = tuple(_STATES)

    def __init__(self, index: int) -> None:
        self.index = index
        self.name = "zero-state"
        self.law = f"LSTM/GRU/RNN(..., input {index} = +0.0 everywhere) -> the same op, input {index} omitted"

    def match(self, node: Node) -> Match | Reject | None:
        if self.index not in _STATES[node.op_type] or not is_zeros(input_at(node, self.index)):
            return None
        return Match(node)

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        match.root.set_input(self.index, None)
        builder.ctx.stats["states_dropped"] += 1
        builder.ctx.remark(f"{label(match.root)}: initial state {self.index} is zeros, omitted")


@register_pass
class DropZeroStates(RulePass):
    name = "drop-zero-states"
    description = "Omit LSTM/GRU/RNN initial states that are zeros (the ops' default)"
    numerics = Numerics.EXACT
    statistics = ("states_dropped",)
    rules = (ZeroState(5), ZeroState(6))
