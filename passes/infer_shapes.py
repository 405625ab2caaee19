"""Symbolic shape inference: give every intermediate value the dims it has by construction.

onnx's shape inference, which the importer runs, makes up a fresh name (`unk__N`) for every dim
it cannot compute, typically each Reshape output whose target is computed at run time from
`Shape`. Dims equal by construction then look unrelated: `x.view(b, s, 4, 16)` of an
`[batch, sequence, 64]` tensor comes out as `[unk__13, unk__14, unk__15, 16]`, and every pass that
asks "is this the same dim?" (a Reshape's 0, a no-op Expand, a layout merge) has to say no.

This pass re-derives the shapes with `mlc.passes._symbolic.ShapeInfo`, which follows the
shape values through Shape→Gather→Unsqueeze→Concat→Reshape chains symbolically, and rewrites the
value types with what it proves:

    %r: f32[unk__13,unk__14,unk__15,16] = Reshape(%x, %t)   ->  %r: f32[batch,sequence,4,16]
    %f: f32[unk__12,64] = Reshape(%x, [-1, 64])            ->  %f: f32[batch*sequence,64]

A dim changes only to something at least as precise: a static size over anything, a derived
name over a made-up one or an unknown; a static dim is never changed, and no dim is made unknown.
Graph inputs keep their types, graph outputs change only where they were unknown or `unk__`.
Products print as `a*b`, sums as `a+b` (ONNX dim_params are free-form strings).

Types only: no node changes, so the numbers cannot.
"""

from __future__ import annotations

from mlc.ir.core import Graph, Value
from mlc.ir.types import Dim, TensorType
from mlc.pass_api import Numerics, Pass, PassContext, register_pass
from mlc.passes._symbolic import ShapeInfo


def _better(new: Dim, old: Dim, interface: bool) -> bool:
    """Whether the derived dim `new` should replace the declared `old`."""
    if new is None or new == old or isinstance(old, int):
        return False
    if interface:
        return old is None or (isinstance(old, str) and old.startswith("unk__"))
    return True


@register_pass
class InferShapes(Pass):
    name = "infer-shapes"
    description = "Refine value types with symbolic shape inference (one name for dims equal by construction)"
    numerics = Numerics.EXACT
    statistics = ("values_refined", "dims_refined")

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        for sub in list(graph.all_graphs()):
            changed |= refine_types(sub, ShapeInfo(sub), ctx)
            if ctx.exhausted:
                return changed
        return changed


def refine_types(graph: Graph, info: ShapeInfo, ctx: PassContext) -> bool:
    """Give the node outputs of `graph` the dims `info` derives (see the module docstring);
    `simplify-shapes` calls this too, with the analysis it has built anyway."""
    changed = False
    for node in graph:
        for value in node.outputs:
            if value is None or not isinstance(value.type, TensorType) or value.type.is_static:
                continue  # a static type is as precise as it gets
            if _refine(value, info, ctx):
                changed = True
            if ctx.exhausted:
                return changed
    return changed


def _refine(value: Value, info: ShapeInfo, ctx: PassContext) -> bool:
    assert isinstance(value.type, TensorType)
    derived = info.shape(value)
    if derived is None:
        return False
    old = value.type.shape
    new = [info.to_dim(d) for d in derived]
    interface = value.is_graph_output
    if old is None:
        if interface or any(d is None for d in new):
            return False
        dims = tuple(new)
    else:
        if len(old) != len(new):
            return False
        dims = tuple(n if _better(n, o, interface) else o for n, o in zip(new, old, strict=True))
    if dims == old:
        return False
    if not ctx.rewrite("refine-type"):
        return False
    ctx.stats["values_refined"] += 1
    ctx.stats["dims_refined"] += sum(1 for a, b in zip(dims, old or [None] * len(dims), strict=True) if a != b)
    value.type = TensorType(value.type.dtype, dims)
    return True
