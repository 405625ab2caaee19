"""Remove ops that pass their input through unchanged.

    Identity(x)                          -> x
    Dropout(x) (inference: no training_mode input, or a constant false) -> x   (mask output unused)

A node whose output is a graph output is kept when its input is a graph input or another graph
output (the interface needs two distinct names); otherwise the output name moves to x's producer.
"""

from __future__ import annotations

from mlc.ir.core import Node
from mlc.pass_api import Numerics, register_pass
from mlc.passes._match_basics import output_name_blocked
from mlc.rewrite import IRBuilder, Match, Reject, Rule, RulePass


class _PassThrough(Rule):
    """Shared by both laws: the node's output becomes its input."""

    def passes_through(self, node: Node) -> Match | Reject | None:
        source, out = node.inputs[0] if node.inputs else None, node.outputs[0]
        if source is None or out is None:
            return None
        if output_name_blocked(out, source, node.graph):  # type: ignore[arg-type]
            return self.reject(node, "its output names a graph output its input cannot take")
        return Match(node, values={"x": source, "y": out})

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        builder.bypass(match.root, match["x"])
        builder.ctx.stats["removed"] += 1


class DropIdentity(_PassThrough):
    name = "identity"
    law = "Identity(x) -> x"
    ops = ("Identity",)

    def match(self, node: Node) -> Match | Reject | None:
        return self.passes_through(node)


class DropInferenceDropout(_PassThrough):
    name = "dropout-inference"
    law = "Dropout(x) -> x   (no training mode, mask unread)"
    ops = ("Dropout",)

    def match(self, node: Node) -> Match | Reject | None:
        mask = node.outputs[1] if len(node.outputs) > 1 else None
        if mask is not None and (mask.uses or mask.is_graph_output):
            return self.reject(node, "its mask output is read")
        mode = node.inputs[2] if len(node.inputs) > 2 else None
        if mode is not None and (not mode.is_constant or bool(mode.const.numpy().reshape(-1)[0])):  # type: ignore[union-attr]
            return self.reject(node, "training_mode is not a constant false")
        return self.passes_through(node)


@register_pass
class EliminateIdentity(RulePass):
    name = "eliminate-identity"
    description = "Remove Identity and inference-mode Dropout"
    numerics = Numerics.EXACT
    statistics = ("removed",)
    rules = (DropIdentity(), DropInferenceDropout())
