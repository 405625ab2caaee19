"""Types of IR values: tensors with symbolic dims, sparse tensors, sequences, optionals, maps.

A dim is an `int` (static), a `str` (a symbolic name such as "batch", equal wherever it is
repeated) or `None` (unknown). A shape of `None` means the rank itself is unknown.
Types are immutable and hashable so that passes can compare them with `==`.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlc.ir.dtypes import DType

Dim = int | str | None
Shape = tuple[Dim, ...]


@dataclass(frozen=True, slots=True)
class TensorType:
    dtype: DType
    shape: Shape | None = None

    @property
    def rank(self) -> int | None:
        return None if self.shape is None else len(self.shape)

    @property
    def is_static(self) -> bool:
        return self.shape is not None and all(isinstance(d, int) for d in self.shape)

    def accepts_shape(self, dims: tuple[int, ...] | list[int]) -> bool:
        """Whether concrete `dims` fit this type: the same rank (if known) and every static dim
        equal (symbolic and unknown dims take any size)."""
        if self.shape is None:
            return True
        return len(self.shape) == len(dims) and all(not isinstance(d, int) or d == n
                                                    for d, n in zip(self.shape, dims, strict=True))

    def shape_text(self) -> str:
        """The declared dims for a message: numbers, symbolic names, `?` where unknown."""
        return "unknown rank" if self.shape is None else \
            "[" + ",".join("?" if d is None else str(d) for d in self.shape) + "]"


@dataclass(frozen=True, slots=True)
class SparseTensorType:
    dtype: DType
    shape: Shape | None = None


@dataclass(frozen=True, slots=True)
class SequenceType:
    elem: Type | None


@dataclass(frozen=True, slots=True)
class OptionalType:
    elem: Type | None


@dataclass(frozen=True, slots=True)
class MapType:
    key: DType
    value: Type | None


@dataclass(frozen=True, slots=True)
class OpaqueType:
    domain: str
    name: str


Type = TensorType | SparseTensorType | SequenceType | OptionalType | MapType | OpaqueType
