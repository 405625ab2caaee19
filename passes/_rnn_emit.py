"""How legalize-rnn emits the unrolled steps: `Emitter`, an `IRBuilder` over operands that may
still be numpy arrays.

The recurrent weights do not move per step, so the weight preparation of constant inputs (slices,
transposes, bias sums) is folded here in numpy and only the result becomes an initializer; a
non-constant weight gets Gather / Transpose / Split nodes instead. Every node is typed with the
shape it computes, and what the requested outputs turn out not to need is dropped at the end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

import numpy as np

from mlc.ir.core import Value
from mlc.ir.dtypes import DType
from mlc.ir.types import Dim, Shape, TensorType
from mlc.rewrite import IRBuilder

Operand: TypeAlias = Value | np.ndarray  # an np.ndarray is a constant not yet materialized as an initializer
_FOLD = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply}


def shape_of(x: Operand) -> Shape | None:
    if isinstance(x, np.ndarray):
        return tuple(int(d) for d in x.shape)
    return x.type.shape if isinstance(x.type, TensorType) else None


def broadcast(a: Shape | None, b: Shape | None) -> Shape | None:
    """Numpy-style broadcast of two shapes (None: unknown rank)."""
    if a is None or b is None:
        return None
    rank = max(len(a), len(b))
    pa, pb = (1,) * (rank - len(a)) + tuple(a), (1,) * (rank - len(b)) + tuple(b)
    dims: list[Dim] = []
    for da, db in zip(pa, pb, strict=True):
        if da == 1:
            dims.append(db)
        elif db == 1 or da == db:
            dims.append(da)
        else:
            dims.append(da if isinstance(da, int) else db if isinstance(db, int) else None)
    return tuple(dims)


def product(*dims: Dim) -> Dim:
    total = 1
    for dim in dims:
        if not isinstance(dim, int):
            return None
        total *= dim
    return total


class Emitter:
    """Typed nodes through `builder`, with weight preparation of numpy operands folded."""

    def __init__(self, builder: IRBuilder, dtype: DType, opset: int) -> None:
        self.builder, self.dtype, self.opset = builder, dtype, opset
        self.constants: list[Value] = []
        self._small: dict[tuple[str, tuple[int, ...], bytes], Value] = {}
        anchor = builder.anchor
        assert anchor is not None, "an Emitter writes before the recurrent node it replaces"
        self.hint = (anchor.name or anchor.op_type.lower()).replace("/", "_")

    def value(self, x: Operand) -> Value:
        """Materialize a numpy operand as an initializer (small ones shared within the rewrite)."""
        if isinstance(x, Value):
            return x
        array = np.array(x, order="C")  # a copy that keeps 0-d scalars 0-d (ascontiguousarray makes them 1-d)
        key = (array.dtype.str, array.shape, array.tobytes()) if array.size <= 16 else None
        if key is not None and key in self._small:
            return self._small[key]
        made = self.builder.constant(array, f"{self.hint}_const")
        self.constants.append(made)
        if key is not None:
            self._small[key] = made
        return made

    def scalar(self, number: float) -> np.ndarray:
        return np.asarray(number, dtype=self.dtype.numpy)

    def emit(self, op: str, inputs: Sequence[Operand | None], shapes: Sequence[Shape | None],
             attributes: Mapping[str, Any] | None = None, dtype: DType | None = None) -> list[Value]:
        out_type = dtype or self.dtype
        first = self.builder.op(op, [None if x is None else self.value(x) for x in inputs], attributes,
                                name=f"{self.hint}_{op.lower()}", outputs=len(shapes))
        assert first.producer is not None
        outputs = [v for v in first.producer.outputs if v is not None]
        for value, shape in zip(outputs, shapes, strict=True):
            value.type = TensorType(out_type, shape)
        return outputs

    def op(self, op: str, inputs: Sequence[Operand | None], shape: Shape | None,
           attributes: Mapping[str, Any] | None = None, dtype: DType | None = None) -> Value:
        return self.emit(op, inputs, [shape], attributes, dtype)[0]

    def gather(self, x: Operand, index: int, axis: int, shape: Shape) -> Operand:
        """x[index] along `axis` (the axis goes away)."""
        if isinstance(x, np.ndarray):
            return np.asarray(np.take(x, index, axis=axis))
        return self.op("Gather", [x, np.asarray(index, dtype=np.int64)], shape, {"axis": axis})

    def transpose(self, x: Operand, shape: Shape) -> Operand:
        """The transpose of a matrix."""
        if isinstance(x, np.ndarray):
            return np.ascontiguousarray(x.T)
        return self.op("Transpose", [x], shape, {"perm": [1, 0]})

    def split(self, x: Operand, sizes: Sequence[int], axis: int) -> list[Operand]:
        """Cut `x` along `axis` into pieces of the given sizes (always explicit: valid in every opset)."""
        if isinstance(x, np.ndarray):
            return list(np.split(x, np.cumsum(sizes)[:-1].tolist(), axis=axis))
        shape = shape_of(x)
        shapes = [None if shape is None else tuple(size if i == axis % len(shape) else d for i, d in enumerate(shape))
                  for size in sizes]
        if self.opset < 13:
            return list(self.emit("Split", [x], shapes, {"axis": axis, "split": list(sizes)}))
        return list(self.emit("Split", [x, np.asarray(sizes, dtype=np.int64)], shapes, {"axis": axis}))

    def binary(self, op: str, a: Operand, b: Operand) -> Operand:
        """Add / Sub / Mul with numpy broadcasting."""
        if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
            return np.asarray(_FOLD[op](a, b), dtype=self.dtype.numpy)
        return self.op(op, [a, b], broadcast(shape_of(a), shape_of(b)))

    def add(self, a: Operand, b: Operand) -> Operand:
        return self.binary("Add", a, b)

    def mul(self, a: Operand, b: Operand) -> Operand:
        return self.binary("Mul", a, b)

    def matmul(self, a: Operand, b: Operand, shape: Shape | None) -> Value:
        return self.op("MatMul", [a, b], shape)

    def drop_unused(self) -> None:
        """Drop the nodes and constants made for outputs nobody reads (run after the replacement)."""
        self.builder.remove(*reversed(self.builder.created))
        for constant in self.constants:
            if not constant.uses:
                self.builder.graph.remove_initializer(constant)


__all__ = ["Emitter", "Operand", "broadcast", "product", "shape_of"]
