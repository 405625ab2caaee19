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

_ACTIVATIONS = ("Relu", "Sigmoid", "Tanh", "LeakyRelu", "HardSigmoid")


def _activation_attributes(act: Node) -> dict[str, Attr]:
    attributes = {"activation": Attr("activation", AttrType.STRING, act.op_type)}
    if act.op_type == "LeakyRelu":
        attributes["activation_alpha"] = Attr("activation_alpha", AttrType.FLOAT, float(act.attr("alpha", 0.01)))
    elif act.op_type == "HardSigmoid":
        attributes["activation_alpha"] = Attr("activation_alpha", AttrType.FLOAT, float(act.attr("alpha", 0.2)))
        attributes["activation_beta"] = Attr("activation_beta", AttrType.FLOAT, float(act.attr("beta", 0.5)))
    return attributes


@register_pass
class FuseGemmActivation(Pass):
    name = "fuse-gemm-activation"
    description = "Fuse Gemm and its Relu, Sigmoid, Tanh, LeakyRelu or HardSigmoid into onnxruntime's FusedGemm"
    numerics = Numerics.TOLERANCE
    statistics = ("fused",)

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        model = graph.root.model
        for sub in list(graph.all_graphs()):
            for node in sub:
                if node.op_type != "Gemm" or node.domain not in STANDARD:
                    continue
                act = self._match(node, ctx)
                if act is None:
                    continue
                if model is None:
                    ctx.remark(f"{label(node)}: not fused, the graph has no model to import {MS_DOMAIN} into")
                    continue
                rule = f"gemm-{act.op_type.lower()}"
                if not ctx.rewrite(rule):
                    return changed
                ensure_ms_opset(sub)
                attributes = {**node.attributes, **_activation_attributes(act)}
                replace_chain(sub, ctx, rule, [node, act], "FusedGemm", list(node.inputs), attributes,
                              domain=MS_DOMAIN)
                ctx.stats["fused"] += 1
                changed = True
        return changed

    @staticmethod
    def _match(gemm: Node, ctx: PassContext) -> Node | None:
        out = gemm.outputs[0]
        if out is None:
            return None
        acts = [n for n in out.consumers if n.op_type in _ACTIVATIONS and n.domain in STANDARD]
        if not acts:
            return None
        why = reader_problem(out)
        act = acts[0]
        if why is None and act.graph is not gemm.graph:
            why = f"{label(act)} is in a sub-graph"
        a = input_at(gemm, 0)
        if why is None and (a is None or not isinstance(a.type, TensorType) or a.type.dtype != DType.FLOAT):
            why = "its input is not known to be float32 (onnxruntime's FusedGemm kernel is float32 only)"
        if why is None:
            return act
        ctx.remark(f"{label(gemm)}: not fused, {why}")
        return None
