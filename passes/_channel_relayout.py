"""Ops that move or re-lay the channel axis (channel analysis, `_channel_groups`): Flatten and a
Reshape with a constant target that merge the channel axis with static trailing dims (`repeat`
grows) or split them off again; Reduce* over other axes, Squeeze and Unsqueeze.
"""

from __future__ import annotations

from mlc.ir.core import Node
from mlc.ir.types import TensorType
from mlc.passes._channel_state import ChannelState
from mlc.passes._channel_types import REDUCE, Layout, ReshapeTarget, dim_of, rank_of, static_tail
from mlc.passes._match_basics import input_at, label
from mlc.passes._shape_trace import const_ints


def follow_flatten(state: ChannelState, node: Node) -> None:
    """Flatten(x, a) with the channels on axis a: channel c covers repeat*HW consecutive features."""
    layout = state.reads(node, 0)
    x, out = input_at(node, 0), node.outputs[0]
    if layout is None or out is None:
        return
    axis = int(node.attr("axis", 1))
    axis = axis + layout.rank if axis < 0 else axis
    inner = static_tail(x, layout.axis + 1)
    ones = all(dim_of(x, j) == 1 for j in range(axis, layout.axis))
    if layout.axis < axis or not ones or inner is None:
        state.block(layout, f"its channels are flattened by {label(node)} into features it cannot map "
                            "(dims after the channel axis not static, or the channels in the leading dim)")
        return
    state.layouts[out] = Layout(layout.spaces, 1, 2, layout.repeat * inner)


def follow_reshape(state: ChannelState, node: Node) -> None:
    """Reshape that keeps the dims before the channel axis and merges or splits static dims
    after it; a literal channel count in its target is rewritten."""
    layout = state.reads(node, 0)
    x, out = input_at(node, 0), node.outputs[0]
    state.handled.add((node, 1))
    if layout is None or out is None:
        return
    target = const_ints(input_at(node, 1))
    a = layout.axis
    why = None
    inner_in = static_tail(x, a + 1)
    if target is None:
        why = "whose target shape is computed at run time"
    elif node.attr("allowzero", 0) and 0 in target:
        why = "with allowzero=1"
    elif len(target) <= a or inner_in is None:
        why = "which moves the channel axis"
    if why is None:
        assert target is not None and inner_in is not None
        inner_out = 1
        for j in range(a + 1, len(target)):
            d = dim_of(out, j) if target[j] <= 0 else target[j]
            if d is None:
                why = "whose dims after the channel axis are not static"
                break
            inner_out *= d
        per_channel = layout.repeat * inner_in
        for j in range(a):
            same = dim_of(x, j) is not None and dim_of(x, j) == (dim_of(out, j) if target[j] <= 0 else target[j])
            if not (target[j] in (0, -1) or same):
                why = "which changes the dims before the channel axis"
        if why is None and per_channel % inner_out:
            why = "which splits channels across the channel axis"
        if why is None:
            repeat = per_channel // inner_out
            if target[a] == 0 and repeat != layout.repeat:
                why = "whose target copies the channel dim"
            elif target[a] > 0 and target[a] != state.total(layout) * repeat:
                why = "whose target does not hold the channel count"
    if why is not None:
        state.block(layout, f"its channels are reshaped by {label(node)}, {why}")
        return
    assert target is not None
    result = Layout(layout.spaces, a, len(target), repeat)
    if target[a] > 0:
        state.actions.append(ReshapeTarget(node, a, result))
    state.layouts[out] = result


def follow_axes(state: ChannelState, node: Node) -> None:
    """Reduce* over other axes than the channels' (a dynamo export's spatial mean), Squeeze and
    Unsqueeze: the channel axis moves by the axes removed or inserted before it."""
    layout = state.reads(node, 0)
    out = node.outputs[0]
    state.handled.add((node, 1))
    if layout is None or out is None:
        return
    op = node.op_type
    given = input_at(node, 1)
    axes = const_ints(given) if given is not None else node.attr("axes")
    rank, axis = layout.rank, layout.axis
    why = None
    if given is not None and axes is None:
        why = "whose axes are computed at run time"
    elif op == "Unsqueeze":
        out_rank = rank + len(axes or [])
        inserted = sorted(a + out_rank if a < 0 else a for a in axes or [])
        position = axis
        for a in inserted:  # input dims fill the output positions not inserted, in order
            if a <= position:
                position += 1
        state.layouts[out] = Layout(layout.spaces, position, out_rank, layout.repeat)
        return
    elif not axes:
        if op in REDUCE and node.attr("noop_with_empty_axes", 0):
            state.layouts[out] = layout
            return
        if op == "Squeeze":
            x = input_at(node, 0)
            shape = x.type.shape if x is not None and isinstance(x.type, TensorType) else None
            axes = [j for j, d in enumerate(shape or ()) if d == 1]
            if rank_of(out) is None or len(axes) != rank - rank_of(out):  # type: ignore[operator]
                why = "whose squeezed axes are not known"
        else:
            why = "which reduces every axis, the channels' included"
    if why is None:
        assert axes is not None
        axes = [a + rank if a < 0 else a for a in axes]
        if axis in axes:
            why = "which removes the channel axis"
    if why is not None:
        state.block(layout, f"its channels are read by {label(node)}, {why}")
        return
    assert axes is not None
    keep = op in REDUCE and node.attr("keepdims", 1)
    before = 0 if keep else sum(1 for a in set(axes) if a < axis)
    state.layouts[out] = Layout(layout.spaces, axis - before, rank if keep else rank - len(set(axes)),
                                layout.repeat)


__all__ = ["follow_axes", "follow_flatten", "follow_reshape"]
