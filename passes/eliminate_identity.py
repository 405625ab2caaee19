"""Remove ops that pass their input through unchanged.

    Identity(x)                          -> x
    Dropout(x) (inference: no training_mode input, or a constant false) -> x   (mask output unused)

A node whose output is a graph output is kept when its input is a graph input or another graph
output (the interface needs two distinct names); otherwise the output name moves to x's producer.
"""

from __future__ import annotations

from mlc.ir.core import Graph, Node
from mlc.pass_api import Numerics, Pass, PassContext, register_pass
from mlc.passes._patterns import output_name_blocked


def _passthrough(node: Node) -> str | None:
    """The rule that applies, or None."""
    if node.domain not in ("", "ai.onnx") or not node.inputs or node.inputs[0] is None:
        return None
    if node.op_type == "Identity":
        return "identity"
    if node.op_type == "Dropout":
        if len(node.outputs) > 1 and node.outputs[1] is not None and (
                node.outputs[1].uses or node.outputs[1].is_graph_output):
            return None
        if len(node.inputs) > 2 and node.inputs[2] is not None:
            mode = node.inputs[2]
            if not mode.is_constant or bool(mode.const.numpy().reshape(-1)[0]):  # type: ignore[union-attr]
                return None
        return "dropout-inference"
    return None


@register_pass
class EliminateIdentity(Pass):
    name = "eliminate-identity"
    description = "Remove Identity and inference-mode Dropout"
    numerics = Numerics.EXACT
    statistics = ("removed",)

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        for sub in graph.all_graphs():
            for node in sub:
                rule = _passthrough(node)
                if rule is None:
                    continue
                source, out = node.inputs[0], node.outputs[0]
                assert source is not None and out is not None
                if output_name_blocked(out, source, sub):
                    ctx.remark(f"{node.name or node.op_type}: kept, it names a graph output")
                    continue
                if not ctx.rewrite(rule):
                    return changed
                out.replace_all_uses_with(source, replace_graph_outputs=True)
                sub.remove(node)
                ctx.stats["removed"] += 1
                changed = True
        return changed
