"""Fuse a Conv and the activation after it into onnxruntime's `com.microsoft::FusedConv`.

    Relu(Conv(X, W, B))                 ->  FusedConv(X, W, B) {activation="Relu"}
    Sigmoid / Tanh (Conv(...))          ->  FusedConv {activation="Sigmoid" / "Tanh"}
    LeakyRelu(Conv(...)) {alpha}        ->  FusedConv {activation="LeakyRelu", activation_params=[alpha]}
    HardSigmoid(Conv(...)) {alpha,beta} ->  FusedConv {activation="HardSigmoid", activation_params=[alpha, beta]}
    Clip(Conv(...), min, max)           ->  FusedConv {activation="Clip", activation_params=[min, max]}

FusedConv (contrib schema, domain com.microsoft, version 1) takes Conv's inputs X, W, B and all
its attributes, plus `activation` and `activation_params`; onnxruntime's CPU kernel
(contrib_ops/cpu/fused_activation.cc) reads the parameters in the order above. The kernel is
registered for float32 only, so other element types are left alone, with a remark. Clip's bounds
must be constants (inputs from opset 11, attributes before); an absent bound becomes float32's
lowest/highest value, and the bounds' constants are removed when nothing else reads them. The
Conv's output must have the activation as its only reader.

This is an onnxruntime-only rewrite: no other backend knows the op. It adds the `com.microsoft`
opset (version 1) to the model's imports when it creates the first FusedConv, and belongs in the
onnxruntime target's pipeline only. The values are those of Conv then the activation, but the
fused kernel computes Sigmoid and Tanh with MLAS's approximations, which may differ in the last
bits from the standalone ops, hence `tolerance`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlc.ir.attributes import Attr, AttrType
from mlc.ir.core import Node
from mlc.pass_api import Numerics, register_pass
from mlc.passes._contrib_activation import ContribActivation
from mlc.passes._match_basics import const_array, input_at
from mlc.rewrite import RulePass

_ACTIVATIONS = ("Relu", "Clip", "Sigmoid", "HardSigmoid", "LeakyRelu", "Tanh")
_F32 = np.finfo(np.float32)


def _activation_params(act: Node, opset: int) -> list[float] | str:
    """FusedConv's activation_params for `act`, or why it has none."""
    op = act.op_type
    if op in ("Relu", "Sigmoid", "Tanh"):
        return []
    if op == "LeakyRelu":
        return [float(act.attr("alpha", 0.01))]
    if op == "HardSigmoid":
        return [float(act.attr("alpha", 0.2)), float(act.attr("beta", 0.5))]
    if opset < 11:
        return [float(act.attr("min", float(_F32.min))), float(act.attr("max", float(_F32.max)))]
    bounds: list[float] = []
    for index, default in ((1, float(_F32.min)), (2, float(_F32.max))):
        value = input_at(act, index)
        if value is None:
            bounds.append(default)
            continue
        array = const_array(value)
        if array is None or array.size != 1:
            return "its min/max are not constant scalars"
        bounds.append(float(array.reshape(-1)[0]))
    return bounds


class ConvActivation(ContribActivation):
    """One rule per activation of the table (`conv-relu`, `conv-clip`, ...)."""

    root, fused, activations = "Conv", "FusedConv", _ACTIVATIONS

    def root_problem(self, root: Node) -> str | None:
        return "it has more than three inputs" if len(root.inputs) > 3 else None

    def activation_attributes(self, act: Node) -> dict[str, Any] | str:
        assert act.graph is not None
        params = _activation_params(act, act.graph.root.opset_version("") or 1)
        if isinstance(params, str):
            return params
        attributes = {"activation": Attr("activation", AttrType.STRING, act.op_type)}
        if params:
            attributes["activation_params"] = Attr("activation_params", AttrType.FLOATS, params)
        return attributes


@register_pass
class FuseConvActivation(RulePass):
    name = "fuse-conv-activation"
    description = "Fuse Conv and its Relu, Clip, Sigmoid, HardSigmoid, LeakyRelu or Tanh into onnxruntime's FusedConv"
    numerics = Numerics.TOLERANCE
    statistics = ("fused",)
    rules = tuple(ConvActivation(act) for act in _ACTIVATIONS)
