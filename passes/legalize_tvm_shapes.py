"""Rewrite dynamic-shape computations into forms whose dims TVM's ONNX frontend can follow.

TVM 0.27's Relax frontend tracks symbolic dims through Shape (with start/end), Gather, Slice and
Concat of shapes, ConstantOfShape, Expand, Reshape and elementwise broadcasting. Four patterns of
real exports (dynamo and TorchScript BERT / GPT-2 / Llama masks and positions, UNet and DeepLabV3
decoders) leave it:

    Range(0, dim, 1)   TVM gives every Range a fresh length `range_len_0`: an attention mask built
                       on it no longer broadcasts against the scores, every shape after it is
                       unknown and the next Reshape(-1) fails ("Reshape expects the input tensor to
                       have known shape")   ->  Sub(CumSum(ConstantOfShape(Shape(x, a, a+1), 1)), 1),
                       whose length TVM knows is dim a of x; Range(s, dim, d) with s >= 0, d > 0
                       integers: a Slice of that; `dim` is traced back through Squeeze, Gather,
                       Slice, Concat, Unsqueeze, Reshape and Cast to a Shape.
    Reshape(x, [.., -1, ..])  of a dynamic x, with the output dim at -1 known (an int): -> that int,
                       so that TVM has nothing to infer from an input whose shape it may have lost.
    Resize(x, scales | sizes) on dynamic spatial dims: TVM computes the size of a constant scale as
                       Cast(2.0 * Cast(h)) (never equal to the skip connection's h * 2 it is
                       concatenated with), cannot read sizes that are not constants, and resizes by
                       out / in where the spec says by the scale (wrong wherever in * scale is no
                       integer, static dims too)  ->  per resized axis a Gather of the source rows
                       (nearest) or two Gathers blended (linear) at indices computed from the
                       positions 0..out-1 with the spec's coordinate transform, in float32 as
                       onnxruntime does. The output length is a dim TVM knows where one exists: the
                       dim a `sizes` element was read from, the dim of a tensor the output is
                       concatenated with (equal for every input the model accepts), in * s for an
                       integer scale s; else floor(in * s) by a Range. Static Resizes TVM gets right
                       stay. Left alone: cubic, antialias, exclude_outside, tf_crop_and_resize,
                       half_pixel_symmetric, keep_aspect_ratio_policy other than stretch. `sizes`
                       computed from values (dynamo's DeepLabV3: Reshape((h - 1) // 16 + 1, [-1]);
                       TVM makes that arithmetic a PrimExpr, and its Reshape then fails with
                       "Reshape expects the input data to be a Tensor") are read from the
                       concatenated tensor; with none to read from, the Resize stays.
    Concat(u, skip) along channels, where a dim off the concatenation axis is derived (no input's
                       dim: pooled, strided, upsampled): TVM computes each input's dims its own way
                       (ConvTranspose(MaxPool(MaxPool(x))) has h // 4 * 2 rows, MaxPool(x) h // 2),
                       cannot prove them equal, and gives the Concat and everything after it an
                       unknown shape; the first Shape of such a tensor is then no shape expression
                       and TVM's Cast of it fails (`relax.astype` given an R.Shape)  ->  every input
                       but the earliest computed one goes through Reshape(input, its own
                       concatenation-axis dim ++ the earliest one's other dims). For every input
                       the model accepts the dims are equal (the Concat needs them so), so the
                       Reshape moves nothing; TVM lowers it to a view.

Only ai.onnx opset 13 and later (Shape with start/end from 15; a Slice of the Shape before). The
pass is in no `-O` pipeline; the TVM backend appends it to the pipeline of its targets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, TypeAlias

import numpy as np

from mlc.ir.core import Graph, Node, Value
from mlc.ir.dtypes import DType
from mlc.ir.tensor import Tensor
from mlc.ir.types import Dim, Shape, TensorType
from mlc.pass_api import Numerics, Pass, PassContext, register_pass
from mlc.passes._patterns import STANDARD, const_array, label

DimOf: TypeAlias = tuple[Value, int]  # dim `axis` of a value, as its Shape reads it at run time
Element: TypeAlias = int | DimOf  # one element of a shape-like int tensor
_INT64_MAX = int(np.iinfo(np.int64).max)
_MIN_OPSET = 13
_RESIZE_MODES = ("nearest", "linear")
_COORDINATES = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric")
_NEAREST = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _shape_of(value: Value | None) -> Shape | None:
    if value is None or not isinstance(value.type, TensorType):
        return None
    return value.type.shape


def _rank(value: Value | None) -> int | None:
    shape = _shape_of(value)
    return None if shape is None else len(shape)


def _shape_bounds(node: Node, rank: int) -> tuple[int, int]:
    """The [start, end) of the dims a Shape node returns (opset 15 start/end, clamped)."""
    start, end = int(node.attr("start", 0)), int(node.attr("end", rank))
    start, end = (start + rank if start < 0 else start), (end + rank if end < 0 else end)
    return min(max(start, 0), rank), min(max(end, 0), rank)


def elements(value: Value | None, depth: int = 0) -> list[Element] | None:
    """Where each element of a shape-like int tensor comes from, flattened: an int constant, or
    dim `axis` of a value (read by a Shape at run time); None when some element is computed."""
    if value is None or depth > 16:
        return None
    array = const_array(value, constant_nodes=True)
    if array is not None:
        if array.dtype.kind in "iu":
            return [int(v) for v in array.reshape(-1)]
        if array.dtype.kind == "f" and np.all(np.isfinite(array)) and np.all(array == np.round(array)):
            return [int(v) for v in array.reshape(-1)]
        return None
    node = value.producer
    if node is None or node.domain not in STANDARD or not node.inputs:
        return None
    op, first = node.op_type, node.inputs[0]
    if op == "Shape":
        rank = _rank(first)
        if rank is None or first is None:
            return None
        start, end = _shape_bounds(node, rank)
        return [(first, axis) for axis in range(start, end)]
    if op in ("Identity", "Squeeze", "Unsqueeze", "Reshape", "Flatten"):  # the flat order stays
        return elements(first, depth + 1)
    if op == "Cast":
        to = DType(int(node.attr("to", 0)))
        return elements(first, depth + 1) if to.numpy is not None and np.dtype(to.numpy).kind in "iuf" else None
    if op == "Concat":
        if _rank(value) != 1:
            return None
        joined: list[Element] = []
        for part in node.inputs:
            found = elements(part, depth + 1)
            if found is None:
                return None
            joined.extend(found)
        return joined
    if op == "Gather":
        data, index = elements(first, depth + 1), const_array(node.inputs[1], constant_nodes=True)
        if data is None or index is None or _rank(first) != 1 or index.dtype.kind not in "iu":
            return None
        picked = [int(i) + len(data) if int(i) < 0 else int(i) for i in index.reshape(-1)]
        return [data[i] for i in picked] if all(0 <= i < len(data) for i in picked) else None
    if op == "Slice":
        data = elements(first, depth + 1)
        bounds = [const_array(node.inputs[i], constant_nodes=True) if i < len(node.inputs) else None
                  for i in range(1, 5)]
        if data is None or _rank(first) != 1 or bounds[0] is None or bounds[1] is None:
            return None
        if bounds[2] is not None and [int(a) for a in bounds[2].reshape(-1)] not in ([0], [-1]):
            return None
        step = int(bounds[3].reshape(-1)[0]) if bounds[3] is not None else 1
        if step == 0:
            return None
        start, end = int(bounds[0].reshape(-1)[0]), int(bounds[1].reshape(-1)[0])
        return data[slice(start, end, step)]  # Python's slicing clamps as ONNX does
    return None


def partial_elements(value: Value | None, depth: int = 0) -> list[Element | None] | None:
    """`elements`, with None for the elements computed from values (dynamo's (h - 1) // 16 + 1
    built from a sym_size): through Concats of shape pieces whose lengths are static."""
    found = elements(value)
    if found is not None or value is None or depth > 16:
        return list(found) if found is not None else None
    node = value.producer
    if node is None or node.domain not in STANDARD or node.op_type != "Concat" or _rank(value) != 1:
        return None
    joined: list[Element | None] = []
    for part in node.inputs:
        inner = partial_elements(part, depth + 1)
        if inner is None:
            shape = _shape_of(part)
            if shape is None or len(shape) > 1 or not all(isinstance(d, int) for d in shape):
                return None
            inner = [None] * (int(shape[0]) if shape else 1)  # type: ignore[arg-type]
        joined.extend(inner)
    return joined


class _Builder:
    """Typed nodes inserted before an anchor, stamped as made by the pass for it."""

    def __init__(self, graph: Graph, anchor: Node, ctx: PassContext, rule: str) -> None:
        self.graph, self.anchor, self.ctx, self.rule = graph, anchor, ctx, rule
        self.opset = graph.opset_version("") or _MIN_OPSET
        self._consts: dict[tuple[str, tuple[int, ...], bytes], Value] = {}
        self._dims: dict[tuple[int, int, int], Value] = {}
        self._lengths: dict[tuple[int, int], Value] = {}

    def op(self, op_type: str, inputs: Sequence[Value | None], dtype: DType, shape: Shape | None,
           **attributes: Any) -> Value:
        out = Value(self.graph.unique_name(op_type.lower()), TensorType(dtype, shape))
        node = Node(op_type, list(inputs), [out], attributes or None)
        self.ctx.created(node, [self.anchor], self.rule)
        self.graph.insert_before(self.anchor, node)
        return out

    def const(self, array: Any, dtype: DType, name: str = "c") -> Value:
        """A constant (one per value within a rewrite)."""
        values = np.asarray(array, dtype=dtype.numpy)
        key = (values.dtype.str, values.shape, values.tobytes())
        if key not in self._consts:
            self._consts[key] = self.graph.make_constant(values, name)
        return self._consts[key]

    def dims(self, value: Value, start: int, end: int) -> Value:
        """Dims [start, end) of `value` as a 1-D int64 tensor TVM reads as a shape."""
        key = (id(value), start, end)
        if key not in self._dims:
            if self.opset >= 15:
                made = self.op("Shape", [value], DType.INT64, (end - start,), start=start, end=end)
            else:
                whole = self.op("Shape", [value], DType.INT64, (_rank(value),))
                made = self.op("Slice", [whole, self.const([start], DType.INT64), self.const([end], DType.INT64)],
                               DType.INT64, (end - start,))
            self._dims[key] = made
        return self._dims[key]

    def length(self, value: Value, axis: int) -> Value:
        """Dim `axis` of `value` as a float32 [1] tensor (a constant when it is static)."""
        dim = (_shape_of(value) or ())[axis]
        if isinstance(dim, int):
            return self.const([dim], DType.FLOAT, "length")
        key = (id(value), axis)
        if key not in self._lengths:
            self._lengths[key] = self.op("Cast", [self.dims(value, axis, axis + 1)], DType.FLOAT, (1,),
                                         to=int(DType.FLOAT))
        return self._lengths[key]

    def shape_tensor(self, items: Sequence[Element]) -> Value:
        """A 1-D int64 tensor of these elements: runs of dims of one value become one Shape."""
        pieces: list[Value] = []
        index = 0
        while index < len(items):
            item = items[index]
            if isinstance(item, int):
                run = index
                while run < len(items) and isinstance(items[run], int):
                    run += 1
                pieces.append(self.const(list(items[index:run]), DType.INT64, "dims"))
                index = run
                continue
            value, axis = item
            run = index + 1
            while run < len(items) and items[run] == (value, axis + run - index):
                run += 1
            pieces.append(self.dims(value, axis, axis + run - index))
            index = run
        if len(pieces) == 1:
            return pieces[0]
        return self.op("Concat", pieces, DType.INT64, (len(items),), axis=0)

    def positions(self, source: DimOf) -> Value:
        """0, 1, ..., n-1 (int64) where n is dim `axis` of `value`: a length TVM knows."""
        value, axis = source
        length = _shape_of(value)[axis]  # type: ignore[index]
        ones = self.op("ConstantOfShape", [self.dims(value, axis, axis + 1)], DType.INT64, (length,),
                       value=Tensor.from_array(np.ones(1, np.int64)))
        counted = self.op("CumSum", [ones, self.const(0, DType.INT64, "axis")], DType.INT64, (length,))
        return self.op("Sub", [counted, self.const(1, DType.INT64, "one")], DType.INT64, (length,))

    def unsqueeze(self, value: Value, axes: list[int], shape: Shape | None) -> Value:
        dtype = value.type.dtype  # type: ignore[union-attr]
        if not axes:
            return value
        return self.op("Unsqueeze", [value, self.const(axes, DType.INT64, "axes")], dtype, shape)


# ===================================================================== Range
def _scalar(value: Value | None) -> float | int | None:
    array = const_array(value, constant_nodes=True)
    if array is None or array.size != 1:
        return None
    item = array.reshape(-1)[0]
    return int(item) if array.dtype.kind in "iu" else float(item)


def _range_plan(node: Node) -> tuple[DimOf, int, int] | str:
    """(the dim `limit` is, start, delta), or why the Range stays."""
    out = node.outputs[0]
    if out is None or not isinstance(out.type, TensorType):
        return "its output type is unknown"
    start, limit, delta = (node.inputs[i] if i < len(node.inputs) else None for i in range(3))
    if const_array(limit, constant_nodes=True) is not None:
        return "its limit is a constant (fold-constants folds it)"
    found = elements(limit)
    if found is None or len(found) != 1 or isinstance(found[0], int):
        return "its limit is not a dim read by a Shape"
    first, step = _scalar(start), _scalar(delta)
    if first is None or step is None:
        return "its start or delta is not a constant"
    integral = out.type.dtype.numpy is not None and np.dtype(out.type.dtype.numpy).kind in "iu"
    if integral and (first < 0 or step <= 0 or first != int(first) or step != int(step)):
        return f"start {first} / delta {step} are not a non-negative start and a positive step"
    if not integral and (first != 0 or step != 1):
        return f"a {out.type.dtype.short_name} Range from {first} by {step} (only 0 by 1 is rewritten)"
    return found[0], int(first), int(step)


def _rewrite_range(graph: Graph, node: Node, ctx: PassContext, plan: tuple[DimOf, int, int]) -> None:
    source, first, step = plan
    out = node.outputs[0]
    assert out is not None and isinstance(out.type, TensorType)
    b = _Builder(graph, node, ctx, "range-over-dim")
    result = b.positions(source)
    if first != 0 or step != 1:
        result = b.op("Slice", [result, b.const([first], DType.INT64), b.const([_INT64_MAX], DType.INT64),
                                b.const([0], DType.INT64), b.const([step], DType.INT64)], DType.INT64, out.type.shape)
    if out.type.dtype != DType.INT64:
        result = b.op("Cast", [result], out.type.dtype, out.type.shape, to=int(out.type.dtype))
    out.replace_all_uses_with(result, replace_graph_outputs=True)
    graph.remove(node)


# ===================================================================== Reshape
def _reshape_plan(node: Node) -> list[Element] | None:
    """The shape with -1 (and 0 where allowzero is off) replaced by the known output dims; None
    when there is nothing to replace or some -1 stays unknown."""
    shape_input = node.inputs[1] if len(node.inputs) > 1 else None
    out_shape = _shape_of(node.outputs[0])
    in_shape = _shape_of(node.inputs[0])
    if in_shape is not None and all(isinstance(d, int) for d in in_shape):
        return None  # TVM infers -1 from a static input itself
    found = elements(shape_input)
    if found is None or out_shape is None or len(found) != len(out_shape) or -1 not in found:
        return None
    allowzero = int(node.attr("allowzero", 0))
    fixed: list[Element] = []
    for item, dim in zip(found, out_shape, strict=True):
        if item == -1 or (item == 0 and not allowzero):
            if not isinstance(dim, int) or dim < 0 or (item == -1 and dim == 0):
                if item == -1:
                    return None
                fixed.append(item)
                continue
            fixed.append(dim)
        else:
            fixed.append(item)
    return fixed


def _rewrite_reshape(graph: Graph, node: Node, ctx: PassContext, plan: list[Element]) -> None:
    b = _Builder(graph, node, ctx, "reshape-known-dim")
    node.set_input(1, b.shape_tensor(plan))


# ===================================================================== Resize
class _Axis:
    """How one resized axis gets its output positions: a constant length, the length of a dim
    read at run time, the input's length times an integer, or (`computed`) floor(in * scale)
    computed at run time (a length TVM names anew: fine unless it must meet another dim)."""

    def __init__(self, axis: int, *, length: int | None = None, dim: DimOf | None = None, times: int | None = None,
                 scale: float | None = None, computed: bool = False) -> None:
        self.axis, self.length, self.dim, self.times, self.scale = axis, length, dim, times, scale
        self.computed = computed


def _resize_plan(node: Node, opset: int) -> list[_Axis] | str | None:
    """The axes to resample, or why the Resize stays (a str), or None when TVM reads it as it is."""
    x = node.inputs[0] if node.inputs else None
    shape = _shape_of(x)
    if x is None or shape is None:
        return "its input's rank is unknown"
    rank = len(shape)
    if opset < 11:
        scales_in, sizes_in = (node.inputs[1] if len(node.inputs) > 1 else None), None
    else:
        scales_in = node.inputs[2] if len(node.inputs) > 2 else None
        sizes_in = node.inputs[3] if len(node.inputs) > 3 else None
    scales = const_array(scales_in, constant_nodes=True)
    if scales is not None and scales.size == 0:
        scales, scales_in = None, None
    sizes = partial_elements(sizes_in) if sizes_in is not None else None
    mode = _text(node.attr("mode", "nearest"))
    axes = [int(a) + rank if int(a) < 0 else int(a) for a in (node.attr("axes") or range(rank))]
    static_input = all(isinstance(d, int) for d in shape)
    if static_input and (scales is not None or (sizes is not None and all(isinstance(s, int) for s in sizes))):
        if scales is not None:
            shrinks = bool(np.any(scales < 1))
        else:
            assert sizes is not None
            shrinks = any(isinstance(s, int) and s < int(shape[a] or 0) for s, a in zip(sizes, axes, strict=False))
        # TVM computes constant sizes of a static input itself, except with `axes` (it misreads
        # them) and for linear downsampling (wrong numbers: the official test_resize_downsample_*)
        # ... and for a scale s where in * s is no integer: TVM resizes by out / in, not by s
        fractional = scales is not None and any(
            float(np.float32(shape[a]) * np.float32(v)) != np.floor(np.float32(shape[a]) * np.float32(v))
            for a, v in zip(axes, scales.reshape(-1), strict=False))
        if node.attr("axes") is None and not (mode == "linear" and shrinks) and not fractional:
            return None
    coordinates = _text(node.attr("coordinate_transformation_mode", "half_pixel"))
    nearest = _text(node.attr("nearest_mode", "round_prefer_floor"))
    if mode not in _RESIZE_MODES:
        return f"mode {mode!r} is not rewritten (nearest and linear are)"
    if coordinates not in _COORDINATES:
        return f"coordinate_transformation_mode {coordinates!r} is not rewritten"
    if mode == "nearest" and nearest not in _NEAREST:
        return f"nearest_mode {nearest!r} is not rewritten"
    if int(node.attr("antialias", 0)) or int(node.attr("exclude_outside", 0)):
        return "antialias / exclude_outside are not rewritten"
    if _text(node.attr("keep_aspect_ratio_policy", "stretch")) != "stretch":
        return "keep_aspect_ratio_policy is not 'stretch'"
    if mode == "linear" and not (isinstance(x.type, TensorType) and x.type.dtype.is_float):
        return "linear resize of a non-float tensor"
    if scales_in is None and sizes_in is None:
        return "it has neither scales nor sizes"
    if scales is None and sizes is None:
        return "its scales / sizes are computed at run time from values, not read from shapes"
    count = len(scales.reshape(-1)) if scales is not None else len(sizes or [])
    if count != len(axes):
        return f"{count} scales/sizes for {len(axes)} axes"
    plan: list[_Axis] = []
    for j, axis in enumerate(axes):
        in_dim = shape[axis]
        if scales is not None:
            factor = float(scales.reshape(-1)[j])
            if factor == 1.0:
                continue
            if isinstance(in_dim, int):
                plan.append(_Axis(axis, length=int(np.floor(in_dim * np.float32(factor))), scale=factor))
            elif factor > 1 and factor == int(factor):
                plan.append(_Axis(axis, times=int(factor), scale=factor))
            elif factor > 0:
                plan.append(_Axis(axis, computed=True, scale=factor))
            else:
                return f"its scale {factor} for dim {axis} is not positive"
            continue
        assert sizes is not None
        item = sizes[j]
        if item is None:  # computed from values: the length of a tensor it must equal
            partner = _concat_partner(node, axis)
            if partner is None:
                return (f"its size for dim {axis} is computed at run time from values, not read from a shape, "
                        "and it is concatenated with no tensor of that length")
            plan.append(_Axis(axis, dim=partner))
        elif isinstance(item, int):
            if item == in_dim:
                continue
            plan.append(_Axis(axis, length=item))
        elif item == (x, axis):
            continue
        else:
            plan.append(_Axis(axis, dim=item))
    for entry in plan:
        if entry.length is None:  # a length TVM may not prove equal to the tensor it meets
            partner = _concat_partner(node, entry.axis)
            if partner is not None:
                entry.dim, entry.times = partner, None
    return plan


def _depends_on(value: Value, node: Node, limit: int = 10000) -> bool:
    """Whether `value` is computed (transitively) from an output of `node`."""
    stack, seen = [value], set()
    while stack and limit:
        limit -= 1
        current = stack.pop()
        producer = current.producer
        if producer is None or id(producer) in seen:
            continue
        if producer is node:
            return True
        seen.add(id(producer))
        stack.extend(v for v in producer.inputs if v is not None)
    return bool(stack)  # out of budget: assume it does


def _concat_partner(node: Node, axis: int) -> DimOf | None:
    """Dim `axis` of a tensor the Resize's output is concatenated with (along another axis): a
    Concat needs them equal, so for every input the model runs on it is the output's length, and
    TVM then sees the same dim on both sides (it cannot prove (h // 4) * 2 == h // 2)."""
    out = node.outputs[0]
    graph = node.graph
    order = {id(n): i for i, n in enumerate(graph)} if graph is not None else {}
    for consumer in (out.consumers if out is not None else []):
        if consumer.op_type != "Concat" or consumer.domain not in STANDARD:
            continue
        rank = _rank(out)
        concat_axis = int(consumer.attr("axis", 0))
        if rank is None or (concat_axis + rank if concat_axis < 0 else concat_axis) == axis:
            continue
        for other in consumer.inputs:
            if other is None or other is out or _rank(other) != rank or _depends_on(other, node):
                continue
            producer = other.producer
            if producer is not None and order.get(id(producer), len(order)) > order.get(id(node), -1):
                continue  # computed after the Resize: its Shape cannot come first
            return other, axis
    return None


class _Resampler:
    """Builds one axis of a Resize: indices (and weights) from output positions, then Gather."""

    def __init__(self, b: _Builder, node: Node) -> None:
        self.b, self.node = b, node
        self.mode = _text(node.attr("mode", "nearest"))
        self.coordinates = _text(node.attr("coordinate_transformation_mode", "half_pixel"))
        self.nearest = _text(node.attr("nearest_mode", "round_prefer_floor"))
        self.out_shape = _shape_of(node.outputs[0])
        self.axis = _Axis(0)
        self.x: Value | None = None
        self.in_len: Value | None = None
        self.computed: dict[tuple[str, int, int], Value] = {}

    def f32(self, value: Any) -> Value:
        return self.b.const(value, DType.FLOAT, "f")

    def run(self, x: Value, plan: list[_Axis]) -> Value:
        shape = list(_shape_of(x) or ())
        for axis in plan:
            x = self.resample(x, axis, shape)
        return x

    def resample(self, x: Value, axis: _Axis, shape: list[Dim]) -> Value:
        b, k, f = self.b, axis.axis, DType.FLOAT
        out_dim: Dim = self.out_shape[k] if self.out_shape is not None and k < len(self.out_shape) else None
        if axis.length is not None:
            out_dim = axis.length
            positions = b.const(np.arange(axis.length), DType.INT64, "positions")
        elif axis.dim is not None:
            positions = b.positions(axis.dim)
        elif axis.computed:
            count = b.op("Cast", [self.out_len_of(x, axis)], DType.INT64, (1,), to=int(DType.INT64))
            scalar = b.op("Squeeze", [count, b.const([0], DType.INT64, "axes")], DType.INT64, ())
            positions = b.op("Range", [b.const(0, DType.INT64, "zero"), scalar, b.const(1, DType.INT64, "one")],
                             DType.INT64, (out_dim,))
        else:
            assert axis.times is not None
            inner = b.positions((x, k))
            scaled = b.op("Mul", [b.unsqueeze(inner, [1], (shape[k], 1)), b.const(axis.times, DType.INT64)],
                          DType.INT64, (shape[k], 1))
            grid = b.op("Add", [scaled, b.const(np.arange(axis.times), DType.INT64, "offsets")], DType.INT64,
                        (shape[k], axis.times))
            positions = b.op("Reshape", [grid, b.const([-1], DType.INT64, "flat")], DType.INT64, (out_dim,))
        length: Shape = (out_dim,)
        self.axis, self.x, self.in_len = axis, x, b.length(x, k)
        pos = b.op("Cast", [positions], f, length, to=int(f))
        original = self.original(pos, length)
        last = b.op("Sub", [self.in_len, self.f32(1.0)], f, (1,))
        rank = len(shape)
        out_shape = (*shape[:k], out_dim, *shape[k + 1:])
        dtype = x.type.dtype  # type: ignore[union-attr]
        if self.mode == "nearest":
            rounded = self.round(original, length)
            clamped = b.op("Min", [b.op("Max", [rounded, self.f32(0.0)], f, length), last], f, length)
            index = b.op("Cast", [clamped], DType.INT64, length, to=int(DType.INT64))
            result = b.op("Gather", [x, index], dtype, out_shape, axis=k)
        else:
            clamped = b.op("Min", [b.op("Max", [original, self.f32(0.0)], f, length), last], f, length)
            low = b.op("Floor", [clamped], f, length)
            high = b.op("Min", [b.op("Add", [low, self.f32(1.0)], f, length), last], f, length)
            weight = b.op("Sub", [clamped, low], f, length)
            keep = b.op("Sub", [self.f32(1.0), weight], f, length)
            trailing = list(range(1, rank - k))
            spread: Shape = (out_dim, *([1] * len(trailing)))
            weight = b.unsqueeze(weight, trailing, spread)
            keep = b.unsqueeze(keep, trailing, spread)
            if dtype != f:
                weight = b.op("Cast", [weight], dtype, spread, to=int(dtype))
                keep = b.op("Cast", [keep], dtype, spread, to=int(dtype))
            rows = []
            for source, share in ((low, keep), (high, weight)):
                index = b.op("Cast", [source], DType.INT64, length, to=int(DType.INT64))
                gathered = b.op("Gather", [x, index], dtype, out_shape, axis=k)
                rows.append(b.op("Mul", [gathered, share], dtype, out_shape))
            result = b.op("Add", rows, dtype, out_shape)
        shape[k] = out_dim
        return result

    def out_len(self) -> Value:
        """The output length as float32 [1]: the rounded one, as onnxruntime uses (onnx.reference
        takes in * scale for scales)."""
        b, axis = self.b, self.axis
        if axis.length is not None:
            return self.f32([axis.length])
        if axis.dim is not None:
            return b.length(*axis.dim)
        if axis.computed:
            assert self.x is not None
            return self.out_len_of(self.x, axis)
        assert axis.times is not None
        return b.op("Mul", [self.in_len, self.f32(float(axis.times))], DType.FLOAT, (1,))

    def out_len_of(self, x: Value, axis: _Axis) -> Value:
        """floor(in * scale) in float32, as onnxruntime sizes the output (one per axis)."""
        key = ("computed", id(x), axis.axis)
        if key not in self.computed:
            in_len = self.b.length(x, axis.axis)
            scaled = self.b.op("Mul", [in_len, self.f32(np.float32(axis.scale))], DType.FLOAT, (1,))
            self.computed[key] = self.b.op("Floor", [scaled], DType.FLOAT, (1,))
        return self.computed[key]

    def scale(self) -> Value:
        if self.axis.scale is not None:
            return self.f32(np.float32(self.axis.scale))
        return self.b.op("Div", [self.out_len(), self.in_len], DType.FLOAT, (1,))

    def original(self, pos: Value, length: Shape) -> Value:
        """The source coordinate of each output position (onnxruntime's float32 formulas)."""
        b, f, mode = self.b, DType.FLOAT, self.coordinates
        if mode == "asymmetric":
            return b.op("Div", [pos, self.scale()], f, length)
        if mode == "align_corners":
            out_len = self.out_len()
            spread = b.op("Mul", [pos, b.op("Sub", [self.in_len, self.f32(1.0)], f, (1,))], f, length)
            moved = b.op("Div", [spread, b.op("Sub", [out_len, self.f32(1.0)], f, (1,))], f, length)
            single = b.op("Greater", [out_len, self.f32(1.0)], DType.BOOL, (1,))
            return b.op("Where", [single, moved, self.f32(0.0)], f, length)
        centred = b.op("Sub", [b.op("Div", [b.op("Add", [pos, self.f32(0.5)], f, length), self.scale()], f, length),
                               self.f32(0.5)], f, length)
        if mode == "half_pixel":
            return centred
        single = b.op("Greater", [self.out_len(), self.f32(1.0)], DType.BOOL, (1,))  # pytorch_half_pixel
        return b.op("Where", [single, centred, self.f32(0.0)], f, length)

    def round(self, original: Value, length: Shape) -> Value:
        b, f = self.b, DType.FLOAT
        if self.nearest == "floor":
            return b.op("Floor", [original], f, length)
        if self.nearest == "ceil":
            return b.op("Ceil", [original], f, length)
        if self.nearest == "round_prefer_ceil":
            return b.op("Floor", [b.op("Add", [original, self.f32(0.5)], f, length)], f, length)
        return b.op("Ceil", [b.op("Sub", [original, self.f32(0.5)], f, length)], f, length)


def _rewrite_resize(graph: Graph, node: Node, ctx: PassContext, plan: list[_Axis]) -> None:
    x, out = node.inputs[0], node.outputs[0]
    assert x is not None and out is not None
    b = _Builder(graph, node, ctx, "resize-gather")
    result = _Resampler(b, node).run(x, plan) if plan else x
    if result is x:
        result = b.op("Identity", [x], out.type.dtype, out.type.shape)  # type: ignore[union-attr]
    out.replace_all_uses_with(result, replace_graph_outputs=True)
    graph.remove(node)


# ===================================================================== Concat
def _input_dim_names(graph: Graph) -> set[str]:
    """The dim names of the (root) graph's inputs: TVM binds each to one variable."""
    root = graph.root
    return {d for v in root.inputs for d in (_shape_of(v) or ()) if isinstance(d, str)}


def _concat_plan(node: Node, names: set[str]) -> tuple[Value, list[int]] | None:
    """(the input whose dims the others take, the positions of those that get a Reshape), or
    None: every input has a static rank, some dim off the concatenation axis is derived (a
    symbolic dim that is no input's dim, such as pooled-then-upsampled rows)."""
    out = node.outputs[0]
    rank = _rank(out)
    if rank is None or rank < 2 or len(node.inputs) < 2:
        return None
    axis = int(node.attr("axis", 0))
    axis = axis + rank if axis < 0 else axis
    shapes = [_shape_of(v) for v in node.inputs]
    if any(v is None or s is None or len(s) != rank for v, s in zip(node.inputs, shapes, strict=True)):
        return None

    def derived(shape: Shape) -> bool:
        return any(isinstance(d, str) and d not in names for i, d in enumerate(shape) if i != axis)

    if not any(derived(s) for s in shapes if s is not None):
        return None
    graph = node.graph
    order = {id(n): i for i, n in enumerate(graph)} if graph is not None else {}

    def made_at(value: Value | None) -> int:
        producer = value.producer if value is not None else None
        return -1 if producer is None else order.get(id(producer), len(order))

    anchor = min((v for v in node.inputs if v is not None), key=made_at)
    targets = [i for i, (v, s) in enumerate(zip(node.inputs, shapes, strict=True))
               if v is not anchor and s is not None and derived(s)]
    return (anchor, targets) if targets else None


def _rewrite_concat(graph: Graph, node: Node, ctx: PassContext, plan: tuple[Value, list[int]]) -> None:
    """Each target input -> Reshape(input, its own concatenation-axis dim and the anchor's other
    dims), inserted just before the Concat."""
    anchor, targets = plan
    b = _Builder(graph, node, ctx, "concat-same-dims")
    anchor_shape = _shape_of(anchor)
    assert anchor_shape is not None
    rank = len(anchor_shape)
    axis = int(node.attr("axis", 0))
    axis = axis + rank if axis < 0 else axis
    for index in targets:
        value = node.inputs[index]
        shape = _shape_of(value)
        assert value is not None and shape is not None
        items: list[Element] = [d if isinstance(d, int) else (anchor, i) for i, d in enumerate(anchor_shape)]
        items[axis] = shape[axis] if isinstance(shape[axis], int) else (value, axis)  # type: ignore[assignment]
        typed = (*anchor_shape[:axis], shape[axis], *anchor_shape[axis + 1:])
        dtype = value.type.dtype  # type: ignore[union-attr]
        node.set_input(index, b.op("Reshape", [value, b.shape_tensor(items)], dtype, typed))


# ===================================================================== the pass
@register_pass
class LegalizeTvmShapes(Pass):
    name = "legalize-tvm-shapes"
    description = ("Make dynamic shapes TVM's frontend can follow: Range over a dim, Reshape -1 with a known "
                   "dim, Resize on dynamic dims as Gathers, Concat inputs on the same dims")
    numerics = Numerics.TOLERANCE
    statistics = ("range", "reshape", "resize", "concat")

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        opset = graph.opset_version("") or 0
        if opset < _MIN_OPSET:
            ctx.remark(f"ai.onnx opset {opset}: the rewrites need opset {_MIN_OPSET} or later")
            return False
        changed = False
        names = _input_dim_names(graph)
        for sub in list(graph.all_graphs()):
            for node in sub:
                rule = _RULES.get(node.op_type) if node.domain in STANDARD else None
                if rule is None:
                    continue
                plan = rule.plan(node, names, opset)
                if plan is None:
                    continue
                if isinstance(plan, str):
                    ctx.remark(f"{label(node)}: kept, {plan}")
                    continue
                if not ctx.rewrite(rule.name):
                    return changed
                rule.rewrite(sub, node, ctx, plan)
                ctx.stats[rule.statistic] += 1
                changed = True
        return changed


class _Rule(NamedTuple):
    """One rewrite: its plan (None: not applicable; a string: why the node stays; else what the
    rewrite needs), its name for `ctx.rewrite`, the rewrite and the statistic it counts in."""

    plan: Callable[[Node, set[str], int], Any]
    name: str
    rewrite: Callable[[Graph, Node, PassContext, Any], None]
    statistic: str


_RULES = {
    "Concat": _Rule(lambda node, names, _: _concat_plan(node, names), "concat-same-dims", _rewrite_concat, "concat"),
    "Range": _Rule(lambda node, _, __: _range_plan(node), "range-over-dim", _rewrite_range, "range"),
    "Reshape": _Rule(lambda node, _, __: _reshape_plan(node), "reshape-known-dim", _rewrite_reshape, "reshape"),
    "Resize": _Rule(lambda node, _, opset: _resize_plan(node, opset), "resize-gather", _rewrite_resize, "resize"),
}
