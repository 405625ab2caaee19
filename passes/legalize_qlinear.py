"""Rewrite ONNX's quantized-linear and integer ops into ops Apache TVM's ONNX frontend converts.

TVM 0.27 has no converter for QLinearMatMul, QLinearConv or ConvInteger, so a quantized model
cannot be compiled at all (it has one for MatMulInteger; rewriting that too into the same int32
arithmetic keeps the four ops uniform and needs no frontend special case). The decompositions:

    QLinearMatMul(a, sa, za, b, sb, zb, sy, zy)
        -> QuantizeLinear(MatMul(DequantizeLinear(a, sa, za), DequantizeLinear(b, sb, zb)), sy, zy)
    QLinearConv(x, sx, zx, w, sw, zw, sy, zy[, B])
        -> QuantizeLinear(Conv(DQ(x, sx, zx), DQ(w, sw, zw, axis=0), DQ(B, sx*sw, axis=0)), sy, zy)
    MatMulInteger(A, B, za, zb)
        -> MatMul(Cast<i32>(A) - za, Cast<i32>(B) - zb)                         int32 all the way
    ConvInteger(x, w, zx, zw)
        -> Cast<i32>(Conv(Cast<f32>(x) - zx, Cast<f32>(w) - zw))                  when float32 is exact

QLinear*: the dequantize -> float op -> quantize form is the standard one (what QDQ models hold and
what TVM lowers), but it is not bit-identical to a kernel that accumulates in int32 and requantizes
once with the multiplier sx*sw/sy: float32 accumulation and the product of the scales round
differently, so in rare half-way cases the output differs by one unit of the output quantum (the
pass is `Numerics.TOLERANCE`; its tests compare quantized outputs within ±1, while mlc's generic
numeric check compares integer outputs exactly and would flag such a case). QuantizeLinear keeps the
spec's rounding (half to even) and saturation. Scales of type float16/bfloat16 (QLinearMatMul-21)
are cast to float32 first, so the arithmetic between DQ and Q is float32 in every case (TVM's
DequantizeLinear always produces float32). Scales and zero points with one element become scalars
(TVM's quantize ops take a scalar or a 1-D tensor as long as the quantized axis, nothing else);
a 1-D scale is per row of `a` / per column of `b` / per row of `y` for QLinearMatMul and per output
channel of `w` for QLinearConv, as the spec says; an N-D scale with one non-1 dim at that axis
([1, N] for b, [M, 1] for a) is reshaped to 1-D. Per-axis (de)quantization needs the `axis`
attribute of QuantizeLinear/DequantizeLinear, which exists from opset 13: a model of an older
opset that needs it keeps the op. A missing y_zero_point (the spec requires it) becomes a zero of
the output's type, or of the input's when the output is untyped, as onnx's reference does.

MatMulInteger is computed in int32 exactly as the spec says (Sub of the zero points, MatMul in
int32, wrapping on overflow like the op); a 1-D `a_zero_point` is per row, so it is reshaped to
[M, 1]. Bit-exact.

ConvInteger: ONNX Conv has no integer types (onnxruntime implements it for float32 only; no
float64 kernel either), so the convolution runs in float32, which is exact as long as every
partial sum is an integer of magnitude at most 2^24: then every product and every addition is
exact whatever the summation order or FMA use of the kernel (a Winograd/FFT convolution would not
be; onnxruntime's CPU kernel and TVM's default lowering sum directly). The pass bounds the sums:
|x - zx| is bounded by the input type and zero point, and with a constant weight the bound is
exact per output channel (max over channels of sum |w - zw|, times the largest |x - zx|);
otherwise it is (C/group · kernel size) · max|x - zx| · max|w - zw|. When the bound is too large the
operands are split into base-16 digits (w - zw = 16·w_hi + w_lo, then also x - zx = 16·x_hi + x_lo),
each digit convolution is exact in float32, and the partial results are cast to int32 and combined
as Σ 16^k · conv_k in int32 (2 or 4 convolutions). A layer whose bound stays above 2^24 even then
(more than ~65 000 products per output) keeps the op.

Left alone (with a remark `NAME: kept, REASON`): element types other than int8/uint8 (float8
QLinearMatMul-21), scales that are not float32/float16/bfloat16, scales or zero points of unknown
shape or of a shape that is neither one element nor along the op's axis, a one-element scale or zero
point paired with a per-axis one that is not a constant (it would need broadcasting), per-axis
quantization before opset 13, a per-row MatMulInteger a_zero_point that is not a constant while A's
rank is unknown, ConvInteger zero points that are neither scalars nor one per output channel, a
ConvInteger weight of unknown shape or whose exact float32 bound is too large even with digits,
missing required inputs and an unknown opset.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlc.ir.core import Graph, Node, Value
from mlc.ir.dtypes import DType
from mlc.ir.types import Shape, TensorType
from mlc.pass_api import Numerics, Pass, PassContext, register_pass
from mlc.passes._patterns import const_array

QLINEAR_OPS = ("QLinearMatMul", "QLinearConv", "MatMulInteger", "ConvInteger")
_RANGES: dict[DType, tuple[int, int]] = {DType.UINT8: (0, 255), DType.INT8: (-128, 127)}
_SCALE_TYPES = (DType.FLOAT, DType.FLOAT16, DType.BFLOAT16)
_F32_EXACT = 2**24  # every integer of at most this magnitude is a float32
_DIGIT = 16  # base of the digit split of ConvInteger operands
_AXIS_OPSET = 13  # QuantizeLinear / DequantizeLinear get `axis` (per-axis quantization)


class _Kept(Exception):
    """The node stays; the message says why (it becomes a remark)."""


# ===================================================================== reading the node
def _const_array(value: Value | None) -> np.ndarray | None:
    """The values of a constant input (initializer or Constant node), or None."""
    return const_array(value, constant_nodes=True)


def _dtype(value: Value | None) -> DType | None:
    return value.type.dtype if value is not None and isinstance(value.type, TensorType) else None


def _shape(value: Value | None) -> Shape | None:
    return value.type.shape if value is not None and isinstance(value.type, TensorType) else None


def _rank(value: Value | None) -> int | None:
    shape = _shape(value)
    return None if shape is None else len(shape)


def _static_shape(value: Value, array: np.ndarray | None) -> tuple[int, ...] | None:
    if array is not None:
        return tuple(int(d) for d in array.shape)
    shape = _shape(value)
    if shape is None or not all(isinstance(d, int) for d in shape):
        return None
    return tuple(int(d) for d in shape)  # type: ignore[arg-type]


def _input(node: Node, index: int) -> Value | None:
    return node.inputs[index] if index < len(node.inputs) else None


def _required(node: Node, *indices: int) -> list[Value]:
    found = [_input(node, i) for i in indices]
    missing = [str(i) for i, v in zip(indices, found, strict=True) if v is None]
    if missing:
        raise _Kept(f"input {', '.join(missing)} is missing")
    return [v for v in found if v is not None]


def _check_int8(value: Value | None, what: str) -> DType | None:
    dtype = _dtype(value)
    if dtype is not None and dtype not in _RANGES:
        raise _Kept(f"{what} %{value.name if value else '?'} is {dtype.short_name}, not int8/uint8")
    return dtype


# ===================================================================== quantization parameters
@dataclass(frozen=True)
class _Param:
    """A scale or zero point as it will be fed to QuantizeLinear/DequantizeLinear."""

    value: Value | None  # None: omitted (a zero of `dtype` where one must be made)
    array: np.ndarray | None  # its values when constant
    dtype: DType  # the type it must have (float32 for scales)
    length: int | None  # None: one element (per tensor); else elements along the axis


@dataclass(frozen=True)
class _Quant:
    """How one operand is (de)quantized: scale, zero point and the axis of per-axis parameters."""

    scale: _Param
    zero: _Param
    axis: int | None  # None: per tensor


def _layout(value: Value, array: np.ndarray | None, role_axis: int | None, data_rank: int | None,
            what: str) -> int | None:
    """None when the parameter has one element, else its length along `role_axis`."""
    shape = _static_shape(value, array)
    if shape is None:
        raise _Kept(f"{what} %{value.name} has no static shape")
    if int(np.prod(shape, dtype=np.int64)) == 1:
        return None
    if role_axis is None or data_rank is None:
        raise _Kept(f"{what} %{value.name} has shape {list(shape)}: only one element is supported here")
    if len(shape) == 1:
        return shape[0]
    wide = [i for i, d in enumerate(shape) if d != 1]
    if len(wide) == 1 and len(shape) <= data_rank and data_rank - len(shape) + wide[0] == role_axis:
        return shape[wide[0]]
    raise _Kept(f"{what} %{value.name} has shape {list(shape)}, neither one element nor along axis {role_axis}")


def _quant(data: Value | None, scale: Value, zero: Value | None, role_axis: int | None, what: str,
           zero_dtype: DType | None = None) -> _Quant:
    """Check a (scale, zero point) pair of one operand; `role_axis` is where a 1-D scale runs."""
    scale_dtype = _dtype(scale)
    if scale_dtype is not None and scale_dtype not in _SCALE_TYPES:
        raise _Kept(f"{what} scale %{scale.name} is {scale_dtype.short_name}, not a float type")
    rank = _rank(data)
    scale_array = _const_array(scale)
    zero_array = _const_array(zero)
    scale_length = _layout(scale, scale_array, role_axis, rank, f"{what} scale")
    zero_length = None if zero is None else _layout(zero, zero_array, role_axis, rank, f"{what} zero point")
    if zero is not None:
        zero_dtype = _dtype(zero) or _dtype(data) or zero_dtype
    if zero_dtype is None:
        raise _Kept(f"the type of the {what} zero point is unknown")
    if zero_dtype not in _RANGES:
        raise _Kept(f"{what} zero point is {zero_dtype.short_name}, not int8/uint8")
    length = scale_length if scale_length is not None else zero_length
    if scale_length is not None and zero_length is not None and scale_length != zero_length:
        raise _Kept(f"{what} scale has {scale_length} elements, its zero point {zero_length}")
    if length is not None:
        for value, array, own in ((scale, scale_array, scale_length), (zero, zero_array, zero_length)):
            if value is not None and own is None and array is None:
                raise _Kept(f"{what} %{value.name} has one element, the other parameter {length}, and it is "
                            "not a constant to broadcast")
        assert role_axis is not None and rank is not None
        dim = _shape(data)[role_axis]  # type: ignore[index]
        if isinstance(dim, int) and dim != length:
            raise _Kept(f"{what} has {dim} elements along axis {role_axis}, its scale {length}")
    return _Quant(_Param(scale, scale_array, DType.FLOAT, length), _Param(zero, zero_array, zero_dtype, length),
                  None if length is None else role_axis)


def _check_opset(graph: Graph, quants: Sequence[_Quant]) -> int:
    opset = graph.opset_version("")
    if opset is None:
        raise _Kept("the model's ai.onnx opset is unknown")
    if opset < 10:
        raise _Kept(f"ai.onnx opset {opset} has no QuantizeLinear/DequantizeLinear")
    if opset < _AXIS_OPSET and any(q.axis is not None for q in quants):
        raise _Kept(f"per-axis quantization needs the axis attribute of DequantizeLinear (opset {_AXIS_OPSET}), "
                    f"the model imports ai.onnx opset {opset}")
    return opset


# ===================================================================== building
class _Builder:
    """Creates typed nodes before the node they replace, stamped with its provenance."""

    def __init__(self, graph: Graph, anchor: Node, ctx: PassContext, rule: str) -> None:
        self.graph, self.anchor, self.ctx, self.rule = graph, anchor, ctx, rule
        self.hint = (anchor.name or anchor.op_type.lower()).replace("/", "_")
        self._params: dict[int, Value | None] = {}  # id(_Param) -> its value, made once per rewrite
        self._small: dict[tuple[str, tuple[int, ...], bytes], Value] = {}

    def op(self, op_type: str, inputs: Sequence[Value | None], dtype: DType, shape: Shape | None,
           attributes: dict[str, Any] | None = None) -> Value:
        out = Value(self.graph.unique_name(f"{self.hint}_{op_type.lower()}"), TensorType(dtype, shape))
        node = Node(op_type, list(inputs), [out], attributes or None)
        self.ctx.created(node, [self.anchor], self.rule)
        self.graph.insert_before(self.anchor, node)
        return out

    def const(self, array: np.ndarray, hint: str) -> Value:
        """A new initializer (small ones shared within the rewrite)."""
        array = np.array(array, order="C")  # a copy that keeps 0-d arrays 0-d
        key = (array.dtype.str, array.shape, array.tobytes()) if array.size <= 16 else None
        if key is not None and key in self._small:
            return self._small[key]
        made = self.graph.make_constant(array, f"{self.hint}_{hint}")
        if key is not None:
            self._small[key] = made
        return made

    def cast(self, value: Value, dtype: DType) -> Value:
        if _dtype(value) == dtype:
            return value
        return self.op("Cast", [value], dtype, _shape(value), {"to": int(dtype)})

    def reshape(self, value: Value, shape: tuple[int, ...], dtype: DType) -> Value:
        if _shape(value) == shape:
            return value
        target = self.const(np.array(shape, dtype=np.int64), "shape")
        return self.op("Reshape", [value, target], dtype, shape)

    def param(self, param: _Param) -> Value | None:
        """The parameter as a scalar or 1-D tensor of its type (constants folded, others reshaped/cast);
        None for an omitted zero point that DequantizeLinear defaults correctly."""
        if id(param) not in self._params:
            self._params[id(param)] = self._param(param)
        return self._params[id(param)]

    def _param(self, param: _Param) -> Value | None:
        shape: tuple[int, ...] = () if param.length is None else (param.length,)
        if param.value is None:
            return None if param.length is None else self.const(np.zeros(shape, param.dtype.numpy), "zero")
        if param.array is not None:
            array = np.broadcast_to(param.array.reshape(-1) if param.array.size > 1 else param.array.reshape(()),
                                    shape).astype(param.dtype.numpy)
            if param.value.is_constant and _shape(param.value) == shape and _dtype(param.value) == param.dtype:
                return param.value
            return self.const(array, "scale" if param.dtype.is_float else "zero_point")
        value = self.cast(param.value, param.dtype)
        return self.reshape(value, shape, param.dtype)


def _dequantize(b: _Builder, data: Value, quant: _Quant) -> Value:
    scale, zero = b.param(quant.scale), b.param(quant.zero)
    assert scale is not None
    inputs = [data, scale] + ([zero] if zero is not None else [])
    attributes = {"axis": quant.axis} if quant.axis is not None else None
    return b.op("DequantizeLinear", inputs, DType.FLOAT, _shape(data), attributes)


def _quantize(b: _Builder, data: Value, quant: _Quant) -> Value:
    scale, zero = b.param(quant.scale), b.param(quant.zero)
    assert scale is not None
    if zero is None:  # the output type is the zero point's: always give one
        zero = b.const(np.zeros((), quant.zero.dtype.numpy), "zero")
    attributes = {"axis": quant.axis} if quant.axis is not None else None
    return b.op("QuantizeLinear", [data, scale, zero], quant.zero.dtype, _shape(data), attributes)


# ===================================================================== QLinearMatMul
@dataclass(frozen=True)
class _MatMulPlan:
    a: Value
    b: Value
    qa: _Quant
    qb: _Quant
    qy: _Quant


def _plan_qlinear_matmul(node: Node, graph: Graph) -> _MatMulPlan:
    a, a_scale, b, b_scale, y_scale = _required(node, 0, 1, 3, 4, 6)
    y = node.outputs[0]
    assert y is not None
    a_type, b_type = _check_int8(a, "a"), _check_int8(b, "b")
    ra, rb = _rank(a), _rank(b)
    ry = _rank(y) if _shape(y) is not None else (max(ra, rb) if ra is not None and rb is not None else None)
    qa = _quant(a, a_scale, _input(node, 2), ra - 2 if ra is not None and ra >= 2 else None, "a", a_type)
    qb = _quant(b, b_scale, _input(node, 5), rb - 1 if rb is not None and rb >= 2 else None, "b", b_type)
    y_dtype = _dtype(y) or a_type
    y_proxy = y if _shape(y) is not None else None
    qy = _quant(y_proxy, y_scale, _input(node, 7), ry - 2 if ry is not None and ry >= 2 else None, "y", y_dtype)
    if qy.zero.dtype not in _RANGES:
        raise _Kept(f"y zero point is {qy.zero.dtype.short_name}, not int8/uint8")
    _check_int8(y, "y")
    _check_opset(graph, (qa, qb, qy))
    return _MatMulPlan(a, b, qa, qb, qy)


def _rewrite_qlinear_matmul(b: _Builder, node: Node, plan: _MatMulPlan) -> Value:
    y = node.outputs[0]
    assert y is not None
    product = b.op("MatMul", [_dequantize(b, plan.a, plan.qa), _dequantize(b, plan.b, plan.qb)],
                   DType.FLOAT, _shape(y))
    return _quantize(b, product, plan.qy)


# ===================================================================== QLinearConv
@dataclass(frozen=True)
class _ConvPlan:
    x: Value
    w: Value
    bias: Value | None
    qx: _Quant
    qw: _Quant
    qy: _Quant


def _plan_qlinear_conv(node: Node, graph: Graph) -> _ConvPlan:
    x, x_scale, w, w_scale, y_scale = _required(node, 0, 1, 3, 4, 6)
    y = node.outputs[0]
    assert y is not None
    x_type, w_type = _check_int8(x, "x"), _check_int8(w, "w")
    qx = _quant(x, x_scale, _input(node, 2), None, "x", x_type)
    qw = _quant(w, w_scale, _input(node, 5), 0, "w", w_type)
    qy = _quant(None, y_scale, _input(node, 7), None, "y", _dtype(y) or x_type)
    if qy.zero.dtype not in _RANGES:
        raise _Kept(f"y zero point is {qy.zero.dtype.short_name}, not int8/uint8")
    _check_int8(y, "y")
    bias = _input(node, 8)
    if bias is not None:
        if _dtype(bias) not in (DType.INT32, None):
            raise _Kept(f"bias %{bias.name} is {_dtype(bias).short_name}, not int32")  # type: ignore[union-attr]
        if _rank(bias) not in (1, None):
            raise _Kept(f"bias %{bias.name} is not 1-D")
    _check_opset(graph, (qx, qw, qy))
    return _ConvPlan(x, w, bias, qx, qw, qy)


def _conv_attributes(node: Node) -> dict[str, Any]:
    """The Conv attributes of a QLinearConv / ConvInteger (they are the same set), copied."""
    return {name: dataclasses.replace(attr) for name, attr in node.attributes.items()}


def _rewrite_qlinear_conv(b: _Builder, node: Node, plan: _ConvPlan) -> Value:
    y = node.outputs[0]
    assert y is not None
    inputs = [_dequantize(b, plan.x, plan.qx), _dequantize(b, plan.w, plan.qw)]
    if plan.bias is not None:
        # B is quantized with scale x_scale * w_scale and zero point 0 (the spec's contract).
        xs, ws = plan.qx.scale, plan.qw.scale
        shape: tuple[int, ...] = () if ws.length is None else (ws.length,)
        if xs.array is not None and ws.array is not None:
            w_scales = ws.array.astype(np.float32).reshape(-1)
            product = np.float32(xs.array.astype(np.float32).reshape(-1)[0]) * np.broadcast_to(
                w_scales if w_scales.size > 1 else w_scales.reshape(()), shape)
            bias_scale = b.const(product.astype(np.float32), "scale")
        else:
            x_scale, w_scale = b.param(xs), b.param(ws)
            assert x_scale is not None and w_scale is not None
            bias_scale = b.op("Mul", [x_scale, w_scale], DType.FLOAT, shape)
        axis = {"axis": 0} if ws.length is not None else None
        inputs.append(b.op("DequantizeLinear", [plan.bias, bias_scale], DType.FLOAT, _shape(plan.bias), axis))
    conv = b.op("Conv", inputs, DType.FLOAT, _shape(y), _conv_attributes(node))
    return _quantize(b, conv, plan.qy)


# ===================================================================== MatMulInteger
@dataclass(frozen=True)
class _IntMatMulPlan:
    a: Value
    b: Value
    a_zero: Value | None  # None: absent or a constant zero
    b_zero: Value | None


def _zero_or_none(zero: Value | None) -> Value | None:
    """None when the zero point is absent or a constant that is all zeros (nothing to subtract)."""
    array = _const_array(zero)
    if zero is None or (array is not None and not np.any(array)):
        return None
    return zero


def _plan_matmul_integer(node: Node, graph: Graph) -> _IntMatMulPlan:
    a, b = _required(node, 0, 1)
    _check_int8(a, "A")
    _check_int8(b, "B")
    a_zero, b_zero = _zero_or_none(_input(node, 2)), _zero_or_none(_input(node, 3))
    for zero, what in ((a_zero, "a_zero_point"), (b_zero, "b_zero_point")):
        _check_int8(zero, what)
        if zero is not None and _const_array(zero) is None and _rank(zero) is None:
            raise _Kept(f"{what} %{zero.name} has unknown rank")
    if a_zero is not None and _const_array(a_zero) is None and _shape(a_zero) not in ((), (1,)):
        if _rank(a_zero) == 1 and (_rank(a) or 0) < 2:
            raise _Kept(f"a_zero_point %{a_zero.name} is per row but A has no known rank of at least 2")
    if graph.opset_version("") is None:
        raise _Kept("the model's ai.onnx opset is unknown")
    return _IntMatMulPlan(a, b, a_zero, b_zero)


def _int32_operand(b: _Builder, data: Value, zero: Value | None, per_row: bool) -> Value:
    """Cast<i32>(data) - zero point; a 1-D per-row zero point of A becomes [M, 1]."""
    value = b.cast(data, DType.INT32)
    if zero is None:
        return value
    array = _const_array(zero)
    if array is not None:
        array = array.astype(np.int32)
        if per_row and array.ndim == 1 and array.size > 1:
            array = array.reshape(-1, 1)
        elif array.size == 1:
            array = array.reshape(())
        zero_value = b.const(array, "zero_point")
    else:
        zero_value = b.cast(zero, DType.INT32)
        shape = _shape(zero)
        if per_row and shape is not None and len(shape) == 1 and shape != (1,):
            target = b.const(np.array([-1, 1], dtype=np.int64), "shape")
            zero_value = b.op("Reshape", [zero_value, target], DType.INT32, (shape[0], 1))
    return b.op("Sub", [value, zero_value], DType.INT32, _shape(data))


def _rewrite_matmul_integer(b: _Builder, node: Node, plan: _IntMatMulPlan) -> Value:
    y = node.outputs[0]
    assert y is not None
    left = _int32_operand(b, plan.a, plan.a_zero, per_row=True)
    right = _int32_operand(b, plan.b, plan.b_zero, per_row=False)
    return b.op("MatMul", [left, right], DType.INT32, _shape(y))


# ===================================================================== ConvInteger
@dataclass(frozen=True)
class _IntConvPlan:
    x: Value
    w: Value
    x_zero: Value | None
    w_zero: Value | None
    x_digits: int  # 1: x - zx as is; 2: split into base-16 digits
    w_digits: int
    w_arrays: tuple[np.ndarray, ...] | None  # the weight digits (most significant first) when w is constant


def _deviation(dtype: DType | None, zero: Value | None) -> int:
    """The largest |q - zero point| over the range of q's type (255 covers both types and any zero point)."""
    if dtype is None:
        return 255
    lo, hi = _RANGES[dtype]
    if zero is None:
        return max(-lo, hi)
    array = _const_array(zero)
    if array is None:
        return hi - lo
    values = array.astype(np.int64).reshape(-1)
    return int(max(np.max(values - lo), np.max(hi - values)))


def _digits(values: np.ndarray, count: int) -> tuple[np.ndarray, ...]:
    """Split integers into `count` base-16 digits, most significant first (it may be negative)."""
    if count == 1:
        return (values,)
    high = np.floor_divide(values, _DIGIT)
    return (high, values - _DIGIT * high)


def _digit_bound(deviation: int, count: int) -> int:
    """The largest magnitude of a digit of a value whose magnitude is at most `deviation`."""
    return deviation if count == 1 else max(deviation // _DIGIT + 1, _DIGIT - 1)


def _plan_conv_integer(node: Node, graph: Graph) -> _IntConvPlan:
    x, w = _required(node, 0, 1)
    x_type, w_type = _check_int8(x, "x"), _check_int8(w, "w")
    x_zero, w_zero = _zero_or_none(_input(node, 2)), _zero_or_none(_input(node, 3))
    _check_int8(x_zero, "x_zero_point")
    _check_int8(w_zero, "w_zero_point")
    if graph.opset_version("") is None:
        raise _Kept("the model's ai.onnx opset is unknown")
    w_array = _const_array(w)
    w_shape = _static_shape(w, w_array)
    if w_shape is None:
        raise _Kept(f"the shape of w %{w.name} is not known, so the exactness of float32 cannot be bounded")
    if len(w_shape) < 3:
        raise _Kept(f"w %{w.name} has rank {len(w_shape)}, a convolution weight has at least 3")
    x_zero_shape = None if x_zero is None else _static_shape(x_zero, _const_array(x_zero))
    if x_zero is not None and (x_zero_shape is None or int(np.prod(x_zero_shape)) != 1):
        raise _Kept(f"x_zero_point %{x_zero.name} is not a scalar")
    if w_zero is not None:
        zero_shape = _static_shape(w_zero, _const_array(w_zero))
        if zero_shape is None or (int(np.prod(zero_shape)) != 1 and zero_shape != (w_shape[0],)):
            raise _Kept(f"w_zero_point %{w_zero.name} is neither a scalar nor one per output channel")
    x_dev = _deviation(x_type or _dtype(x_zero), x_zero)
    w_zero_array = _const_array(w_zero)
    exact_weights: np.ndarray | None = None
    if w_array is not None and (w_zero is None or w_zero_array is not None):
        exact_weights = w_array.astype(np.int64)
        if w_zero_array is not None:
            per_channel = (-1,) + (1,) * (len(w_shape) - 1) if w_zero_array.size > 1 else ()
            exact_weights = exact_weights - w_zero_array.astype(np.int64).reshape(per_channel)
    terms = int(np.prod(w_shape[1:]))
    w_dev = _deviation(w_type or _dtype(w_zero), w_zero)
    for x_digits, w_digits in ((1, 1), (1, 2), (2, 2)):
        x_bound = _digit_bound(x_dev, x_digits)
        if exact_weights is not None:
            pieces = _digits(exact_weights, w_digits)
            sums = max(int(np.max(np.abs(p).reshape(w_shape[0], -1).sum(axis=1), initial=0)) for p in pieces)
            bound = x_bound * sums
        else:
            pieces = ()
            bound = terms * x_bound * _digit_bound(w_dev, w_digits)
        if bound <= _F32_EXACT:
            arrays = tuple(p.astype(np.float32) for p in pieces) if exact_weights is not None else None
            return _IntConvPlan(x, w, x_zero, w_zero, x_digits, w_digits, arrays)
    raise _Kept(f"float32 is not exact even with base-{_DIGIT} digits of x and w ({terms} products per output)")


def _float_digits(b: _Builder, value: Value, count: int) -> list[Value]:
    """Base-16 digits of an integer-valued float32 tensor, most significant first (exact ops)."""
    if count == 1:
        return [value]
    dtype, shape = DType.FLOAT, _shape(value)
    scaled = b.op("Mul", [value, b.const(np.array(1.0 / _DIGIT, np.float32), "scale")], dtype, shape)
    high = b.op("Floor", [scaled], dtype, shape)
    back = b.op("Mul", [high, b.const(np.array(_DIGIT, np.float32), "scale")], dtype, shape)
    return [high, b.op("Sub", [value, back], dtype, shape)]


def _float_operand(b: _Builder, data: Value, zero: Value | None, per_channel: bool) -> Value:
    """Cast<f32>(data) - zero point (a per-output-channel zero point of w becomes [M, 1, ...])."""
    value = b.cast(data, DType.FLOAT)
    if zero is None:
        return value
    rank = _rank(data)
    array = _const_array(zero)
    if array is not None:
        array = array.astype(np.float32)
        if per_channel and array.size > 1:
            assert rank is not None
            array = array.reshape((-1,) + (1,) * (rank - 1))
        else:
            array = array.reshape(())
        zero_value = b.const(array, "zero_point")
    else:
        zero_value = b.cast(zero, DType.FLOAT)
        shape = _shape(zero)
        if per_channel and shape is not None and len(shape) == 1 and shape != (1,):
            assert rank is not None
            target = (-1,) + (1,) * (rank - 1)
            zero_value = b.op("Reshape", [zero_value, b.const(np.array(target, np.int64), "shape")], DType.FLOAT,
                              (shape[0],) + (1,) * (rank - 1))
    return b.op("Sub", [value, zero_value], DType.FLOAT, _shape(data))


def _rewrite_conv_integer(b: _Builder, node: Node, plan: _IntConvPlan) -> Value:
    y = node.outputs[0]
    assert y is not None
    out_shape = _shape(y)
    xs = _float_digits(b, _float_operand(b, plan.x, plan.x_zero, per_channel=False), plan.x_digits)
    if plan.w_arrays is not None:
        ws = [b.const(array, "weight") for array in plan.w_arrays]
    else:
        ws = _float_digits(b, _float_operand(b, plan.w, plan.w_zero, per_channel=True), plan.w_digits)
    total: Value | None = None
    for i, x_digit in enumerate(xs):
        for j, w_digit in enumerate(ws):
            conv = b.op("Conv", [x_digit, w_digit], DType.FLOAT, out_shape, _conv_attributes(node))
            part = b.op("Cast", [conv], DType.INT32, out_shape, {"to": int(DType.INT32)})
            weight = _DIGIT ** ((len(xs) - 1 - i) + (len(ws) - 1 - j))
            if weight != 1:
                part = b.op("Mul", [part, b.const(np.array(weight, np.int32), "digit")], DType.INT32, out_shape)
            total = part if total is None else b.op("Add", [total, part], DType.INT32, out_shape)
    assert total is not None
    return total


# ===================================================================== the pass
def _drop_dead_constants(values: Sequence[Value]) -> None:
    """Initializers only the replaced node read (weights and scales the rewrite folded)."""
    for value in dict.fromkeys(values):
        graph = value.graph
        if (graph is not None and value.is_constant and not value.uses and not value.is_graph_output
                and graph.initializers.get(value.name) is value):
            graph.remove_initializer(value)


_PLANS: dict[str, Callable[[Node, Graph], Any]] = {
    "QLinearMatMul": _plan_qlinear_matmul, "QLinearConv": _plan_qlinear_conv,
    "MatMulInteger": _plan_matmul_integer, "ConvInteger": _plan_conv_integer}
_REWRITES: dict[str, Callable[[_Builder, Node, Any], Value]] = {
    "QLinearMatMul": _rewrite_qlinear_matmul, "QLinearConv": _rewrite_qlinear_conv,
    "MatMulInteger": _rewrite_matmul_integer, "ConvInteger": _rewrite_conv_integer}


@register_pass
class LegalizeQLinear(Pass):
    name = "legalize-qlinear"
    description = ("Decompose QLinearMatMul/QLinearConv into DequantizeLinear, float op, QuantizeLinear and "
                   "MatMulInteger/ConvInteger into exact int32/float32 arithmetic")
    numerics = Numerics.TOLERANCE
    statistics = ("qlinearmatmul", "qlinearconv", "matmulinteger", "convinteger", "digit_convs")

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        for sub in list(graph.all_graphs()):
            for node in sub:
                if node.op_type not in QLINEAR_OPS or node.domain not in ("", "ai.onnx"):
                    continue
                label = node.name or node.op_type
                out = node.outputs[0] if node.outputs else None
                try:
                    if out is None or len(node.outputs) != 1:
                        raise _Kept("it has no single output")
                    plan: Any = _PLANS[node.op_type](node, sub)
                except _Kept as kept:
                    ctx.remark(f"{label}: kept, {kept}")
                    continue
                rule = node.op_type.lower()
                if not ctx.rewrite(rule):
                    return changed
                new = _REWRITES[node.op_type](_Builder(sub, node, ctx, rule), node, plan)
                out.replace_all_uses_with(new, replace_graph_outputs=True)
                read = [v for v in node.inputs if v is not None]
                sub.remove(node)
                _drop_dead_constants(read)
                ctx.stats[rule] += 1
                if isinstance(plan, _IntConvPlan):
                    ctx.stats["digit_convs"] += plan.x_digits * plan.w_digits
                changed = True
        return changed
