"""The facts the no-op laws of eliminate-noop rest on: constant operands, dtypes, broadcasting.

A law holds only where it is exact: its constants are initializers no caller can override
(`const_array`), and where the answer depends on them, the input's dims, a symbolic dim counting
only where its value does not matter (`broadcast_keeps`). A matcher answers `Found`: (rule, the
input that takes the output's place), the reason a candidate is kept, or None (no candidate).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mlc.ir.core import Value
from mlc.ir.dtypes import DType
from mlc.ir.tensor import Tensor, TensorDataUnavailable
from mlc.ir.types import Dim, TensorType

# What a matcher answers: (rule, the input that takes the output's place), or the reason a
# candidate is kept (remarked), or None when the node is no candidate at all.
Found = tuple[str, Value] | str | None

def dtype_of(value: Value | None) -> DType | None:
    if value is None or not isinstance(value.type, TensorType) or value.type.dtype == DType.UNDEFINED:
        return None
    return value.type.dtype


def const_array(value: Value | None) -> np.ndarray | None:
    """The values of a constant no caller can override, or None."""
    if value is None or not value.is_constant or not isinstance(value.const, Tensor):
        return None
    try:
        return value.const.numpy()
    except TensorDataUnavailable:
        return None


def const_ints(value: Value | None) -> list[int] | None:
    array = const_array(value)
    if array is None or array.dtype.kind not in "iu":
        return None
    return [int(v) for v in array.reshape(-1)]


def is_int(dim: Dim) -> bool:
    return isinstance(dim, int)


def broadcast_keeps(dims: tuple[Dim, ...] | None, other: Sequence[Dim]) -> str | None:
    """None when broadcasting `dims` with the shape `other` gives `dims` back; otherwise why not
    ("differs" when it provably changes the shape, a reason when it cannot be told). A symbolic
    entry of `other` keeps the dim only where it is the same symbol."""
    if dims is None:
        return "the input's rank is unknown"
    if len(other) > len(dims):
        return "differs"
    offset = len(dims) - len(other)
    unknown = False
    for k, entry in enumerate(other):
        dim = dims[offset + k]
        if entry == 1 or (entry is not None and entry == dim):
            continue
        if is_int(dim) and is_int(entry):
            return "differs"
        unknown = True
    return f"a dim of the input is symbolic where {list(other)} is not 1" if unknown else None


__all__ = ["Found", "broadcast_keeps", "const_array", "const_ints", "dtype_of", "is_int"]
