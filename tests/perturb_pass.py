"""A test-only pass that breaks the numbers on purpose: it multiplies the weights of one Conv (or
another op with a constant weight at input 1, `op=Gemm`) by
(1 + epsilon * noise), noise seeded and uniform in [-1, 1], while declaring the `tolerance`
contract. `mlc debug` must find it (epsilon = 1e-3) and must not flag float noise (1e-7).

Loaded by tests and by reproducer commands with `--load tests/perturb_pass.py`.
"""

from __future__ import annotations

import numpy as np

from mlc.ir.core import Graph
from mlc.ir.tensor import Tensor
from mlc.pass_api import Numerics, Pass, PassContext, PassOption, register_pass


@register_pass
class PerturbWeights(Pass):
    name = "perturb-weights"
    description = "Test only: scale one Conv's (or op's) weights by (1 + epsilon * seeded noise)"
    numerics = Numerics.TOLERANCE
    options = (
        PassOption("op", str, "Conv", "op type whose weight (input 1) is perturbed"),
        PassOption("node", str, "", "name of the node to perturb (empty: the first of that op)"),
        PassOption("epsilon", float, 1e-3, "relative size of the noise"),
        PassOption("seed", int, 0, "seed of the noise"),
    )
    statistics = ("perturbed",)

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        target = self.option("node")
        for node in graph:
            if node.op_type != self.option("op") or (target and node.name != target):
                continue
            weight = node.inputs[1]
            if weight is None or not isinstance(weight.const, Tensor):
                ctx.remark(f"{node.name}: weight is not a constant")
                return False
            if not ctx.rewrite("scale-weights"):
                return False
            values = weight.const.numpy()
            noise = np.random.default_rng(self.option("seed")).uniform(-1.0, 1.0, values.shape)
            scaled = (values.astype(np.float64) * (1.0 + self.option("epsilon") * noise)).astype(values.dtype)
            node.set_input(1, graph.make_constant(scaled, f"{weight.name}_perturbed"))
            if not weight.uses:
                graph.remove_initializer(weight)
            ctx.stats["perturbed"] += 1
            return True
        ctx.remark(f"no {self.option('op')} named {target!r}")
        return False
