"""Shapes and shape values over symbolic dims: tuples of `Expr | None` and what is computed on them.

A `Shape` is a value's dims (None: unknown); `Elems` are the flat values of a small integer or
boolean tensor (a shape computation's: Shape, Gather, Concat, ...). The functions here are the
arithmetic the op rules and the passes share: broadcasting as a valid model makes it, element
counts, and the way back to static dims and constant arrays.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from mlc.ir.dtypes import DType
from mlc.ir.symbolic_dims import ONE, Expr

MAX_ELEMENTS = 64  # shape values are tracked for tensors of at most this many elements
INT_DTYPES = {DType.INT64, DType.INT32, DType.INT16, DType.INT8, DType.UINT8, DType.UINT16, DType.UINT32,
              DType.UINT64, DType.BOOL}

Shape = tuple[Expr | None, ...]
Elems = tuple[Expr | None, ...]


def product(dims: Iterable[Expr | None]) -> Expr | None:
    result = ONE
    for d in dims:
        if d is None:
            return None
        result = result * d
    return result


def as_int(e: Expr | None) -> int | None:
    return e.value if e is not None and e.is_const else None


def _broadcast_dim(dims: Sequence[Expr | None]) -> Expr | None:
    """The broadcast of dims that a valid model makes compatible."""
    known = [d for d in dims if d is not None and d != ONE]
    unknown = any(d is None for d in dims)
    distinct = list(dict.fromkeys(known))
    consts = [d for d in distinct if d.is_const]
    if len(distinct) == 1 and not unknown:
        return distinct[0]
    if not distinct and not unknown:
        return ONE
    if len(consts) == 1:
        return consts[0]  # a symbolic dim beside a static one (> 1) is 1 or equal to it
    return None


def broadcast(shapes: Sequence[Shape | None]) -> Shape | None:
    if any(s is None for s in shapes):
        return None
    rank = max((len(s) for s in shapes if s is not None), default=0)
    result = []
    for i in range(rank):
        column = [s[len(s) - rank + i] for s in shapes if s is not None and len(s) - rank + i >= 0]
        result.append(_broadcast_dim(column))
    return tuple(result)


def known_count(shape: Shape | None) -> int | None:
    """The element count when static."""
    total = product(shape or ()) if shape is not None else None
    return total.value if total is not None and total.is_const else None


def static(shape: Shape | None) -> tuple[int, ...] | None:
    if shape is None or any(d is None or not d.is_const for d in shape):
        return None
    return tuple(d.value for d in shape)  # type: ignore[union-attr]


def elems_array(elems: Elems, dtype: DType, shape: Shape) -> np.ndarray | None:
    """A constant holding `elems` when all are known constants and the shape is static."""
    dims = static(shape)
    if dims is None or any(e is None or not e.is_const for e in elems) or math.prod(dims) != len(elems):
        return None
    values = [e.value for e in elems]  # type: ignore[union-attr]
    return np.array(values, dtype=dtype.numpy).reshape(dims)


__all__ = ["INT_DTYPES", "MAX_ELEMENTS", "Elems", "Shape", "as_int", "broadcast", "elems_array", "known_count",
           "product", "static"]
