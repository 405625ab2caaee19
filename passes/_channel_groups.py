"""Channel spaces and the groups of them that must be pruned together: the analysis behind
`prune-channels` and `prune-zero-channels` (the rewrite itself is `_channel_surgery.py`).

A *channel space* is the set of output channels one layer creates from constant weights (a
*source*):

    Conv (group=1)    output axis 1;   weight axis 0, bias
    Gemm              output axis 1;   B axis 0 with transB=1 else axis 1, C's last axis
    MatMul, B 2-D     output last axis; B axis 1

The analysis walks the graph in order and follows each space forward. A value carrying channels
has a `Layout`: the spaces laid side by side along its channel axis (one for a plain tensor,
several after a channel Concat) and `repeat`, the number of consecutive elements each channel
covers on that axis (HW after a Flatten of [N, C, H, W]). Ops it follows:

    keep the layout     unary elementwise ops, pooling, Pad/Resize that leave the channel axis
                        alone, BatchNormalization/InstanceNormalization (parameters sliced),
                        elementwise ops with a constant (sliced when it varies per channel),
                        depthwise Conv (group = C, one filter per channel: weight, bias, group)
    couple              an elementwise op of two computed tensors (a residual Add, an SE Mul)
                        puts their spaces in one group: they must lose the same channels
    concatenate         Concat on the channel axis: the inputs' layouts side by side, each
                        still pruned on its own
    re-lay              Flatten, or a Reshape with a constant target, that merges the channel
                        axis with static trailing dims (repeat grows) or splits them off again;
                        Reduce* over other axes (a spatial mean), Squeeze, Unsqueeze (the
                        channel axis moves)
    consume             Conv (group=1), Gemm, MatMul with a constant weight reading the channels
                        on their reduction axis: the weight's input slices go

Anything else that reads a channel space (an op it does not follow, a graph output, a Concat on
another axis, a Conv whose weight is computed, a Reshape it cannot map, a Shape...) blocks the
whole group; so does an operand no prunable layer produces that is coupled with it. The groups
are the connected components of the coupling graph of spaces (networkx). A blocked group keeps
all its channels, and `remarks` says why for each of its layers.

This module walks the graph and dispatches; the vocabulary is `_channel_types`, the bookkeeping
and results `_channel_state`, the handlers `_channel_layers` (sources and consumers),
`_channel_follow` (ops that keep the layout), `_channel_couple` (couplings, Concat) and
`_channel_relayout` (Flatten, Reshape, Reduce*, Squeeze, Unsqueeze).
"""

from __future__ import annotations

from collections.abc import Callable

from mlc.ir.core import Graph, Node
from mlc.passes._channel_couple import follow_concat, follow_elementwise
from mlc.passes._channel_follow import follow_normalization, follow_pad, follow_passthrough, follow_resize
from mlc.passes._channel_layers import follow_conv, follow_gemm, follow_matmul
from mlc.passes._channel_relayout import follow_axes, follow_flatten, follow_reshape
from mlc.passes._channel_state import ChannelState
from mlc.passes._channel_types import (
    ELEMENTWISE,
    POOLS,
    REDUCE,
    UNARY,
    Action,
    Group,
    Layout,
    ReshapeTarget,
    SetGroup,
    SliceConstant,
    Space,
    dim_of,
    rank_of,
)
from mlc.passes._match_basics import STANDARD, label

Handler = Callable[[ChannelState, Node], None]
HANDLERS: dict[str, Handler] = {
    "Conv": follow_conv, "Gemm": follow_gemm, "MatMul": follow_matmul, "BatchNormalization": follow_normalization,
    "InstanceNormalization": follow_normalization, "Concat": follow_concat, "Flatten": follow_flatten,
    "Reshape": follow_reshape, "Pad": follow_pad, "Resize": follow_resize, "Squeeze": follow_axes,
    "Unsqueeze": follow_axes,
}


def handler_of(op_type: str) -> Handler | None:
    """The handler following `op_type`'s channels; None: the op blocks what it reads."""
    if op_type in HANDLERS:
        return HANDLERS[op_type]
    if op_type in UNARY or op_type in POOLS:
        return follow_passthrough
    if op_type in ELEMENTWISE:
        return follow_elementwise
    return follow_axes if op_type in REDUCE else None


class ChannelAnalysis(ChannelState):
    """Channel spaces, their layouts, couplings and the rewrite actions of one graph (its main
    graph only: readers inside sub-graphs block what they read)."""

    def __init__(self, graph: Graph, exclude: frozenset[str] = frozenset()) -> None:
        super().__init__(graph, exclude)
        for node in graph:
            handler = handler_of(node.op_type)
            if node.domain in STANDARD and not node.subgraphs() and handler is not None:
                handler(self, node)
        self._close()

    def _close(self) -> None:
        for value, layout in self.layouts.items():
            if value.is_graph_output:
                self.block(layout, f"its channels reach the graph output %{value.name}")
            for node, i in value.uses:
                if (node, i) not in self.handled:
                    self.block(layout, f"its channels are read by {label(node)}, which the analysis does not follow")


__all__ = ["ELEMENTWISE", "POOLS", "REDUCE", "UNARY", "Action", "ChannelAnalysis", "Group", "Layout",
           "ReshapeTarget", "SetGroup", "SliceConstant", "Space", "dim_of", "handler_of", "rank_of"]
