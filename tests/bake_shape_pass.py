"""A test-only pass with a classic bug: it folds `Shape(x)` of a dynamic `x` into a constant,
baking in one size for every symbolic dim (`size`, default 2: the batch of the first shape set
the checks use). Right at that size, wrong at any other: the second shape set must catch it.

Loaded with `mlc.debugger.load_plugin("tests/bake_shape_pass.py")`.
"""

from __future__ import annotations

import numpy as np

from mlc.ir.core import Graph
from mlc.ir.types import TensorType
from mlc.pass_api import Numerics, Pass, PassContext, PassOption, register_pass


@register_pass
class BakeShape(Pass):
    name = "bake-shape"
    description = "Test only: fold Shape of a dynamic tensor with every symbolic dim set to one size"
    numerics = Numerics.EXACT
    options = (PassOption("size", int, 2, "the size baked in for every symbolic dim"),)
    statistics = ("baked",)

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        for node in graph:
            source = node.inputs[0] if node.op_type == "Shape" and node.inputs else None
            if source is None or not isinstance(source.type, TensorType) or source.type.shape is None:
                continue
            dims = [d if isinstance(d, int) else self.option("size") for d in source.type.shape]
            if not ctx.rewrite("bake"):
                break
            constant = graph.make_constant(np.array(dims, np.int64), "baked_shape")
            node.outputs[0].replace_all_uses_with(constant, replace_graph_outputs=True)
            graph.remove(node)
            changed = True
        return changed
