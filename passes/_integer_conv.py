"""legalize-qlinear's ConvInteger rule: the convolution in float32 where that is exact.

    ConvInteger(x, w, zx, zw)  ->  Cast<i32>(Conv(Cast<f32>(x) - zx, Cast<f32>(w) - zw))

or, with the operands split into base-16 digits (`_integer_conv_bound` says when float32 is exact
and how many digits it needs), Σ 16^k · Cast<i32>(Conv(x digit, w digit)) in int32. A constant
weight's digits are folded; a computed one is split by exact float ops (Mul by 1/16, Floor).
"""

from __future__ import annotations

import numpy as np

from mlc.ir.core import Node, Value
from mlc.ir.dtypes import DType
from mlc.passes._integer_conv_bound import DIGIT, IntConvPlan, plan_conv_integer
from mlc.passes._qlinear_emit import QuantEmitter, decompose, match_plan
from mlc.passes._qlinear_params import constant, rank_of, shape_of
from mlc.passes._qlinear_rules import conv_attributes
from mlc.rewrite import IRBuilder, Match, Reject, Rule


def _float_digits(e: QuantEmitter, value: Value, count: int) -> list[Value]:
    """Base-16 digits of an integer-valued float32 tensor, most significant first (exact ops)."""
    if count == 1:
        return [value]
    dtype, shape = DType.FLOAT, shape_of(value)
    scaled = e.op("Mul", [value, e.const(np.array(1.0 / DIGIT, np.float32), "scale")], dtype, shape)
    high = e.op("Floor", [scaled], dtype, shape)
    back = e.op("Mul", [high, e.const(np.array(DIGIT, np.float32), "scale")], dtype, shape)
    return [high, e.op("Sub", [value, back], dtype, shape)]


def _float_zero(e: QuantEmitter, zero: Value, rank: int | None, per_channel: bool) -> Value:
    """The zero point in float32, a per-output-channel one of w as [M, 1, ...]."""
    array = constant(zero)
    if array is not None:
        array = array.astype(np.float32)
        if per_channel and array.size > 1:
            assert rank is not None
            array = array.reshape((-1,) + (1,) * (rank - 1))
        else:
            array = array.reshape(())
        return e.const(array, "zero_point")
    value = e.cast(zero, DType.FLOAT)
    shape = shape_of(zero)
    if per_channel and shape is not None and len(shape) == 1 and shape != (1,):
        assert rank is not None
        target = e.const(np.array((-1,) + (1,) * (rank - 1), np.int64), "shape")
        value = e.op("Reshape", [value, target], DType.FLOAT, (shape[0],) + (1,) * (rank - 1))
    return value


def _float_operand(e: QuantEmitter, data: Value, zero: Value | None, per_channel: bool) -> Value:
    """Cast<f32>(data) - zero point."""
    value = e.cast(data, DType.FLOAT)
    if zero is None:
        return value
    return e.op("Sub", [value, _float_zero(e, zero, rank_of(data), per_channel)], DType.FLOAT, shape_of(data))


def emit_conv_integer(e: QuantEmitter, node: Node, plan: IntConvPlan) -> Value:
    out_shape = shape_of(node.outputs[0])
    xs = _float_digits(e, _float_operand(e, plan.x, plan.x_zero, per_channel=False), plan.x_digits)
    if plan.w_arrays is not None:
        ws = [e.const(array, "weight") for array in plan.w_arrays]
    else:
        ws = _float_digits(e, _float_operand(e, plan.w, plan.w_zero, per_channel=True), plan.w_digits)
    total: Value | None = None
    for i, x_digit in enumerate(xs):
        for j, w_digit in enumerate(ws):
            conv = e.op("Conv", [x_digit, w_digit], DType.FLOAT, out_shape, conv_attributes(node))
            part = e.op("Cast", [conv], DType.INT32, out_shape, {"to": int(DType.INT32)})
            weight = DIGIT ** ((len(xs) - 1 - i) + (len(ws) - 1 - j))
            if weight != 1:
                part = e.op("Mul", [part, e.const(np.array(weight, np.int32), "digit")], DType.INT32, out_shape)
            total = part if total is None else e.op("Add", [total, part], DType.INT32, out_shape)
    assert total is not None
    return total


class ConvIntegerRule(Rule):
    name = "convinteger"
    law = "ConvInteger(x, w, zx, zw) -> Cast<i32>(Conv(Cast<f32>(x) - zx, Cast<f32>(w) - zw)), digit-split if needed"
    ops = ("ConvInteger",)

    def match(self, node: Node) -> Match | Reject | None:
        return match_plan(self, node, plan_conv_integer)

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        plan = match.facts["plan"]
        decompose(builder, match.root, emit_conv_integer, plan)
        builder.ctx.stats["digit_convs"] += plan.x_digits * plan.w_digits


__all__ = ["ConvIntegerRule", "emit_conv_integer"]
