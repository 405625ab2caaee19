"""The simplify-slices Concat rule: concat-concat, concat-slices, split-concat, concat-shapes.

It carries out a `ConcatPlan` (`mlc.passes._concat_plan`): each planned group's value is made (a
new Slice or Shape inserted before the Concat, or the source itself), and the Concat is rebuilt
over the new inputs, or replaced by its one input. A new Slice of a Shape then becomes a Shape
itself (slice-shape), once the pieces it replaces are gone and the Shape is read by it alone.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mlc.ir.core import Graph, Node, Value
from mlc.ir.declared_dims import declared_dims
from mlc.ir.types import TensorType
from mlc.passes._concat_plan import ConcatPlan, GroupPlan, plan_concat
from mlc.passes._graph_edits import remove_dead_producers
from mlc.passes._match_basics import output_name_blocked
from mlc.passes._slice_bounds import SliceRule
from mlc.passes._slice_shape_rule import make_shape, shape_for_slice, slice_shape_plan
from mlc.passes._symbolic import ShapeInfo, as_int
from mlc.rewrite import IRBuilder, Match


def make_group_value(graph: Graph, concat: Node, made: GroupPlan, axis: int, info: ShapeInfo) -> Value:
    """The value standing for a planned group: its source, or a new Shape or Slice of it (not yet inserted)."""
    first = made.first
    if made.kind == "source":
        return first.source
    start, end = as_int(first.lo), as_int(made.hi)
    if made.kind == "shape":
        shape_node = made.values[0].producer
        assert start is not None and end is not None and shape_node is not None
        out = make_shape(graph, shape_node, start, end, None).outputs[0]
        assert out is not None
        return out
    shape = info.shape(first.source)
    assert start is not None and shape is not None
    end = 2**63 - 1 if end is None else end  # the plan made sure a symbolic end is the dim's end
    consts = [graph.make_constant(np.array([v], dtype=np.int64), n)
              for v, n in ((start, "starts"), (end, "ends"), (axis, "axes"))]
    dims = list(declared_dims(first.source) or [])
    if len(dims) == len(shape):
        dims[axis] = info.to_dim(made.hi - first.lo)
    t = first.source.type
    out_type = TensorType(t.dtype, tuple(dims)) if isinstance(t, TensorType) and dims else None
    node = Node("Slice", [first.source, *consts], [Value(graph.unique_name("slice"), out_type)], name=concat.name)
    assert node.outputs[0] is not None
    return node.outputs[0]


def _counter(plan: ConcatPlan, builder: IRBuilder) -> Callable[[], bool]:
    """Asks for the plan's rewrites one by one, in order: the driver has counted the first."""
    rules = iter(plan.rules())
    first = [True]

    def ask() -> bool:
        rule = next(rules)
        if first[0]:
            first[0] = False
            return True
        return builder.ctx.rewrite(rule)
    return ask


class ConcatRule(SliceRule):
    name = "concat-slices"
    law = "Concat(..., Slice(x, a, b), Slice(x, b, c), ...) -> Concat(..., Slice(x, a, c), ...), and its kin"
    ops = ("Concat",)

    def match(self, node: Node) -> Match | None:
        info = self.info(node)
        plan = None if info is None or node.graph is None else plan_concat(node.graph, node, info)
        if plan is None:
            return None
        return Match(node, nodes=(node, *plan.spliced), facts={"plan": plan, "info": info}, rule=plan.rules()[0])

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        node, plan, info = match.root, match.facts["plan"], match.facts["info"]
        graph, ctx = builder.graph, builder.ctx
        ask = _counter(plan, builder)
        if plan.spliced and not ask():
            return
        inputs: list[Value] = []
        replaced: list[Node] = []
        new_slices: list[tuple[Node, list[Value]]] = []
        for i, j, made in plan.steps:
            if made is None:
                inputs.append(plan.parts[i])
                continue
            value = make_group_value(graph, node, made, plan.axis, info)
            if not ask():
                return
            group = plan.parts[i:j]
            if value.producer is not None and value.producer.graph is None:
                builder.insert(value.producer, replaced=[p.producer for p in group if p.producer is not None],
                               rule=made.rule)
                if value.producer.op_type == "Slice":
                    new_slices.append((value.producer, group))
            inputs.append(value)
            replaced.extend(p.producer for p in group if p.producer is not None)
        self._rebuild(builder, node, inputs, [node, *plan.spliced, *replaced])
        for made_slice, pieces_read in new_slices:
            source = made_slice.inputs[0].producer if made_slice.inputs[0] is not None else None
            if source is not None and source.op_type == "Shape":
                # The pieces are dead now: removed at once, so that the Shape they read is left to
                # the new Slice alone, which then becomes a Shape itself (slice-shape).
                remove_dead_producers(pieces_read)
                found = slice_shape_plan(graph, made_slice, info)
                if found is not None and ctx.rewrite("slice-shape"):
                    shape_for_slice(builder, made_slice, *found)
        ctx.stats["concats_simplified"] += 1
        if plan.spliced:
            ctx.stats["concats_spliced"] += len(plan.spliced)

    @staticmethod
    def _rebuild(builder: IRBuilder, node: Node, inputs: list[Value], replaced: list[Node]) -> None:
        """The Concat over the new inputs, or its one input in its place."""
        out, graph = node.outputs[0], builder.graph
        assert out is not None
        if len(inputs) == 1 and not output_name_blocked(out, inputs[0], graph):
            out.replace_all_uses_with(inputs[0], replace_graph_outputs=True)
            graph.remove(node)
            return
        new = builder.insert(Node("Concat", inputs, [Value(graph.unique_name(out.name or "concat"), out.type)],
                                  dict(node.attributes), name=node.name), replaced=replaced, rule=None)
        out.replace_all_uses_with(new, replace_graph_outputs=True)
        graph.remove(node)


__all__ = ["ConcatRule", "make_group_value"]
