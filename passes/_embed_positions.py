"""Position ids 0..S-1 as exporters write them, for `fuse-embed-layernorm`.

EmbedLayerNormalization computes the positions 0..S-1 itself, so the position term of the
embedding sum may only be fused when it indexes exactly those: a Slice of a constant [1, N] arange
on axis 1 up to the sequence length of the ids (torch's `position_ids[:, :seq_len]`), GPT-2's
`Unsqueeze(Range(0, S, 1), [0])`, or a constant arange matching a static sequence length. The
sequence length must be read from the ids themselves (`Gather(Shape(ids), 1)`).
"""

from __future__ import annotations

import numpy as np

from mlc.ir.core import Node, Value
from mlc.ir.types import TensorType
from mlc.passes._match_basics import const_array


def is_arange(array: np.ndarray) -> bool:
    """A [1, N] constant holding 0..N-1."""
    flat = array.reshape(-1)
    return array.ndim == 2 and array.shape[0] == 1 and bool(np.array_equal(flat, np.arange(flat.size)))


def positions_of(positions: Value, ids: Value) -> bool:
    """Whether `positions` is 0..S-1 for the sequence axis of `ids` (shape [1, S])."""
    constant = const_array(positions)
    if constant is not None:
        ids_shape = ids.type.shape if isinstance(ids.type, TensorType) else None
        return is_arange(constant) and ids_shape is not None and ids_shape[-1] == constant.shape[1]
    node = positions.producer
    if node is not None and node.op_type == "Unsqueeze":
        return _is_unsqueezed_range(node, ids)
    if node is None or node.op_type != "Slice" or len(node.inputs) < 3:
        return False
    return _is_sliced_arange(node, ids)


def _is_sliced_arange(node: Node, ids: Value) -> bool:
    """Slice(arange [1, N], 0, S, axes=[1], steps=[1]) with S the sequence length of ids."""
    table = const_array(node.inputs[0])
    starts, axes = const_array(node.inputs[1]), const_array(node.inputs[3]) if len(node.inputs) > 3 else None
    steps = const_array(node.inputs[4]) if len(node.inputs) > 4 and node.inputs[4] is not None else None
    if table is None or not is_arange(table) or starts is None or starts.reshape(-1).tolist() != [0]:
        return False
    if axes is None or axes.reshape(-1).tolist() not in ([1], [-1]):
        return False
    if steps is not None and steps.reshape(-1).tolist() != [1]:
        return False
    return _is_sequence_length(node.inputs[2], ids)


def _is_unsqueezed_range(unsqueeze: Node, ids: Value) -> bool:
    """Unsqueeze(Range(0, S, 1), [0]) with S the sequence length of ids (GPT-2's position_ids)."""
    axes = const_array(unsqueeze.inputs[1]) if len(unsqueeze.inputs) > 1 else None
    if axes is None and unsqueeze.attr("axes") is not None:
        axes = np.array(unsqueeze.attr("axes"))
    arange = unsqueeze.inputs[0].producer if unsqueeze.inputs[0] is not None else None
    if axes is None or axes.reshape(-1).tolist() != [0] or arange is None or arange.op_type != "Range":
        return False
    start, delta = const_array(arange.inputs[0]), const_array(arange.inputs[2])
    return (start is not None and delta is not None and start.size == 1 and delta.size == 1
            and int(start.reshape(-1)[0]) == 0 and int(delta.reshape(-1)[0]) == 1
            and _is_sequence_length(arange.inputs[1], ids))


def _is_sequence_length(value: Value | None, ids: Value) -> bool:
    """Unsqueeze(Gather(Shape(ids), 1 or -1)), or Gather(Shape(ids), 1 or [1])."""
    node = value.producer if value is not None else None
    if node is not None and node.op_type == "Unsqueeze":
        node = node.inputs[0].producer if node.inputs[0] is not None else None
    if node is None or node.op_type != "Gather":
        return False
    index = const_array(node.inputs[1])
    shape = node.inputs[0].producer if node.inputs[0] is not None else None
    return (index is not None and index.reshape(-1).tolist() in ([1], [-1]) and shape is not None
            and shape.op_type == "Shape" and shape.inputs[0] is ids and not shape.attributes)


__all__ = ["is_arange", "positions_of"]
