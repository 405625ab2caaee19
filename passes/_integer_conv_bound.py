"""legalize-qlinear's ConvInteger plan: when a float32 convolution computes it exactly.

ONNX Conv has no integer types (onnxruntime implements it for float32 only), so the convolution
runs in float32, which is exact as long as every partial sum is an integer of magnitude at most
2^24: then every product and every addition is exact whatever the summation order or FMA use of
the kernel (a Winograd/FFT convolution would not be; onnxruntime's CPU kernel and TVM's default
lowering sum directly). |x - zx| is bounded by the input type and zero point; with a constant
weight the bound is exact per output channel (max over channels of sum |w - zw|, times the largest
|x - zx|), otherwise it is (C/group · kernel size) · max|x - zx| · max|w - zw|. When the bound is
too large the operands are split into base-16 digits (w - zw = 16·w_hi + w_lo, then also x - zx),
each digit convolution exact in float32 (2 or 4 convolutions). A layer whose bound stays above
2^24 even then (more than ~65 000 products per output) keeps the op.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlc.ir.core import Graph, Node, Value
from mlc.ir.dtypes import DType
from mlc.passes._match_basics import dtype_of, input_at
from mlc.passes._qlinear_params import (
    INT8_RANGES,
    Unsupported,
    check_int8,
    constant,
    known_shape,
    nonzero_point,
    required,
)

F32_EXACT = 2**24  # every integer of at most this magnitude is a float32
DIGIT = 16  # base of the digit split of ConvInteger operands


@dataclass(frozen=True)
class IntConvPlan:
    x: Value
    w: Value
    x_zero: Value | None
    w_zero: Value | None
    x_digits: int  # 1: x - zx as is; 2: split into base-16 digits
    w_digits: int
    w_arrays: tuple[np.ndarray, ...] | None  # the weight digits (most significant first) when w is constant


def deviation(dtype: DType | None, zero: Value | None) -> int:
    """The largest |q - zero point| over the range of q's type (255 covers both types and any zero point)."""
    if dtype is None:
        return 255
    lo, hi = INT8_RANGES[dtype]
    if zero is None:
        return max(-lo, hi)
    array = constant(zero)
    if array is None:
        return hi - lo
    values = array.astype(np.int64).reshape(-1)
    return int(max(np.max(values - lo), np.max(hi - values)))


def digits(values: np.ndarray, count: int) -> tuple[np.ndarray, ...]:
    """Split integers into `count` base-16 digits, most significant first (it may be negative)."""
    if count == 1:
        return (values,)
    high = np.floor_divide(values, DIGIT)
    return (high, values - DIGIT * high)


def digit_bound(magnitude: int, count: int) -> int:
    """The largest magnitude of a digit of a value whose magnitude is at most `magnitude`."""
    return magnitude if count == 1 else max(magnitude // DIGIT + 1, DIGIT - 1)


def _check_zero_points(x_zero: Value | None, w_zero: Value | None, out_channels: int) -> None:
    x_zero_shape = None if x_zero is None else known_shape(x_zero, constant(x_zero))
    if x_zero is not None and (x_zero_shape is None or int(np.prod(x_zero_shape)) != 1):
        raise Unsupported(f"x_zero_point %{x_zero.name} is not a scalar")
    if w_zero is not None:
        zero_shape = known_shape(w_zero, constant(w_zero))
        if zero_shape is None or (int(np.prod(zero_shape)) != 1 and zero_shape != (out_channels,)):
            raise Unsupported(f"w_zero_point %{w_zero.name} is neither a scalar nor one per output channel")


def _exact_weights(w: Value, w_zero: Value | None, rank: int) -> np.ndarray | None:
    """w - zw in int64 when both are constants (w alone when zw is absent), else None."""
    w_array, w_zero_array = constant(w), constant(w_zero)
    if w_array is None or (w_zero is not None and w_zero_array is None):
        return None
    exact = w_array.astype(np.int64)
    if w_zero_array is not None:
        per_channel = (-1,) + (1,) * (rank - 1) if w_zero_array.size > 1 else ()
        exact = exact - w_zero_array.astype(np.int64).reshape(per_channel)
    return exact


def plan_conv_integer(node: Node, graph: Graph) -> IntConvPlan:
    x, w = required(node, 0, 1)
    x_type, w_type = check_int8(x, "x"), check_int8(w, "w")
    x_zero, w_zero = nonzero_point(input_at(node, 2)), nonzero_point(input_at(node, 3))
    check_int8(x_zero, "x_zero_point")
    check_int8(w_zero, "w_zero_point")
    if graph.opset_version("") is None:
        raise Unsupported("the model's ai.onnx opset is unknown")
    w_shape = known_shape(w, constant(w))
    if w_shape is None:
        raise Unsupported(f"the shape of w %{w.name} is not known, so the exactness of float32 cannot be bounded")
    if len(w_shape) < 3:
        raise Unsupported(f"w %{w.name} has rank {len(w_shape)}, a convolution weight has at least 3")
    _check_zero_points(x_zero, w_zero, w_shape[0])
    x_dev = deviation(x_type or dtype_of(x_zero), x_zero)
    exact = _exact_weights(w, w_zero, len(w_shape))
    terms = int(np.prod(w_shape[1:]))
    w_dev = deviation(w_type or dtype_of(w_zero), w_zero)
    for x_digits, w_digits in ((1, 1), (1, 2), (2, 2)):
        x_bound = digit_bound(x_dev, x_digits)
        if exact is not None:
            pieces = digits(exact, w_digits)
            sums = max(int(np.max(np.abs(p).reshape(w_shape[0], -1).sum(axis=1), initial=0)) for p in pieces)
            bound = x_bound * sums
        else:
            bound = terms * x_bound * digit_bound(w_dev, w_digits)
        if bound <= F32_EXACT:
            arrays = tuple(p.astype(np.float32) for p in pieces) if exact is not None else None
            return IntConvPlan(x, w, x_zero, w_zero, x_digits, w_digits, arrays)
    raise Unsupported(f"float32 is not exact even with base-{DIGIT} digits of x and w ({terms} products per output)")


__all__ = ["DIGIT", "F32_EXACT", "IntConvPlan", "deviation", "digit_bound", "digits", "plan_conv_integer"]
