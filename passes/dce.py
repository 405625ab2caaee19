"""Dead-code elimination.

    y = Op(...) where no node, sub-graph or graph output reads y   ->  removed
    initializer read by nobody (and not a graph input)              ->  removed

Nodes are removed in reverse order so that a chain of dead nodes goes in one sweep. Nodes that
may have side effects are kept even if unused: none in ai.onnx have, but unknown domains might, so
only ops of the standard domains are removed. Graph inputs are the model's interface and stay.
"""

from __future__ import annotations

from mlc.ir.core import Graph, Node
from mlc.pass_api import Numerics, Pass, PassContext, register_pass

_PURE_DOMAINS = {"", "ai.onnx", "ai.onnx.ml", "com.microsoft"}


def _is_dead(node: Node) -> bool:
    return all(v is None or (not v.uses and not v.is_graph_output) for v in node.outputs)


@register_pass
class DeadCodeElimination(Pass):
    name = "dce"
    description = "Remove nodes whose outputs nobody reads, and unused constants"
    numerics = Numerics.EXACT
    statistics = ("nodes_removed", "constants_removed")

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        for sub in reversed(list(graph.all_graphs())):  # inner graphs first: their reads of outer values go
            changed |= self._sweep(sub, ctx)
        return changed

    def _sweep(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        for node in reversed(graph.nodes):
            if node.domain in _PURE_DOMAINS and _is_dead(node):
                if not ctx.rewrite("dead-node"):
                    return changed
                graph.remove(node)
                ctx.stats["nodes_removed"] += 1
                changed = True
        inputs = {id(v) for v in graph.inputs}
        for value in [*graph.initializers.values(), *graph.sparse_initializers.values()]:
            if not value.uses and id(value) not in inputs and not value.is_graph_output:
                if not ctx.rewrite("dead-constant"):
                    return changed
                graph.remove_initializer(value)
                ctx.stats["constants_removed"] += 1
                changed = True
        return changed
