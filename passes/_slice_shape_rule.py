"""slice-shape: Slice(Shape(x), a, b) -> Shape(x, start, end), and the Shape nodes simplify-slices makes.

Shape takes `start` and `end` from opset 15 on: before, only whole shapes are made. The Concat
rule asks this too, of each Slice of a Shape it makes (`mlc.passes._concat_rules`).
"""

from __future__ import annotations

from mlc.ir.core import Graph, Node, Value
from mlc.ir.declared_dims import declared_dims
from mlc.ir.dtypes import DType
from mlc.ir.types import TensorType
from mlc.passes._match_basics import STANDARD
from mlc.passes._slice_bounds import SliceRule, range_on, shape_bounds
from mlc.passes._symbolic import ShapeInfo, as_int
from mlc.passes._transformer_match import sole_reader
from mlc.rewrite import IRBuilder, Match


def shape_attrs_allowed(graph: Graph, shape_node: Node, start: int, end: int) -> bool:
    """Shape takes start and end from opset 15 on; before, only the whole shape."""
    rank = len(declared_dims(shape_node.inputs[0]) or ()) if shape_node.inputs[0] is not None else None
    opset = graph.root.opset_version("")
    return (opset is not None and opset >= 15) or (start == 0 and end == rank)


def make_shape(graph: Graph, like: Node, start: int, end: int, out: Value | None) -> Node:
    """A Shape of `like`'s input from start to end (not yet inserted), attributes only where needed."""
    x = like.inputs[0]
    assert x is not None
    rank = len(declared_dims(x) or ())
    attributes: dict[str, int] = {}
    if start != 0:
        attributes["start"] = start
    if end != rank or declared_dims(x) is None:
        attributes["end"] = end
    name = out.name if out is not None and out.name else "shape"
    return Node("Shape", [x], [Value(graph.unique_name(name), TensorType(DType.INT64, (end - start,)))],
                attributes, name=like.name)


def slice_shape_plan(graph: Graph, node: Node, info: ShapeInfo) -> tuple[Node, int, int] | None:
    """(the Shape, start, end) where Slice(Shape(x), a, b) has constant bounds, the Shape read only there."""
    shape_v = node.inputs[0]
    shape_node = shape_v.producer if shape_v is not None else None
    if (shape_node is None or shape_node.op_type != "Shape" or shape_node.domain not in STANDARD
            or shape_node.graph is not graph or sole_reader(shape_v) is not node or node.outputs[0] is None):
        return None
    found = range_on(info, node, 0)
    bounds = shape_bounds(info, shape_node)
    if found is None or bounds is None:
        return None
    lo, hi = as_int(found[1]), as_int(found[2])
    if lo is None or hi is None or not shape_attrs_allowed(graph, shape_node, bounds[0] + lo, bounds[0] + hi):
        return None
    return shape_node, bounds[0] + lo, bounds[0] + hi


def shape_for_slice(builder: IRBuilder, node: Node, shape_node: Node, start: int, end: int) -> None:
    """Slice(Shape(x)) -> Shape(x, start, end), in place of both."""
    out, graph = node.outputs[0], builder.graph
    assert out is not None
    new = builder.insert(make_shape(graph, shape_node, start, end, out), replaced=(shape_node, node),
                         rule="slice-shape", before=node)
    out.replace_all_uses_with(new, replace_graph_outputs=True)
    graph.remove(node)
    graph.remove(shape_node)
    builder.ctx.stats["slices_merged"] += 1


class SliceShape(SliceRule):
    name = "slice-shape"
    law = "Slice(Shape(x), a, b), constant bounds, the Shape read only there -> Shape(x, start=a, end=b)"
    ops = ("Slice",)

    def match(self, node: Node) -> Match | None:
        info = self.info(node)
        plan = None if info is None or node.graph is None else slice_shape_plan(node.graph, node, info)
        return None if plan is None else Match(node, nodes=(plan[0], node), facts={"plan": plan})

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        shape_for_slice(builder, match.root, *match.facts["plan"])


__all__ = ["SliceShape", "make_shape", "shape_attrs_allowed", "shape_for_slice", "slice_shape_plan"]
