"""Ops that keep the channel layout: unary elementwise ops and pooling, BatchNormalization and
InstanceNormalization (parameters sliced per channel), Pad and Resize that leave the channel axis
alone (channel analysis, `_channel_groups`).
"""

from __future__ import annotations

from mlc.ir.core import Node
from mlc.passes._channel_state import ChannelState
from mlc.passes._channel_types import POOLS, SliceConstant
from mlc.passes._match_basics import const_array, input_at, label
from mlc.passes._shape_trace import const_ints


def follow_passthrough(state: ChannelState, node: Node) -> None:
    layout = state.reads(node, 0)
    out = node.outputs[0]
    if layout is None or out is None:
        return
    if node.op_type in POOLS and (layout.axis != 1 or layout.repeat != 1 or layout.rank < 3):
        state.block(layout, f"its channels reach {label(node)} on axis {layout.axis}, not its channel axis")
        return
    for extra in node.outputs[1:]:  # MaxPool's Indices, Dropout's mask
        if extra is not None and (extra.uses or extra.is_graph_output):
            state.block(layout, f"its channels are read by {label(node)}, whose output %{extra.name} is used")
            return
    state.layouts[out] = layout


def follow_normalization(state: ChannelState, node: Node) -> None:
    layout = state.reads(node, 0)
    out = node.outputs[0]
    if layout is None or out is None:
        return
    params = (1, 2, 3, 4) if node.op_type == "BatchNormalization" else (1, 2)
    width = state.total(layout) * layout.repeat
    why = None
    if layout.axis != 1 or (node.op_type == "InstanceNormalization" and (layout.repeat != 1 or layout.rank < 3)):
        why = f"which normalizes axis 1, not the channel axis {layout.axis}"
    elif node.attr("training_mode", 0) or any(v is not None and (v.uses or v.is_graph_output)
                                              for v in node.outputs[1:]):
        why = "which runs in training mode"
    else:
        for i in params:
            array = const_array(input_at(node, i))
            if array is None or array.shape != (width,):
                why = f"whose parameters are not constant vectors of {width}"
                break
    if why is not None:
        state.block(layout, f"its channels are read by {label(node)}, {why}")
        return
    state.actions.extend(SliceConstant(node, i, 0, layout, "param") for i in params)
    state.layouts[out] = layout


def follow_pad(state: ChannelState, node: Node) -> None:
    layout = state.reads(node, 0)
    out = node.outputs[0]
    if layout is None or out is None:
        return
    pads = const_ints(input_at(node, 1))
    axes_value = input_at(node, 3)
    axes = const_ints(axes_value) if axes_value is not None else list(range(layout.rank))
    if pads is None or axes is None or len(pads) != 2 * len(axes):
        state.block(layout, f"its channels are read by {label(node)}, whose pads are not constant")
        return
    axes = [a + layout.rank if a < 0 else a for a in axes]
    if layout.axis in axes:
        at = axes.index(layout.axis)
        if pads[at] or pads[at + len(axes)]:
            state.block(layout, f"its channels are padded by {label(node)}")
            return
    state.layouts[out] = layout


def follow_resize(state: ChannelState, node: Node) -> None:
    layout = state.reads(node, 0)
    out = node.outputs[0]
    if layout is None or out is None:
        return
    scales = const_array(input_at(node, 2)) if input_at(node, 2) is not None else None
    sizes = input_at(node, 3)
    sizes_given = sizes is not None and not (const_array(sizes) is not None and const_array(sizes).size == 0)  # type: ignore[union-attr]
    if (node.attr("axes") is not None or sizes_given or scales is None or scales.shape != (layout.rank,)
            or float(scales[layout.axis]) != 1.0):
        state.block(layout, f"its channels are read by {label(node)}, which may resize the channel axis")
        return
    state.layouts[out] = layout


__all__ = ["follow_normalization", "follow_pad", "follow_passthrough", "follow_resize"]
