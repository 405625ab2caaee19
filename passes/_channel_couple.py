"""Where channel spaces meet (channel analysis, `_channel_groups`): an elementwise op of two
computed tensors couples their spaces (they must lose the same channels), a constant varying per
channel is sliced with them; a channel Concat lays its inputs' spaces side by side.
"""

from __future__ import annotations

from mlc.ir.core import Node
from mlc.passes._channel_state import ChannelState
from mlc.passes._channel_types import Layout, SliceConstant, dim_of, rank_of
from mlc.passes._match_basics import const_array, label


def follow_elementwise(state: ChannelState, node: Node) -> None:
    """An elementwise op: computed operands carrying channels are coupled; constants that vary
    per channel are sliced; a computed operand no layer produces blocks them."""
    out = node.outputs[0]
    tracked = [(i, v, state.reads(node, i)) for i, v in enumerate(node.inputs) if v is not None]
    layouts = [(i, layout) for i, _, layout in tracked if layout is not None]
    if not layouts or out is None:
        return
    first = layouts[0][1]
    from_right = first.rank - first.axis
    out_rank = rank_of(out)
    if out_rank is None:
        ranks = [rank_of(v) if const_array(v) is None else const_array(v).ndim for _, v, _ in tracked]  # type: ignore[union-attr]
        out_rank = None if None in ranks else max(r for r in ranks if r is not None)
    for _, layout in layouts[1:]:
        if (layout.rank - layout.axis != from_right or layout.repeat != first.repeat
                or [state.spaces[s].count for s in layout.spaces] != [state.spaces[s].count for s in first.spaces]):
            for _, each in layouts:
                state.block(each, f"its channels meet channels laid out differently in {label(node)}")
            return
    if out_rank is None:
        state.block(first, f"its channels reach {label(node)}, whose output's rank is unknown")
        return
    for _, layout in layouts[1:]:
        for a, b in zip(first.spaces, layout.spaces, strict=True):
            state.couple(a, b, node)
    width = state.total(first) * first.repeat
    for i, value, carried in tracked:
        if carried is not None:
            continue
        array = const_array(value)
        rank = array.ndim if array is not None else rank_of(value)
        at = None if rank is None else rank - from_right
        if at is not None and at < 0:
            continue  # it does not reach the channel axis (a scalar)
        dim = (array.shape[at] if array is not None else dim_of(value, at)) if at is not None else None
        if dim == 1:
            continue
        if array is not None and dim == width:
            state.actions.append(SliceConstant(node, i, at, first, "param"))  # type: ignore[arg-type]
            continue
        why = (f"its channels meet a constant of {dim} channels in {label(node)}" if array is not None else
               f"its channels are coupled through {label(node)} with %{value.name}, which no prunable layer "
               "produces")
        if array is None and isinstance(dim, int) and len(first.spaces) == 1 and first.repeat == 1:
            opaque = state.new_space(dim, None, why)
            state.couple(first.spaces[0], opaque.index, node)
        else:
            for _, each in layouts:
                state.block(each, why)
            return
    state.layouts[out] = Layout(first.spaces, out_rank - from_right, out_rank, first.repeat)


def follow_concat(state: ChannelState, node: Node) -> None:
    out = node.outputs[0]
    tracked = [(i, v, state.reads(node, i)) for i, v in enumerate(node.inputs) if v is not None]
    layouts = [layout for _, _, layout in tracked if layout is not None]
    if not layouts or out is None:
        return
    rank = layouts[0].rank
    axis = int(node.attr("axis", 0))
    axis = axis + rank if axis < 0 else axis
    repeat = layouts[0].repeat
    if any(layout.axis != axis for layout in layouts):
        for layout in layouts:
            state.block(layout, f"its channels are concatenated by {label(node)} on axis {axis}, "
                                "not the channel axis")
        return
    spaces: list[int] = []
    for _, value, carried in tracked:
        if carried is not None and carried.repeat == repeat:
            spaces.extend(carried.spaces)
            continue
        dim = dim_of(value, axis) if carried is None else None
        if dim is None or dim % repeat:
            for each in layouts:
                state.block(each, f"its channels are concatenated by {label(node)} with %{value.name}, whose "
                                  "channels do not line up")
            return
        spaces.append(state.new_space(dim // repeat, None, "no prunable layer produces it").index)
    state.layouts[out] = Layout(tuple(spaces), axis, rank, repeat)


__all__ = ["follow_concat", "follow_elementwise"]
