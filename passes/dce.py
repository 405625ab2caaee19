"""Dead-code elimination.

    y = Op(...) where no node, sub-graph or graph output reads y   ->  removed
    initializer read by nobody (and not a graph input)              ->  removed
    optional output read by nobody (Dropout's mask, MaxPool's indices, LayerNormalization's
    Mean/InvStdDev, ...)                                            ->  omitted (kernels skip it)
    graph input read by nobody                                      ->  removed only with
                                                                        prune_inputs=true

Nodes are removed in reverse order so that a chain of dead nodes goes in one sweep. Nodes that
may have side effects are kept even if unused: none in ai.onnx have, but unknown domains might, so
only ops of the standard domains are removed. Graph inputs are the model's interface and stay
unless `prune_inputs` (`--prune-inputs`) says otherwise.
"""

from __future__ import annotations

from mlc.ir.core import Graph, Node
from mlc.pass_api import Numerics, Pass, PassContext, PassOption, register_pass

_PURE_DOMAINS = {"", "ai.onnx", "ai.onnx.ml", "com.microsoft"}
# ai.onnx ops whose listed outputs are optional (the spec marks them so): omitting one lets the
# runtime skip computing it.
_OPTIONAL_OUTPUTS: dict[str, tuple[int, ...]] = {
    "Dropout": (1,), "MaxPool": (1,), "BatchNormalization": (1, 2), "LayerNormalization": (1, 2),
    "LSTM": (0, 1, 2), "GRU": (0, 1), "RNN": (0, 1), "Unique": (1, 2, 3), "SoftmaxCrossEntropyLoss": (1,),
    "Attention": (1, 2, 3),
}


def _is_dead(node: Node) -> bool:
    return all(v is None or (not v.uses and not v.is_graph_output) for v in node.outputs)


@register_pass
class DeadCodeElimination(Pass):
    name = "dce"
    description = "Remove nodes whose outputs nobody reads, and unused constants"
    numerics = Numerics.EXACT
    options = (PassOption("prune_inputs", bool, False,
                          "also remove graph inputs nothing reads (changes the interface)"),)
    statistics = ("nodes_removed", "constants_removed", "outputs_dropped", "inputs_removed")

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        for sub in reversed(list(graph.all_graphs())):  # inner graphs first: their reads of outer values go
            changed |= self._sweep(sub, ctx)
        if self.option("prune_inputs"):
            for value in list(graph.inputs):
                if not value.uses and not value.is_graph_output:
                    if not ctx.rewrite("unused-input"):
                        return changed
                    graph.inputs.remove(value)
                    graph.initializers.pop(value.name, None)
                    ctx.stats["inputs_removed"] += 1
                    changed = True
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
                continue
            if node.domain in ("", "ai.onnx"):
                for index in _OPTIONAL_OUTPUTS.get(node.op_type, ()):
                    value = node.outputs[index] if index < len(node.outputs) else None
                    if value is None or value.uses or value.is_graph_output:
                        continue
                    if not ctx.rewrite("unused-optional-output"):
                        return changed
                    node.drop_output(index)
                    ctx.stats["outputs_dropped"] += 1
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
