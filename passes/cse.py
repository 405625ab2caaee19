"""Common-subexpression elimination.

    a = Op(x, y){attrs};  b = Op(x, y){attrs}   ->   b's readers read a

Two nodes are the same expression when op, domain, overload, inputs (the same values) and
attributes are equal. Nodes with sub-graphs, random ops and ops of unknown domains are left alone;
so is a duplicate whose output is a graph output (the interface keeps two names).
"""

from __future__ import annotations

from collections.abc import Hashable

from mlc.ir.attributes import Attr, AttrType
from mlc.ir.core import Graph, Node
from mlc.ir.tensor import Tensor
from mlc.pass_api import Numerics, Pass, PassContext, register_pass

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


@register_pass
class CommonSubexpressionElimination(Pass):
    name = "cse"
    description = "Merge nodes that compute the same expression from the same inputs"
    numerics = Numerics.EXACT
    statistics = ("merged",)

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        for sub in graph.all_graphs():
            seen: dict[Hashable, Node] = {}
            for node in sub:
                key = expression_key(node)
                if key is None:
                    continue
                first = seen.get(key)
                if first is None:
                    seen[key] = node
                    continue
                if any(v is not None and v.is_graph_output for v in node.outputs):
                    ctx.remark(f"{node.name or node.op_type}: duplicate kept, its output is a graph output")
                    continue
                if not ctx.rewrite("same-expression"):
                    return changed
                for mine, theirs in zip(node.outputs, first.outputs, strict=True):
                    if mine is not None and theirs is not None:
                        mine.replace_all_uses_with(theirs)
                if any(v is not None and v.uses for v in node.outputs):
                    continue  # an output the first node omits is still read: keep this node
                sub.remove(node)
                ctx.stats["merged"] += 1
                changed = True
        return changed
