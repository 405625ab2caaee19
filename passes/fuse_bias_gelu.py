"""Fold the bias Add before a GELU into onnxruntime's BiasGelu / FastGelu (com.microsoft).

    Gelu(Add(x, bias))                       ->  com.microsoft::BiasGelu(x, bias)
        Gelu = com.microsoft::Gelu, or ai.onnx Gelu (opset 20) with approximate="none"
    FastGelu(Add(x, bias))                   ->  com.microsoft::FastGelu(x, bias)
        FastGelu = com.microsoft::FastGelu without a bias, or ai.onnx Gelu {approximate="tanh"}

A transformer's feed-forward layer is `Gelu(MatMul(x, W) + b)`: the fused kernels add the bias
while computing the activation, one pass over the [batch, sequence, 4*hidden] tensor instead of
two. Contract (onnxruntime's contrib schemas, com.microsoft version 1): BiasGelu(A, B) with B a
1-D tensor added to A's last axis; FastGelu(X, bias) likewise (its formula is GELU's tanh
approximation, the same as ai.onnx Gelu {approximate="tanh"}).

It applies when the bias is a 1-D constant whose length is x's last dim (known statically, so
that the Add does not broadcast x), the Add's output is read by the GELU alone, and x is float32
or float16 (the CPU kernels). The Add's operands may be either way round (`Add(bias, MatMul)` is
what torch's exporter writes). Every GELU is a candidate: one that does not fuse gets a remark
`BiasGelu at 'name': not fused, <why>`.

This is an onnxruntime-only rewrite (the onnxruntime target appends it at -O3, after
`fuse-gelu{contrib=true}`); it imports com.microsoft (version 1) into the model. `tolerance`: the
fused kernel adds and activates in its own order.
"""

from __future__ import annotations

from mlc.ir.core import Node, Value
from mlc.ir.tensor import Tensor
from mlc.pass_api import Numerics, register_pass
from mlc.passes._graph_edits import ensure_ms_opset, fused_name
from mlc.passes._match_basics import STANDARD, const_array, dtype_of
from mlc.passes._transformer_match import CONTRIB_DTYPES, MS_DOMAIN, dims_of, is_op, other_input, sole_reader
from mlc.rewrite import IRBuilder, Match, Reject, Rule, RulePass


def _target(gelu: Node) -> str | None:
    """The fused op for this GELU node: BiasGelu (erf) or FastGelu (tanh), or None when it is none."""
    if gelu.domain in STANDARD and gelu.op_type == "Gelu":
        approximate = gelu.attr("approximate", "none")
        return {"none": "BiasGelu", "tanh": "FastGelu"}.get(approximate)
    if gelu.domain == MS_DOMAIN and gelu.op_type == "Gelu":
        return "BiasGelu"
    if gelu.domain == MS_DOMAIN and gelu.op_type == "FastGelu" and len([v for v in gelu.inputs if v]) == 1:
        return "FastGelu"
    return None


def _match(gelu: Node) -> tuple[Node, Value, Value] | str:
    """(the bias Add, x, bias) feeding `gelu`, or why there are none."""
    arg = gelu.inputs[0] if gelu.inputs else None
    add = arg.producer if arg is not None else None
    if arg is None or add is None or not is_op(add, "Add"):
        return "its input is not an Add"
    if sole_reader(arg) is not gelu:
        return "the Add's output is also read elsewhere"
    x: Value | None = None
    bias: Value | None = None
    for candidate in add.inputs:
        array = const_array(candidate)
        if candidate is not None and array is not None and array.ndim == 1:
            bias, x = candidate, other_input(add, candidate)
            break
    if x is None or bias is None or x is bias:
        return "the Add has no 1-D constant operand (a bias)"
    if const_array(x) is not None:
        return "both operands of the Add are constants"
    dims = dims_of(x)
    length = bias.const.shape[0] if isinstance(bias.const, Tensor) else None
    if dims is None or not dims or dims[-1] != length:
        last = "rank unknown" if not dims else "?" if dims[-1] is None else dims[-1]
        return f"x's last dim ({last}) is not known to be the bias length {length}"
    dtype = dtype_of(x)
    if dtype not in CONTRIB_DTYPES:
        return "x is not float32/float16 (onnxruntime's BiasGelu/FastGelu kernels)"
    if dtype_of(bias) != dtype:
        return "the bias is not of x's element type"
    if add.graph is not gelu.graph:
        return "the Add is in another graph"
    return add, x, bias


class BiasGelu(Rule):
    """`bias-gelu` (erf GELU -> BiasGelu) and `bias-fastgelu` (tanh GELU -> FastGelu)."""

    ops = ("Gelu", "FastGelu")
    domains = (*STANDARD, MS_DOMAIN)

    def __init__(self, fused: str) -> None:
        self.fused = fused
        self.name = "bias-gelu" if fused == "BiasGelu" else "bias-fastgelu"
        self.law = f"GELU(Add(x, b: 1-D constant)) -> com.microsoft::{fused}(x, b)"

    def match(self, node: Node) -> Match | Reject | None:
        if _target(node) != self.fused or node.graph is None or node.graph.root.model is None:
            return None
        found = _match(node)
        if isinstance(found, str):
            return self.reject(node, found)
        add, x, bias = found
        return Match(node, nodes=(add, node), values={"x": x, "bias": bias})

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        add, node = match.nodes
        ensure_ms_opset(builder.graph.root)
        builder.fuse([add, node], self.fused, [match["x"], match["bias"]], [node.outputs[0]], domain=MS_DOMAIN,
                     name=fused_name(node, self.fused))
        builder.ctx.stats["fused"] += 1


@register_pass
class FuseBiasGelu(RulePass):
    name = "fuse-bias-gelu"
    description = "Fold a 1-D bias Add into the GELU after it: onnxruntime's BiasGelu / FastGelu(x, bias)"
    numerics = Numerics.TOLERANCE
    statistics = ("fused",)
    rules = (BiasGelu("BiasGelu"), BiasGelu("FastGelu"))
