"""Merge two consecutive layout ops into one (each line is a rule).

    transpose-transpose   Transpose(Transpose(x){p}){q}  -> Transpose(x){perm[i] = p[q[i]]}
    transpose-cancel      ... whose composed perm is the identity   -> x
                          (an Identity(x) where the result names a graph output that x cannot take over:
                          a graph input, a constant, an outer value or another graph output)
    squeeze-squeeze       Squeeze(Squeeze(x, a), b)      -> Squeeze(x, a + b mapped back onto x's axes)
    unsqueeze-unsqueeze   Unsqueeze(Unsqueeze(x, a), b)  -> Unsqueeze(x, b + a mapped onto the result's axes)
    reshape-reshape       Reshape(Reshape(x, s), t)      -> Reshape(x, t)
    squeeze-reshape, unsqueeze-reshape, flatten-reshape: the same with Squeeze/Unsqueeze/Flatten first
    transpose-reshape     the same with a Transpose first that moves only dims of size 1 (the data
                          keep their order: the dynamo exporter's LSTM output [s, 1, b, h] -> [s, b, 1, h])
    reshape-unsqueeze     Unsqueeze(Reshape(x, t), a), t constant -> Reshape(x, t with 1s inserted at a)
    reshape-squeeze       Squeeze(Reshape(x, t), a), t constant with 1 at each axis of a
                          -> Reshape(x, t without them); both need t free of 0 entries (without
                          allowzero a 0 copies x's dim at its position, which the 1s would shift);
                          a -1 stays, the element count is the same (torchvision's
                          MultiheadAttention: Unsqueeze(Reshape(qkv, [L, -1, 3, E]), 0))
    static-reshape        Squeeze/Unsqueeze/Flatten of a Reshape/Squeeze/Unsqueeze/Flatten, where the
                          result's shape is static and has no 0 dim -> Reshape(x, that shape)

A pair merges only when the first op's output has exactly that one reader and is no graph output
(otherwise the first op stays and nothing is saved). All rules move data without computing. The
plans are `mlc.passes._layout_plans` (perms, axes) and `mlc.passes._layout_reshape_plans`; a kept
pair is remarked as `rule at 'node': not applied, why`.

A 0 in the last Reshape's shape (without allowzero) copies a dim of the intermediate tensor, not
of x: it is kept only where the two dims are known equal (the first Reshape copied it with its own
0, or both types give the same static or symbolic dim), replaced by the intermediate dim where that
is static and non-zero, or by -1 where it is the only such entry, there is no -1 and every other
entry is a non-zero constant (the element count then determines it); otherwise the pair is kept
with a remark. -1 entries need no care: the
element count is the same. Negative axes are normalized with the known ranks; a pair whose negative
axes meet an unknown rank is kept. Axes are an attribute before opset 13 and an input from 13 on.

New shapes and axes are new constants; the constants the merged nodes read are left in place when
they become unused: `dce`, which the pipelines run last, deletes them.
"""

from __future__ import annotations

import numpy as np

from mlc.ir.core import Node, Value
from mlc.pass_api import Numerics, register_pass
from mlc.passes._layout_plans import RESHAPING, LayoutPlan
from mlc.passes._layout_reshape_plans import pair_rule, plan_merge
from mlc.rewrite import IRBuilder, Match, Reject, Rule, RulePass, label

LAYOUT_OPS = ("Transpose", *sorted(RESHAPING))


def producer_pair(node: Node) -> Node | None:
    """The layout op feeding `node`'s data input, when both are plain ONNX ops of this graph."""
    if node.domain != "" or node.op_type not in LAYOUT_OPS:
        return None
    if not node.inputs or node.inputs[0] is None or len(node.outputs) != 1 or node.outputs[0] is None:
        return None
    first = node.inputs[0].producer
    if first is None or first.graph is not node.graph or first.domain != "":
        return None
    if first.op_type not in LAYOUT_OPS or not first.inputs or first.inputs[0] is None:
        return None
    if any(a.ref is not None for n in (first, node) for a in n.attributes.values()):
        return None
    return first


class MergeLayoutPair(Rule):
    """One rule for the family: the plan of the pair names the member that applies."""

    name = "merge-layout-ops"
    law = "Layout2(Layout1(x)) -> one layout op of x, or x"
    ops = LAYOUT_OPS

    def match(self, node: Node) -> Match | Reject | None:
        first = producer_pair(node)
        if first is None or node.graph is None:
            return None
        plan = plan_merge(first, node, node.graph.opset_version(""))
        if plan is None:
            return None
        if isinstance(plan, str):
            return Reject(pair_rule(first, node), label(node), plan)
        y = first.outputs[0]
        if y is None or y.is_graph_output or y.uses != [(node, 0)]:
            why = "names a graph output" if y is None or y.is_graph_output else f"has {len(y.uses)} readers"
            return Reject(plan.rule, label(node), f"the {first.op_type} {first.name!r} before it {why}")
        return Match(node, nodes=(first, node), facts={"plan": plan}, rule=plan.rule)

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        first, second, plan = match.nodes[0], match.root, match.facts["plan"]
        x, z, sub = first.inputs[0], second.outputs[0], builder.graph
        assert x is not None and z is not None
        op, inputs = plan.op, plan.inputs
        if op is None:
            if not z.is_graph_output or not (x.producer is None or x.is_graph_output or x.graph is not sub):
                z.replace_all_uses_with(x, replace_graph_outputs=True)
                sub.remove(second)
                sub.remove(first)
                builder.ctx.stats["cancelled"] += 1
                return
            # The result names a graph output that x cannot take over: one Identity keeps both names.
            op, inputs = "Identity", [x]
            builder.ctx.remark(f"{second.op_type} {second.name!r}: cancels out, kept as an Identity: "
                               "it names a graph output")
        values = [sub.make_constant(v, "shape" if op == "Reshape" else "axes") if isinstance(v, np.ndarray)
                  else v for v in inputs]
        attributes = plan.attributes if plan.op is not None else []
        out = builder.insert(Node(op, values, [Value(sub.unique_name(z.name or op), z.type)], attributes,
                                  name=second.name), replaced=(first, second), rule=plan.rule)
        z.replace_all_uses_with(out, replace_graph_outputs=True)
        sub.remove(second)
        sub.remove(first)
        builder.ctx.stats["merged"] += 1


@register_pass
class MergeLayoutOps(RulePass):
    name = "merge-layout-ops"
    description = "Merge consecutive Transposes, Reshapes, Squeezes and Unsqueezes into one op"
    numerics = Numerics.EXACT
    statistics = ("merged", "cancelled")
    rules = (MergeLayoutPair(),)


__all__ = ["LAYOUT_OPS", "LayoutPlan", "MergeLayoutOps", "MergeLayoutPair", "plan_merge", "producer_pair"]
