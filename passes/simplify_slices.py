"""Slice, Concat and Split chains that only move data around, shortened (each line is a rule).

    slice-noop       Slice(x) whose every sliced axis runs over the whole dim with step 1, where a
                     bound is computed (`x[:, :x.size(1)]`): the end is the dim itself -> x
    concat-slices    Concat(..., Slice(x, a, b), Slice(x, b, c), ...) along the sliced axis, each
                     Slice read only there                   -> Concat(..., Slice(x, a, c), ...)
                     (x itself where the slices cover the whole dim and nothing else is concatenated)
    split-concat     Concat(..., o_i, o_i+1, ..., o_j, ...) of consecutive outputs of one Split
                     along its axis, each read only there    -> a Slice of the Split's input
                     (the input itself for all the outputs and nothing else)
    slice-slice      Slice(Slice(x, s1, e1), s2, e2), step 1, non-negative constant bounds
                                                             -> Slice(x, s1 + s2, min(e1, s1 + e2))
                     (on different axes, any constant bounds and steps: one Slice with both), the
                     inner Slice read only by Slices that all merge with it: swin's patch merging
                     x[:, 0::2, 1::2] and its three siblings share the row Slices
    concat-concat    Concat(..., Concat(a, b), ...) on the same axis, the inner Concat read only
                     by the outer one                        -> Concat(..., a, b, ...)
                     (the sizes of a Resize: Concat(Slice(Shape(y), 0, 2), Concat(h, w)))
    concat-slices    also counts Unsqueeze(Gather(x, k, axis=a), [a]), k a constant scalar, as
                     x's rows [k, k+1) along a: Concat(Unsqueeze(Gather(s, 2)), Unsqueeze(Gather(
                     s, 3))) -> Slice(s, 2, 4) (one such row alone -> Slice(s, k, k+1) where its
                     Gather goes with it)
    concat-shapes    Concat(Shape(x, a, b), Shape(x, b, c))  -> Shape(x, a, c)
    slice-shape      Slice(Shape(x), a, b), step 1, constant bounds, the Shape read only there
                     -> Shape(x, start=a, end=b)

Shape takes `start` and `end` from opset 15 on: before, the two Shape rules only make whole
shapes. The Gather and Shape rules are what the TorchScript and dynamo exporters write for
`F.interpolate(x, size=y.shape[2:])`: the sizes vector becomes one Concat of two Shapes.

Bounds are compared symbolically (`mlc.passes._symbolic`): slices of `x[:, :n]` and `x[:, n:]`
are adjacent for a computed n, and a bound equal to the dim is the dim's end. A Slice bound is
clamped to [0, dim]: two slices are adjacent only where their clamped bounds provably meet.
Constant slices are left to fold-constants. What becomes unused is left to `dce`, but for
the pieces of a Shape a Concat rewrite replaces: they go at once, so that the Shape is left to
the new Slice alone (and slice-shape applies).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlc.ir.core import Graph, Node, Value
from mlc.ir.dtypes import DType
from mlc.ir.types import Dim, TensorType
from mlc.pass_api import Numerics, Pass, PassContext, register_pass
from mlc.passes._patterns import STANDARD, output_name_blocked, remove_dead_producers, sole_reader
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
    statistics = ("slices_removed", "concats_simplified", "concats_spliced", "slices_merged")

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
                    done = (self._slice_noop(sub, node, info, ctx) or self._slice_slice(sub, node, info, ctx)
                            or self._slice_shape(sub, node, info, ctx))
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
        middle = inner.outputs[0]
        if middle is None or middle.is_graph_output:
            return False
        inner_p = _slice_axes(info, inner)
        if inner_p is None:
            return False
        # Every reader must merge: the inner Slice goes only with the last of them.
        plans: list[tuple[Node, dict[int, tuple[int, int, int]]]] = []
        for reader, index in middle.uses:
            if (reader.op_type != "Slice" or reader.domain not in STANDARD or reader.graph is not graph or index != 0
                    or any(n is reader for n, _ in plans)):
                return False
            outer_p = _slice_axes(info, reader)
            merged = None if outer_p is None else _merge_slices(inner_p, outer_p)
            if merged is None:
                return False
            plans.append((reader, merged))
        for reader, merged in plans:
            if not ctx.rewrite("slice-slice"):
                return False
            axes = sorted(merged)
            specs = [([merged[a][0] for a in axes], "starts"), ([min(merged[a][1], 2**63 - 1) for a in axes], "ends"),
                     (axes, "axes")]
            if any(merged[a][2] != 1 for a in axes):
                specs.append(([merged[a][2] for a in axes], "steps"))
            consts = [graph.make_constant(np.array(v, dtype=np.int64), n) for v, n in specs]
            out = reader.outputs[0]
            assert out is not None
            new = Node("Slice", [inner.inputs[0], *consts],
                       [Value(graph.unique_name(out.name or "slice"), out.type)], name=reader.name)
            graph.insert_before(reader, new)
            ctx.created(new, [inner, reader], "slice-slice")
            assert new.outputs[0] is not None
            out.replace_all_uses_with(new.outputs[0], replace_graph_outputs=True)
            graph.remove(reader)
            ctx.stats["slices_merged"] += 1
        graph.remove(inner)
        return True

    # ---------------------------------------------------------------- slice-shape
    @staticmethod
    def _slice_shape(graph: Graph, node: Node, info: ShapeInfo, ctx: PassContext) -> bool:
        """Slice(Shape(x), a, b) with constant bounds, the Shape read only there -> Shape(x, start, end)."""
        shape_v = node.inputs[0]
        shape_node = shape_v.producer if shape_v is not None else None
        out = node.outputs[0]
        if (shape_node is None or shape_node.op_type != "Shape" or shape_node.domain not in STANDARD
                or shape_node.graph is not graph or sole_reader(shape_v) is not node or out is None):
            return False
        found = _range_on(info, node, 0)
        bounds = _shape_bounds(info, shape_node)
        if found is None or bounds is None:
            return False
        lo, hi = as_int(found[1]), as_int(found[2])
        if lo is None or hi is None or not _shape_attrs_allowed(graph, shape_node, bounds[0] + lo, bounds[0] + hi):
            return False
        if not ctx.rewrite("slice-shape"):
            return False
        new = _make_shape(graph, shape_node, bounds[0] + lo, bounds[0] + hi, out)
        graph.insert_before(node, new)
        ctx.created(new, [shape_node, node], "slice-shape")
        assert new.outputs[0] is not None
        out.replace_all_uses_with(new.outputs[0], replace_graph_outputs=True)
        graph.remove(node)
        graph.remove(shape_node)
        ctx.stats["slices_merged"] += 1
        return True

    # ---------------------------------------------------------------- concat-concat, concat-slices, split-concat
    def _concat(self, graph: Graph, node: Node, info: ShapeInfo, ctx: PassContext) -> bool:
        out = node.outputs[0]
        rank = info.rank(out)
        if out is None or rank is None or not node.inputs or any(v is None for v in node.inputs):
            return False
        axis = node.attr("axis", 0)
        axis = axis + rank if axis < 0 else axis
        spliced: list[Node] = []
        parts = _splice(graph, node, axis, info, spliced)
        if spliced and not ctx.rewrite("concat-concat"):
            return False
        if not spliced:
            parts = list(node.inputs)  # type: ignore[arg-type]
        readers = {node, *spliced}
        pieces = [_piece(graph, readers, v, axis, info) for v in parts]
        inputs: list[Value] = []
        replaced: list[Node] = []
        new_slices: list[tuple[Node, list[Value]]] = []
        i = 0
        while i < len(parts):
            first = pieces[i]
            j = i + 1
            while (j < len(parts) and first is not None and pieces[j] is not None
                   and pieces[j].source is first.source and (pieces[j].kind == "shape") == (first.kind == "shape")  # type: ignore[union-attr]
                   and pieces[j].lo == pieces[j - 1].hi  # type: ignore[union-attr]
                   and parts[j] is not parts[j - 1]):
                j += 1
            group: list[_Piece] = pieces[i:j]  # type: ignore[assignment]
            made = None if first is None else _group_value(graph, node, group, parts[i:j], axis, info)
            if made is None:
                inputs.append(parts[i])
                i += 1
                continue
            rule, value = made
            if not ctx.rewrite(rule):
                return False
            if value.producer is not None and value.producer.graph is None:
                graph.insert_before(node, value.producer)
                ctx.created(value.producer, [p.producer for p in parts[i:j] if p.producer is not None], rule)
                if value.producer.op_type == "Slice":
                    new_slices.append((value.producer, parts[i:j]))
            inputs.append(value)
            replaced.extend(p.producer for p in parts[i:j] if p.producer is not None)
            i = j
        if not replaced and not spliced:
            return False
        if len(inputs) == 1 and not output_name_blocked(out, inputs[0], graph):
            out.replace_all_uses_with(inputs[0], replace_graph_outputs=True)
            graph.remove(node)
        else:
            new = Node("Concat", inputs, [Value(graph.unique_name(out.name or "concat"), out.type)],
                       dict(node.attributes), name=node.name)
            graph.insert_before(node, new)
            ctx.created(new, [node, *spliced, *replaced])
            assert new.outputs[0] is not None
            out.replace_all_uses_with(new.outputs[0], replace_graph_outputs=True)
            graph.remove(node)
        for made_slice, pieces_read in new_slices:
            source = made_slice.inputs[0].producer if made_slice.inputs[0] is not None else None
            if source is not None and source.op_type == "Shape":
                # The pieces are dead now: removed at once, so that the Shape they read is left to
                # the new Slice alone, which then becomes a Shape itself (slice-shape).
                remove_dead_producers(pieces_read)
                self._slice_shape(graph, made_slice, info, ctx)
        ctx.stats["concats_simplified"] += 1
        if spliced:
            ctx.stats["concats_spliced"] += len(spliced)
        return True


def _merge_slices(inner: list[tuple[int, Expr, Expr, int]],
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


def _candidate(node: Node) -> bool:
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


@dataclass(frozen=True)
class _Piece:
    """A Concat input that is rows [lo, hi) of `source` along the Concat's axis. kind: "slice" (a
    step-1 Slice), "gather" (Unsqueeze(Gather(source, k)), the row k), "split" (a Split output),
    or "shape" (Shape(source) entries [lo, hi), its start and end)."""

    source: Value
    lo: Expr
    hi: Expr
    kind: str


def _splice(graph: Graph, concat: Node, axis: int, info: ShapeInfo, spliced: list[Node]) -> list[Value]:
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
                parts.extend(_splice(graph, inner, axis, info, spliced))
                continue
        parts.append(value)
    return parts


def _piece(graph: Graph, readers: set[Node], value: Value, axis: int, info: ShapeInfo) -> _Piece | None:
    """The rows `value` is of another tensor along `axis`, when it is read only by `readers` (the
    Concat and the Concats spliced into it)."""
    producer = value.producer
    if producer is None or producer.graph is not graph or producer.domain not in STANDARD:
        return None
    if value.is_graph_output or any(user not in readers for user, _ in value.uses):
        return None
    if producer.op_type == "Slice":
        found = _range_on(info, producer, axis)
        return None if found is None else _Piece(*found, "slice")
    if producer.op_type == "Split":
        offsets = _split_offsets(info, producer)
        if offsets is None or offsets[0] != axis or producer.inputs[0] is None:
            return None
        k = list(producer.outputs).index(value)
        return _Piece(producer.inputs[0], offsets[1][k], offsets[1][k + 1], "split")
    if producer.op_type == "Shape" and axis == 0:
        bounds = _shape_bounds(info, producer)
        if bounds is None or producer.inputs[0] is None:
            return None
        return _Piece(producer.inputs[0], Expr.const(bounds[0]), Expr.const(bounds[1]), "shape")
    if producer.op_type == "Unsqueeze":
        return _gathered_row(graph, producer, axis, info)
    return None


def _gathered_row(graph: Graph, unsqueeze: Node, axis: int, info: ShapeInfo) -> _Piece | None:
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
    return _Piece(gather.inputs[0], Expr.const(k), Expr.const(k + 1), "gather")


def _gather_shared(value: Value) -> bool:
    """The Gather under the Unsqueeze producing `value` has other readers (it stays)."""
    unsqueeze = value.producer
    gathered = unsqueeze.inputs[0] if unsqueeze is not None else None
    return gathered is None or gathered.is_graph_output or len(gathered.uses) != 1


def _shape_bounds(info: ShapeInfo, node: Node) -> tuple[int, int] | None:
    """The [start, end) a Shape node takes of its input's dims, normalized (the rank known)."""
    rank = info.rank(node.inputs[0]) if node.inputs else None
    if rank is None:
        return None
    start, end = node.attr("start", 0), node.attr("end", rank)
    start = min(max(start + rank if start < 0 else start, 0), rank)
    end = min(max(end + rank if end < 0 else end, 0), rank)
    return start, max(start, end)


def _shape_attrs_allowed(graph: Graph, shape_node: Node, start: int, end: int) -> bool:
    """Shape takes start and end from opset 15 on; before, only the whole shape."""
    rank = len(_declared(shape_node.inputs[0]) or ()) if shape_node.inputs[0] is not None else None
    opset = graph.root.opset_version("")
    return (opset is not None and opset >= 15) or (start == 0 and end == rank)


def _make_shape(graph: Graph, like: Node, start: int, end: int, out: Value | None) -> Node:
    """A Shape of `like`'s input from start to end (not yet inserted), attributes only where needed."""
    x = like.inputs[0]
    assert x is not None
    rank = len(_declared(x) or ())
    attributes: dict[str, int] = {}
    if start != 0:
        attributes["start"] = start
    if end != rank or _declared(x) is None:
        attributes["end"] = end
    name = out.name if out is not None and out.name else "shape"
    return Node("Shape", [x], [Value(graph.unique_name(name), TensorType(DType.INT64, (end - start,)))],
                attributes, name=like.name)


def _group_value(graph: Graph, concat: Node, group: list[_Piece], values: list[Value], axis: int,
                 info: ShapeInfo) -> tuple[str, Value] | None:
    """(rule, the value standing for the adjacent pieces `group`): their source when they cover
    it, or a new Slice or Shape of it (not yet inserted); None when no node would be saved."""
    first, lo, hi = group[0], group[0].lo, group[-1].hi
    if len(group) == 1 and (first.kind != "gather" or _gather_shared(values[0])):
        return None  # one Slice for one Slice, or for an Unsqueeze whose Gather stays
    kinds = {p.kind for p in group}
    if "split" in kinds:
        split = values[0].producer
        if kinds != {"split"} or split is None or list(split.outputs) != values:
            return None  # only a whole Split goes: otherwise no node is saved
    if first.kind == "shape":
        start, end = as_int(lo), as_int(hi)
        shape_node = values[0].producer
        assert start is not None and end is not None and shape_node is not None
        if not _shape_attrs_allowed(graph, shape_node, start, end):
            return None
        return "concat-shapes", _make_shape(graph, shape_node, start, end, None).outputs[0]  # type: ignore[return-value]
    shape = info.shape(first.source)
    if shape is not None and lo == ZERO and hi == shape[axis]:
        return ("split-concat" if first.kind == "split" else "concat-slices"), first.source
    made = _make_slice(graph, concat, first.source, lo, hi, axis, info)
    return None if made is None else ("concat-slices", made)


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
