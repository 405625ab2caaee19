"""Node attributes: every ONNX attribute kind, with the kind kept explicit so that empty lists
and ints-vs-floats survive a round trip."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mlc.ir.irerror import IRError
from mlc.ir.tensor import SparseTensor, Tensor

if TYPE_CHECKING:
    from mlc.ir.core import Graph


class AttrType(enum.IntEnum):
    """Attribute kinds; codes are ONNX's AttributeProto.AttributeType."""

    UNDEFINED = 0
    FLOAT = 1
    INT = 2
    STRING = 3
    TENSOR = 4
    GRAPH = 5
    FLOATS = 6
    INTS = 7
    STRINGS = 8
    TENSORS = 9
    GRAPHS = 10
    SPARSE_TENSOR = 11
    SPARSE_TENSORS = 12
    TYPE_PROTO = 13
    TYPE_PROTOS = 14


LIST_ATTR_TYPES = {AttrType.FLOATS, AttrType.INTS, AttrType.STRINGS, AttrType.TENSORS,
                   AttrType.GRAPHS, AttrType.SPARSE_TENSORS, AttrType.TYPE_PROTOS}


@dataclass(slots=True)
class Attr:
    """A node attribute. `value` is a Python scalar/str/bytes, a Tensor, SparseTensor, Type, Graph,
    or a list of those; `ref` names the enclosing function's attribute it refers to (functions only).

    Strings are `str` when they are valid UTF-8 and `bytes` otherwise, so that export writes back
    the very same bytes.
    """

    name: str
    type: AttrType
    value: Any = None
    ref: str | None = None
    doc_string: str = ""

    def __post_init__(self) -> None:
        self.type = AttrType(self.type)  # the member itself, never a bare code: walks compare by identity

    @classmethod
    def infer(cls, name: str, value: Any) -> Attr:
        """Build an attribute from a Python value, guessing its kind (pass an `Attr` to be explicit)."""
        from mlc.ir.core import Graph  # core imports this module

        if isinstance(value, Attr):
            return value
        if isinstance(value, bool | int | np.integer):
            return cls(name, AttrType.INT, int(value))
        if isinstance(value, float | np.floating):
            return cls(name, AttrType.FLOAT, float(np.float32(value)))
        if isinstance(value, str | bytes):
            return cls(name, AttrType.STRING, value)
        if isinstance(value, Tensor):
            return cls(name, AttrType.TENSOR, value)
        if isinstance(value, np.ndarray):
            return cls(name, AttrType.TENSOR, Tensor.from_array(value))
        if isinstance(value, SparseTensor):
            return cls(name, AttrType.SPARSE_TENSOR, value)
        if isinstance(value, Graph):
            return cls(name, AttrType.GRAPH, value)
        if isinstance(value, Sequence):
            items = list(value)
            if not items:
                raise IRError(f"attribute {name!r}: the kind of an empty list is ambiguous; pass an Attr")
            first = items[0]
            if all(isinstance(v, bool | int | np.integer) for v in items):
                return cls(name, AttrType.INTS, [int(v) for v in items])
            if all(isinstance(v, int | float | np.number) for v in items):
                return cls(name, AttrType.FLOATS, [float(np.float32(v)) for v in items])
            if isinstance(first, str | bytes):
                return cls(name, AttrType.STRINGS, items)
            if isinstance(first, Tensor):
                return cls(name, AttrType.TENSORS, items)
            if isinstance(first, Graph):
                return cls(name, AttrType.GRAPHS, items)
            if isinstance(first, SparseTensor):
                return cls(name, AttrType.SPARSE_TENSORS, items)
            return cls(name, AttrType.TYPE_PROTOS, items)
        return cls(name, AttrType.TYPE_PROTO, value)

    def subgraphs(self) -> list[Graph]:
        if self.type == AttrType.GRAPH:
            return [self.value]
        if self.type == AttrType.GRAPHS:
            return list(self.value)
        return []
