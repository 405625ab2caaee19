"""legalize-tvm's rules for elementwise math TVM computes wrongly: IsInf flags, Softplus and Mish.

TVM ignores IsInf's detect_positive / detect_negative flags, and its Softplus (and the softplus
inside its Mish) is log(1 + exp(x)), which loses all precision once exp(x) is below float32's
epsilon and overflows above 88. The rules write the flags out as comparisons and the softplus as
Relu(x) + log1p(exp(-|x|)), with log1p(e) taken as e - e²/2 where e < 2^-10 (error < e³/3).
"""

from __future__ import annotations

import numpy as np

from mlc.ir.core import Node, Value
from mlc.ir.dtypes import DType
from mlc.ir.types import TensorType
from mlc.rewrite import IRBuilder, Match, Reject, Rule

SMALL = 2.0**-10
NOT_FLOAT = "its input is not float32/float64 with a known type"


def scalar(b: IRBuilder, value: float, dtype: DType) -> Value:
    """A 0-d constant of `dtype`."""
    return b.constant(np.array(value, dtype=dtype.numpy), "c")


def float_input_type(node: Node) -> TensorType | None:
    """The type of the node's first input when it is float32 or float64, else None."""
    x = node.inputs[0] if node.inputs else None
    if x is None or not isinstance(x.type, TensorType) or x.type.dtype not in (DType.FLOAT, DType.DOUBLE):
        return None
    return x.type


def stable_softplus(b: IRBuilder, x: Value, t: TensorType) -> Value:
    """Relu(x) + log1p(exp(-|x|)), log1p by its series where exp(-|x|) is tiny."""
    dtype = t.dtype
    bool_t = TensorType(DType.BOOL, t.shape)
    magnitude = b.op("Abs", [x], type=t)
    e = b.op("Exp", [b.op("Neg", [magnitude], type=t)], type=t)
    logged = b.op("Log", [b.op("Add", [e, scalar(b, 1.0, dtype)], type=t)], type=t)
    series = b.op("Sub", [e, b.op("Mul", [b.op("Mul", [e, e], type=t), scalar(b, 0.5, dtype)], type=t)], type=t)
    small = b.op("Less", [e, scalar(b, SMALL, dtype)], type=bool_t)
    return b.op("Add", [b.op("Relu", [x], type=t), b.op("Where", [small, series, logged], type=t)], type=t)


def _replace(b: IRBuilder, node: Node, result: Value) -> None:
    out = node.outputs[0]
    assert out is not None
    b.replace(out, result)
    b.graph.remove(node)


class IsInfFlagsRule(Rule):
    name = "isinf-flags"
    law = "IsInf(x) {detect_negative=0} -> And(IsInf(x), Greater(x, 0)) (Less for detect_positive=0)"
    ops = ("IsInf",)

    def match(self, node: Node) -> Match | Reject | None:
        if node.attr("detect_positive", 1) and node.attr("detect_negative", 1):
            return None
        if float_input_type(node) is None:
            return self.reject(node, NOT_FLOAT)
        return Match(node)

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        node = match.root
        x, t = node.inputs[0], float_input_type(node)
        assert x is not None and t is not None
        bool_t = TensorType(DType.BOOL, t.shape)
        positive, negative = node.attr("detect_positive", 1), node.attr("detect_negative", 1)
        infinite = builder.op("IsInf", [x], type=bool_t)
        if not positive and not negative:  # all False
            other = builder.op("IsNaN", [x], type=bool_t)
        else:
            other = builder.op("Greater" if positive else "Less", [x, scalar(builder, 0.0, t.dtype)], type=bool_t)
        result = builder.op("And", [infinite, other], type=bool_t)
        _replace(builder, node, result)
        builder.ctx.stats["rewritten"] += 1


class StableSoftplusRule(Rule):
    """Softplus, or Mish (x * Tanh(softplus(x))), with the softplus that keeps its precision."""

    def __init__(self, op_type: str) -> None:
        self.ops = (op_type,)
        self.mish = op_type == "Mish"
        self.name = "stable-mish" if self.mish else "stable-softplus"
        self.law = (f"{op_type}(x) -> " + ("x * Tanh(" if self.mish else "")
                    + "Relu(x) + log1p(exp(-|x|))" + (")" if self.mish else ""))

    def match(self, node: Node) -> Match | Reject | None:
        return Match(node) if float_input_type(node) is not None else self.reject(node, NOT_FLOAT)

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        node = match.root
        x, t = node.inputs[0], float_input_type(node)
        assert x is not None and t is not None
        result = stable_softplus(builder, x, t)
        if self.mish:
            result = builder.op("Mul", [x, builder.op("Tanh", [result], type=t)], type=t)
        _replace(builder, node, result)
        builder.ctx.stats["rewritten"] += 1


__all__ = ["IsInfFlagsRule", "StableSoftplusRule", "float_input_type", "scalar", "stable_softplus"]
