"""legalize-qlinear's reading of quantization parameters: which (scale, zero point) pairs it can feed
to QuantizeLinear / DequantizeLinear, and why not otherwise.

A scale or zero point of one element is per tensor; a 1-D one (or an N-D one with its one non-1
dim at the op's axis) is per axis, as long as that axis. Scales are float32/float16/bfloat16 (fed
as float32), zero points int8/uint8. A one-element parameter paired with a per-axis one must be a
constant (it is broadcast). Per-axis quantization needs `axis`, which exists from opset 13. Every
check that fails raises `Unsupported` with the reason, which the rule reports as its reject.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mlc.ir.core import Graph, Node, Value
from mlc.ir.dtypes import DType
from mlc.ir.types import Shape, TensorType
from mlc.passes._match_basics import const_array, dtype_of, input_at, static_shape

INT8_RANGES: dict[DType, tuple[int, int]] = {DType.UINT8: (0, 255), DType.INT8: (-128, 127)}
SCALE_TYPES = (DType.FLOAT, DType.FLOAT16, DType.BFLOAT16)
AXIS_OPSET = 13  # QuantizeLinear / DequantizeLinear get `axis` (per-axis quantization)


class Unsupported(Exception):
    """The node stays; the message says why (the rule's reject)."""


def constant(value: Value | None) -> np.ndarray | None:
    """The values of a constant input (initializer or Constant node), or None."""
    return const_array(value, constant_nodes=True)


def shape_of(value: Value | None) -> Shape | None:
    return value.type.shape if value is not None and isinstance(value.type, TensorType) else None


def rank_of(value: Value | None) -> int | None:
    shape = shape_of(value)
    return None if shape is None else len(shape)


def known_shape(value: Value, array: np.ndarray | None) -> tuple[int, ...] | None:
    """The shape of a constant's values, else the value's static shape."""
    return tuple(int(d) for d in array.shape) if array is not None else static_shape(value)


def required(node: Node, *indices: int) -> list[Value]:
    found = [input_at(node, i) for i in indices]
    missing = [str(i) for i, v in zip(indices, found, strict=True) if v is None]
    if missing:
        raise Unsupported(f"input {', '.join(missing)} is missing")
    return [v for v in found if v is not None]


def check_int8(value: Value | None, what: str) -> DType | None:
    """The value's element type (None: unknown), which must be int8 or uint8."""
    dtype = dtype_of(value)
    if dtype is not None and dtype not in INT8_RANGES:
        raise Unsupported(f"{what} %{value.name if value else '?'} is {dtype.short_name}, not int8/uint8")
    return dtype


def nonzero_point(zero: Value | None) -> Value | None:
    """None when a zero point is absent or a constant that is all zeros (nothing to subtract)."""
    array = constant(zero)
    if zero is None or (array is not None and not np.any(array)):
        return None
    return zero


@dataclass(frozen=True)
class Param:
    """A scale or zero point as it will be fed to QuantizeLinear/DequantizeLinear."""

    value: Value | None  # None: omitted (a zero of `dtype` where one must be made)
    array: np.ndarray | None  # its values when constant
    dtype: DType  # the type it must have (float32 for scales)
    length: int | None  # None: one element (per tensor); else elements along the axis


@dataclass(frozen=True)
class Quant:
    """How one operand is (de)quantized: scale, zero point and the axis of per-axis parameters."""

    scale: Param
    zero: Param
    axis: int | None  # None: per tensor


def _layout(value: Value, array: np.ndarray | None, role_axis: int | None, data_rank: int | None,
            what: str) -> int | None:
    """None when the parameter has one element, else its length along `role_axis`."""
    shape = known_shape(value, array)
    if shape is None:
        raise Unsupported(f"{what} %{value.name} has no static shape")
    if int(np.prod(shape, dtype=np.int64)) == 1:
        return None
    if role_axis is None or data_rank is None:
        raise Unsupported(f"{what} %{value.name} has shape {list(shape)}: only one element is supported here")
    if len(shape) == 1:
        return shape[0]
    wide = [i for i, d in enumerate(shape) if d != 1]
    if len(wide) == 1 and len(shape) <= data_rank and data_rank - len(shape) + wide[0] == role_axis:
        return shape[wide[0]]
    raise Unsupported(f"{what} %{value.name} has shape {list(shape)}, neither one element nor along axis "
                      f"{role_axis}")


def _zero_type(data: Value | None, zero: Value | None, fallback: DType | None, what: str) -> DType:
    zero_dtype = (dtype_of(zero) or dtype_of(data) or fallback) if zero is not None else fallback
    if zero_dtype is None:
        raise Unsupported(f"the type of the {what} zero point is unknown")
    if zero_dtype not in INT8_RANGES:
        raise Unsupported(f"{what} zero point is {zero_dtype.short_name}, not int8/uint8")
    return zero_dtype


def quant(data: Value | None, scale: Value, zero: Value | None, role_axis: int | None, what: str,
          zero_dtype: DType | None = None) -> Quant:
    """Check a (scale, zero point) pair of one operand; `role_axis` is where a 1-D scale runs."""
    scale_dtype = dtype_of(scale)
    if scale_dtype is not None and scale_dtype not in SCALE_TYPES:
        raise Unsupported(f"{what} scale %{scale.name} is {scale_dtype.short_name}, not a float type")
    rank = rank_of(data)
    scale_array, zero_array = constant(scale), constant(zero)
    scale_length = _layout(scale, scale_array, role_axis, rank, f"{what} scale")
    zero_length = None if zero is None else _layout(zero, zero_array, role_axis, rank, f"{what} zero point")
    zero_type = _zero_type(data, zero, zero_dtype, what)
    length = scale_length if scale_length is not None else zero_length
    if scale_length is not None and zero_length is not None and scale_length != zero_length:
        raise Unsupported(f"{what} scale has {scale_length} elements, its zero point {zero_length}")
    if length is not None:
        for value, array, own in ((scale, scale_array, scale_length), (zero, zero_array, zero_length)):
            if value is not None and own is None and array is None:
                raise Unsupported(f"{what} %{value.name} has one element, the other parameter {length}, and it is "
                                  "not a constant to broadcast")
        shape = shape_of(data)
        assert role_axis is not None and shape is not None
        if isinstance(shape[role_axis], int) and shape[role_axis] != length:
            raise Unsupported(f"{what} has {shape[role_axis]} elements along axis {role_axis}, its scale {length}")
    return Quant(Param(scale, scale_array, DType.FLOAT, length), Param(zero, zero_array, zero_type, length),
                 None if length is None else role_axis)


def check_opset(graph: Graph, quants: Sequence[Quant]) -> int:
    opset = graph.opset_version("")
    if opset is None:
        raise Unsupported("the model's ai.onnx opset is unknown")
    if opset < 10:
        raise Unsupported(f"ai.onnx opset {opset} has no QuantizeLinear/DequantizeLinear")
    if opset < AXIS_OPSET and any(q.axis is not None for q in quants):
        raise Unsupported(f"per-axis quantization needs the axis attribute of DequantizeLinear (opset {AXIS_OPSET}), "
                          f"the model imports ai.onnx opset {opset}")
    return opset


__all__ = ["AXIS_OPSET", "INT8_RANGES", "SCALE_TYPES", "Param", "Quant", "Unsupported", "check_int8", "check_opset",
           "constant", "known_shape", "nonzero_point", "quant", "rank_of", "required", "shape_of"]
