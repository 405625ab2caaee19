"""Which channels of each value are exactly zero: the forward analysis of `prune-zero-channels`.

Over the layouts of `ChannelAnalysis`, every value carrying channels gets a mask of the channels
that are exactly 0, computed node by node from the law of each op at 0 (the table is in the
pass's docstring, `prune_zero_channels.py`): a source's channel is 0 when its weights and bias
are, a Relu keeps zeros, an Add needs every operand 0, a Mul any (the others finite), ...
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mlc.ir.core import Node, Value
from mlc.passes._channel_groups import ChannelAnalysis, Layout, SliceConstant
from mlc.passes._match_basics import const_array, input_at

KEEPS_ZERO = frozenset({
    "Relu", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "HardSwish", "Tanh", "Erf", "Gelu", "Mish", "Softsign",
    "Abs", "Neg", "Sqrt", "Sign", "Sin", "Floor", "Ceil", "Round", "Identity", "Dropout", "Cast", "ThresholdedRelu",
    "MaxPool", "AveragePool", "LpPool", "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool", "Resize",
    "Flatten", "Reshape", "Squeeze", "Unsqueeze",
    "ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum", "ReduceL1", "ReduceL2",
})


def per_channel(array: np.ndarray, axis: int, count: int) -> np.ndarray:
    """`array`'s entries grouped by channel: row c holds every entry on channel c's positions
    (`repeat` of them after a Flatten), [count, k]; an axis of size 1 broadcasts."""
    moved = np.moveaxis(array, axis, 0)
    rows = moved.reshape(moved.shape[0], -1) if moved.ndim else moved.reshape(1, 1)
    if rows.shape[0] == 1:
        return np.broadcast_to(rows, (count, rows.shape[1]))
    return rows.reshape(count, -1)


class ZeroMasks:
    """Which channels of each value carrying channels are exactly zero."""

    def __init__(self, analysis: ChannelAnalysis) -> None:
        self.analysis = analysis
        self.masks: dict[Value, np.ndarray] = {}
        params: dict[tuple[Node, int], SliceConstant] = {}
        for action in analysis.actions:
            if isinstance(action, SliceConstant):
                params[(action.node, action.input)] = action
        self.params = params
        for node in analysis.graph:
            out = node.outputs[0] if node.outputs else None
            layout = analysis.layouts.get(out) if out is not None else None
            if layout is not None and out is not None:
                self.masks[out] = self._transfer(node, layout, analysis.total(layout))

    def mask(self, value: Value | None, count: int) -> np.ndarray:
        found = self.masks.get(value) if value is not None else None
        return found if found is not None else np.zeros(count, dtype=bool)

    def _constant(self, node: Node, index: int, count: int) -> np.ndarray | None:
        """Rows per channel of constant input `index` ([count, k]); None when it is no constant.
        A constant the analysis does not slice reaches every channel alike."""
        array = const_array(input_at(node, index))
        if array is None:
            return None
        action = self.params.get((node, index))
        if action is not None:
            return per_channel(array, action.axis, count)
        return np.broadcast_to(array.reshape(1, -1), (count, max(array.size, 1)))

    def _transfer(self, node: Node, layout: Layout, count: int) -> np.ndarray:
        op = node.op_type
        none = np.zeros(count, dtype=bool)
        x = self.mask(input_at(node, 0), count)
        if node in self.analysis.sources:
            return self._source(node, count)
        if op in KEEPS_ZERO:
            return x
        rules: dict[str, Callable[[], np.ndarray]] = {
            "Clip": lambda: x & self._clip(node),
            "HardSigmoid": lambda: x if float(node.attr("beta", 0.5)) <= 0.0 else none,  # clamp(beta, 0, 1)
            "Pad": lambda: x & self._pad_value_zero(node),
            "BatchNormalization": lambda: x & self._zero(node, 3, count) & self._zero(node, 2, count),
            "InstanceNormalization": lambda: x & self._zero(node, 2, count),
            "Conv": lambda: (x | self._zero(node, 1, count)) & self._zero(node, 2, count),  # depthwise
            "Concat": lambda: self._concat(node, layout),
        }
        if op in rules:
            return rules[op]()
        return self._elementwise(node, count)

    def _zero(self, node: Node, index: int, count: int) -> np.ndarray:
        """Per channel: constant input `index` is all zero there (absent: True)."""
        if input_at(node, index) is None:
            return np.ones(count, dtype=bool)
        rows = self._constant(node, index, count)
        return np.zeros(count, dtype=bool) if rows is None else (rows == 0).all(axis=1)

    def _source(self, node: Node, count: int) -> np.ndarray:
        space = self.analysis.sources[node]
        assert space.weight is not None
        _, index, axis = space.weight
        weight = const_array(node.inputs[index])
        assert weight is not None
        zero = np.asarray((np.moveaxis(weight, axis, 0).reshape(count, -1) == 0).all(axis=1))
        if node.op_type == "Gemm" and float(node.attr("beta", 1.0)) == 0.0:
            return zero
        return np.asarray(zero & self._zero(node, 2, count))

    def _clip(self, node: Node) -> bool:
        low, high = const_array(input_at(node, 1)), const_array(input_at(node, 2))
        if (input_at(node, 1) is not None and low is None) or (input_at(node, 2) is not None and high is None):
            return False
        return ((low is None or float(low.reshape(-1)[0]) <= 0.0)
                and (high is None or float(high.reshape(-1)[0]) >= 0.0))

    def _pad_value_zero(self, node: Node) -> bool:
        if node.attr("mode", "constant") != "constant" or input_at(node, 2) is None:
            return True
        value = const_array(input_at(node, 2))
        return value is not None and bool((value == 0).all())

    def _concat(self, node: Node, layout: Layout) -> np.ndarray:
        """The inputs' masks side by side; an input no layer produces (one space of the
        layout) is taken as nonzero."""
        parts, at = [], 0
        for value in node.inputs:
            inner = self.analysis.layouts.get(value) if value is not None else None
            if inner is not None:
                parts.append(self.mask(value, self.analysis.total(inner)))
                at += len(inner.spaces)
            elif value is not None:
                parts.append(np.zeros(self.analysis.spaces[layout.spaces[at]].count, dtype=bool))
                at += 1
        return np.concatenate(parts)

    def _elementwise(self, node: Node, count: int) -> np.ndarray:
        op = node.op_type
        operands = []
        for i, value in enumerate(node.inputs):
            if value is None:
                continue
            rows = self._constant(node, i, count)
            if rows is not None:
                operands.append((i, rows == 0, bool(np.isfinite(rows).all())))
            else:
                operands.append((i, self.mask(value, count)[:, None], True))
        zero = [z.all(axis=1) for _, z, _ in operands]
        if op in ("Add", "Sub", "Sum", "Max", "Min", "Mean"):
            return np.asarray(np.logical_and.reduce(zero))
        if op == "Mul" and all(finite for _, _, finite in operands):
            return np.asarray(np.logical_or.reduce(zero))
        if op == "Div" and len(operands) == 2:
            divisor = self._constant(node, 1, count)
            if divisor is not None and np.isfinite(divisor).all():
                return np.asarray(zero[0] & (divisor != 0).all(axis=1))
        if op == "Pow" and len(operands) == 2:
            exponent = self._constant(node, 1, count)
            if exponent is not None:
                return np.asarray(zero[0] & (exponent > 0).all(axis=1))
        return np.zeros(count, dtype=bool)


__all__ = ["KEEPS_ZERO", "ZeroMasks", "per_channel"]
