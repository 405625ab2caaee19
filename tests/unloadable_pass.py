"""A test-only pass that leaves a graph no runtime can load: it turns the ops it matches into an
op that exists nowhere (`ai.onnx::NoSuchOp`), a structurally valid IR that onnxruntime and onnx's
reference evaluator both refuse. `mlc compile` must blame the pass (exit 70), and `mlc debug` must
name the pass and the rewrite, exactly as for a numeric break.

Loaded with `--load tests/unloadable_pass.py` (or `mlc.debugger.load_plugin`).
"""

from __future__ import annotations

from mlc.ir.core import Graph
from mlc.pass_api import Numerics, Pass, PassContext, PassOption, register_pass


@register_pass
class BreakLoading(Pass):
    name = "break-loading"
    description = "Test only: rename every node of one op type to an op no runtime has"
    numerics = Numerics.EXACT
    options = (PassOption("op", str, "Relu", "op type to rename"),
               PassOption("skip", int, 0, "leave the first N matches alone"),)
    statistics = ("broken",)

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        seen = 0
        for node in graph:
            if node.op_type != self.option("op"):
                continue
            seen += 1
            if seen <= self.option("skip"):
                continue
            if not ctx.rewrite("rename-op"):
                break
            node.op_type = "NoSuchOp"
            ctx.stats["broken"] += 1
            changed = True
        return changed
