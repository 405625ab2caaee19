"""Structured channel pruning: remove the weakest output channels of Conv, Gemm and MatMul
layers, and rewrite everything that reads them (lossy).

    Conv(x, W[C_out, ...], b) -> ... -> Conv(., V[., C_out, ...])
        ->  Conv(x, W[keep], b[keep]) -> ... -> Conv(., V[:, keep])

Channels are grouped by `_channel_groups.ChannelAnalysis`: layers whose outputs are added
(residual connections), multiplied (squeeze-excite gates) or otherwise combined elementwise lose
the same channels, or none when anything in the group cannot be rewritten (a graph output, an op
the analysis does not follow...; each such layer gets a remark saying why).

Score of channel c of a group: the sum over the group's source layers of the norm (`norm`: l1 or
l2) of that layer's weights for output channel c (the filter W[c] of a Conv, the column of a
Gemm/MatMul), each layer's norms divided by their mean first so that a 1x1 downsample Conv and a
3x3 Conv of one residual group count alike. Biases are not scored: a channel whose weights are
small is weak whatever its offset, and the offset is what folding BatchNormalization changes most.
Depthwise filters and other per-channel constants downstream are not scored either: they scale a
channel the source layers have already made.

    scope=layer   every prunable group loses floor(ratio * C) of its C channels
    scope=global  the scores of each group are divided by their mean, all channels of all groups
                  are ranked together, and the lowest floor(ratio * total) go

With `multiple` N > 1 the channels a group keeps are then rounded to the nearest multiple of N
(at least N; a group of fewer than N channels keeps its count): the CPU kernels block channels by
8 or 16 (onnxruntime's NCHWc convolutions, TVM's vector lanes), so 12 channels cost what 16 do and
pruning 16 to 12 buys nothing; measured on the digits CNN under onnxruntime (AVX-512), 30 % of 16
channels pruned to 12 ran 1.13x *slower* than unpruned.

Either way a group keeps at least one channel, and ties keep the lower channel index. Nodes
named in `exclude_nodes` (separated by +) keep their output channels (and so their group).
"""

from __future__ import annotations

import numpy as np

from mlc.errors import BadInputError
from mlc.ir.core import Graph
from mlc.pass_api import Numerics, Pass, PassContext, PassOption, register_pass
from mlc.passes._channel_groups import ChannelAnalysis, Group
from mlc.passes._channel_surgery import parameter_count, remove_channels
from mlc.passes._match_basics import const_array

SCOPES = ("layer", "global")
NORMS = ("l1", "l2")


def channel_scores(group: Group, norm: str) -> np.ndarray:
    """Per channel: the sum over the group's sources of their mean-normalized weight norms."""
    scores = np.zeros(group.count)
    for space in group.sources:
        assert space.weight is not None
        node, index, axis = space.weight
        weight = const_array(node.inputs[index])
        assert weight is not None
        rows = np.moveaxis(weight.astype(np.float64), axis, 0).reshape(group.count, -1)
        norms = np.abs(rows).sum(axis=1) if norm == "l1" else np.sqrt((rows * rows).sum(axis=1))
        mean = norms.mean()
        scores += norms / mean if mean > 0 else norms
    return scores


def _weakest(scores: np.ndarray, count: int) -> np.ndarray:
    """Indices of the `count` lowest scores (ties: the lower index is removed first)."""
    return np.argsort(scores, kind="stable")[:count]


def rounded_keep(count: int, keep: int, multiple: int) -> int:
    """`keep` of `count` channels rounded to the nearest multiple of `multiple` (half up), at least
    `multiple` and at most `count`; `count` itself when the group is smaller than `multiple`."""
    if count < multiple:
        return keep
    return min(count, max(multiple, (keep + multiple // 2) // multiple * multiple))


@register_pass
class PruneChannels(Pass):
    name = "prune-channels"
    description = "Remove the lowest-norm output channels of Conv/Gemm/MatMul layers, coupled channels together (lossy)"
    numerics = Numerics.LOSSY
    options = (
        PassOption("ratio", float, 0.5, "fraction of the channels removed, in [0, 1)"),
        PassOption("scope", str, "layer", "layer: each group loses `ratio` of its channels; global: channels of all "
                   "groups ranked together by their score over the group's mean"),
        PassOption("norm", str, "l1", "l1 | l2: the norm of a channel's weights that ranks it"),
        PassOption("exclude_nodes", str, "", "node names whose output channels are kept, separated by +"),
        PassOption("multiple", int, 1, "round the channels a group keeps to a multiple of this (e.g. 8 or 16)"),
    )
    statistics = ("channels_removed", "groups_pruned", "groups_left", "params_removed")

    def _check_options(self) -> tuple[float, str, str, frozenset[str]]:
        ratio, scope, norm = float(self.option("ratio")), self.option("scope"), self.option("norm")
        if not 0.0 <= ratio < 1.0:
            raise BadInputError(f"prune-channels: ratio {ratio:g}: expected a fraction in [0, 1)")
        if scope not in SCOPES:
            raise BadInputError(f"prune-channels: scope {scope!r}: expected one of {', '.join(SCOPES)}")
        if norm not in NORMS:
            raise BadInputError(f"prune-channels: norm {norm!r}: expected one of {', '.join(NORMS)}")
        exclude = frozenset(n.strip() for n in str(self.option("exclude_nodes")).split("+") if n.strip())
        if int(self.option("multiple")) < 1:
            raise BadInputError(f"prune-channels: multiple {self.option('multiple')}: expected at least 1")
        return ratio, scope, norm, exclude

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        ratio, scope, norm, exclude = self._check_options()
        analysis = ChannelAnalysis(graph, exclude)
        for note in analysis.notes:
            ctx.remark(note)
        prunable: list[Group] = []
        for group in analysis.groups():
            if not group.sources:
                continue  # operands no layer produces: nothing to prune, nothing to say
            if group.blocker is not None:
                ctx.stats["groups_left"] += 1
                for line in analysis.remarks(group):
                    ctx.remark(line)
            else:
                prunable.append(group)
        scores = [channel_scores(group, norm) for group in prunable]
        removed = self._layer(prunable, scores, ratio) if scope == "layer" else self._global(prunable, scores, ratio)
        multiple = int(self.option("multiple"))
        if multiple > 1:
            removed = [_weakest(score, group.count - rounded_keep(group.count, group.count - len(drop), multiple))
                       for group, score, drop in zip(prunable, scores, removed, strict=True)]
        kept: dict[int, np.ndarray] = {}
        ragged: list[str] = []
        for group, drop in zip(prunable, removed, strict=True):
            if not len(drop) or not ctx.rewrite("prune-group"):
                continue
            keep = np.setdiff1d(np.arange(group.count), drop)
            if len(keep) % 8 and group.count % 8 == 0:
                ragged.append(f"{group.count}->{len(keep)}")
            for space in group.spaces:
                kept[space.index] = keep
            ctx.stats["channels_removed"] += len(drop)
            ctx.stats["groups_pruned"] += 1
        if not kept:
            return False
        if ragged:
            ctx.remark(f"channel counts {', '.join(ragged[:6])}{' ...' if len(ragged) > 6 else ''} are no longer "
                       "multiples of 8: CPU kernels block channels by 8 or 16, so such layers may run no faster "
                       "(or slower) than before; multiple=16 (--prune-multiple 16) rounds them")
        before = parameter_count(graph)
        remove_channels(graph, analysis, kept)
        ctx.stats["params_removed"] += before - parameter_count(graph)
        return True

    @staticmethod
    def _layer(groups: list[Group], scores: list[np.ndarray], ratio: float) -> list[np.ndarray]:
        return [_weakest(score, min(int(ratio * group.count + 1e-9), group.count - 1))
                for group, score in zip(groups, scores, strict=True)]

    @staticmethod
    def _global(groups: list[Group], scores: list[np.ndarray], ratio: float) -> list[np.ndarray]:
        normalized = [s / s.mean() if s.mean() > 0 else s for s in scores]
        budget = int(ratio * sum(g.count for g in groups) + 1e-9)
        flat = sorted((float(score), g, c) for g, group_scores in enumerate(normalized)
                      for c, score in enumerate(group_scores))
        left = [g.count for g in groups]
        removed: list[list[int]] = [[] for _ in groups]
        for _, g, c in flat:
            if budget == 0:
                break
            if left[g] > 1:
                removed[g].append(c)
                left[g] -= 1
                budget -= 1
        return [np.array(sorted(r), dtype=np.int64) for r in removed]
