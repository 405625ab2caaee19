"""Shape rules of the ops that pick parts of a tensor: Slice, Gather, GatherElements, Scatter*.

A Slice bound may be symbolic (`x[:, :x.size(1)]`); `slice_range` resolves a step-1 slice's
bounds against the dim where that is provable, and simplify-slices asks it too. A bound at least
`HUGE` means "to the end", whatever the dim.
"""

from __future__ import annotations

from mlc.ir.core import Node
from mlc.ir.shape_analysis import ShapeAnalysis, ShapeResult, ShapeRule
from mlc.ir.symbolic_dims import ZERO, Expr
from mlc.ir.symbolic_shapes import Elems
from mlc.passes._slicing import slice_indices
from mlc.passes._symbolic_common import elem_grid, flat_elems, input_at, norm_axis, registrar

HUGE = 2**62  # a Slice bound at least this large means "to the end", whatever the dim

RULES: dict[str, ShapeRule] = {}
rule = registrar(RULES)


def _slice_params(info: ShapeAnalysis, node: Node, rank: int) -> list[tuple[int, Expr, Expr, int]] | None:
    """(axis, start, end, step) per sliced axis, start/end as given (symbolic allowed)."""
    if len(node.inputs) >= 3:
        starts, ends = info.elems(node.inputs[1]), info.elems(node.inputs[2])
        axes = info.ints(input_at(node, 3)) if input_at(node, 3) is not None else None
        steps = info.ints(input_at(node, 4)) if input_at(node, 4) is not None else None
        if starts is None or ends is None or (input_at(node, 3) is not None and axes is None) or (
                input_at(node, 4) is not None and steps is None):
            return None
    else:
        starts_a, ends_a = node.attr("starts"), node.attr("ends")
        if starts_a is None or ends_a is None:
            return None
        starts = tuple(Expr.const(int(s)) for s in starts_a)
        ends = tuple(Expr.const(int(e)) for e in ends_a)
        axes = list(node.attr("axes")) if node.attr("axes") is not None else None
        steps = None
    axes = list(range(len(starts))) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    if not len(starts) == len(ends) == len(axes) == len(steps) or any(s is None for s in (*starts, *ends)):
        return None
    return [(norm_axis(a, rank), s, e, st) for a, s, e, st in zip(axes, starts, ends, steps, strict=True)
            if s is not None and e is not None]


def slice_range(dim: Expr | None, start: Expr, end: Expr, step: int) -> tuple[Expr, Expr] | None:
    """The clamped [lo, hi) of a step-1 slice of a dim, when provable (lo, hi as expressions)."""
    if step != 1:
        return None
    lo = _clamp(dim, start)
    hi = _clamp(dim, end)
    if lo is None or hi is None:
        return None
    return lo, hi


def _clamp(dim: Expr | None, bound: Expr) -> Expr | None:
    """A slice bound resolved against the dim (negative counts from the end, clamped to [0, dim])."""
    if bound.is_const:
        b = bound.value
        if dim is not None and dim.is_const:
            d = dim.value
            return Expr.const(min(max(b + d if b < 0 else b, 0), d))
        if b >= HUGE:
            return dim
        if b == 0:
            return ZERO
        if b <= -HUGE:
            return ZERO
        return None  # 0 < b < huge or a negative offset: depends on how large the symbolic dim is
    if dim is not None and bound == dim:
        return dim
    return None


@rule("Slice")
def _slice(info: ShapeAnalysis, node: Node) -> ShapeResult:
    x = info.shape(node.inputs[0])
    if x is None:
        return None
    params = _slice_params(info, node, len(x))
    if params is None:
        return None
    out: list[Expr | None] = list(x)
    ranges: dict[int, tuple[Expr, Expr] | None] = {}
    for axis, start, end, step in params:
        r = None
        if step == 1:
            r = slice_range(x[axis], start, end, step)
        elif x[axis] is not None and x[axis].is_const and start.is_const and end.is_const and step != 0:  # type: ignore[union-attr]
            n = len(slice_indices(start.value, end.value, step, x[axis].value))  # type: ignore[union-attr]
            out[axis] = Expr.const(n)
            continue
        ranges[axis] = r
        out[axis] = None if r is None else r[1] - r[0]
    elems: Elems | None = None
    grid = elem_grid(info, node.inputs[0])
    if grid is not None and all(st.is_const and en.is_const and step != 0 for _, st, en, step in params):
        for axis, start, end, step in params:  # a range, not a slice: a negative step may end before 0
            picked = slice_indices(start.value, end.value, step, grid.shape[axis])
            grid = grid.take(list(picked), axis=axis)
        elems = flat_elems(grid)
    return [tuple(out)], [elems]


@rule("Gather")
def _gather(info: ShapeAnalysis, node: Node) -> ShapeResult:
    data, indices = info.shape(node.inputs[0]), info.shape(node.inputs[1])
    if data is None or indices is None:
        return None
    axis = norm_axis(node.attr("axis", 0), len(data))
    out = (*data[:axis], *indices, *data[axis + 1:])
    elems: Elems | None = None
    values, picks = info.elems(node.inputs[0]), info.ints(node.inputs[1])
    if values is not None and picks is not None and len(data) == 1:
        n = len(values)
        if all(-n <= p < n for p in picks):
            elems = tuple(values[p] for p in picks)
    return [out], [elems]


@rule("GatherElements")
def _gather_elements(info: ShapeAnalysis, node: Node) -> ShapeResult:
    return [info.shape(node.inputs[1])], []


@rule("ScatterElements", "ScatterND", "Scatter")
def _scatter(info: ShapeAnalysis, node: Node) -> ShapeResult:
    return [info.shape(node.inputs[0])], []


__all__ = ["HUGE", "RULES", "rule", "slice_range"]
