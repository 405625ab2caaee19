"""Remove channels from a graph, given the channels each space keeps (the rewrite behind
`prune-channels` and `prune-zero-channels`; the analysis is `_channel_groups.py`).

Every change the analysis recorded is applied with the positions the layout keeps:

    source weight/bias        W[keep] (Conv axis 0, Gemm/MatMul columns), b[keep]
    consumer weight           W[:, keep] (Conv input axis 1; Gemm/MatMul rows, `repeat` rows per
                              channel after a Flatten)
    per-channel constants     BatchNormalization/InstanceNormalization parameters, a Mul/Add/...
                              constant that varies along the channel axis, depthwise weights and
                              biases; a depthwise Conv's `group` becomes the kept count
    Reshape targets           the literal channel count
    value types               the channel dim of every value carrying a pruned space

A Concat needs no change: its inputs shrink and the kept positions of its output are those of
its inputs with their offsets. New constants replace the old ones, which go when nothing else
reads them (a weight shared with a layer that keeps all channels stays).
"""

from __future__ import annotations

import numpy as np

from mlc.ir.attributes import Attr
from mlc.ir.core import Graph, Node
from mlc.ir.types import TensorType
from mlc.passes._channel_groups import ChannelAnalysis, ReshapeTarget, SetGroup, SliceConstant
from mlc.passes._graph_edits import drop_dead_constants
from mlc.passes._match_basics import const_array


def _replace_constant(graph: Graph, node: Node, index: int, array: np.ndarray) -> None:
    old = node.inputs[index]
    assert old is not None
    node.set_input(index, graph.make_constant(np.ascontiguousarray(array), old.name or "const"))
    drop_dead_constants([old])


def remove_channels(graph: Graph, analysis: ChannelAnalysis, kept: dict[int, np.ndarray]) -> None:
    """Keep only `kept[space]` (sorted channel indices) of each space it names; the others keep all."""
    for action in analysis.actions:
        index = analysis.index(action.layout, kept)
        if index is None:
            continue
        if isinstance(action, SliceConstant):
            array = const_array(action.node.inputs[action.input])
            assert array is not None, f"{action.node!r}: input {action.input} is no longer a constant"
            _replace_constant(graph, action.node, action.input, np.take(array, index, axis=action.axis))
        elif isinstance(action, SetGroup):
            action.node.attributes["group"] = Attr.infer("group", len(index))
        elif isinstance(action, ReshapeTarget):
            target = const_array(action.node.inputs[1])
            assert target is not None
            target = target.copy()
            target[action.position] = len(index)
            _replace_constant(graph, action.node, 1, target)
    for value, layout in analysis.layouts.items():
        index = analysis.index(layout, kept)
        if index is None or not isinstance(value.type, TensorType) or value.type.shape is None:
            continue
        shape = list(value.type.shape)
        if isinstance(shape[layout.axis], int):
            shape[layout.axis] = len(index)
            value.type = TensorType(value.type.dtype, tuple(shape))


def parameter_count(graph: Graph) -> int:
    """Elements held by the graph's constants (the size pruning is after)."""
    total = 0
    for value in graph.initializers.values():
        shape = getattr(value.const, "shape", ())
        total += int(np.prod(shape, dtype=np.int64))
    return total
