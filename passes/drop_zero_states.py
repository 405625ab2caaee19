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

from mlc.ir.core import Graph, Node, Value
from mlc.ir.tensor import Tensor, TensorDataUnavailable
from mlc.pass_api import Numerics, Pass, PassContext, register_pass
from mlc.passes._patterns import STANDARD, input_at, label

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


@register_pass
class DropZeroStates(Pass):
    name = "drop-zero-states"
    description = "Omit LSTM/GRU/RNN initial states that are zeros (the ops' default)"
    numerics = Numerics.EXACT
    statistics = ("states_dropped",)

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        for sub in graph.all_graphs():
            for node in sub:
                if node.domain not in STANDARD or node.op_type not in _STATES:
                    continue
                for index in _STATES[node.op_type]:
                    if self._drop(node, index, ctx):
                        changed = True
                    if ctx.exhausted:
                        return changed
        return changed

    @staticmethod
    def _drop(node: Node, index: int, ctx: PassContext) -> bool:
        state = input_at(node, index)
        if state is None or not is_zeros(state):
            return False
        if not ctx.rewrite("zero-state"):
            return False
        node.set_input(index, None)
        ctx.stats["states_dropped"] += 1
        ctx.remark(f"{label(node)}: initial state {index} is zeros, omitted")
        return True
