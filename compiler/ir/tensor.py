"""Constant tensors of the IR.

A `Tensor` is immutable and may be backed by:
* a numpy array (built by a pass, or parsed from text);
* a loader (a weight still inside the imported protobuf, or memory-mapped external data): the
  array is made on first use and weights nobody reads are never converted;
* a splat: one value and a shape, costing no memory (MLIR's splat dense attribute);
* a digest: what the text form prints for a large constant (shape, dtype, sha256, a few values).
  It compares equal by digest and has no data.

`source` is an opaque hint for the exporter (the protobuf the tensor came from), so that an
unmodified weight is written back by a C++ copy instead of a round trip through numpy.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mlc.ir.dtypes import DType


class TensorDataUnavailable(RuntimeError):
    """A digest tensor (from the text form) has no values: only its hash."""


class Tensor:
    __slots__ = ("_array", "_digest", "_loader", "_splat", "dtype", "name", "preview", "shape", "source")

    def __init__(
        self,
        dtype: DType,
        shape: Sequence[int],
        *,
        array: np.ndarray | None = None,
        loader: Callable[[], np.ndarray] | None = None,
        splat: Any = None,
        digest: str | None = None,
        preview: Sequence[Any] = (),
        source: object | None = None,
        name: str = "",
    ) -> None:
        self.dtype = DType(dtype)
        self.shape = tuple(int(d) for d in shape)
        self._array = array
        self._loader = loader
        self._splat = splat
        self._digest = digest
        self.preview = tuple(preview)
        self.source = source
        self.name = name

    # ---------------------------------------------------------------- constructors
    @classmethod
    def from_array(cls, array: np.ndarray | Any, dtype: DType | None = None, name: str = "") -> Tensor:
        array = np.asarray(array)
        if dtype is None:
            dtype = DType.from_numpy(array.dtype)
        if dtype != DType.STRING and array.dtype != dtype.numpy:
            array = array.astype(dtype.numpy)
        return cls(dtype, array.shape, array=array, name=name)

    @classmethod
    def splat_of(cls, value: Any, dtype: DType, shape: Sequence[int]) -> Tensor:
        scalar = np.asarray(value, dtype=dtype.numpy).reshape(())
        return cls(dtype, shape, splat=scalar[()])

    # ---------------------------------------------------------------- properties
    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """Bytes the values take in ONNX's packed layout (strings: their UTF-8 length)."""
        if self.dtype == DType.STRING:
            return sum(len(s) for s in self._string_items()) if self.has_data else 0
        return (self.size * self.dtype.bits + 7) // 8

    @property
    def is_splat(self) -> bool:
        return self._splat is not None

    @property
    def splat_value(self) -> Any:
        return self._splat

    @property
    def is_digest(self) -> bool:
        return self._array is None and self._loader is None and self._splat is None

    @property
    def has_data(self) -> bool:
        return not self.is_digest

    @property
    def is_loaded(self) -> bool:
        return self._array is not None or self._splat is not None

    # ---------------------------------------------------------------- data
    def numpy(self) -> np.ndarray:
        """The values as a numpy array (read-only view for splats and memory-mapped weights)."""
        if self._array is not None:
            return self._array
        if self._splat is not None:
            return np.broadcast_to(np.asarray(self._splat, dtype=self.dtype.numpy), self.shape)
        if self._loader is not None:
            array = self._loader()
            if tuple(array.shape) != self.shape:
                array = array.reshape(self.shape)
            self._array = array
            self._loader = None
            return array
        raise TensorDataUnavailable(
            f"constant {self.name or '<unnamed>'} was parsed from a digest and has no values"
        )

    def _string_items(self) -> list[bytes]:
        return [s if isinstance(s, bytes) else str(s).encode() for s in self.numpy().reshape(-1)]

    def canonical_bytes(self) -> bytes:
        """The bytes the digest hashes: little-endian C-order values, strings length-prefixed."""
        if self.dtype == DType.STRING:
            return b"".join(len(s).to_bytes(8, "little") + s for s in self._string_items())
        return np.ascontiguousarray(self.numpy()).tobytes()

    def digest(self) -> str:
        """sha256 of the values (first 16 hex digits), computed once."""
        if self._digest is None:
            self._digest = hashlib.sha256(self.canonical_bytes()).hexdigest()[:16]
        return self._digest

    def equals(self, other: Tensor) -> bool:
        """Bitwise equality of dtype, shape and values (NaN payloads and -0.0 included)."""
        if self.dtype != other.dtype or self.shape != other.shape:
            return False
        if self.is_splat and other.is_splat:
            return self.canonical_bytes() == other.canonical_bytes()
        if self.is_digest or other.is_digest:
            return self.digest() == other.digest()
        return self.canonical_bytes() == other.canonical_bytes()

    def __repr__(self) -> str:
        kind = "splat" if self.is_splat else "digest" if self.is_digest else "dense"
        return f"Tensor({kind}, {self.dtype.short_name}{list(self.shape)})"


class SparseTensor:
    """COO sparse constant: `values` (1-D), `indices` ([NNZ] linearized or [NNZ, rank]) and `dims`."""

    __slots__ = ("dims", "indices", "values")

    def __init__(self, values: Tensor, indices: Tensor, dims: Sequence[int]) -> None:
        self.values = values
        self.indices = indices
        self.dims = tuple(int(d) for d in dims)

    @property
    def dtype(self) -> DType:
        return self.values.dtype

    def equals(self, other: SparseTensor) -> bool:
        return (self.dims == other.dims and self.values.equals(other.values)
                and self.indices.equals(other.indices))
