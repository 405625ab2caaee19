"""Slice, Concat and Split chains that only move data around, shortened (each line is a rule).

    slice-noop       Slice(x) whose every sliced axis runs over the whole dim with step 1, where a
                     bound is computed (`x[:, :x.size(1)]`): the end is the dim itself -> x
    concat-slices    Concat(..., Slice(x, a, b), Slice(x, b, c), ...) along the sliced axis, each
                     Slice read only there                   -> Concat(..., Slice(x, a, c), ...)
                     (x itself where the slices cover the whole dim and nothing else is concatenated)
    split-concat     Concat(..., o_i, o_i+1, ..., o_j, ...) of consecutive outputs of one Split
                     along its axis, each read only there    -> a Slice of the Split's input
                     (the input itself for all the outputs and nothing else)
    slice-slice      Slice(Slice(x, s1, e1), s2, e2), step 1, non-negative constant bounds, the
                     inner Slice read only there            -> Slice(x, s1 + s2, min(e1, s1 + e2))
                     (on different axes: one Slice with both)

Bounds are compared symbolically (`mlc.passes._symbolic`): slices of `x[:, :n]` and `x[:, n:]`
are adjacent for a computed n, and a bound equal to the dim is the dim's end. A Slice bound is
clamped to [0, dim]: two slices are adjacent only where their clamped bounds provably meet.
Constant slices are left to fold-constants. What becomes unused is left to `dce`.
"""

from __future__ import annotations

import numpy as np

from mlc.ir.core import Graph, Node, Value
from mlc.ir.types import Dim, TensorType
from mlc.pass_api import Numerics, Pass, PassContext, register_pass
from mlc.passes._patterns import STANDARD, output_name_blocked, sole_reader
from mlc.passes._symbolic import HUGE, ZERO, Expr, ShapeInfo, as_int, slice_range


def _slice_axes(info: ShapeInfo, node: Node) -> list[tuple[int, Expr, Expr, int]] | None:
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


def _range_on(info: ShapeInfo, node: Node, axis: int) -> tuple[Value, Expr, Expr] | None:
    """(x, lo, hi) when `node` is a step-1 Slice of x on `axis` alone, its clamped bounds known."""
    if node.op_type != "Slice" or node.domain not in STANDARD:
        return None
    params = _slice_axes(info, node)
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


def _split_offsets(info: ShapeInfo, split: Node) -> tuple[int, list[Expr]] | None:
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


@register_pass
class SimplifySlices(Pass):
    name = "simplify-slices"
    description = "Shorten Slice/Concat/Split chains: full Slices, Concats of adjacent Slices or of Split outputs"
    numerics = Numerics.EXACT
    statistics = ("slices_removed", "concats_simplified", "slices_merged")

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        for sub in list(graph.all_graphs()):
            if not any(_candidate(node) for node in sub):
                continue  # no symbolic analysis for a graph without candidates
            info = ShapeInfo(sub)
            for node in sub:
                if node.domain not in STANDARD:
                    continue
                if node.op_type == "Slice":
                    done = self._slice_noop(sub, node, info, ctx) or self._slice_slice(sub, node, info, ctx)
                elif node.op_type == "Concat":
                    done = self._concat(sub, node, info, ctx)
                else:
                    continue
                changed |= done
                if ctx.exhausted:
                    return changed
        return changed

    # ---------------------------------------------------------------- slice-noop
    @staticmethod
    def _slice_noop(graph: Graph, node: Node, info: ShapeInfo, ctx: PassContext) -> bool:
        x, out = node.inputs[0], node.outputs[0]
        params = _slice_axes(info, node)
        shape = info.shape(x)
        if x is None or out is None or params is None or shape is None:
            return False
        if all(start.is_const and end.is_const for _, start, end, _ in params):
            return False  # constant bounds: eliminate-noop's
        for axis, start, end, step in params:
            bounds = slice_range(shape[axis], start, end, step)
            if bounds is None or bounds[0] != ZERO or shape[axis] is None or bounds[1] != shape[axis]:
                return False
        if output_name_blocked(out, x, graph):
            return False
        if not ctx.rewrite("slice-noop"):
            return False
        out.replace_all_uses_with(x, replace_graph_outputs=True)
        graph.remove(node)
        ctx.stats["slices_removed"] += 1
        return True

    # ---------------------------------------------------------------- slice-slice
    @staticmethod
    def _slice_slice(graph: Graph, node: Node, info: ShapeInfo, ctx: PassContext) -> bool:
        inner = node.inputs[0].producer if node.inputs[0] is not None else None
        if inner is None or inner.op_type != "Slice" or inner.domain not in STANDARD or inner.graph is not graph:
            return False
        if sole_reader(inner.outputs[0]) is not node:
            return False
        outer_p, inner_p = _slice_axes(info, node), _slice_axes(info, inner)
        if outer_p is None or inner_p is None:
            return False
        merged: dict[int, tuple[int, int]] = {}
        for params in (inner_p, outer_p):
            for axis, start, end, step in params:
                s, e = as_int(start), as_int(end)
                if step != 1 or s is None or e is None or s < 0 or e < 0:
                    return False
                if axis in merged:
                    s1, e1 = merged[axis]
                    merged[axis] = (s1 + s, min(e1, s1 + e) if e < HUGE else e1)
                else:
                    merged[axis] = (s, e)
        if not ctx.rewrite("slice-slice"):
            return False
        axes = sorted(merged)
        consts = [graph.make_constant(np.array(v, dtype=np.int64), n) for v, n in (
            ([merged[a][0] for a in axes], "starts"), ([min(merged[a][1], 2**63 - 1) for a in axes], "ends"),
            (axes, "axes"))]
        out = node.outputs[0]
        assert out is not None
        new = Node("Slice", [inner.inputs[0], *consts], [Value(graph.unique_name(out.name or "slice"), out.type)],
                   name=node.name)
        graph.insert_before(node, new)
        ctx.created(new, [inner, node], "slice-slice")
        assert new.outputs[0] is not None
        out.replace_all_uses_with(new.outputs[0], replace_graph_outputs=True)
        graph.remove(node)
        graph.remove(inner)
        ctx.stats["slices_merged"] += 1
        return True

    # ---------------------------------------------------------------- concat-slices, split-concat
    def _concat(self, graph: Graph, node: Node, info: ShapeInfo, ctx: PassContext) -> bool:
        out = node.outputs[0]
        rank = info.rank(out)
        if out is None or rank is None or not node.inputs or any(v is None for v in node.inputs):
            return False
        axis = node.attr("axis", 0)
        axis = axis + rank if axis < 0 else axis
        parts: list[Value] = list(node.inputs)  # type: ignore[arg-type]
        pieces = [_piece(graph, node, v, axis, info) for v in parts]
        inputs: list[Value] = []
        replaced: list[Node] = []
        i = 0
        while i < len(parts):
            first = pieces[i]
            j = i + 1
            while (j < len(parts) and first is not None and pieces[j] is not None
                   and pieces[j][0] is first[0] and pieces[j][1] == pieces[j - 1][2]  # type: ignore[index]
                   and parts[j] is not parts[j - 1]):
                j += 1
            group = pieces[i:j]
            if first is None or j - i < 2 or not _whole_split_or_slices(group, parts[i:j]):
                inputs.append(parts[i])
                i += 1
                continue
            source, lo, hi = first[0], first[1], group[-1][2]  # type: ignore[index]
            shape = info.shape(source)
            if shape is not None and lo == ZERO and hi == shape[axis]:
                rule, value = ("split-concat" if first[3] else "concat-slices"), source
            else:
                made = _make_slice(graph, node, source, lo, hi, axis, info)
                if made is None:
                    inputs.extend(parts[i:j])
                    i = j
                    continue
                rule, value = "concat-slices", made
            if not ctx.rewrite(rule):
                return False
            if value is not source:
                graph.insert_before(node, value.producer)  # type: ignore[arg-type]
                ctx.created(value.producer, [p.producer for p in parts[i:j] if p.producer is not None], rule)  # type: ignore[arg-type]
            inputs.append(value)
            replaced.extend(p.producer for p in parts[i:j] if p.producer is not None)
            i = j
        if not replaced:
            return False
        if len(inputs) == 1 and not output_name_blocked(out, inputs[0], graph):
            out.replace_all_uses_with(inputs[0], replace_graph_outputs=True)
            graph.remove(node)
        else:
            new = Node("Concat", inputs, [Value(graph.unique_name(out.name or "concat"), out.type)],
                       dict(node.attributes), name=node.name)
            graph.insert_before(node, new)
            ctx.created(new, [node, *replaced])
            assert new.outputs[0] is not None
            out.replace_all_uses_with(new.outputs[0], replace_graph_outputs=True)
            graph.remove(node)
        ctx.stats["concats_simplified"] += 1
        return True


def _candidate(node: Node) -> bool:
    """A Slice with a computed bound or of a Slice, or a Concat of Slice/Split outputs."""
    if node.domain not in STANDARD:
        return False
    if node.op_type == "Slice":
        inner = node.inputs[0].producer if node.inputs and node.inputs[0] is not None else None
        return (inner is not None and inner.op_type == "Slice") or any(
            v is not None and not v.is_constant for v in node.inputs[1:3])
    if node.op_type == "Concat":
        producers = [v.producer for v in node.inputs if v is not None]
        return sum(1 for p in producers if p is not None and p.op_type in ("Slice", "Split")) > 1
    return False


def _whole_split_or_slices(group: list[tuple[Value, Expr, Expr, bool] | None], values: list[Value]) -> bool:
    """Slices, or every output of one Split (so that the Split goes: no node is added)."""
    if not all(p is not None and not p[3] for p in group):
        split = values[0].producer
        return (all(p is not None and p[3] for p in group) and split is not None
                and [v for v in split.outputs] == values)
    return True


def _piece(graph: Graph, concat: Node, value: Value, axis: int,
           info: ShapeInfo) -> tuple[Value, Expr, Expr, bool] | None:
    """(source, lo, hi, from a Split) when `value` is rows [lo, hi) of source along `axis`, read
    only by `concat`."""
    producer = value.producer
    if producer is None or producer.graph is not graph or producer.domain not in STANDARD:
        return None
    if value.is_graph_output or any(user is not concat for user, _ in value.uses):
        return None
    if producer.op_type == "Slice":
        found = _range_on(info, producer, axis)
        return None if found is None else (*found, False)
    if producer.op_type == "Split":
        offsets = _split_offsets(info, producer)
        if offsets is None or offsets[0] != axis or producer.inputs[0] is None:
            return None
        k = list(producer.outputs).index(value)
        return producer.inputs[0], offsets[1][k], offsets[1][k + 1], True
    return None


def _make_slice(graph: Graph, concat: Node, source: Value, lo: Expr, hi: Expr, axis: int,
                info: ShapeInfo) -> Value | None:
    """A new Slice of rows [lo, hi) of source (not yet inserted), or None when a bound is symbolic
    and not the dim's end."""
    start, end = as_int(lo), as_int(hi)
    shape = info.shape(source)
    if start is None or shape is None:
        return None
    if end is None:
        if hi != shape[axis]:
            return None
        end = 2**63 - 1
    consts = [graph.make_constant(np.array([v], dtype=np.int64), n)
              for v, n in ((start, "starts"), (end, "ends"), (axis, "axes"))]
    dims = list(_declared(source) or [])
    if len(dims) == len(shape):
        dims[axis] = info.to_dim(hi - lo)
    t = source.type
    out_type = TensorType(t.dtype, tuple(dims)) if isinstance(t, TensorType) and dims else None
    node = Node("Slice", [source, *consts], [Value(graph.unique_name("slice"), out_type)], name=concat.name)
    return node.outputs[0]


def _declared(value: Value) -> tuple[Dim, ...] | None:
    return value.type.shape if isinstance(value.type, TensorType) else None
