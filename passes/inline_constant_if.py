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
from mlc.pass_api import Numerics, register_pass
from mlc.rewrite import IRBuilder, Match, Reject, Rule, RulePass


def _constant_condition(node: Node) -> bool | None:
    cond = node.inputs[0] if node.inputs else None
    if cond is None or not cond.is_constant or not isinstance(cond.const, Tensor) or not cond.const.has_data:
        return None
    values = cond.const.numpy().reshape(-1)
    return bool(values[0]) if values.size == 1 else None


class ConstantCondition(Rule):
    name = "constant-condition"
    law = "If(true) {then_branch = g1, else_branch = g2} -> g1's nodes (If(false) -> g2's)"
    ops = ("If",)

    def match(self, node: Node) -> Match | Reject | None:
        taken = _constant_condition(node)
        if taken is None:
            return None
        branch = node.attr("then_branch" if taken else "else_branch")
        if not isinstance(branch, Graph) or branch.inputs or len(branch.outputs) != len(node.outputs):
            return self.reject(node, "its branch has inputs or a different output count")
        return Match(node, facts={"branch": branch})

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        graph, node, branch = builder.graph, match.root, match.facts["branch"]
        for value in list(branch.initializers.values()):
            branch.initializers.pop(value.name)
            if value.name in graph.initializers:
                value.name = graph.unique_name(value.name)
            graph.add_initializer(value)
        graph.move_before(node, list(branch))
        for out, result in zip(node.outputs, branch.outputs, strict=True):
            if out is not None:
                builder.replace(out, result)
        branch.outputs = []
        cond = node.inputs[0]
        graph.remove(node)
        if cond is not None and not cond.uses and graph.initializers.get(cond.name) is cond:
            graph.remove_initializer(cond)
        builder.ctx.stats["inlined"] += 1


@register_pass
class InlineConstantIf(RulePass):
    name = "inline-constant-if"
    description = "Replace an If on a constant condition by the branch it takes"
    numerics = Numerics.EXACT
    statistics = ("inlined",)
    rules = (ConstantCondition(),)
