"""Dims read from Shape: which dim of which value a Gather(Shape(x), j) (or a Slice of it)
holds, so that fusions can tell two dims are the same without a static shape."""

from __future__ import annotations

from mlc.ir.core import Value
from mlc.ir.tensor import Tensor
from mlc.passes._transformer_match import dims_of


def const_ints(value: Value | None) -> list[int] | None:
    """The flattened values of an integer constant, or None."""
    if value is None or not value.is_constant or not isinstance(value.const, Tensor) or not value.const.has_data:
        return None
    array = value.const.numpy()
    if array.dtype.kind not in "iu":
        return None
    return [int(v) for v in array.reshape(-1)]


def dim_source(part: Value) -> tuple[Value, int] | None:
    """(x, j) when `part` is a 1-element tensor holding dim j of x: Unsqueeze(Gather(Shape(x), j)),
    Gather(Shape(x), [j]), Slice(Shape(x), j, j+1) or Shape(x) {start=j, end=j+1}."""
    node = part.producer
    if node is None:
        return None
    if node.op_type == "Unsqueeze":
        inner = node.inputs[0]
        gather = inner.producer if inner is not None else None
        if gather is None or gather.op_type != "Gather" or gather.attr("axis", 0) != 0:
            return None
        index = const_ints(gather.inputs[1])
        shape_of = shape_source(gather.inputs[0])
        if index is None or len(index) != 1 or shape_of is None:
            return None
        x, offset = shape_of
        return _normalized_dim(x, index[0] + offset if index[0] >= 0 else index[0])
    if node.op_type == "Gather" and node.attr("axis", 0) == 0:
        index = const_ints(node.inputs[1])
        shape_of = shape_source(node.inputs[0])
        if index is None or len(index) != 1 or shape_of is None or node.inputs[1].const.shape != (1,):  # type: ignore[union-attr]
            return None
        x, offset = shape_of
        return _normalized_dim(x, index[0] + offset if index[0] >= 0 else index[0])
    if node.op_type == "Slice":
        starts, ends = const_ints(node.inputs[1]), const_ints(node.inputs[2])
        axes = const_ints(node.inputs[3]) if len(node.inputs) > 3 else [0]
        steps = const_ints(node.inputs[4]) if len(node.inputs) > 4 else [1]
        shape_of = shape_source(node.inputs[0])
        if (shape_of is None or starts is None or ends is None or axes != [0] or steps not in ([1], None)
                or len(starts) != 1 or len(ends) != 1 or starts[0] < 0 or ends[0] != starts[0] + 1):
            return None
        x, offset = shape_of
        return _normalized_dim(x, starts[0] + offset)
    if node.op_type == "Shape":
        shape_of = shape_source(part)
        dims = dims_of(node.inputs[0])
        if shape_of is None or dims is None:
            return None
        x, offset = shape_of
        end = node.attr("end", len(dims))
        end = end + len(dims) if end < 0 else end
        return (x, offset) if min(end, len(dims)) == offset + 1 else None
    return None


def shape_source(value: Value | None) -> tuple[Value, int] | None:
    """(x, start) when `value` is Shape(x) {start=start}."""
    node = value.producer if value is not None else None
    if node is None or node.op_type != "Shape" or node.inputs[0] is None:
        return None
    dims = dims_of(node.inputs[0])
    start = node.attr("start", 0)
    if start < 0:
        if dims is None:
            return None
        start += len(dims)
    return node.inputs[0], start


def _normalized_dim(x: Value, j: int) -> tuple[Value, int] | None:
    dims = dims_of(x)
    if j < 0:
        if dims is None:
            return None
        j += len(dims)
    return x, j


def same_dim(a: Value, i: int, b: Value, j: int) -> bool:
    """Whether dim i of a is dim j of b: the same tensor and position, or the same known dim/symbol."""
    if a is b and i == j:
        return True
    da, db = dims_of(a), dims_of(b)
    if da is None or db is None or i >= len(da) or j >= len(db):
        return False
    return da[i] is not None and da[i] == db[j]
