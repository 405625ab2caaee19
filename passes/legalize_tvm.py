"""Rewrite ops whose TVM lowering is wrong on some inputs into forms TVM computes correctly.

Found by running the official ONNX node cases through TVM's Relax frontend and comparing with the
shipped outputs (see `backends/tvm.py` for the ops that are refused instead). The rules, each in
the module that explains it:

    IsInf(x) {detect_negative=0}  ->  And(IsInf(x), Greater(x, 0))  (Less for detect_positive=0)
    Softplus(x)  ->  Relu(x) + log1p(exp(-|x|));  Mish(x)  ->  x * Tanh(that)    `_tvm_math_rules`
    LayerNormalization's Mean / InvStdDev  ->  computed beside it in float32;
    LayerNormalization(x: f64)  ->  its definition in float64                   `_tvm_layernorm_rules`
    Slice(x, start < -dim, ..., step < 0)  ->  that start written as 0;
    Pow(x, y of another type)  ->  Pow(x, Cast(y)) or the power in the wider type  `_tvm_operand_rules`
    Expand(x, c) with a symbolic dim in x  ->  Mul(x, ones(c));
    PRelu(x, s) along a symbolic axis  ->  Where(Less(x, 0), Mul(x, s), x);
    Tile(x, r)  ->  Reshape(Expand(Reshape(x)))                                 `_tvm_broadcast_rules`
    Op(f16...)  ->  Cast<f16>(Op(Cast<f32>(...))) with f16_as_f32 (CPU targets)  `_tvm_f16_rule`

The pass is in no `-O` pipeline; the TVM backend appends it to the pipeline of its targets.
"""

from __future__ import annotations

from collections.abc import Sequence

from mlc.pass_api import Numerics, PassOption, register_pass
from mlc.passes._tvm_broadcast_rules import ExpandBroadcastRule, PReluElementwiseRule, TileAsExpandRule
from mlc.passes._tvm_f16_rule import F16AsF32Rule
from mlc.passes._tvm_layernorm_rules import LayerNormDoubleRule, LayerNormStatsRule
from mlc.passes._tvm_math_rules import IsInfFlagsRule, StableSoftplusRule
from mlc.passes._tvm_operand_rules import PowTypesRule, SliceStartRule
from mlc.rewrite import Rule, RulePass

# in the order they are tried on a node: the first that matches rewrites it (f16-as-f32 before
# the others, layernorm-f64 before layernorm-stats)
RULES: tuple[Rule, ...] = (LayerNormDoubleRule(), LayerNormStatsRule(), ExpandBroadcastRule(), PowTypesRule(),
                           SliceStartRule(), PReluElementwiseRule(), TileAsExpandRule(), IsInfFlagsRule(),
                           StableSoftplusRule("Softplus"), StableSoftplusRule("Mish"))


@register_pass
class LegalizeForTvm(RulePass):
    name = "legalize-tvm"
    description = "Rewrite ops TVM lowers wrongly (IsInf flags, Softplus/Mish precision, Tile) into ones it gets right"
    numerics = Numerics.TOLERANCE
    options = (PassOption("f16_as_f32", bool, False, "compute float16 products, reductions and transcendental "
                          "functions in float32 (CPU targets)"),)
    statistics = ("rewritten", "f16_upcast")

    def rule_set(self) -> Sequence[Rule]:
        return (F16AsF32Rule(), *RULES) if self.option("f16_as_f32") else RULES
