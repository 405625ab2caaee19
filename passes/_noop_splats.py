"""Splats: values whose every element is one known scalar, whatever their (maybe symbolic) shape.

The arithmetic laws of eliminate-noop (x * 1, x + 0, Where(true, a, b)) read their constant
operand through this: a constant, ConstantOfShape, and what layout ops, Expand, Cast, Concat and
Where make of such values.
"""

from __future__ import annotations

import numpy as np

from mlc.ir.core import Value
from mlc.ir.dtypes import DType
from mlc.ir.tensor import Tensor
from mlc.ir.types import Dim
from mlc.passes._noop_facts import const_array, dtype_of
from mlc.passes._transformer_match import dims_of

SPLAT_LAYOUT = {"Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Slice", "Expand", "Tile",
                 "Gather"}
SPLAT_OPS = SPLAT_LAYOUT | {"ConstantOfShape", "Cast", "CastLike", "Concat", "Where"}


def splat(value: Value | None, depth: int = 0) -> tuple[np.ndarray, DType, tuple[Dim, ...]] | None:
    """(values, dtype, dims) of an operand whose values are known: a constant's array, or for a
    computed splat a one-element array of its scalar (dims from its type)."""
    if value is None or depth > 12:
        return None
    node = value.producer
    if node is None:
        array = const_array(value)
        if array is None:
            return None
        assert isinstance(value.const, Tensor)
        return array, value.const.dtype, tuple(value.const.shape)
    if node.op_type not in SPLAT_OPS or node.domain != "":
        return None
    dims, dtype = dims_of(value), dtype_of(value)
    if dims is None or dtype is None:
        return None
    if any(a.ref is not None for a in node.attributes.values()):
        return None
    scalar: np.ndarray | None = None
    if node.op_type == "ConstantOfShape":
        fill = node.attr("value")
        scalar = np.zeros(1, np.float32) if fill is None else fill.numpy().reshape(-1)[:1] \
            if isinstance(fill, Tensor) and fill.has_data and fill.size == 1 else None
    elif node.op_type in SPLAT_LAYOUT:
        scalar = scalar_of(node.inputs[0], depth)
    elif node.op_type in ("Cast", "CastLike"):
        inner = scalar_of(node.inputs[0], depth)
        with np.errstate(over="ignore", invalid="ignore"):  # Inf is what a narrowing Cast means
            scalar = None if inner is None or dtype in (DType.STRING, DType.UNDEFINED) or dtype.is_exotic \
                else inner.astype(dtype.numpy)
    elif node.op_type == "Concat":
        parts = [scalar_of(v, depth) for v in node.inputs if v is not None]
        if parts and all(p is not None for p in parts) and all(same_bits(p, parts[0]) for p in parts):  # type: ignore[arg-type]
            scalar = parts[0]
    elif node.op_type == "Where" and len(node.inputs) == 3:
        cond = scalar_of(node.inputs[0], depth)
        if cond is not None:
            scalar = scalar_of(node.inputs[1] if bool(cond[0]) else node.inputs[2], depth)
    if scalar is None or scalar.size != 1:
        return None
    if scalar.dtype != dtype.numpy:
        return None
    return scalar, dtype, dims


def scalar_of(value: Value | None, depth: int) -> np.ndarray | None:
    """The one value every element of `value` holds, as a one-element array."""
    found = splat(value, depth + 1)
    if found is None:
        return None
    array = found[0].reshape(-1)
    if array.size == 0 or not all_same(array):
        return None
    return array[:1]


def all_same(array: np.ndarray) -> bool:
    array = np.ascontiguousarray(array)  # a broadcast splat has stride 0: its bytes cannot be viewed (seed 600259)
    first = array[:1]
    return bool(np.all(array.view(np.uint8).reshape(array.size, -1) == first.view(np.uint8).reshape(1, -1))) \
        if array.dtype.kind != "O" else False


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.tobytes() == b.tobytes()


__all__ = ["SPLAT_LAYOUT", "SPLAT_OPS", "all_same", "same_bits", "scalar_of", "splat"]
