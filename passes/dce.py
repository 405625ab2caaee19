"""Dead-code elimination.

    y = Op(...) where no node, sub-graph or graph output reads y   ->  removed
    initializer read by nobody (and not a graph input)              ->  removed
    optional output read by nobody (Dropout's mask, MaxPool's indices, LayerNormalization's
    Mean/InvStdDev, ...)                                            ->  omitted (kernels skip it)
    graph input read by nobody                                      ->  removed only with
                                                                        prune_inputs=true

The driver walks each graph last node first (inner graphs before outer ones), so that a chain of
dead nodes goes in one sweep. Nodes that
may have side effects are kept even if unused: none in ai.onnx have, but unknown domains might, so
only ops of the standard domains are removed. Graph inputs are the model's interface and stay
unless `prune_inputs` (`--prune-inputs`) says otherwise.
"""

from __future__ import annotations

from mlc.ir.core import Graph, Node, Value
from mlc.pass_api import Numerics, PassOption, register_pass
from mlc.rewrite import ANY_OP, AnyRule, IRBuilder, Match, Rule, RulePass, ValueMatch, ValueRule

PURE_DOMAINS = ("", "ai.onnx", "ai.onnx.ml", "com.microsoft")
# ai.onnx ops whose listed outputs are optional (the spec marks them so): omitting one lets the
# runtime skip computing it.
OPTIONAL_OUTPUTS: dict[str, tuple[int, ...]] = {
    "Dropout": (1,), "MaxPool": (1,), "BatchNormalization": (1, 2), "LayerNormalization": (1, 2),
    "LSTM": (0, 1, 2), "GRU": (0, 1), "RNN": (0, 1), "Unique": (1, 2, 3), "SoftmaxCrossEntropyLoss": (1,),
    "Attention": (1, 2, 3),
}


def _unread(value: Value | None) -> bool:
    return value is None or (not value.has_uses and not value.is_graph_output)


class DeadNode(Rule):
    name = "dead-node"
    law = "Op(...) whose outputs nobody reads -> removed (side-effect-free domains only)"
    ops = ANY_OP
    domains = PURE_DOMAINS

    def match(self, node: Node) -> Match | None:  # asked of every node: a loop, not a generator
        for value in node.outputs:
            if not _unread(value):
                return None
        return Match(node)

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        builder.graph.remove(match.root)
        builder.ctx.stats["nodes_removed"] += 1


class UnusedOptionalOutput(Rule):
    name = "unused-optional-output"
    law = "Op(...) -> (y, mask) with mask unread -> Op(...) -> (y) (the kernel skips it)"
    ops = tuple(OPTIONAL_OUTPUTS)

    def match(self, node: Node) -> Match | None:
        unread = [i for i in OPTIONAL_OUTPUTS[node.op_type]
                  if i < len(node.outputs) and node.outputs[i] is not None and _unread(node.outputs[i])]
        return Match(node, facts={"outputs": unread}) if unread else None

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        for index in match.facts["outputs"]:
            match.root.drop_output(index)
            builder.ctx.stats["outputs_dropped"] += 1


class DeadConstant(ValueRule):
    name = "dead-constant"
    law = "initializer nobody reads (not a graph input) -> removed"

    def start(self, graph: Graph) -> None:
        self.inputs = {id(v) for v in graph.inputs}

    def match(self, value: Value) -> ValueMatch | None:
        return ValueMatch(value) if _unread(value) and id(value) not in self.inputs else None

    def rewrite(self, match: ValueMatch, builder: IRBuilder) -> None:
        builder.graph.remove_initializer(match.value)
        builder.ctx.stats["constants_removed"] += 1


class UnusedInput(ValueRule):
    name = "unused-input"
    law = "graph input nobody reads -> removed (only with prune_inputs: the interface changes)"
    offers = "inputs"

    def match(self, value: Value) -> ValueMatch | None:
        return ValueMatch(value) if _unread(value) else None

    def rewrite(self, match: ValueMatch, builder: IRBuilder) -> None:
        builder.graph.inputs.remove(match.value)
        builder.graph.initializers.pop(match.value.name, None)
        builder.ctx.stats["inputs_removed"] += 1


@register_pass
class DeadCodeElimination(RulePass):
    name = "dce"
    description = "Remove nodes whose outputs nobody reads, and unused constants"
    numerics = Numerics.EXACT
    options = (PassOption("prune_inputs", bool, False,
                          "also remove graph inputs nothing reads (changes the interface)"),)
    statistics = ("nodes_removed", "constants_removed", "outputs_dropped", "inputs_removed")
    reverse = True

    def rule_set(self) -> tuple[AnyRule, ...]:
        rules: tuple[AnyRule, ...] = (DeadNode(), UnusedOptionalOutput(), DeadConstant())
        return (*rules, UnusedInput()) if self.option("prune_inputs") else rules
