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

from typing import Any

from mlc.ir.attributes import Attr, AttrType
from mlc.ir.core import Node
from mlc.pass_api import Numerics, register_pass
from mlc.passes._contrib_activation import ContribActivation
from mlc.rewrite import RulePass

_ACTIVATIONS = ("Relu", "Sigmoid", "Tanh", "LeakyRelu", "HardSigmoid")


def _activation_attributes(act: Node) -> dict[str, Attr]:
    attributes = {"activation": Attr("activation", AttrType.STRING, act.op_type)}
    if act.op_type == "LeakyRelu":
        attributes["activation_alpha"] = Attr("activation_alpha", AttrType.FLOAT, float(act.attr("alpha", 0.01)))
    elif act.op_type == "HardSigmoid":
        attributes["activation_alpha"] = Attr("activation_alpha", AttrType.FLOAT, float(act.attr("alpha", 0.2)))
        attributes["activation_beta"] = Attr("activation_beta", AttrType.FLOAT, float(act.attr("beta", 0.5)))
    return attributes


class GemmActivation(ContribActivation):
    """One rule per activation of the table (`gemm-relu`, `gemm-tanh`, ...)."""

    root, fused, activations = "Gemm", "FusedGemm", _ACTIVATIONS

    def activation_attributes(self, act: Node) -> dict[str, Any] | str:
        return dict(_activation_attributes(act))


@register_pass
class FuseGemmActivation(RulePass):
    name = "fuse-gemm-activation"
    description = "Fuse Gemm and its Relu, Sigmoid, Tanh, LeakyRelu or HardSigmoid into onnxruntime's FusedGemm"
    numerics = Numerics.TOLERANCE
    statistics = ("fused",)
    rules = tuple(GemmActivation(act) for act in _ACTIVATIONS)
