"""Where the elements of a shape-like int tensor come from: constants, or dims read by a Shape.

legalize-tvm-shapes rewrites a computation only when it can name, for every element of a shape or
limit, the constant or the dim `axis` of a value (`DimOf`) it is at run time: then it can rebuild
it from a Shape TVM follows. The trace goes through Shape (with start/end), Identity, Squeeze,
Unsqueeze, Reshape, Flatten, Cast, Concat, Gather and Slice; `partial_elements` also accepts
Concats whose pieces are computed from values (dynamo's (h - 1) // 16 + 1 of a sym_size).
"""

from __future__ import annotations

from typing import TypeAlias

import numpy as np

from mlc.ir.core import Node, Value
from mlc.ir.dtypes import DType
from mlc.passes._match_basics import STANDARD, const_array
from mlc.passes._transformer_match import dims_of

DimOf: TypeAlias = tuple[Value, int]  # dim `axis` of a value, as its Shape reads it at run time
Element: TypeAlias = int | DimOf  # one element of a shape-like int tensor


def rank_of(value: Value | None) -> int | None:
    shape = dims_of(value)
    return None if shape is None else len(shape)


def shape_bounds(node: Node, rank: int) -> tuple[int, int]:
    """The [start, end) of the dims a Shape node returns (opset 15 start/end, clamped)."""
    start, end = int(node.attr("start", 0)), int(node.attr("end", rank))
    start, end = (start + rank if start < 0 else start), (end + rank if end < 0 else end)
    return min(max(start, 0), rank), min(max(end, 0), rank)


def elements(value: Value | None, depth: int = 0) -> list[Element] | None:
    """Where each element of a shape-like int tensor comes from, flattened: an int constant, or
    dim `axis` of a value (read by a Shape at run time); None when some element is computed."""
    if value is None or depth > 16:
        return None
    array = const_array(value, constant_nodes=True)
    if array is not None:
        if array.dtype.kind in "iu":
            return [int(v) for v in array.reshape(-1)]
        if array.dtype.kind == "f" and np.all(np.isfinite(array)) and np.all(array == np.round(array)):
            return [int(v) for v in array.reshape(-1)]
        return None
    node = value.producer
    if node is None or node.domain not in STANDARD or not node.inputs:
        return None
    op, first = node.op_type, node.inputs[0]
    if op == "Shape":
        rank = rank_of(first)
        if rank is None or first is None:
            return None
        start, end = shape_bounds(node, rank)
        return [(first, axis) for axis in range(start, end)]
    if op in ("Identity", "Squeeze", "Unsqueeze", "Reshape", "Flatten"):  # the flat order stays
        return elements(first, depth + 1)
    if op == "Cast":
        to = DType(int(node.attr("to", 0)))
        return elements(first, depth + 1) if to.numpy is not None and np.dtype(to.numpy).kind in "iuf" else None
    if op == "Concat":
        if rank_of(value) != 1:
            return None
        joined: list[Element] = []
        for part in node.inputs:
            found = elements(part, depth + 1)
            if found is None:
                return None
            joined.extend(found)
        return joined
    if op == "Gather":
        data, index = elements(first, depth + 1), const_array(node.inputs[1], constant_nodes=True)
        if data is None or index is None or rank_of(first) != 1 or index.dtype.kind not in "iu":
            return None
        picked = [int(i) + len(data) if int(i) < 0 else int(i) for i in index.reshape(-1)]
        return [data[i] for i in picked] if all(0 <= i < len(data) for i in picked) else None
    if op == "Slice":
        data = elements(first, depth + 1)
        bounds = [const_array(node.inputs[i], constant_nodes=True) if i < len(node.inputs) else None
                  for i in range(1, 5)]
        if data is None or rank_of(first) != 1 or bounds[0] is None or bounds[1] is None:
            return None
        if bounds[2] is not None and [int(a) for a in bounds[2].reshape(-1)] not in ([0], [-1]):
            return None
        step = int(bounds[3].reshape(-1)[0]) if bounds[3] is not None else 1
        if step == 0:
            return None
        start, end = int(bounds[0].reshape(-1)[0]), int(bounds[1].reshape(-1)[0])
        return data[slice(start, end, step)]  # Python's slicing clamps as ONNX does
    return None


def partial_elements(value: Value | None, depth: int = 0) -> list[Element | None] | None:
    """`elements`, with None for the elements computed from values (dynamo's (h - 1) // 16 + 1
    built from a sym_size): through Concats of shape pieces whose lengths are static."""
    found = elements(value)
    if found is not None or value is None or depth > 16:
        return list(found) if found is not None else None
    node = value.producer
    if node is None or node.domain not in STANDARD or node.op_type != "Concat" or rank_of(value) != 1:
        return None
    joined: list[Element | None] = []
    for part in node.inputs:
        inner = partial_elements(part, depth + 1)
        if inner is None:
            shape = dims_of(part)
            if shape is None or len(shape) > 1 or not all(isinstance(d, int) for d in shape):
                return None
            inner = [None] * (int(shape[0]) if shape else 1)  # type: ignore[arg-type]
        joined.extend(inner)
    return joined


__all__ = ["DimOf", "Element", "elements", "partial_elements", "rank_of", "shape_bounds"]
