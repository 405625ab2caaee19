"""Remove channels that are exactly zero wherever they are read (exact).

    Conv(x, W, b) with W[c] = 0 and b[c] = 0  ->  channel c of its output is 0
    Conv(., V) reading it                     ->  V[:, c] contributes 0*V[:, c] = 0: drop both

The groups and the rewrite are those of `prune-channels` (`_channel_groups`, `_channel_surgery`);
what differs is which channels go. A forward pass over the analysis's layouts (`_zero_channels`)
computes, for every value carrying channels, which channels are exactly zero, by the law of each
op at 0:

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

import numpy as np

from mlc.ir.core import Graph
from mlc.pass_api import Numerics, Pass, PassContext, register_pass
from mlc.passes._channel_groups import ChannelAnalysis, Group, SliceConstant
from mlc.passes._channel_surgery import parameter_count, remove_channels
from mlc.passes._match_basics import const_array, label
from mlc.passes._zero_channels import ZeroMasks, per_channel


def source_zeros(group: Group) -> dict[int, np.ndarray]:
    """Per source space: its channels whose weights are all zero (for the remarks)."""
    silent = {}
    for space in group.sources:
        assert space.weight is not None
        node, index, axis = space.weight
        weight = const_array(node.inputs[index])
        assert weight is not None
        silent[space.index] = (np.moveaxis(weight, axis, 0).reshape(group.count, -1) == 0).all(axis=1)
    return silent


def removable_channels(group: Group, analysis: ChannelAnalysis, zeros: ZeroMasks) -> np.ndarray:
    """Channels of the group that are zero at every reader, whose weights there are finite."""
    removable = np.ones(group.count, dtype=bool)
    members = {s.index for s in group.spaces}
    for reader in analysis.actions:
        if not isinstance(reader, SliceConstant) or reader.role != "in":
            continue
        layout = reader.layout
        if members.isdisjoint(layout.spaces):
            continue  # a reader of other groups' channels: nothing to learn here (and costly to ask)
        total = analysis.total(layout)
        mask = zeros.mask(reader.node.inputs[0], total)
        weight = const_array(reader.node.inputs[reader.input])
        assert weight is not None
        finite = np.isfinite(per_channel(weight, reader.axis, total)).all(axis=1)
        offset = 0
        for s in layout.spaces:
            count = analysis.spaces[s].count
            if s in members:
                removable &= mask[offset:offset + count] & finite[offset:offset + count]
            offset += count
    return removable


def group_removal(group: Group, analysis: ChannelAnalysis, zeros: ZeroMasks, ctx: PassContext) -> np.ndarray:
    """The channels of `group` that go (none for a blocked group); remarks on zero-weight channels
    that stay."""
    silent = source_zeros(group)
    if group.blocker is not None:
        if any(z.any() for z in silent.values()):
            for line in analysis.remarks(group):
                ctx.remark(line)
        return np.zeros(group.count, dtype=bool)
    removable = removable_channels(group, analysis, zeros)
    if removable.all():
        removable[0] = False  # a group keeps at least one channel
    for space in group.sources:
        assert space.source is not None
        lost = np.flatnonzero(silent[space.index] & ~removable)
        if len(lost):
            ctx.remark(f"{label(space.source)}: kept zero-weight channels {lost.tolist()}, they are not "
                       "zero where they are read (a bias, a normalization shift or an activation makes "
                       "them nonzero)")
    return removable


@register_pass
class PruneZeroChannels(Pass):
    name = "prune-zero-channels"
    description = "Remove channels that are exactly zero wherever a Conv/Gemm/MatMul reads them"
    numerics = Numerics.EXACT
    statistics = ("channels_removed", "groups_pruned", "params_removed")

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        analysis = ChannelAnalysis(graph)
        zeros = ZeroMasks(analysis)
        kept: dict[int, np.ndarray] = {}
        removed_total = 0
        for group in analysis.groups():
            if not group.sources:
                continue
            removable = group_removal(group, analysis, zeros, ctx)
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
