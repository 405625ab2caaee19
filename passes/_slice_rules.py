"""The simplify-slices rules on a Slice: slice-noop and slice-slice (slice-shape is
`mlc.passes._slice_shape_rule`).

A Slice whose computed bounds run over whole dims goes (slice-noop); a Slice of a Slice becomes one
Slice of the source, for every reader of the inner one at once (slice-slice).
"""

from __future__ import annotations

import numpy as np

from mlc.ir.core import Graph, Node, Value
from mlc.passes._match_basics import STANDARD, output_name_blocked
from mlc.passes._slice_bounds import SliceRule, slice_axes
from mlc.passes._symbolic import HUGE, ZERO, Expr, as_int, slice_range
from mlc.rewrite import IRBuilder, Match


class SliceNoop(SliceRule):
    name = "slice-noop"
    law = "Slice(x) over every whole sliced dim, step 1, a bound computed -> x"
    ops = ("Slice",)

    def match(self, node: Node) -> Match | None:
        info = self.info(node)
        x, out = node.inputs[0], node.outputs[0]
        params = None if info is None else slice_axes(info, node)
        shape = None if info is None else info.shape(x)
        if x is None or out is None or params is None or shape is None or node.graph is None:
            return None
        if all(start.is_const and end.is_const for _, start, end, _ in params):
            return None  # constant bounds: eliminate-noop's
        for axis, start, end, step in params:
            bounds = slice_range(shape[axis], start, end, step)
            if bounds is None or bounds[0] != ZERO or shape[axis] is None or bounds[1] != shape[axis]:
                return None
        if output_name_blocked(out, x, node.graph):
            return None
        return Match(node, values={"x": x})

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        builder.bypass(match.root, match["x"])
        builder.ctx.stats["slices_removed"] += 1


class SliceSlice(SliceRule):
    name = "slice-slice"
    law = "Slice(Slice(x, s1, e1), s2, e2) -> Slice(x, s1 + s2, min(e1, s1 + e2)), every reader of the inner one"
    ops = ("Slice",)

    def match(self, node: Node) -> Match | None:
        info, graph = self.info(node), node.graph
        inner = node.inputs[0].producer if node.inputs[0] is not None else None
        if (info is None or inner is None or inner.op_type != "Slice" or inner.domain not in STANDARD
                or inner.graph is not graph):
            return None
        middle = inner.outputs[0]
        inner_p = None if middle is None or middle.is_graph_output else slice_axes(info, inner)
        if middle is None or inner_p is None:
            return None
        # Every reader must merge: the inner Slice goes only with the last of them.
        plans: list[tuple[Node, dict[int, tuple[int, int, int]]]] = []
        for reader, index in middle.uses:
            if (reader.op_type != "Slice" or reader.domain not in STANDARD or reader.graph is not graph or index != 0
                    or any(n is reader for n, _ in plans)):
                return None
            outer_p = slice_axes(info, reader)
            merged = None if outer_p is None else merge_slices(inner_p, outer_p)
            if merged is None:
                return None
            plans.append((reader, merged))
        return Match(node, nodes=(inner,), facts={"plans": plans})

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        inner, graph = match.nodes[0], builder.graph
        for k, (reader, merged) in enumerate(match.facts["plans"]):
            if k and not builder.ctx.rewrite(self.name):  # the driver counted the first reader
                return
            out = reader.outputs[0]
            assert out is not None
            new = builder.insert(Node("Slice", [inner.inputs[0], *merged_bounds(graph, merged)],
                                      [Value(graph.unique_name(out.name or "slice"), out.type)], name=reader.name),
                                 replaced=(inner, reader), rule=self.name, before=reader)
            out.replace_all_uses_with(new, replace_graph_outputs=True)
            graph.remove(reader)
            builder.ctx.stats["slices_merged"] += 1
        graph.remove(inner)


def merged_bounds(graph: Graph, merged: dict[int, tuple[int, int, int]]) -> list[Value]:
    """The starts, ends, axes (and steps, unless all 1) constants of a merged Slice."""
    axes = sorted(merged)
    specs = [([merged[a][0] for a in axes], "starts"), ([min(merged[a][1], 2**63 - 1) for a in axes], "ends"),
             (axes, "axes")]
    if any(merged[a][2] != 1 for a in axes):
        specs.append(([merged[a][2] for a in axes], "steps"))
    return [graph.make_constant(np.array(v, dtype=np.int64), n) for v, n in specs]


def merge_slices(inner: list[tuple[int, Expr, Expr, int]],
                  outer: list[tuple[int, Expr, Expr, int]]) -> dict[int, tuple[int, int, int]] | None:
    """axis -> (start, end, step) of one Slice doing `outer` after `inner`, constant bounds only.
    An axis only one of them slices keeps its bounds and step as they are (slicing one axis leaves
    the others' dims alone); an axis both slice needs step 1 and non-negative bounds on both."""
    params: dict[int, list[tuple[int, int, int]]] = {}
    for axis, start, end, step in (*inner, *outer):
        s, e = as_int(start), as_int(end)
        if s is None or e is None:
            return None
        params.setdefault(axis, []).append((s, e, step))
    merged: dict[int, tuple[int, int, int]] = {}
    for axis, both in params.items():
        if len(both) == 1:
            merged[axis] = both[0]
            continue
        (s1, e1, step1), (s2, e2, step2) = both
        if step1 != 1 or step2 != 1 or min(s1, e1, s2, e2) < 0:
            return None
        merged[axis] = (s1 + s2, min(e1, s1 + e2) if e2 < HUGE else e1, 1)
    return merged


__all__ = ["SliceNoop", "SliceSlice", "merge_slices", "merged_bounds"]
