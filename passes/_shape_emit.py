"""legalize-tvm-shapes' emission: shape tensors TVM reads as shapes, through IRBuilder.

Dims are read with Shape(start, end) from opset 15 (a Slice of the whole Shape before), runs of
dims of one value become one Shape, and positions 0..n-1 along a dim are built as
CumSum(ConstantOfShape(Shape(x, a, a+1), 1)) - 1, whose length TVM knows is dim a of x. Constants,
dims and lengths are made once per rewrite.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mlc.ir.core import Value
from mlc.ir.dtypes import DType
from mlc.ir.tensor import Tensor
from mlc.ir.types import Shape, TensorType
from mlc.passes._match_basics import dtype_of
from mlc.passes._shape_elements import DimOf, Element, rank_of
from mlc.passes._transformer_match import dims_of
from mlc.rewrite import IRBuilder

MIN_OPSET = 13


class ShapeEmitter:
    """Typed nodes and constants of one rewrite, with its dims and lengths shared."""

    def __init__(self, builder: IRBuilder) -> None:
        self.builder = builder
        self.opset = builder.graph.opset_version("") or MIN_OPSET
        self._consts: dict[tuple[str, tuple[int, ...], bytes], Value] = {}
        self._dims: dict[tuple[int, int, int], Value] = {}
        self._lengths: dict[tuple[int, int], Value] = {}

    def op(self, op_type: str, inputs: Sequence[Value | None], dtype: DType, shape: Shape | None,
           **attributes: Any) -> Value:
        return self.builder.op(op_type, inputs, attributes, type=TensorType(dtype, shape))

    def const(self, array: Any, dtype: DType, name: str = "c") -> Value:
        """A constant (one per value within a rewrite)."""
        values = np.asarray(array, dtype=dtype.numpy)
        key = (values.dtype.str, values.shape, values.tobytes())
        if key not in self._consts:
            self._consts[key] = self.builder.constant(values, name)
        return self._consts[key]

    def dims(self, value: Value, start: int, end: int) -> Value:
        """Dims [start, end) of `value` as a 1-D int64 tensor TVM reads as a shape."""
        key = (id(value), start, end)
        if key not in self._dims:
            if self.opset >= 15:
                made = self.op("Shape", [value], DType.INT64, (end - start,), start=start, end=end)
            else:
                whole = self.op("Shape", [value], DType.INT64, (rank_of(value),))
                made = self.op("Slice", [whole, self.const([start], DType.INT64), self.const([end], DType.INT64)],
                               DType.INT64, (end - start,))
            self._dims[key] = made
        return self._dims[key]

    def length(self, value: Value, axis: int) -> Value:
        """Dim `axis` of `value` as a float32 [1] tensor (a constant when it is static)."""
        dim = (dims_of(value) or ())[axis]
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
            run = index + 1
            if isinstance(item, int):
                while run < len(items) and isinstance(items[run], int):
                    run += 1
                pieces.append(self.const(list(items[index:run]), DType.INT64, "dims"))
            else:
                value, axis = item
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
        length = (dims_of(value) or ())[axis]
        ones = self.op("ConstantOfShape", [self.dims(value, axis, axis + 1)], DType.INT64, (length,),
                       value=Tensor.from_array(np.ones(1, np.int64)))
        counted = self.op("CumSum", [ones, self.const(0, DType.INT64, "axis")], DType.INT64, (length,))
        return self.op("Sub", [counted, self.const(1, DType.INT64, "one")], DType.INT64, (length,))

    def unsqueeze(self, value: Value, axes: list[int], shape: Shape | None) -> Value:
        dtype = dtype_of(value)
        if not axes:
            return value
        assert dtype is not None
        return self.op("Unsqueeze", [value, self.const(axes, DType.INT64, "axes")], dtype, shape)


__all__ = ["MIN_OPSET", "ShapeEmitter"]
