"""Shape rules of the layout ops: Transpose, Reshape, Flatten, Squeeze, Unsqueeze, Concat.

They move data without computing, so a shape value passes through them (Reshape, Flatten,
Squeeze, Unsqueeze keep the elements, Transpose permutes them, Concat of vectors joins them).
`reshape_dims` is Reshape's arithmetic on its own: simplify-shapes asks it too.
"""

from __future__ import annotations

from collections.abc import Sequence

from mlc.ir.core import Node
from mlc.ir.shape_analysis import ShapeAnalysis, ShapeResult, ShapeRule
from mlc.ir.symbolic_dims import ONE, ZERO, Expr
from mlc.ir.symbolic_shapes import Elems, Shape, as_int, product
from mlc.passes._symbolic_common import axes_of, elem_grid, flat_elems, input_at, norm_axis, registrar

RULES: dict[str, ShapeRule] = {}
rule = registrar(RULES)


@rule("Transpose")
def _transpose(info: ShapeAnalysis, node: Node) -> ShapeResult:
    x = info.shape(node.inputs[0])
    if x is None:
        return None
    perm = node.attr("perm")
    perm = list(perm) if perm is not None else list(reversed(range(len(x))))
    grid = elem_grid(info, node.inputs[0])
    elems = flat_elems(grid.transpose(perm)) if grid is not None else None
    return [tuple(x[p] for p in perm)], [elems]


def reshape_dims(in_shape: Shape | None, target: Elems, allowzero: bool) -> Shape | None:
    """The output dims of Reshape(x, target) (None entries: unknown)."""
    out: list[Expr | None] = []
    solve: int | None = None
    for i, t in enumerate(target):
        if t is not None and t.is_const and t.value == 0 and not allowzero:
            out.append(in_shape[i] if in_shape is not None and i < len(in_shape) else None)
        elif t is not None and t.is_const and t.value == -1:
            if solve is not None:
                return None
            solve = i
            out.append(None)
        else:
            out.append(t)
    unknown = [i for i, d in enumerate(out) if d is None]
    if len(unknown) == 1 and in_shape is not None:
        total = product(in_shape)
        rest = product(d for i, d in enumerate(out) if i != unknown[0])
        if total is not None and rest is not None:
            out[unknown[0]] = total.divide(rest)
    return tuple(out)


@rule("Reshape")
def _reshape(info: ShapeAnalysis, node: Node) -> ShapeResult:
    x = info.shape(node.inputs[0])
    target = info.elems(input_at(node, 1))
    if target is None:
        length = info.shape(input_at(node, 1))
        n = as_int(length[0]) if length is not None and len(length) == 1 else None
        return None if n is None else ([tuple([None] * n)], [])
    out = reshape_dims(x, target, bool(node.attr("allowzero", 0)))
    return [out], [info.elems(node.inputs[0])]


@rule("Flatten")
def _flatten(info: ShapeAnalysis, node: Node) -> ShapeResult:
    x = info.shape(node.inputs[0])
    if x is None:
        return None
    axis = node.attr("axis", 1)
    axis = axis + len(x) if axis < 0 else axis
    return [(product(x[:axis]), product(x[axis:]))], [info.elems(node.inputs[0])]


@rule("Squeeze")
def _squeeze(info: ShapeAnalysis, node: Node) -> ShapeResult:
    x = info.shape(node.inputs[0])
    if x is None:
        return None
    axes = axes_of(info, node, 1)
    if axes is None:
        if any(d is None or not d.is_const for d in x):
            return None
        keep = [d for d in x if d != ONE]
    else:
        drop = {norm_axis(a, len(x)) for a in axes}
        keep = [d for i, d in enumerate(x) if i not in drop]
    return [tuple(keep)], [info.elems(node.inputs[0])]


@rule("Unsqueeze")
def _unsqueeze(info: ShapeAnalysis, node: Node) -> ShapeResult:
    x = info.shape(node.inputs[0])
    axes = axes_of(info, node, 1)
    if x is None or axes is None:
        return None
    rank = len(x) + len(axes)
    positions = sorted(norm_axis(a, rank) for a in axes)
    out = list(x)
    for p in positions:
        out.insert(p, ONE)
    return [tuple(out)], [info.elems(node.inputs[0])]


@rule("Concat")
def _concat(info: ShapeAnalysis, node: Node) -> ShapeResult:
    shapes = [info.shape(v) for v in node.inputs if v is not None]
    if not shapes or any(s is None for s in shapes):
        return None
    rank = len(shapes[0])  # type: ignore[arg-type]
    if any(len(s) != rank for s in shapes):  # type: ignore[arg-type]
        return None
    axis = norm_axis(node.attr("axis", 0), rank)
    out: list[Expr | None] = []
    for i in range(rank):
        column = [s[i] for s in shapes]  # type: ignore[index]
        if i == axis:
            out.append(_sum(column))
        else:
            known = [d for d in column if d is not None]
            out.append(known[0] if known else None)
    elems: Elems | None = None
    if rank == 1:
        parts = [info.elems(v) for v in node.inputs if v is not None]
        if all(p is not None for p in parts):
            elems = tuple(e for p in parts for e in p)  # type: ignore[union-attr]
    return [tuple(out)], [elems]


def _sum(dims: Sequence[Expr | None]) -> Expr | None:
    total = ZERO
    for d in dims:
        if d is None:
            return None
        total = total + d
    return total


__all__ = ["RULES", "reshape_dims", "rule"]
