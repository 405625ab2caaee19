"""Fuse the GELU forms exporters write into one Gelu (ai.onnx opset 20, or onnxruntime's contrib ops).

    erf form   (BERT, torch's exact gelu):
        x * 0.5 * (1 + Erf(x / 1.4142135))       ->  Gelu(x)                          (opset >= 20)
    tanh form  (GPT-2's gelu_new, torch's approximate="tanh"):
        0.5 * x * (1 + Tanh(0.7978846 * (x + 0.044715 * x^3)))
                                                 ->  Gelu(x) {approximate="tanh"}     (opset >= 20)

Every multiplication order and association exporters write matches: the three factors x, 0.5
and (1 + f) in any nesting (`Mul(Mul(x, 0.5), p)`, `Mul(x, Mul(0.5, p))`, `Mul(Mul(x, p), 0.5)`,
operands either side; halving also as Div by 2), x / sqrt(2) also as Mul by 0.70710678, x^3 as
Pow(x, 3) or x*x*x, and 1 + f either way round. Constants match within 1e-4 relative and may be
scalars or one-element tensors, of no higher rank than x: a [1] constant broadcasts a scalar x to
[1], which Gelu(x) would not (fuzz seed 373); x's rank must then be known. Every intermediate
value must be read inside the pattern only; x itself may have any readers.

With the option `contrib` (the onnxruntime target sets it at -O3), the result is onnxruntime's
`com.microsoft::Gelu` (erf form) or `com.microsoft::FastGelu` (tanh form) whatever the model's
opset, and the com.microsoft opset (version 1) is imported into the model; those kernels take
float32 and float16, and FastGelu only tensors of rank 1 or more (onnxruntime 1.31 refuses a
scalar at run time: fuzz seed 2). Without it, a model below opset 20 keeps the pattern, with a remark naming
the option.

Every Erf and Tanh is a candidate: when it does not fuse, a remark `gelu-erf at 'name': not
applied, <why>` (or `gelu-tanh`) says why (`mlc debug -v`), so a Tanh that is an ordinary
activation gets one too. The patterns are matched in `_gelu_match.py`; the rules here decide
whether the target runs the fused op.

`tolerance`: the fused kernels compute erf/tanh with their own approximations, and the constants
they use are exact where the exporter's were rounded. The constants the pattern read are left
for `dce`, which the pipelines run last.
"""

from __future__ import annotations

from mlc.ir.core import Graph, Node
from mlc.ir.types import TensorType
from mlc.pass_api import Numerics, PassOption, register_pass
from mlc.passes._gelu_match import GeluPattern, match_erf, match_tanh
from mlc.passes._graph_edits import ensure_ms_opset, fused_name
from mlc.passes._match_basics import FLOAT_DTYPES, dtype_of
from mlc.passes._transformer_match import CONTRIB_DTYPES, MS_DOMAIN
from mlc.rewrite import IRBuilder, Match, Reject, Rule, RulePass

GELU_OPSET = 20


def _rank(pattern: GeluPattern) -> int | None:
    t = pattern.x.type
    return len(t.shape) if isinstance(t, TensorType) and t.shape is not None else None


def _broadcasting_constant(pattern: GeluPattern, rank: int | None) -> str | None:
    """Why the pattern's result is not x's shape: a constant of higher rank than x (a [1] scalar
    stand-in broadcasts a rank-0 x to [1]); None when every constant keeps x's shape."""
    for node in pattern.nodes:
        for operand in node.inputs:
            if operand is None or operand is pattern.x or operand.producer is not None:
                continue
            t = operand.type
            if not isinstance(t, TensorType) or t.shape is None:
                return f"the rank of constant %{operand.name} is unknown"
            if rank is None and len(t.shape) > 0:
                return f"x's rank is unknown and constant %{operand.name} could broadcast it"
            if rank is not None and len(t.shape) > rank:
                return f"constant %{operand.name} has rank {len(t.shape)} > x's {rank}: it broadcasts x"
    return None


def _target_problem(graph: Graph, pattern: GeluPattern, contrib: bool) -> str | None:
    """Why the fused op cannot stand for `pattern` in the model of `graph` (its root)."""
    dtype = dtype_of(pattern.x)
    rank = _rank(pattern)
    broadcast = _broadcasting_constant(pattern, rank)
    if broadcast is not None:
        return broadcast
    if contrib:
        if dtype not in CONTRIB_DTYPES:
            return "x is not float32/float16 (onnxruntime's Gelu/FastGelu kernels)"
        if pattern.tanh and (rank is None or rank == 0):
            return "x is a scalar or of unknown rank (onnxruntime's FastGelu takes rank >= 1)"
        if graph.model is None:
            return f"the graph has no model to import {MS_DOMAIN} into"
        return None
    if dtype not in FLOAT_DTYPES:
        return "x is not a float tensor of known type"
    opset = graph.opset_version("") or 0
    if opset < GELU_OPSET:
        return (f"ai.onnx opset {opset} has no Gelu (it needs {GELU_OPSET}); "
                "the option fuse-gelu{contrib=true} emits onnxruntime's com.microsoft::Gelu/FastGelu instead")
    return None


class GeluForm(Rule):
    """`gelu-erf` (Erf candidates) and `gelu-tanh` (Tanh candidates); `-contrib` members emit
    onnxruntime's com.microsoft::Gelu / FastGelu."""

    def __init__(self, form: str, contrib: bool) -> None:
        self.tanh, self.contrib = form == "tanh", contrib
        self.name = f"gelu-{form}"
        self.ops = ("Tanh",) if self.tanh else ("Erf",)
        fused = ("com.microsoft::FastGelu(x)" if self.tanh else "com.microsoft::Gelu(x)") if contrib else \
            'Gelu(x) {approximate="tanh"}' if self.tanh else "Gelu(x)"
        self.law = ("0.5 * x * (1 + Tanh(0.7978846 * (x + 0.044715 * x^3)))" if self.tanh
                    else "x * 0.5 * (1 + Erf(x / 1.4142135))") + f" -> {fused}"

    def match(self, node: Node) -> Match | Reject | None:
        found = match_tanh(node) if self.tanh else match_erf(node)
        if isinstance(found, str):
            return self.reject(node, found)
        assert node.graph is not None
        why = _target_problem(node.graph.root, found, self.contrib)
        if why is not None:
            return self.reject(node, why)
        return Match(node, nodes=tuple(found.nodes), values={"x": found.x, "out": found.out},
                     rule=f"{self.name}-contrib" if self.contrib else self.name)

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        if self.contrib:
            ensure_ms_opset(builder.graph.root)
            op_type, domain, attributes = ("FastGelu" if self.tanh else "Gelu"), MS_DOMAIN, {}
        else:
            op_type, domain = "Gelu", ""
            attributes = {"approximate": "tanh"} if self.tanh else {}
        builder.fuse(match.nodes, op_type, [match["x"]], [match["out"]], attributes, domain=domain,
                     name=fused_name(match.root, op_type))
        builder.ctx.stats["fused"] += 1


@register_pass
class FuseGelu(RulePass):
    name = "fuse-gelu"
    description = "Fuse the erf and tanh GELU forms into Gelu (opset 20) or onnxruntime's Gelu / FastGelu"
    numerics = Numerics.TOLERANCE
    options = (PassOption("contrib", bool, False,
                          "emit onnxruntime's com.microsoft::Gelu / FastGelu at any opset (onnxruntime target)"),)
    statistics = ("fused",)

    def rule_set(self) -> tuple[Rule, ...]:
        contrib = bool(self.option("contrib"))
        return GeluForm("erf", contrib), GeluForm("tanh", contrib)
