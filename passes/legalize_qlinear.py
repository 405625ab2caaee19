"""Rewrite ONNX's quantized-linear and integer ops into ops Apache TVM's ONNX frontend converts.

TVM 0.27 has no converter for QLinearMatMul, QLinearConv or ConvInteger, so a quantized model
cannot be compiled at all (it has one for MatMulInteger; rewriting that too into the same int32
arithmetic keeps the four ops uniform and needs no frontend special case). One rule per op:

    QLinearMatMul, QLinearConv  ->  DequantizeLinear, the float op, QuantizeLinear   `_qlinear_rules`
    MatMulInteger               ->  MatMul in int32 (bit-exact)                      `_integer_matmul`
    ConvInteger                 ->  Conv in float32 where exact, digit-split else   `_integer_conv`

which parameters they can feed to (De)QuantizeLinear is `_qlinear_params`, how they are emitted
`_qlinear_emit`, when float32 is exact for ConvInteger `_integer_conv_bound`.

QLinear*: the dequantize -> float op -> quantize form is the standard one (what QDQ models hold and
what TVM lowers), but it is not bit-identical to a kernel that accumulates in int32 and requantizes
once with the multiplier sx*sw/sy: float32 accumulation and the product of the scales round
differently, so in rare half-way cases the output differs by one unit of the output quantum (the
pass is `Numerics.TOLERANCE`; its tests compare quantized outputs within ±1, while mlc's generic
numeric check compares integer outputs exactly and would flag such a case). QuantizeLinear keeps the
spec's rounding (half to even) and saturation. Scales of type float16/bfloat16 (QLinearMatMul-21)
are cast to float32 first, so the arithmetic between DQ and Q is float32 in every case (TVM's
DequantizeLinear always produces float32).

Left alone (each a reject, `rule at 'node': not applied, why`): element types other than
int8/uint8 (float8 QLinearMatMul-21), scales that are not float32/float16/bfloat16, scales or zero
points of unknown shape or of a shape that is neither one element nor along the op's axis, a
one-element scale or zero point paired with a per-axis one that is not a constant, per-axis
quantization before opset 13, a per-row MatMulInteger a_zero_point that is not a constant while A's
rank is unknown, ConvInteger zero points that are neither scalars nor one per output channel, a
ConvInteger weight of unknown shape or whose exact float32 bound is too large even with digits,
missing required inputs and an unknown opset.
"""

from __future__ import annotations

from mlc.pass_api import Numerics, register_pass
from mlc.passes._integer_conv import ConvIntegerRule
from mlc.passes._integer_matmul import MatMulIntegerRule
from mlc.passes._qlinear_rules import QLinearConvRule, QLinearMatMulRule
from mlc.rewrite import RulePass

QLINEAR_OPS = ("QLinearMatMul", "QLinearConv", "MatMulInteger", "ConvInteger")


@register_pass
class LegalizeQLinear(RulePass):
    name = "legalize-qlinear"
    description = ("Decompose QLinearMatMul/QLinearConv into DequantizeLinear, float op, QuantizeLinear and "
                   "MatMulInteger/ConvInteger into exact int32/float32 arithmetic")
    numerics = Numerics.TOLERANCE
    statistics = ("qlinearmatmul", "qlinearconv", "matmulinteger", "convinteger", "digit_convs")
    rules = (QLinearMatMulRule(), QLinearConvRule(), MatMulIntegerRule(), ConvIntegerRule())
