"""What the simplify-slices rules read: a Slice's bounds, a Split's offsets, a Shape's range.

Bounds are symbolic (`mlc.passes._symbolic`): a Slice's (axis, start, end, step) come from the
analysis, `range_on` resolves a step-1 slice of one axis to its clamped [lo, hi), `split_offsets`
places a Split's outputs along its axis, `shape_bounds` a Shape's [start, end). `SliceShapes` holds
the analysis of each graph the pass enters (none for a graph without candidates); the rules
(`SliceRule`) read it.
"""

from __future__ import annotations

from mlc.ir.core import Graph, Node, Value
from mlc.passes._match_basics import STANDARD
from mlc.passes._symbolic import ZERO, Expr, ShapeInfo, slice_range
from mlc.rewrite import Rule


class SliceShapes:
    """The analyses of the graphs one run of simplify-slices has entered: built as the driver
    enters the graph, none for a graph without a candidate."""

    def __init__(self) -> None:
        self._graphs: dict[int, ShapeInfo | None] = {}

    def of(self, graph: Graph) -> ShapeInfo | None:
        if id(graph) not in self._graphs:
            self._graphs[id(graph)] = ShapeInfo(graph) if any(is_candidate(node) for node in graph) else None
        return self._graphs[id(graph)]


class SliceRule(Rule):
    """A rule that reads the analysis of the node's graph (none: no candidate there)."""

    def __init__(self, shapes: SliceShapes) -> None:
        self.shapes = shapes

    def start(self, graph: Graph) -> None:
        self.shapes.of(graph)

    def walks(self, graph: Graph) -> bool:
        return self.shapes.of(graph) is not None  # no candidate in the graph: no walk

    def info(self, node: Node) -> ShapeInfo | None:
        return None if node.graph is None else self.shapes.of(node.graph)


def slice_axes(info: ShapeInfo, node: Node) -> list[tuple[int, Expr, Expr, int]] | None:
    """(axis, start, end, step) of an opset-10+ Slice with known (maybe symbolic) bounds."""
    if len(node.inputs) < 3 or node.inputs[0] is None:
        return None
    rank = info.rank(node.inputs[0])
    starts, ends = info.elems(node.inputs[1]), info.elems(node.inputs[2])
    axes_v = node.inputs[3] if len(node.inputs) > 3 else None
    steps_v = node.inputs[4] if len(node.inputs) > 4 else None
    axes = info.ints(axes_v) if axes_v is not None else None
    steps = info.ints(steps_v) if steps_v is not None else None
    if rank is None or starts is None or ends is None or (axes_v is not None and axes is None) or (
            steps_v is not None and steps is None):
        return None
    axes = list(range(len(starts))) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    if not len(starts) == len(ends) == len(axes) == len(steps):
        return None
    result = []
    for axis, start, end, step in zip(axes, starts, ends, steps, strict=True):
        if start is None or end is None or not -rank <= axis < rank:
            return None
        result.append((axis + rank if axis < 0 else axis, start, end, step))
    if len({a for a, *_ in result}) != len(result):
        return None
    return result


def range_on(info: ShapeInfo, node: Node, axis: int) -> tuple[Value, Expr, Expr] | None:
    """(x, lo, hi) when `node` is a step-1 Slice of x on `axis` alone, its clamped bounds known."""
    if node.op_type != "Slice" or node.domain not in STANDARD:
        return None
    params = slice_axes(info, node)
    if params is None or len(params) != 1:
        return None
    a, start, end, step = params[0]
    x = node.inputs[0]
    shape = info.shape(x)
    if a != axis or step != 1 or x is None or shape is None:
        return None
    bounds = slice_range(shape[a], start, end, 1)
    if bounds is None:
        return None
    return x, bounds[0], bounds[1]


def split_offsets(info: ShapeInfo, split: Node) -> tuple[int, list[Expr]] | None:
    """(axis, the offsets of the outputs along it and the dim's end) of a Split with known sizes."""
    x = split.inputs[0]
    shape = info.shape(x)
    if x is None or shape is None:
        return None
    rank = len(shape)
    axis = split.attr("axis", 0)
    axis = axis + rank if axis < 0 else axis
    if not 0 <= axis < rank:
        return None
    sizes = [info.shape(o)[axis] if o is not None and info.shape(o) is not None else None  # type: ignore[index]
             for o in split.outputs]
    if any(s is None for s in sizes):
        return None
    offsets = [ZERO]
    for size in sizes:
        assert size is not None
        offsets.append(offsets[-1] + size)
    if offsets[-1] != shape[axis]:
        return None
    return axis, offsets


def is_candidate(node: Node) -> bool:
    """A Slice with a computed bound, of a Slice or of a Shape, or a Concat of Slice/Split/Shape
    outputs or of a Concat."""
    if node.domain not in STANDARD:
        return False
    if node.op_type == "Slice":
        inner = node.inputs[0].producer if node.inputs and node.inputs[0] is not None else None
        return (inner is not None and inner.op_type in ("Slice", "Shape")) or any(
            v is not None and not v.is_constant for v in node.inputs[1:3])
    if node.op_type == "Concat":
        producers = [v.producer for v in node.inputs if v is not None]
        ops = [p.op_type for p in producers if p is not None]
        return "Concat" in ops or "Unsqueeze" in ops or sum(1 for op in ops if op in ("Slice", "Split", "Shape")) > 1
    return False


def shape_bounds(info: ShapeInfo, node: Node) -> tuple[int, int] | None:
    """The [start, end) a Shape node takes of its input's dims, normalized (the rank known)."""
    rank = info.rank(node.inputs[0]) if node.inputs else None
    if rank is None:
        return None
    start, end = node.attr("start", 0), node.attr("end", rank)
    start = min(max(start + rank if start < 0 else start, 0), rank)
    end = min(max(end + rank if end < 0 else end, 0), rank)
    return start, max(start, end)


__all__ = ["SliceRule", "SliceShapes", "is_candidate", "range_on", "shape_bounds", "slice_axes",
           "split_offsets"]
