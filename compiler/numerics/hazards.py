"""Numeric hazards in a model's constants: NaN, Inf, values that overflow a narrower float type,
and subnormal (denormal) values.

A model downloaded from the internet may carry weights that were NaN or Inf before export (a
diverged fine-tune, a float16 conversion that overflowed) or float32 constants cast to float16
at run time whose magnitude exceeds 65504. Every output they reach is then NaN or Inf, and a
check against the original cannot notice (the original computes the same garbage). `mlc inspect`
therefore names them before anything runs.

Scanned: initializers (sparse ones too), the tensors of Constant nodes and every other node's
tensor attributes (ConstantOfShape's value), their float attributes (`value_float(s)`), in the
main graph, in every sub-graph (If/Loop/Scan bodies) and in model-local functions. Kinds:

- `nan`, `inf`: non-finite elements of a float constant;
- `overflow`: finite elements of a constant that a Cast/CastLike narrows to a float type whose
  largest finite value they exceed (a float32 constant of 1e5 cast to float16 becomes Inf);
- `subnormal`: nonzero elements smaller than their type's smallest normal. They are kept as
  they are (IEEE), by the reference and by both targets (see `mlc.numerics.denormals`), and are
  reported because an engine that flushes them to zero would compute other numbers.

Each finding names the tensor, where it lives, its type, the count and the first index in C
order. A splat (one value repeated) is judged by its one value; huge tensors are read in chunks
so that a scan never holds more than a few MB of temporaries.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlc.ir.attributes import AttrType
from mlc.ir.core import Graph, Node, Value
from mlc.ir.dtypes import DType
from mlc.ir.tensor import SparseTensor, Tensor, TensorDataUnavailable
from mlc.ir.types import TensorType
from mlc.numerics.narrowing import float_limits, type_name

NAN, INF, OVERFLOW, SUBNORMAL = "nan", "inf", "overflow", "subnormal"
KINDS = (NAN, INF, OVERFLOW, SUBNORMAL)
_LABEL = {NAN: "NaN", INF: "Inf", OVERFLOW: "overflow", SUBNORMAL: "subnormal"}
_CHUNK = 1 << 20  # elements per slice of a large tensor
# float types numpy (with ml_dtypes) can hold; the 4- and 6-bit ones have neither NaN nor Inf
_SCANNED = {DType.FLOAT, DType.DOUBLE, DType.FLOAT16, DType.BFLOAT16, DType.FLOAT8E4M3FN,
            DType.FLOAT8E4M3FNUZ, DType.FLOAT8E5M2, DType.FLOAT8E5M2FNUZ}
_NARROW = {DType.FLOAT16, DType.BFLOAT16, DType.FLOAT8E4M3FN, DType.FLOAT8E4M3FNUZ, DType.FLOAT8E5M2,
           DType.FLOAT8E5M2FNUZ, DType.FLOAT}


@dataclass(frozen=True)
class Hazard:
    """`count` elements of kind `kind` in constant `tensor` (of `dtype`), the first at `first_index`."""

    kind: str
    tensor: str
    where: str  # "initializer", "Constant node 'c'", "attribute value of ConstantOfShape 'k'", + sub-graph
    dtype: str
    count: int
    size: int
    first_index: tuple[int, ...]
    first_value: float
    target: str = ""  # overflow: the type the constant is cast to
    cast_by: str = ""  # overflow: the node that casts it (`Cast 'c'`)

    def describe(self) -> str:
        """`3 NaN in conv1.weight (first at [0, 2, 1, 1])`; where it lives is added for all but
        initializers of the main graph."""
        at = f"first at {list(self.first_index)}"
        if self.where != "initializer":
            at = f"{self.where}; {at}"
        plural = "s" if self.count != 1 else ""
        if self.kind == OVERFLOW:
            by = f" at {self.cast_by}" if self.cast_by else ""
            return (f"{self.count} {self.dtype} value{plural} of {self.tensor} overflow {self.target}{by} "
                    f"({at}: {self.first_value:.6g})")
        if self.kind == SUBNORMAL:
            return f"{self.count} subnormal {self.dtype} value{plural} in {self.tensor} ({at}: {self.first_value:.3g})"
        if self.kind == INF:
            return f"{self.count} Inf in {self.tensor} ({at}: {self.first_value:+})"
        return f"{self.count} NaN in {self.tensor} ({at})"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "tensor": self.tensor, "where": self.where, "dtype": self.dtype,
                "count": self.count, "size": self.size, "first_index": list(self.first_index),
                "first_value": _json_float(self.first_value), "target": self.target or None,
                "cast_by": self.cast_by or None}


@dataclass
class HazardScan:
    """What a scan found, and the constants it could not read (their values are not loaded)."""

    hazards: list[Hazard] = field(default_factory=list)
    scanned: int = 0
    unread: list[str] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[Hazard]:
        return [h for h in self.hazards if h.kind == kind]

    @property
    def has_non_finite(self) -> bool:
        """NaN, Inf or overflow anywhere: outputs they reach cannot be checked against the original."""
        return any(h.kind != SUBNORMAL for h in self.hazards)

    def lines(self, limit: int = 3) -> list[str]:
        """One line per kind found, for `mlc inspect`:
        `weights: 3 NaN in conv1.weight (first at [0, 2, 1, 1]); 1 NaN in fc.bias (first at [7])`.
        At most `limit` tensors are named per line; the rest are counted."""
        lines = []
        for kind in KINDS:
            found = self.of_kind(kind)
            if not found:
                continue
            text = "; ".join(h.describe() for h in found[:limit])
            if len(found) > limit:
                rest = sum(h.count for h in found[limit:])
                text += f"; {rest} more in {len(found) - limit} other tensors"
            lines.append(f"weights: {text}")
        if self.unread:
            lines.append(f"weights: {len(self.unread)} constants not scanned (values not loaded): "
                         f"{', '.join(self.unread[:3])}")
        return lines

    def to_json(self) -> list[dict[str, Any]]:
        """The findings as a list, for a JSON report (`numeric_hazards`)."""
        return [h.to_json() for h in self.hazards]


def _json_float(value: float) -> float | str:
    """JSON has no NaN or Inf: those are written as strings."""
    return value if np.isfinite(value) else str(value)


# ===================================================================== scanning one array
def _first(mask: np.ndarray) -> int:
    return int(np.argmax(mask))


def _chunks(flat: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """Slices of `flat` in float32 or float64 (narrower types widened: exact, and faster than
    numpy's emulated float16)."""
    native = flat.dtype in (np.float32, np.float64)
    for start in range(0, flat.size, _CHUNK):
        part = flat[start:start + _CHUNK]
        yield start, part if native else np.asarray(part, dtype=np.float32)


@dataclass
class _Tally:
    count: int = 0
    first: int = -1
    value: float = 0.0

    def add(self, start: int, chunk: np.ndarray, mask: np.ndarray) -> None:
        n = int(np.count_nonzero(mask))
        if n and self.first < 0:
            i = _first(mask)
            self.first, self.value = start + i, float(chunk[i])
        self.count += n


def scan_array(array: np.ndarray, *, overflow_limit: float | None = None) -> dict[str, tuple[int, int, float]]:
    """{kind: (count, first flat index, first value)} for one float array. `overflow_limit` is
    the largest finite value of the type the array is cast to (None: not cast)."""
    flat = np.asarray(array).reshape(-1)
    _, smallest_normal = float_limits(flat.dtype)
    tallies = {kind: _Tally() for kind in KINDS}
    with np.errstate(invalid="ignore", over="ignore"):
        for start, chunk in _chunks(flat):
            magnitude = np.abs(chunk)
            tallies[NAN].add(start, chunk, np.isnan(chunk))
            tallies[INF].add(start, chunk, np.isinf(chunk))
            tallies[SUBNORMAL].add(start, chunk, (magnitude > 0) & (magnitude < smallest_normal))
            if overflow_limit is not None:
                tallies[OVERFLOW].add(start, chunk, np.isfinite(chunk) & (magnitude > overflow_limit))
    return {kind: (t.count, t.first, t.value) for kind, t in tallies.items() if t.count}


# ===================================================================== walking the model
@dataclass(frozen=True)
class _Constant:
    tensor: Tensor | SparseTensor
    name: str
    where: str


def _graph_where(graph: Graph) -> str:
    """` in the body of Loop 'l'` for a sub-graph, '' for the main graph."""
    parent = graph.parent
    if parent is None:
        return ""
    role = next((key for key, attr in parent.attributes.items() if graph in attr.subgraphs()), "sub-graph")
    return f" in the {role} of {_node_label(parent)}{_graph_where(parent.graph) if parent.graph else ''}"


def _node_label(node: Node) -> str:
    return f"{node.op_type} {node.name!r}" if node.name else node.op_type


def _constants(graph: Graph, context: str = "") -> Iterator[_Constant]:
    seen: set[int] = set()
    for sub in graph.all_graphs():
        inside = context + _graph_where(sub) if sub is not graph else context
        for value in [*sub.initializers.values(), *sub.sparse_initializers.values()]:
            if value.const is not None and id(value.const) not in seen:
                seen.add(id(value.const))
                yield _Constant(value.const, value.name, "initializer" + inside)
        for node in sub:
            for key, attr in node.attributes.items():
                holders: list[Any] = []
                if attr.type in (AttrType.TENSOR, AttrType.SPARSE_TENSOR):
                    holders = [attr.value]
                elif attr.type in (AttrType.TENSORS, AttrType.SPARSE_TENSORS):
                    holders = list(attr.value or [])
                elif attr.type in (AttrType.FLOAT, AttrType.FLOATS):
                    holders = [Tensor.from_array(np.asarray(attr.value, dtype=np.float32))]
                for item in holders:
                    if item is None or id(item) in seen:
                        continue
                    seen.add(id(item))
                    out = node.outputs[0] if node.outputs else None
                    is_constant = node.op_type == "Constant" and node.domain == ""
                    name = out.name if is_constant and out is not None else f"{_node_label(node)}.{key}"
                    where = (f"Constant node {node.name!r}" if is_constant and node.name else
                             "Constant node" if is_constant else f"attribute {key} of {_node_label(node)}")
                    yield _Constant(item, name, where + inside)


def _constant_tensor(value: Value | None) -> Tensor | None:
    """The dense tensor a value holds: an initializer, or a Constant node's `value`."""
    if value is None:
        return None
    if isinstance(value.const, Tensor):
        return value.const
    producer = value.producer
    if producer is not None and producer.op_type == "Constant" and producer.domain == "":
        held = producer.attr("value")
        return held if isinstance(held, Tensor) else None
    return None


def _dtype_or_none(code: Any) -> DType | None:
    try:
        return DType(int(code)) if code is not None else None
    except (TypeError, ValueError):
        return None


def _cast_targets(graph: Graph) -> dict[int, tuple[DType, str]]:
    """id(tensor) -> (narrower float type, `Cast 'c'`) for constants a Cast/CastLike narrows."""
    targets: dict[int, tuple[DType, str]] = {}
    for node in graph.all_nodes():
        if node.op_type not in ("Cast", "CastLike") or node.domain != "" or not node.inputs:
            continue
        tensor = _constant_tensor(node.inputs[0])
        if tensor is None or tensor.dtype not in _SCANNED:
            continue
        if node.op_type == "Cast":
            target = _dtype_or_none(node.attr("to"))
        else:
            like = node.inputs[1] if len(node.inputs) > 1 else None
            target = like.type.dtype if like is not None and isinstance(like.type, TensorType) else None
        if target is not None and target in _NARROW and \
                float_limits(target.numpy)[0] < float_limits(tensor.dtype.numpy)[0]:
            targets.setdefault(id(tensor), (target, _node_label(node)))
    return targets


def _index(constant: _Constant, flat_index: int) -> tuple[int, ...]:
    tensor = constant.tensor
    if isinstance(tensor, SparseTensor):  # a position in `values`: its dense index from `indices`
        indices = tensor.indices.numpy()
        if indices.ndim == 2:
            return tuple(int(i) for i in indices[flat_index])
        return tuple(int(i) for i in np.unravel_index(int(indices.reshape(-1)[flat_index]), tensor.dims))
    shape = tuple(tensor.shape)
    return tuple(int(i) for i in np.unravel_index(flat_index, shape)) if shape else ()


def _scan_one(constant: _Constant, cast: tuple[DType, str] | None, scan: HazardScan) -> None:
    tensor = constant.tensor
    dense = tensor.values if isinstance(tensor, SparseTensor) else tensor
    if dense.dtype not in _SCANNED:
        return
    if not dense.has_data:
        scan.unread.append(constant.name)
        return
    limit = float_limits(cast[0].numpy)[0] if cast is not None else None
    size = dense.size if isinstance(tensor, Tensor) else int(np.prod(tensor.dims))
    try:
        if dense.is_splat:  # one value stands for all: judge it once
            found = {k: (dense.size, 0, v) for k, (_, _, v) in
                     scan_array(np.asarray([dense.splat_value], dtype=dense.dtype.numpy), overflow_limit=limit).items()}
        else:
            found = scan_array(dense.numpy(), overflow_limit=limit)
    except (TensorDataUnavailable, OSError, ValueError):
        scan.unread.append(constant.name)
        return
    scan.scanned += 1
    for kind, (count, first, value) in found.items():
        scan.hazards.append(Hazard(kind, constant.name, constant.where, type_name(dense.dtype.numpy), count, size,
                                   _index(constant, first), value,
                                   target=type_name(cast[0].numpy) if kind == OVERFLOW and cast else "",
                                   cast_by=cast[1] if kind == OVERFLOW and cast else ""))


def scan_constants(graph: Graph) -> HazardScan:
    """Scan every constant of `graph` (the main graph of an imported model), its sub-graphs and
    its model's local functions, for NaN, Inf, narrowing overflow and subnormal values."""
    scan = HazardScan()
    graphs: list[tuple[Graph, str]] = [(graph, "")]
    model = graph.model
    for function in (model.functions if model is not None else []):
        graphs.append((function.body, f" in function {function.domain}::{function.name}"))
    for body, context in graphs:
        targets = _cast_targets(body)
        for constant in _constants(body, context):
            _scan_one(constant, targets.get(id(constant.tensor)), scan)
    return scan


__all__ = ["INF", "KINDS", "NAN", "OVERFLOW", "SUBNORMAL", "Hazard", "HazardScan", "scan_array", "scan_constants"]
