"""Make Range's bounds the scalars the spec asks for.

    Range(start, limit, delta) with a one-element [1] operand  ->  Range(..., Reshape(limit, []), ...)

ONNX says Range takes scalars; models (onnx's own expanded AffineGrid among them) pass [1]
tensors, which onnxruntime's kernel accepts but its shape inference refuses as soon as the other
operands are constants it can propagate (after constant folding): the model then fails to load.
The onnxruntime target runs this pass before handing the model over; values do not change.
"""

from __future__ import annotations

import numpy as np

from mlc.ir.core import Graph, Node, Value
from mlc.ir.types import TensorType
from mlc.pass_api import Numerics, Pass, PassContext, register_pass


@register_pass
class ScalarizeRange(Pass):
    name = "scalarize-range"
    description = "Reshape one-element Range bounds to the scalars the spec asks for"
    numerics = Numerics.EXACT
    statistics = ("reshaped",)

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        for sub in list(graph.all_graphs()):
            for node in sub:
                if node.op_type != "Range" or node.domain not in ("", "ai.onnx"):
                    continue
                for index, value in enumerate(node.inputs):
                    if value is None or not isinstance(value.type, TensorType) or value.type.shape != (1,):
                        continue
                    if not ctx.rewrite("one-element-bound"):
                        return changed
                    scalar = Value(sub.unique_name(f"{value.name}_scalar"), TensorType(value.type.dtype, ()))
                    reshape = Node("Reshape", [value, sub.make_constant(np.zeros(0, np.int64), "scalar_shape")],
                                   [scalar])
                    ctx.created(reshape, [node], "one-element-bound")
                    sub.insert_before(node, reshape)
                    node.set_input(index, scalar)
                    ctx.stats["reshaped"] += 1
                    changed = True
        return changed
