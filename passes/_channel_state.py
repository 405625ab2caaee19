"""`ChannelState`: the bookkeeping of the channel analysis (spaces, layouts, couplings, actions)
and what it yields (groups, the remarks of a blocked group, the kept positions of a layout).

The per-op handlers (`_channel_layers`, `_channel_follow`, `_channel_couple`, `_channel_relayout`)
write into it; `_channel_groups.ChannelAnalysis` walks the graph and dispatches to them.
"""

from __future__ import annotations

import networkx as nx
import numpy as np

from mlc.ir.core import Graph, Node, Value
from mlc.passes._channel_types import Action, Group, Layout, SliceConstant, Space
from mlc.passes._match_basics import FLOAT_DTYPES, const_array, dtype_of, input_at, label


class ChannelState:
    """Channel spaces, their layouts, couplings and the rewrite actions of one graph."""

    def __init__(self, graph: Graph, exclude: frozenset[str] = frozenset()) -> None:
        self.graph = graph
        self.exclude = exclude
        self.spaces: list[Space] = []
        self.layouts: dict[Value, Layout] = {}
        self.actions: list[Action] = []
        self.sources: dict[Node, Space] = {}
        self.notes: list[str] = []  # remarks on layers that are no source (computed weight, grouped)
        self.handled: set[tuple[Node, int]] = set()  # (reader, input) reads a handler followed
        self.coupling = nx.Graph()

    # ---------------------------------------------------------------- bookkeeping
    def total(self, layout: Layout) -> int:
        return sum(self.spaces[s].count for s in layout.spaces)

    def new_space(self, count: int, source: Node | None, blocked: str | None = None) -> Space:
        space = Space(len(self.spaces), count, source, blocked=blocked)
        self.spaces.append(space)
        self.coupling.add_node(space.index)
        return space

    def block(self, layout: Layout, reason: str) -> None:
        for s in layout.spaces:
            if self.spaces[s].blocked is None:
                self.spaces[s].blocked = reason

    def couple(self, a: int, b: int, via: Node) -> None:
        if a != b:
            self.coupling.add_edge(a, b, via=via)

    def add_source(self, node: Node, count: int, weight_axis: int, out: Value, axis: int, rank: int) -> Layout:
        """A new space for `node`'s output channels (blocked when the user excluded the node)."""
        blocked = "excluded by exclude_nodes" if node.name and node.name in self.exclude else None
        space = self.new_space(count, node, blocked)
        space.weight = (node, 1, weight_axis)
        self.sources[node] = space
        layout = Layout((space.index,), axis, rank)
        self.layouts[out] = layout
        self.actions.append(SliceConstant(node, 1, weight_axis, layout, "out"))
        return layout

    def reads(self, node: Node, index: int) -> Layout | None:
        """The layout of input `index` when it carries channels (the read is then handled here)."""
        value = input_at(node, index)
        layout = self.layouts.get(value) if value is not None else None
        if layout is not None:
            self.handled.add((node, index))
        return layout

    def weight_problem(self, node: Node, ndim: int | None = None) -> str | None:
        w = input_at(node, 1)
        array = const_array(w)
        if array is None:
            return "its weight is not a constant"
        if dtype_of(w) not in FLOAT_DTYPES:
            return "its weight is not a floating-point tensor"
        if ndim is not None and array.ndim != ndim:
            return f"its weight is {array.ndim}-D, not {ndim}-D"
        return None

    # ---------------------------------------------------------------- results
    def groups(self) -> list[Group]:
        """The coupled groups, in the order of their first space (deterministic)."""
        groups = []
        for component in sorted(nx.connected_components(self.coupling), key=min):
            spaces = [self.spaces[i] for i in sorted(component)]
            blocker = next((s for s in spaces if s.blocked is not None), None)
            groups.append(Group(spaces, spaces[0].count, blocker, [s for s in spaces if s.source is not None]))
        return groups

    def remarks(self, group: Group) -> list[str]:
        """One remark per layer of a blocked group: why it keeps every channel."""
        blocker = group.blocker
        if blocker is None:
            return []
        lines = []
        for space in group.sources:
            assert space.source is not None
            if space is blocker:
                lines.append(f"{label(space.source)}: kept all channels, {blocker.blocked}")
                continue
            path = nx.shortest_path(self.coupling, space.index, blocker.index)
            via = self.coupling.edges[path[0], path[1]]["via"]
            other = label(blocker.source) if blocker.source is not None else "an operand"
            lines.append(f"{label(space.source)}: kept all channels, coupled through {label(via)} with {other}: "
                         f"{blocker.blocked}")
        return lines

    def index(self, layout: Layout, kept: dict[int, np.ndarray]) -> np.ndarray | None:
        """The positions along the layout's axis that stay, or None when none of its spaces lose
        a channel. `kept` maps a space to its kept channels (sorted); absent: all kept."""
        parts = []
        offset = 0
        changed = False
        for s in layout.spaces:
            count = self.spaces[s].count
            keep = kept.get(s)
            if keep is None:
                keep = np.arange(count)
            elif len(keep) < count:
                changed = True
            parts.append(np.asarray(keep, dtype=np.int64) + offset)
            offset += count
        if not changed:
            return None
        index = np.concatenate(parts)
        if layout.repeat > 1:
            index = (index[:, None] * layout.repeat + np.arange(layout.repeat)[None, :]).reshape(-1)
        return index


__all__ = ["ChannelState"]
