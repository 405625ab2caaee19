"""What fold-constants can read off the IR without evaluating: Constant nodes' attributes, static
Shape dims, the output shape of layout ops that keep values in order (so a splat stays a splat), and
how results are stored (an all-equal array as a splat). Also the two checks on evaluated results that
keep a fold faithful to what the runtime computes: Slice starts as ONNX clamps them, and narrow-float
overflow the runtime would not make.
"""

from __future__ import annotations

import numpy as np

from mlc.ir.attributes import AttrType
from mlc.ir.core import Node, Value
from mlc.ir.dtypes import DType
from mlc.ir.tensor import Tensor
from mlc.ir.types import TensorType
from mlc.passes._slicing import python_start, shape_range

LAYOUT_OPS = {"Identity", "Unsqueeze", "Squeeze", "Flatten", "Reshape"}
_CONSTANT_ATTRS = {"value_float": np.float32, "value_floats": np.float32, "value_int": np.int64,
                   "value_ints": np.int64}


def constant_tensor(value: Value | None) -> Tensor | None:
    """The tensor of a constant value with its data at hand, else None."""
    if value is None or not value.is_constant or not isinstance(value.const, Tensor):
        return None
    return value.const if value.const.has_data else None


def shape_dims(node: Node) -> np.ndarray | None:
    """Shape's output when the dims it asks for are static ints."""
    source = node.inputs[0]
    if source is None or not isinstance(source.type, TensorType) or source.type.shape is None:
        return None
    dims = source.type.shape
    start, end = shape_range(node, len(dims))
    wanted = dims[start:end]
    if not all(isinstance(d, int) for d in wanted):
        return None
    return np.array(wanted, dtype=np.int64)


def constant_node_tensor(node: Node) -> Tensor | None:
    for name, attr in node.attributes.items():
        if attr.ref is not None:
            return None
        if name == "value" and attr.type == AttrType.TENSOR:
            return attr.value if isinstance(attr.value, Tensor) else None
        if name in _CONSTANT_ATTRS:
            return Tensor.from_array(np.array(attr.value, dtype=_CONSTANT_ATTRS[name]))
        if name in ("value_string", "value_strings"):
            return Tensor.from_array(np.array(attr.value, dtype=object), DType.STRING)
    return None  # sparse_value stays a node: the IR keeps sparse constants as initializers only


def as_tensor(array: np.ndarray, dtype: DType) -> Tensor:
    """A splat when every element is equal (cheap to store whatever the shape)."""
    if dtype != DType.STRING and array.size > 1:
        flat = array.reshape(-1)
        first = flat[0]
        same = flat == first
        if dtype.is_float and first != first:  # NaN: equal only to NaNs
            same = flat != flat
        if bool(np.all(same)):
            return Tensor.splat_of(first, dtype, array.shape)
    return Tensor.from_array(array, dtype)


def _axes(node: Node, inputs: list[Tensor | None]) -> list[int] | None:
    """Unsqueeze/Squeeze axes: an attribute before opset 13, the second input from 13 on."""
    if len(inputs) > 1 and inputs[1] is not None:
        return [int(a) for a in inputs[1].numpy().reshape(-1)]
    axes = node.attr("axes")
    return None if axes is None else [int(a) for a in axes]


def layout_shape(node: Node, inputs: list[Tensor | None]) -> tuple[int, ...] | None:
    """The output shape of a data-preserving layout op (the values keep their order, so a splat
    stays a splat and an array is reshaped), or None when the op is not one of them."""
    op, data = node.op_type, inputs[0]
    assert data is not None
    shape = list(data.shape)
    if op == "Identity":
        return tuple(shape)
    if op == "Unsqueeze":
        axes = _axes(node, inputs)
        if axes is None:
            return None
        rank = len(shape) + len(axes)
        for axis in sorted(a + rank if a < 0 else a for a in axes):
            shape.insert(axis, 1)
        return tuple(shape)
    if op == "Squeeze":
        axes = _axes(node, inputs)
        if axes is None:
            return tuple(d for d in shape if d != 1)
        drop = {a + len(shape) if a < 0 else a for a in axes}
        if any(shape[a] != 1 for a in drop):
            return None
        return tuple(d for i, d in enumerate(shape) if i not in drop)
    if op == "Flatten":
        axis = node.attr("axis", 1)
        axis = axis + len(shape) if axis < 0 else axis
        return (int(np.prod(shape[:axis], dtype=np.int64)), int(np.prod(shape[axis:], dtype=np.int64)))
    if op == "Reshape" and inputs[1] is not None and not node.attr("allowzero", 0):
        target = [int(d) for d in inputs[1].numpy().reshape(-1)]
        target = [shape[i] if d == 0 else d for i, d in enumerate(target)]
        if target.count(-1) == 1:
            known = int(np.prod([d for d in target if d != -1], dtype=np.int64))
            if known == 0:
                return None
            target[target.index(-1)] = data.size // known
        return tuple(target) if int(np.prod(target, dtype=np.int64)) == data.size else None
    return None


def narrow_overflow(inputs: list[np.ndarray | None], outputs: list[np.ndarray | None]) -> int:
    """How many elements of the narrow-float (float16, bfloat16, float8) outputs are Inf although
    every float input is finite: a folded overflow that the runtime may not make (0 if none)."""
    narrow = [a for a in outputs if a is not None and a.dtype.kind in "fV" and a.dtype.itemsize <= 2
              and a.dtype != np.bool_]
    if not narrow:
        return 0
    for array in inputs:
        if array is not None and array.dtype.kind in "fV" and array.dtype != np.bool_ and array.size \
                and not np.all(np.isfinite(array.astype(np.float32))):
            return 0
    return sum(int(np.isinf(a.astype(np.float32)).sum()) for a in narrow)


def onnx_slice_starts(arrays: list[np.ndarray | None]) -> list[np.ndarray | None]:
    """Slice's inputs with the starts Python's slicing reads as ONNX reads them: the reference
    evaluator slices like Python, which empties a negative-step slice whose start lies before the
    axis, where ONNX clamps it to 0 (`mlc.passes._slicing`; fuzz seed 168). Only opset-10+ Slices
    have steps, so only they can differ."""
    if len(arrays) < 5 or any(a is None for a in arrays[:2]) or arrays[4] is None:
        return arrays
    data, starts, steps = arrays[0], arrays[1], arrays[4]
    assert data is not None and starts is not None and steps is not None
    axes = arrays[3] if arrays[3] is not None else np.arange(starts.size)
    fixed = starts.reshape(-1).copy()
    for i, (axis, step) in enumerate(zip(axes.reshape(-1), steps.reshape(-1), strict=False)):
        dim = data.shape[int(axis) % max(data.ndim, 1)] if data.ndim else 0
        fixed[i] = python_start(int(fixed[i]), int(step), dim)
    return [data, fixed.reshape(starts.shape), *arrays[2:]]
