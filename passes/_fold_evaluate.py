"""The outputs of one node from its constant inputs: read off the IR where the op allows
(Constant, Shape, Size, ConstantOfShape, the layout ops), else computed by `evaluate_node`
(mlc.numerics), with a reason when a fold must not happen (`Reject`, counted under a statistic).
"""

from __future__ import annotations

import numpy as np

from mlc.ir.core import Node, Value
from mlc.ir.dtypes import DType
from mlc.ir.tensor import Tensor, TensorDataUnavailable
from mlc.ir.types import TensorType
from mlc.numerics.evaluate import EvaluationError, evaluate_node
from mlc.passes._fold_budget import static_bytes
from mlc.passes._fold_values import (
    LAYOUT_OPS,
    as_tensor,
    constant_node_tensor,
    constant_tensor,
    layout_shape,
    narrow_overflow,
    onnx_slice_starts,
    shape_dims,
)
from mlc.rewrite import Reject, label

Folded = list[Tensor | None]


def refusal(node: Node, why: str, count: str = "") -> Reject:
    """A fold refused, under the rule name the fold would have been counted as."""
    return Reject(f"fold-{node.op_type}", label(node), why, count)


def _read_off(node: Node, inputs: list[Tensor | None]) -> Folded | None:
    """The outputs of ops whose values need no evaluation (None: evaluate the node)."""
    op = node.op_type
    if op == "ConstantOfShape":
        shape = [int(d) for d in inputs[0].numpy().reshape(-1)]  # type: ignore[union-attr]
        attr = node.attributes.get("value")
        fill = attr.value if attr is not None and attr.ref is None else Tensor.from_array(np.zeros(1, np.float32))
        if fill.dtype == DType.STRING or fill.dtype.is_exotic or min(shape, default=1) < 0:
            return []  # not foldable at all
        return [Tensor.splat_of(fill.numpy().reshape(-1)[0], fill.dtype, shape)]
    data = inputs[0] if inputs else None
    if op in LAYOUT_OPS and data is not None:
        new_shape = layout_shape(node, inputs)
        if new_shape is not None:
            if data.is_splat:
                return [Tensor.splat_of(data.splat_value, data.dtype, new_shape)]
            if data.dtype != DType.STRING and not data.dtype.is_exotic:
                return [Tensor.from_array(data.numpy().reshape(new_shape), data.dtype)]
    return None


def _without_inputs(node: Node) -> Folded | None:
    """Constant, Shape and Size: values that come from attributes or static types."""
    if node.op_type == "Constant":
        tensor = constant_node_tensor(node)
        return None if tensor is None else [tensor]
    if node.op_type == "Shape":
        dims = shape_dims(node)
        return None if dims is None else [Tensor.from_array(dims)]
    source = node.inputs[0]
    t = source.type if source is not None else None
    if not isinstance(t, TensorType) or t.shape is None or not t.is_static:
        return None
    extents = [d for d in t.shape if isinstance(d, int)]  # all of them: the type is static
    return [Tensor.from_array(np.array(int(np.prod(extents, dtype=np.int64)), dtype=np.int64))]


def evaluate(node: Node, opsets: dict[str, int], limit: int, env: dict[Value, Tensor] | None = None
             ) -> Folded | Reject | None:
    """The node's outputs, from its constant inputs (and the tensors of `env`, for a region), a
    reason it must not fold, or None when its inputs are not all known."""
    if node.op_type in ("Constant", "Shape", "Size"):
        return _without_inputs(node)
    inputs = [None if v is None else env[v] if env is not None and v in env else constant_tensor(v)
              for v in node.inputs]
    if any(t is None for v, t in zip(node.inputs, inputs, strict=True) if v is not None):
        return None
    read = _read_off(node, inputs)
    if read is not None:
        return read or None
    size = static_bytes(node.outputs[0].type) if node.outputs[0] is not None else None
    if size is not None and size > limit:
        return refusal(node, f"its output would take {size} bytes (limit {limit})", "skipped_size")
    try:
        arrays = [t.numpy() if t is not None else None for t in inputs]
        if node.op_type == "Slice":
            arrays = onnx_slice_starts(arrays)
        results = evaluate_node(node, arrays, opsets)
    except (EvaluationError, TensorDataUnavailable, TypeError) as error:
        return refusal(node, f"the reference evaluator failed ({error})", "skipped_error")
    overflow = narrow_overflow(arrays, results)
    if overflow:
        return refusal(node, f"{overflow} elements of its result overflow to Inf from finite inputs (left to run "
                       "time: onnxruntime computes float16 ops without a float16 kernel in float32, unrounded "
                       "between them)")
    tensors: Folded = []
    for value, array in zip(node.outputs, results, strict=True):
        if value is None or array is None:
            tensors.append(None)
            continue
        declared = value.type.dtype if isinstance(value.type, TensorType) else DType.from_numpy(array.dtype)
        tensors.append(as_tensor(array, declared))
    return tensors
