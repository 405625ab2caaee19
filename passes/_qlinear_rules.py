"""legalize-qlinear's QLinearMatMul and QLinearConv rules: dequantize, the float op, quantize.

    QLinearMatMul(a, sa, za, b, sb, zb, sy, zy)
        -> QuantizeLinear(MatMul(DequantizeLinear(a, sa, za), DequantizeLinear(b, sb, zb)), sy, zy)
    QLinearConv(x, sx, zx, w, sw, zw, sy, zy[, B])
        -> QuantizeLinear(Conv(DQ(x, sx, zx), DQ(w, sw, zw, axis=0), DQ(B, sx*sw, axis=0)), sy, zy)

A 1-D scale is per row of `a` / per column of `b` / per row of `y` for QLinearMatMul and per output
channel of `w` for QLinearConv, as the spec says. The bias is quantized with scale sx * sw and zero
point 0 (the spec's contract). A missing y_zero_point becomes a zero of the output's type, or of
the input's when the output is untyped, as onnx's reference does.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlc.ir.core import Graph, Node, Value
from mlc.ir.dtypes import DType
from mlc.passes._match_basics import dtype_of, input_at
from mlc.passes._qlinear_emit import QuantEmitter, decompose, match_plan
from mlc.passes._qlinear_params import (
    INT8_RANGES,
    Quant,
    Unsupported,
    check_int8,
    check_opset,
    quant,
    rank_of,
    required,
    shape_of,
)
from mlc.rewrite import IRBuilder, Match, Reject, Rule


def _axis_from_end(rank: int | None, back: int) -> int | None:
    return rank - back if rank is not None and rank >= 2 else None


def _output_quant(node: Node, data: Value | None, y_scale: Value, role_axis: int | None, y_type: DType | None) -> Quant:
    """The output's quantization (`data`: the output where its shape tells the axis' length)."""
    y = node.outputs[0]
    qy = quant(data, y_scale, input_at(node, 7), role_axis, "y", y_type)
    if qy.zero.dtype not in INT8_RANGES:
        raise Unsupported(f"y zero point is {qy.zero.dtype.short_name}, not int8/uint8")
    check_int8(y, "y")
    return qy


@dataclass(frozen=True)
class MatMulPlan:
    a: Value
    b: Value
    qa: Quant
    qb: Quant
    qy: Quant


def plan_qlinear_matmul(node: Node, graph: Graph) -> MatMulPlan:
    a, a_scale, b, b_scale, y_scale = required(node, 0, 1, 3, 4, 6)
    y = node.outputs[0]
    assert y is not None
    a_type, b_type = check_int8(a, "a"), check_int8(b, "b")
    ra, rb = rank_of(a), rank_of(b)
    ry = rank_of(y) if shape_of(y) is not None else (max(ra, rb) if ra is not None and rb is not None else None)
    qa = quant(a, a_scale, input_at(node, 2), _axis_from_end(ra, 2), "a", a_type)
    qb = quant(b, b_scale, input_at(node, 5), _axis_from_end(rb, 1), "b", b_type)
    y_proxy = y if shape_of(y) is not None else None
    qy = _output_quant(node, y_proxy, y_scale, _axis_from_end(ry, 2), dtype_of(y) or a_type)
    check_opset(graph, (qa, qb, qy))
    return MatMulPlan(a, b, qa, qb, qy)


def emit_qlinear_matmul(e: QuantEmitter, node: Node, plan: MatMulPlan) -> Value:
    product = e.op("MatMul", [e.dequantize(plan.a, plan.qa), e.dequantize(plan.b, plan.qb)], DType.FLOAT,
                   shape_of(node.outputs[0]))
    return e.quantize(product, plan.qy)


@dataclass(frozen=True)
class ConvPlan:
    x: Value
    w: Value
    bias: Value | None
    qx: Quant
    qw: Quant
    qy: Quant


def plan_qlinear_conv(node: Node, graph: Graph) -> ConvPlan:
    x, x_scale, w, w_scale, y_scale = required(node, 0, 1, 3, 4, 6)
    y = node.outputs[0]
    assert y is not None
    x_type, w_type = check_int8(x, "x"), check_int8(w, "w")
    qx = quant(x, x_scale, input_at(node, 2), None, "x", x_type)
    qw = quant(w, w_scale, input_at(node, 5), 0, "w", w_type)
    qy = _output_quant(node, None, y_scale, None, dtype_of(y) or x_type)
    bias = input_at(node, 8)
    if bias is not None:
        bias_type = dtype_of(bias)
        if bias_type not in (DType.INT32, None):
            raise Unsupported(f"bias %{bias.name} is {bias_type.short_name}, not int32")
        if rank_of(bias) not in (1, None):
            raise Unsupported(f"bias %{bias.name} is not 1-D")
    check_opset(graph, (qx, qw, qy))
    return ConvPlan(x, w, bias, qx, qw, qy)


def conv_attributes(node: Node) -> dict[str, Any]:
    """The Conv attributes of a QLinearConv / ConvInteger (they are the same set), copied."""
    return {name: dataclasses.replace(attr) for name, attr in node.attributes.items()}


def _bias_scale(e: QuantEmitter, plan: ConvPlan) -> Value:
    """x_scale * w_scale: folded when both are constants."""
    xs, ws = plan.qx.scale, plan.qw.scale
    shape: tuple[int, ...] = () if ws.length is None else (ws.length,)
    if xs.array is not None and ws.array is not None:
        w_scales = ws.array.astype(np.float32).reshape(-1)
        product = np.float32(xs.array.astype(np.float32).reshape(-1)[0]) * np.broadcast_to(
            w_scales if w_scales.size > 1 else w_scales.reshape(()), shape)
        return e.const(product.astype(np.float32), "scale")
    x_scale, w_scale = e.param(xs), e.param(ws)
    assert x_scale is not None and w_scale is not None
    return e.op("Mul", [x_scale, w_scale], DType.FLOAT, shape)


def emit_qlinear_conv(e: QuantEmitter, node: Node, plan: ConvPlan) -> Value:
    inputs = [e.dequantize(plan.x, plan.qx), e.dequantize(plan.w, plan.qw)]
    if plan.bias is not None:
        axis = {"axis": 0} if plan.qw.scale.length is not None else None
        inputs.append(e.op("DequantizeLinear", [plan.bias, _bias_scale(e, plan)], DType.FLOAT, shape_of(plan.bias),
                           axis))
    conv = e.op("Conv", inputs, DType.FLOAT, shape_of(node.outputs[0]), conv_attributes(node))
    return e.quantize(conv, plan.qy)


class QLinearMatMulRule(Rule):
    name = "qlinearmatmul"
    law = "QLinearMatMul(a, sa, za, b, sb, zb, sy, zy) -> Q(MatMul(DQ(a, sa, za), DQ(b, sb, zb)), sy, zy)"
    ops = ("QLinearMatMul",)

    def match(self, node: Node) -> Match | Reject | None:
        return match_plan(self, node, plan_qlinear_matmul)

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        decompose(builder, match.root, emit_qlinear_matmul, match.facts["plan"])


class QLinearConvRule(Rule):
    name = "qlinearconv"
    law = "QLinearConv(x, sx, zx, w, sw, zw, sy, zy, B) -> Q(Conv(DQ(x), DQ(w), DQ(B, sx*sw)), sy, zy)"
    ops = ("QLinearConv",)

    def match(self, node: Node) -> Match | Reject | None:
        return match_plan(self, node, plan_qlinear_conv)

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        decompose(builder, match.root, emit_qlinear_conv, match.facts["plan"])


__all__ = ["ConvPlan", "MatMulPlan", "QLinearConvRule", "QLinearMatMulRule", "conv_attributes", "plan_qlinear_conv",
           "plan_qlinear_matmul"]
