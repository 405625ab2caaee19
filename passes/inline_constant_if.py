"""Replace an `If` whose condition is a constant by the branch it always takes.

    %y = If(%c) {then_branch = g1, else_branch = g2}   with %c constant true  ->  g1's nodes, %y = g1's output

The taken branch's nodes move into the enclosing graph before the If (they may read outer values,
which are in scope there), its constants become constants of the enclosing graph, and the If's
outputs are replaced by the branch's outputs; the other branch is dropped. Exported models
often carry such Ifs from tracing-time flags (`if self.training`, version checks).
"""

from __future__ import annotations

from mlc.ir.core import Graph, Node
from mlc.ir.tensor import Tensor
from mlc.pass_api import Numerics, Pass, PassContext, register_pass


def _constant_condition(node: Node) -> bool | None:
    cond = node.inputs[0] if node.inputs else None
    if cond is None or not cond.is_constant or not isinstance(cond.const, Tensor) or not cond.const.has_data:
        return None
    values = cond.const.numpy().reshape(-1)
    return bool(values[0]) if values.size == 1 else None


@register_pass
class InlineConstantIf(Pass):
    name = "inline-constant-if"
    description = "Replace an If on a constant condition by the branch it takes"
    numerics = Numerics.EXACT
    statistics = ("inlined",)

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        for sub in list(graph.all_graphs()):
            for node in sub:
                if node.op_type != "If" or node.domain not in ("", "ai.onnx"):
                    continue
                taken = _constant_condition(node)
                if taken is None:
                    continue
                branch = node.attr("then_branch" if taken else "else_branch")
                if not isinstance(branch, Graph) or branch.inputs or len(branch.outputs) != len(node.outputs):
                    ctx.remark(f"If {node.name!r}: kept, its branch has inputs or a different output count")
                    continue
                if not ctx.rewrite("constant-condition"):
                    return changed
                self._inline(sub, node, branch)
                ctx.stats["inlined"] += 1
                changed = True
        return changed

    @staticmethod
    def _inline(graph: Graph, node: Node, branch: Graph) -> None:
        for value in list(branch.initializers.values()):
            branch.initializers.pop(value.name)
            if value.name in graph.initializers:
                value.name = graph.unique_name(value.name)
            graph.add_initializer(value)
        graph.move_before(node, list(branch))
        for out, result in zip(node.outputs, branch.outputs, strict=True):
            if out is not None:
                out.replace_all_uses_with(result, replace_graph_outputs=True)
        branch.outputs = []
        cond = node.inputs[0]
        graph.remove(node)
        if cond is not None and not cond.uses and graph.initializers.get(cond.name) is cond:
            graph.remove_initializer(cond)
