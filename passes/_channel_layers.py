"""The layers of the channel analysis: Conv (group 1), Gemm and MatMul with a constant weight
create a channel space (a source) and consume the channels they read on their reduction axis;
a depthwise Conv (one filter per channel) carries its input's channels through.
"""

from __future__ import annotations

from mlc.ir.core import Node
from mlc.passes._channel_state import ChannelState
from mlc.passes._channel_types import Layout, SetGroup, SliceConstant, rank_of
from mlc.passes._match_basics import const_array, input_at, label


def follow_conv(state: ChannelState, node: Node) -> None:
    out = node.outputs[0]
    w = const_array(input_at(node, 1))
    group = int(node.attr("group", 1))
    layout = state.reads(node, 0)
    if layout is not None:
        total = state.total(layout)
        if layout.axis != 1 or layout.repeat != 1:
            state.block(layout, f"its channels reach {label(node)} on axis {layout.axis}, not its channel axis")
        elif w is None:
            state.block(layout, f"its channels are read by {label(node)}, whose weight is not a constant")
        elif group == 1:
            state.actions.append(SliceConstant(node, 1, 1, layout, "in"))
        elif group == total and w.shape[0] == total and w.ndim >= 3 and w.shape[1] == 1:
            follow_depthwise(state, node, layout)
            return
        else:
            state.block(layout, f"its channels are read by {label(node)}, a grouped Conv (group={group}) "
                                "that is not depthwise")
    if group != 1:
        if layout is None and out is not None and out.uses:
            state.notes.append(f"{label(node)}: kept all channels, a grouped Conv (group={group}) follows its "
                               "input's channels, which no prunable layer produces")
        return
    problem = state.weight_problem(node)
    bias = input_at(node, 2)
    rank = rank_of(out)
    if problem is None and bias is not None and const_array(bias) is None:
        problem = "its bias is not a constant"
    if problem is None and (rank is None or rank < 3):
        problem = "its output's rank is unknown"
    if problem is not None or out is None:
        state.notes.append(f"{label(node)}: kept all channels, {problem}")
        return
    assert w is not None and rank is not None
    source = state.add_source(node, w.shape[0], 0, out, 1, rank)
    if bias is not None:
        state.actions.append(SliceConstant(node, 2, 0, source, "bias"))


def follow_depthwise(state: ChannelState, node: Node, layout: Layout) -> None:
    """One filter per channel: channel c of the output is channel c of the input, filtered."""
    bias = input_at(node, 2)
    if bias is not None and const_array(bias) is None:
        state.block(layout, f"its channels are read by depthwise {label(node)}, whose bias is not a constant")
        return
    state.actions.append(SliceConstant(node, 1, 0, layout, "param"))
    if bias is not None:
        state.actions.append(SliceConstant(node, 2, 0, layout, "param"))
    state.actions.append(SetGroup(node, layout))
    out = node.outputs[0]
    if out is not None:
        state.layouts[out] = layout


def follow_gemm(state: ChannelState, node: Node) -> None:
    out = node.outputs[0]
    trans_b = bool(node.attr("transB", 0))
    layout = state.reads(node, 0)
    if layout is not None:
        if node.attr("transA", 0) or layout.rank != 2 or layout.axis != 1:
            state.block(layout, f"its channels are read by {label(node)} on an axis it does not reduce")
        elif state.weight_problem(node, 2) is not None:
            state.block(layout, f"its channels are read by {label(node)}, whose weight is not a constant 2-D tensor")
        else:
            state.actions.append(SliceConstant(node, 1, 1 if trans_b else 0, layout, "in"))
    problem = state.weight_problem(node, 2)
    c = input_at(node, 2)
    c_array = const_array(c)
    if problem is None and c is not None and c_array is None:
        problem = "its bias C is not a constant"
    if problem is not None or out is None:
        state.notes.append(f"{label(node)}: kept all channels, {problem}")
        return
    w = const_array(input_at(node, 1))
    assert w is not None
    count = w.shape[0] if trans_b else w.shape[1]
    source = state.add_source(node, count, 0 if trans_b else 1, out, 1, 2)
    if c_array is not None and c_array.ndim >= 1 and c_array.shape[-1] == count and count > 1:
        state.actions.append(SliceConstant(node, 2, c_array.ndim - 1, source, "bias"))


def follow_matmul(state: ChannelState, node: Node) -> None:
    out = node.outputs[0]
    layout = state.reads(node, 0)
    if layout is not None:
        if layout.axis != layout.rank - 1:
            state.block(layout, f"its channels are read by {label(node)} on an axis it does not reduce")
        elif state.weight_problem(node, 2) is not None:
            state.block(layout, f"its channels are read by {label(node)}, whose weight is not a constant 2-D tensor")
        else:
            state.actions.append(SliceConstant(node, 1, 0, layout, "in"))
    problem = state.weight_problem(node, 2)
    rank = rank_of(out)
    if problem is None and (rank is None or rank < 2):
        problem = "its output's rank is unknown"
    if problem is not None or out is None:
        if const_array(input_at(node, 1)) is not None:  # a MatMul of two computed tensors is no layer
            state.notes.append(f"{label(node)}: kept all channels, {problem}")
        return
    w = const_array(input_at(node, 1))
    assert w is not None and rank is not None
    state.add_source(node, w.shape[1], 1, out, rank - 1, rank)


__all__ = ["follow_conv", "follow_depthwise", "follow_gemm", "follow_matmul"]
