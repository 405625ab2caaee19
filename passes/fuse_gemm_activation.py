"""Fuse a Gemm and the activation after it into onnxruntime's `com.microsoft::FusedGemm`.

    Relu / Sigmoid / Tanh (Gemm(A, B, C))   ->  FusedGemm(A, B, C) {activation="Relu" / ...}
    LeakyRelu(Gemm(...)) {alpha}            ->  FusedGemm {activation="LeakyRelu", activation_alpha=alpha}
    HardSigmoid(Gemm(...)) {alpha, beta}    ->  FusedGemm {activation="HardSigmoid", activation_alpha, activation_beta}

FusedGemm (contrib schema, com.microsoft version 1) is Gemm with an activation applied to the
result, taking Gemm's inputs and attributes; onnxruntime's own extended optimizer makes it for
the classifier heads of AlexNet/VGG-style models. float32 only (the kernel's registration); the
Gemm's output must have the activation as its only reader. onnxruntime-only, like FusedConv: it
adds the `com.microsoft` opset import and belongs in the onnxruntime target's -O3 composites.
"""

from __future__ import annotations

from mlc.ir.attributes import Attr, AttrType
from mlc.ir.core import Graph, Node
from mlc.ir.dtypes import DType
from mlc.ir.types import TensorType
from mlc.pass_api import Numerics, Pass, PassContext, register_pass
from mlc.passes._patterns import MS_DOMAIN, STANDARD, ensure_ms_opset, input_at, label, reader_problem, replace_chain
from mlc.rewrite import IRBuilder, Match, Reject, Rule, apply_rules

_ACTIVATIONS = ("Relu", "Sigmoid", "Tanh", "LeakyRelu", "HardSigmoid")


def _activation_attributes(act: Node) -> dict[str, Attr]:
    attributes = {"activation": Attr("activation", AttrType.STRING, act.op_type)}
    if act.op_type == "LeakyRelu":
        attributes["activation_alpha"] = Attr("activation_alpha", AttrType.FLOAT, float(act.attr("alpha", 0.01)))
    elif act.op_type == "HardSigmoid":
        attributes["activation_alpha"] = Attr("activation_alpha", AttrType.FLOAT, float(act.attr("alpha", 0.2)))
        attributes["activation_beta"] = Attr("activation_beta", AttrType.FLOAT, float(act.attr("beta", 0.5)))
    return attributes


class GemmActivation(Rule):
    """One rule per activation of the table (`gemm-relu`, `gemm-tanh`, ...)."""

    ops = ("Gemm",)

    def __init__(self, activation: str) -> None:
        self.activation = activation
        self.name = f"gemm-{activation.lower()}"
        self.law = f"{activation}(Gemm(A, B, C)) -> FusedGemm(A, B, C) {{activation={activation}}}"

    def match(self, gemm: Node) -> Match | Reject | None:
        out = gemm.outputs[0]
        acts = [n for n in out.consumers if n.op_type in _ACTIVATIONS and n.domain in STANDARD] if out else []
        if out is None or not acts or acts[0].op_type != self.activation:
            return None  # not a candidate of this rule
        act = acts[0]
        why = reader_problem(out)
        if why is None and act.graph is not gemm.graph:
            why = f"{label(act)} is in a sub-graph"
        a = input_at(gemm, 0)
        if why is None and (a is None or not isinstance(a.type, TensorType) or a.type.dtype != DType.FLOAT):
            why = "its input is not known to be float32 (onnxruntime's FusedGemm kernel is float32 only)"
        if why is None and gemm.graph is not None and gemm.graph.root.model is None:
            why = f"the graph has no model to import {MS_DOMAIN} into"
        return self.reject(gemm, why) if why is not None else Match(gemm, nodes=(gemm, act))

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        gemm, act = match.nodes
        ensure_ms_opset(builder.graph)
        attributes = {**gemm.attributes, **_activation_attributes(act)}
        replace_chain(builder.graph, builder.ctx, self.name, [gemm, act], "FusedGemm", list(gemm.inputs), attributes,
                      domain=MS_DOMAIN)
        builder.ctx.stats["fused"] += 1


@register_pass
class FuseGemmActivation(Pass):
    name = "fuse-gemm-activation"
    description = "Fuse Gemm and its Relu, Sigmoid, Tanh, LeakyRelu or HardSigmoid into onnxruntime's FusedGemm"
    numerics = Numerics.TOLERANCE
    statistics = ("fused",)
    rules = tuple(GemmActivation(act) for act in _ACTIVATIONS)

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        return apply_rules(graph, self.rules, ctx)
