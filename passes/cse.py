"""Common-subexpression elimination.

    a = Op(x, y){attrs};  b = Op(x, y){attrs}   ->   b's readers read a

Two nodes are the same expression when op, domain, overload, inputs (the same values) and
attributes are equal; the rule keeps a table of the expressions seen while the driver walks a
graph, in order, so the first of equal nodes stays. Nodes with sub-graphs, random ops and ops of
unknown domains are left alone; so is a duplicate whose output is a graph output (the interface
keeps two names).
"""

from __future__ import annotations

from collections.abc import Hashable

from mlc.ir.attributes import Attr, AttrType
from mlc.ir.core import Graph, Node
from mlc.ir.tensor import Tensor
from mlc.pass_api import Numerics, register_pass
from mlc.rewrite import ANY_OP, IRBuilder, Match, Reject, Rule, RulePass

_DOMAINS = {"", "ai.onnx", "ai.onnx.ml"}
_NONDETERMINISTIC = {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial",
                     "Bernoulli", "Dropout"}


def _attr_key(attr: Attr) -> Hashable:
    value = attr.value
    if attr.type == AttrType.TENSOR and isinstance(value, Tensor):
        return (attr.name, attr.type, value.dtype, value.shape, value.digest())
    if isinstance(value, list):
        return (attr.name, attr.type, tuple(value))
    if attr.type in (AttrType.INT, AttrType.FLOAT, AttrType.STRING):
        return (attr.name, attr.type, value)
    return None  # sparse tensors, types: not worth comparing


def expression_key(node: Node) -> Hashable | None:
    """A hashable key equal for equal expressions, or None when the node must not be merged."""
    if node.domain not in _DOMAINS or node.op_type in _NONDETERMINISTIC or node.subgraphs():
        return None
    attrs = []
    for attr in sorted(node.attributes.values(), key=lambda a: a.name):
        key = _attr_key(attr)
        if key is None or attr.ref is not None:
            return None
        attrs.append(key)
    return (node.domain, node.op_type, node.overload, tuple(id(v) if v is not None else None for v in node.inputs),
            len(node.outputs), tuple(attrs))


class SameExpression(Rule):
    name = "same-expression"
    law = "a = Op(x, y){attrs}; b = Op(x, y){attrs} -> b's readers read a"
    ops = ANY_OP
    domains = tuple(_DOMAINS)

    def start(self, graph: Graph) -> None:
        self.seen: dict[Hashable, Node] = {}

    def match(self, node: Node) -> Match | Reject | None:
        key = expression_key(node)
        if key is None:
            return None
        first = self.seen.setdefault(key, node)
        if first is node:
            return None
        if any(v is not None and v.is_graph_output for v in node.outputs):
            return self.reject(node, "its output is a graph output (the interface keeps both names)")
        return Match(node, facts={"first": first})

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        node, first = match.root, match.facts["first"]
        for mine, theirs in zip(node.outputs, first.outputs, strict=True):
            if mine is not None and theirs is not None:
                mine.replace_all_uses_with(theirs)
        if any(v is not None and v.uses for v in node.outputs):
            return  # an output the first node omits is still read: keep this node
        builder.graph.remove(node)
        builder.ctx.stats["merged"] += 1


@register_pass
class CommonSubexpressionElimination(RulePass):
    name = "cse"
    description = "Merge nodes that compute the same expression from the same inputs"
    numerics = Numerics.EXACT
    statistics = ("merged",)

    def rule_set(self) -> tuple[Rule, ...]:
        return (SameExpression(),)  # a fresh table per run
