"""The padding mask of an attention block: HF's extended attention mask, traced back to its 2-D source.

    mask = (1 - Cast(Unsqueeze(Unsqueeze(m, 1), 2))) * c        m: [B, S] 0/1, integer or bool

c is finfo(float32).min (BERT) or -10000 (older exports). com.microsoft's Attention and
MultiHeadAttention take m itself (as int32) and c as `mask_filter_value`.
"""

from __future__ import annotations

import numpy as np

from mlc.ir.core import Node, Value
from mlc.ir.dtypes import DType
from mlc.passes._attention_block import ExtendedMask, operand
from mlc.passes._match_basics import const_array, dtype_of, label
from mlc.passes._transformer_match import dims_of, producer

MASK_DTYPES = (DType.INT64, DType.INT32, DType.INT16, DType.INT8, DType.UINT8, DType.BOOL)


def unsqueeze_axes(node: Node) -> list[int] | None:
    """Unsqueeze's axes: the attribute before opset 13, the constant second input after."""
    if len(node.inputs) > 1 and node.inputs[1] is not None:
        array = const_array(node.inputs[1])
        return None if array is None else [int(a) for a in array.reshape(-1)]
    axes = node.attr("axes")
    return None if axes is None else [int(a) for a in axes]


def _one_minus(mask: Value) -> tuple[Node, float] | str:
    """(the Sub of 1 - x, c) for mask = (1 - x) * c."""
    mul = producer(mask, "Mul")
    if mul is None:
        return "the mask is not (1 - mask) * c of a 2-D attention mask (no Mul)"
    sub: Node | None = None
    c: np.ndarray | None = None
    for position in (0, 1):
        sub = producer(mul.inputs[position], "Sub")
        c = const_array(mul.inputs[1 - position])
        if sub is not None:
            break
    if sub is None or c is None or c.size != 1:
        return f"the mask is not (1 - mask) * c of a 2-D attention mask ({label(mul)})"
    one = const_array(sub.inputs[0])
    if one is None or one.size != 1 or float(one.reshape(-1)[0]) != 1.0:
        return f"the mask is not (1 - mask) * c ({label(sub)} does not subtract from 1)"
    return sub, float(c.reshape(-1)[0])


def _broadcast_source(value: Value) -> tuple[Value, list[list[int]], int] | str:
    """Up through Cast and Unsqueeze: the source, the Unsqueeze axes (last first) and the Cast count."""
    current = value
    unsqueezes: list[list[int]] = []
    casts = 0
    while (node := producer(current, "Cast", "Unsqueeze")) is not None:
        if node.op_type == "Cast":
            casts += 1
        else:
            axes = unsqueeze_axes(node)
            if axes is None:
                return f"the mask's {label(node)} has no constant axes"
            unsqueezes.append(axes)
        source = operand(node)
        if isinstance(source, str):
            return source
        current = source
    return current, unsqueezes, casts


def extended_mask(mask: Value) -> ExtendedMask | str:
    """Match mask = (1 - Cast(Unsqueeze(m, [1, 2]))) * c of a 2-D integer/bool m."""
    found = _one_minus(mask)
    if isinstance(found, str):
        return found
    sub, c = found
    inverted = operand(sub, 1)
    walked = inverted if isinstance(inverted, str) else _broadcast_source(inverted)
    if isinstance(walked, str):
        return walked
    current, unsqueezes, casts = walked
    raw_shape = dims_of(current)
    source = "graph input" if current.is_graph_input else (
        label(current.producer) if current.producer is not None else "constant")
    if raw_shape is None or len(raw_shape) != 2 or dtype_of(current) not in MASK_DTYPES or casts != 1:
        return (f"the mask is not derived from a 2-D integer attention mask (it starts at {source} "
                f"%{current.name})")
    dims: list[object] = ["b", "s"]
    for axes in reversed(unsqueezes):  # collected from the Sub upwards: apply from the mask downwards
        rank = len(dims) + len(axes)
        for a in sorted(a + rank if a < 0 else a for a in axes):
            dims.insert(a, 1)
    if dims != ["b", 1, 1, "s"]:
        return "the mask is not unsqueezed to [batch, 1, 1, sequence]"
    return ExtendedMask(current, c)
