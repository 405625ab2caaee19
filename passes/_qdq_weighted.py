"""quantize-qdq's placement of Conv, ConvTranspose, Gemm and MatMul: activation inputs get QDQ,
a constant weight is stored int8 (per output channel with `per_channel`), a constant bias int32.
"""

from __future__ import annotations

from mlc.ir.core import Node
from mlc.passes._match_basics import const_array, input_at
from mlc.passes._qdq_marks import BiasMark, WeightMark, is_f32
from mlc.passes._qdq_placement import Planner


def plan_weighted(planner: Planner, node: Node) -> str | None:
    op = node.op_type
    why = planner.output_problem(node)
    if why:
        return why
    if op == "MatMul":
        left, right = input_at(node, 0), input_at(node, 1)
        if const_array(left) is not None and const_array(right) is not None:
            return "both operands are constants (fold-constants' work)"
        for value in (left, right):
            why = planner.range_problem(value)
            if why:
                return why
        for index, value in enumerate((left, right)):
            w = const_array(value)
            if w is not None:
                axis = 1 if planner.per_channel and index == 1 and w.ndim == 2 else None
                planner.weights.append(WeightMark(node, index, axis))
            else:
                planner.read(node, index)
        planner.produce_weighted(node)
        return None
    x, w_value, bias = input_at(node, 0), input_at(node, 1), input_at(node, 2)
    why = planner.range_problem(x)
    if why:
        return why
    assert x is not None
    if const_array(x) is not None:
        return f"its input %{x.name} is a constant"
    w = const_array(w_value)
    if w is None or not is_f32(w_value):
        return "its weight is not a float32 constant"
    b = const_array(bias)
    if bias is not None and (b is None or not is_f32(bias)):
        return "its bias is not a float32 constant"
    if op == "Gemm":
        if w.ndim != 2:
            return "its weight is not 2-D"
        trans_b = bool(node.attr("transB", 0))
        axis = 0 if trans_b else 1
        channels = w.shape[axis]
        row = b is None or (b.ndim <= 2 and b.size in (1, channels) and (b.ndim < 2 or b.shape[0] == 1))
        if b is not None and not row:
            return f"its C {list(b.shape)} is not a row of {channels} (or one value)"
    else:
        if w.ndim < 3:
            return "its weight has rank < 3"
        group = int(node.attr("group", 1))
        axis = 0 if op == "Conv" else (1 if group == 1 else None)
        if axis is None:
            channels = 0
        else:
            channels = w.shape[axis]
        if b is not None and (b.ndim != 1 or (axis is not None and b.size != channels)):
            return f"its bias {list(b.shape)} is not one value per output channel"
    weight = WeightMark(node, 1, axis if planner.per_channel else None)
    planner.read(node, 0)
    planner.weights.append(weight)
    if bias is not None and b is not None:
        if axis is None:  # ConvTranspose with groups: one weight scale, so one bias scale
            channels = b.size
        beta = float(node.attr("beta", 1.0)) if op == "Gemm" else 1.0
        planner.biases.append(BiasMark(node, 2, x, weight, channels, beta))
    planner.produce_weighted(node)
    return None


__all__ = ["plan_weighted"]
