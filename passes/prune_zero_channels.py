"""Remove channels that are exactly zero wherever they are read (exact).

    Conv(x, W, b) with W[c] = 0 and b[c] = 0  ->  channel c of its output is 0
    Conv(., V) reading it                     ->  V[:, c] contributes 0*V[:, c] = 0: drop both

The groups and the rewrite are those of `prune-channels` (`_channel_groups`, `_channel_surgery`);
what differs is which channels go. A forward pass over the analysis's layouts computes, for every
value carrying channels, which channels are exactly zero, by the law of each op at 0:

    source            W[c] = 0 and bias[c] = 0 (Gemm: C's column c = 0, or beta = 0)
    f(0) = 0          Relu, LeakyRelu, PRelu, Elu, Selu, Celu, HardSwish, Tanh, Erf, Gelu, Mish,
                      Softsign, Abs, Neg, Sqrt, Sign, Sin, Floor, Ceil, Round, Identity, Dropout, Cast;
                      Clip when min <= 0 <= max; HardSigmoid when beta <= 0 (Sigmoid(0) = 0.5: no)
    pooling, Resize   of zeros: 0 (MaxPool's padding never wins over a 0; AveragePool's counts 0s);
                      so are ReduceMean/Max/Min/Sum/L1/L2 over other axes
    Pad               constant mode pads with its value: 0 only when that value is 0
    BatchNorm         (0 - mean) * s + beta: 0 when mean[c] = 0 and beta[c] = 0
    InstanceNorm      0 * scale + B: 0 when B[c] = 0
    depthwise Conv    (0 or W[c] = 0) and bias[c] = 0
    Add/Sub/Sum/Max/Min/Mean   every operand 0 (a constant's entries for c included)
    Mul               any operand 0 (the others finite)
    Div               the dividend 0 and a constant divisor nonzero
    Pow               the base 0 and a constant exponent > 0
    Concat, Flatten, Reshape, Squeeze, Unsqueeze   the channels' zeros move with them

Channel c of a group goes when it is zero at the input of every layer that reads it (Conv,
Gemm, MatMul), whose weights for it are finite: its contribution there is exactly 0, and nothing
else observes it (a graph output or an op the analysis does not follow blocks the group). A
channel that is zero at its source and made nonzero on the way (a bias, a BatchNormalization
shift, Sigmoid) stays, with a remark. Every group keeps at least one channel.

Exact for finite activations (0 * x = 0 needs x finite, as a zero-weight filter's output does).
The consumers' sums lose terms that are exactly zero, so only the order of additions can differ:
the `exact` contract's strict tolerance covers that.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mlc.ir.core import Graph, Node, Value
from mlc.pass_api import Numerics, Pass, PassContext, register_pass
from mlc.passes._channel_groups import ChannelAnalysis, Group, Layout, SliceConstant
from mlc.passes._channel_surgery import parameter_count, remove_channels
from mlc.passes._patterns import const_array, input_at, label

KEEPS_ZERO = frozenset({
    "Relu", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "HardSwish", "Tanh", "Erf", "Gelu", "Mish", "Softsign",
    "Abs", "Neg", "Sqrt", "Sign", "Sin", "Floor", "Ceil", "Round", "Identity", "Dropout", "Cast", "ThresholdedRelu",
    "MaxPool", "AveragePool", "LpPool", "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool", "Resize",
    "Flatten", "Reshape", "Squeeze", "Unsqueeze",
    "ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum", "ReduceL1", "ReduceL2",
})


def _per_channel(array: np.ndarray, axis: int, count: int) -> np.ndarray:
    """`array`'s entries grouped by channel: row c holds every entry on channel c's positions
    (`repeat` of them after a Flatten), [count, k]; an axis of size 1 broadcasts."""
    moved = np.moveaxis(array, axis, 0)
    rows = moved.reshape(moved.shape[0], -1) if moved.ndim else moved.reshape(1, 1)
    if rows.shape[0] == 1:
        return np.broadcast_to(rows, (count, rows.shape[1]))
    return rows.reshape(count, -1)


class _Zeros:
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
            return _per_channel(array, action.axis, count)
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
        zero = (np.moveaxis(weight, axis, 0).reshape(count, -1) == 0).all(axis=1)
        if node.op_type == "Gemm" and float(node.attr("beta", 1.0)) == 0.0:
            return zero
        return zero & self._zero(node, 2, count)

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
            return np.logical_and.reduce(zero)
        if op == "Mul" and all(finite for _, _, finite in operands):
            return np.logical_or.reduce(zero)
        if op == "Div" and len(operands) == 2:
            divisor = self._constant(node, 1, count)
            if divisor is not None and np.isfinite(divisor).all():
                return zero[0] & (divisor != 0).all(axis=1)
        if op == "Pow" and len(operands) == 2:
            exponent = self._constant(node, 1, count)
            if exponent is not None:
                return zero[0] & (exponent > 0).all(axis=1)
        return np.zeros(count, dtype=bool)


@register_pass
class PruneZeroChannels(Pass):
    name = "prune-zero-channels"
    description = "Remove channels that are exactly zero wherever a Conv/Gemm/MatMul reads them"
    numerics = Numerics.EXACT
    statistics = ("channels_removed", "groups_pruned", "params_removed")

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        analysis = ChannelAnalysis(graph)
        zeros = _Zeros(analysis)
        readers = self._readers(analysis)
        kept: dict[int, np.ndarray] = {}
        removed_total = 0
        for group in analysis.groups():
            if not group.sources:
                continue
            silent = self._source_zeros(group)
            if group.blocker is not None:
                if any(z.any() for z in silent.values()):
                    for line in analysis.remarks(group):
                        ctx.remark(line)
                continue
            removable = self._removable(group, analysis, zeros, readers)
            if removable.all():
                removable[0] = False  # a group keeps at least one channel
            for space in group.sources:
                assert space.source is not None
                lost = np.flatnonzero(silent[space.index] & ~removable)
                if len(lost):
                    ctx.remark(f"{label(space.source)}: kept zero-weight channels {lost.tolist()}, they are not "
                               "zero where they are read (a bias, a normalization shift or an activation makes "
                               "them nonzero)")
            if not removable.any() or not ctx.rewrite("zero-channels"):
                continue
            keep = np.flatnonzero(~removable)
            for space in group.spaces:
                kept[space.index] = keep
            removed_total += int(removable.sum())
            ctx.stats["groups_pruned"] += 1
        if not kept:
            return False
        ctx.stats["channels_removed"] += removed_total
        before = parameter_count(graph)
        remove_channels(graph, analysis, kept)
        ctx.stats["params_removed"] += before - parameter_count(graph)
        return True

    @staticmethod
    def _source_zeros(group: Group) -> dict[int, np.ndarray]:
        """Per source space: its channels whose weights are all zero (for the remarks)."""
        silent = {}
        for space in group.sources:
            assert space.weight is not None
            node, index, axis = space.weight
            weight = const_array(node.inputs[index])
            assert weight is not None
            silent[space.index] = (np.moveaxis(weight, axis, 0).reshape(group.count, -1) == 0).all(axis=1)
        return silent

    @staticmethod
    def _readers(analysis: ChannelAnalysis) -> list[SliceConstant]:
        return [a for a in analysis.actions if isinstance(a, SliceConstant) and a.role == "in"]

    @staticmethod
    def _removable(group: Group, analysis: ChannelAnalysis, zeros: _Zeros,
                   readers: list[SliceConstant]) -> np.ndarray:
        """Channels of the group that are zero at every reader, whose weights there are finite."""
        removable = np.ones(group.count, dtype=bool)
        members = {s.index for s in group.spaces}
        for reader in readers:
            layout = reader.layout
            value = reader.node.inputs[0]
            total = analysis.total(layout)
            mask = zeros.mask(value, total)
            weight = const_array(reader.node.inputs[reader.input])
            assert weight is not None
            finite = np.isfinite(_per_channel(weight, reader.axis, total)).all(axis=1)
            offset = 0
            for s in layout.spaces:
                count = analysis.spaces[s].count
                if s in members:
                    removable &= mask[offset:offset + count] & finite[offset:offset + count]
                offset += count
        return removable
