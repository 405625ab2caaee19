"""Make Range's bounds the scalars the spec asks for.

    Range(start, limit, delta) with a one-element [1] operand  ->  Range(..., Reshape(limit, []), ...)

ONNX says Range takes scalars; models (onnx's own expanded AffineGrid among them) pass [1]
tensors, which onnxruntime's kernel accepts but its shape inference refuses as soon as the other
operands are constants it can propagate (after constant folding): the model then fails to load.
The onnxruntime target runs this pass before handing the model over; values do not change.
"""

from __future__ import annotations

import numpy as np

from mlc.ir.core import Node
from mlc.ir.types import TensorType
from mlc.pass_api import Numerics, register_pass
from mlc.rewrite import IRBuilder, Match, Reject, Rule, RulePass


class OneElementBound(Rule):
    name = "one-element-bound"
    law = "Range(..., b: [1], ...) -> Range(..., Reshape(b, []), ...)"
    ops = ("Range",)

    def match(self, node: Node) -> Match | Reject | None:
        bounds = [i for i, v in enumerate(node.inputs)
                  if v is not None and isinstance(v.type, TensorType) and v.type.shape == (1,)]
        return Match(node, facts={"bounds": bounds}) if bounds else None

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        node = match.root
        for index in match.facts["bounds"]:
            value = node.inputs[index]
            assert value is not None and isinstance(value.type, TensorType)
            scalar = builder.op("Reshape", [value, builder.constant(np.zeros(0, np.int64), "scalar_shape")],
                                type=TensorType(value.type.dtype, ()), name=f"{value.name}_scalar")
            node.set_input(index, scalar)
            builder.ctx.stats["reshaped"] += 1


@register_pass
class ScalarizeRange(RulePass):
    name = "scalarize-range"
    description = "Reshape one-element Range bounds to the scalars the spec asks for"
    numerics = Numerics.EXACT
    statistics = ("reshaped",)
    rules = (OneElementBound(),)
