"""The pieces of a Concat: which rows of which tensor each input is, along the Concat's axis.

A piece is a step-1 Slice, a Split output, Shape entries, or Unsqueeze(Gather(x, k)) (x's row k);
adjacent pieces of one source are what concat-slices, split-concat and concat-shapes merge. Input
Concats on the same axis read only by the Concat are spliced into it first (concat-concat).
"""

from __future__ import annotations

from dataclasses import dataclass

from mlc.ir.core import Graph, Node, Value
from mlc.passes._match_basics import STANDARD
from mlc.passes._slice_bounds import range_on, shape_bounds, split_offsets
from mlc.passes._symbolic import Expr, ShapeInfo, as_int


@dataclass(frozen=True)
class Piece:
    """A Concat input that is rows [lo, hi) of `source` along the Concat's axis. kind: "slice" (a
    step-1 Slice), "gather" (Unsqueeze(Gather(source, k)), the row k), "split" (a Split output),
    or "shape" (Shape(source) entries [lo, hi), its start and end)."""

    source: Value
    lo: Expr
    hi: Expr
    kind: str


def splice_concats(graph: Graph, concat: Node, axis: int, info: ShapeInfo, spliced: list[Node]) -> list[Value]:
    """The Concat's inputs with each input Concat on the same axis read only by it (or by Concats
    spliced into it) replaced by its own inputs, recursively; the spliced Concats go to `spliced`."""
    parts: list[Value] = []
    for value in concat.inputs:
        assert value is not None
        inner = value.producer
        if (inner is not None and inner.op_type == "Concat" and inner.domain in STANDARD and inner.graph is graph
                and not value.is_graph_output and all(user is concat for user, _ in value.uses)
                and all(v is not None for v in inner.inputs) and info.rank(value) is not None):
            inner_axis = inner.attr("axis", 0)
            rank = info.rank(value)
            assert rank is not None
            if (inner_axis + rank if inner_axis < 0 else inner_axis) == axis:
                if inner not in spliced:
                    spliced.append(inner)
                parts.extend(splice_concats(graph, inner, axis, info, spliced))
                continue
        parts.append(value)
    return parts


def piece_of(graph: Graph, readers: set[Node], value: Value, axis: int, info: ShapeInfo) -> Piece | None:
    """The rows `value` is of another tensor along `axis`, when it is read only by `readers` (the
    Concat and the Concats spliced into it)."""
    producer = value.producer
    if producer is None or producer.graph is not graph or producer.domain not in STANDARD:
        return None
    if value.is_graph_output or any(user not in readers for user, _ in value.uses):
        return None
    if producer.op_type == "Slice":
        found = range_on(info, producer, axis)
        return None if found is None else Piece(*found, "slice")
    if producer.op_type == "Split":
        offsets = split_offsets(info, producer)
        if offsets is None or offsets[0] != axis or producer.inputs[0] is None:
            return None
        k = list(producer.outputs).index(value)
        return Piece(producer.inputs[0], offsets[1][k], offsets[1][k + 1], "split")
    if producer.op_type == "Shape" and axis == 0:
        bounds = shape_bounds(info, producer)
        if bounds is None or producer.inputs[0] is None:
            return None
        return Piece(producer.inputs[0], Expr.const(bounds[0]), Expr.const(bounds[1]), "shape")
    if producer.op_type == "Unsqueeze":
        return gathered_row(graph, producer, axis, info)
    return None


def gathered_row(graph: Graph, unsqueeze: Node, axis: int, info: ShapeInfo) -> Piece | None:
    """Unsqueeze(Gather(x, k, axis=a), [a]) with k a constant scalar: x's row k along a, the
    Slice [k, k+1). A negative k needs a's size (a Gather index out of range fails at run time;
    the Slice that replaces it is only asked for valid ones)."""
    gathered = unsqueeze.inputs[0]
    gather = gathered.producer if gathered is not None else None
    rank = info.rank(unsqueeze.outputs[0])
    if (gather is None or gather.op_type != "Gather" or gather.domain not in STANDARD or gather.graph is not graph
            or rank is None or gather.inputs[0] is None):
        return None
    axes = info.ints(unsqueeze.inputs[1]) if len(unsqueeze.inputs) > 1 else unsqueeze.attr("axes")
    if axes is None or len(axes) != 1 or (axes[0] + rank if axes[0] < 0 else axes[0]) != axis:
        return None
    g_axis = gather.attr("axis", 0)
    g_axis = g_axis + rank if g_axis < 0 else g_axis
    index = gather.inputs[1]
    shape = info.shape(gather.inputs[0])
    if (g_axis != axis or index is None or shape is None or len(shape) != rank or info.shape(index) != ()
            or info.ints(index) is None):
        return None
    k = info.ints(index)[0]  # type: ignore[index]
    if k < 0:
        size = as_int(shape[axis])
        if size is None or k + size < 0:
            return None
        k += size
    return Piece(gather.inputs[0], Expr.const(k), Expr.const(k + 1), "gather")


def gather_shared(value: Value) -> bool:
    """The Gather under the Unsqueeze producing `value` has other readers (it stays)."""
    unsqueeze = value.producer
    gathered = unsqueeze.inputs[0] if unsqueeze is not None else None
    return gathered is None or gathered.is_graph_output or len(gathered.uses) != 1


__all__ = ["Piece", "gather_shared", "gathered_row", "piece_of", "splice_concats"]
