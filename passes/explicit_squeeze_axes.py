"""Give a Squeeze without axes the axes its input's shape implies.

    Squeeze(x: f32[1,3,1])            ->  Squeeze(x, [0, 2])            (opset >= 13: an input)
    Squeeze(x: f32[1,3,1])            ->  Squeeze(x) {axes=[0, 2]}      (opset < 13: an attribute)

A Squeeze with its axes omitted removes every dim of size 1, which only the run-time shape tells
in general. torch's dynamo exporter writes it for `sym_size` scalars (a [1] slice of a Shape),
and TensorRT's ONNX parser before 11.5 refuses it (onnx-tensorrt's operator matrix; `mlc targets
--support` names the nodes), so BERT and GPT-2 exports fail to build. Where every dim of the input
is known (an integer), the axes are exactly the dims of size 1, and writing them changes nothing;
a Squeeze whose input has a symbolic dim is left alone, since that dim could be 1 at run time.
The TensorRT target runs this pass as a legalization; values do not change.
"""

from __future__ import annotations

import numpy as np

from mlc.ir.attributes import Attr
from mlc.ir.core import Node
from mlc.ir.types import TensorType
from mlc.pass_api import Numerics, register_pass
from mlc.rewrite import IRBuilder, Match, Reject, Rule, RulePass

AXES_AS_INPUT = 13  # Squeeze-13 moved `axes` from an attribute to an input


class StaticSqueezeAxes(Rule):
    name = "static-shape"
    law = "Squeeze(x: static shape) -> Squeeze(x, the dims of x that are 1)"
    ops = ("Squeeze",)

    def match(self, node: Node) -> Match | Reject | None:
        if (len(node.inputs) > 1 and node.inputs[1] is not None) or "axes" in node.attributes:
            return None
        x = node.inputs[0]
        t = x.type if x is not None else None
        if not isinstance(t, TensorType) or t.shape is None or not all(isinstance(d, int) for d in t.shape):
            return None
        return Match(node, facts={"axes": [i for i, d in enumerate(t.shape) if d == 1]})

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        node, axes = match.root, match.facts["axes"]
        if (builder.graph.opset_version("") or 0) >= AXES_AS_INPUT:
            constant = builder.constant(np.array(axes, np.int64), f"{node.name or 'squeeze'}_axes")
            if len(node.inputs) > 1:
                node.set_input(1, constant)
            else:
                node.append_input(constant)
        else:
            node.attributes["axes"] = Attr.infer("axes", axes)
        builder.ctx.stats["explicit"] += 1


@register_pass
class ExplicitSqueezeAxes(RulePass):
    name = "explicit-squeeze-axes"
    description = "Write the axes of a Squeeze that omits them, where the input's shape is static"
    numerics = Numerics.EXACT
    statistics = ("explicit",)
    rules = (StaticSqueezeAxes(),)
