"""`IRBuilder`: how a rule emits nodes and constants, with provenance, in one place.

Every node a rewrite creates goes through `op`: it is inserted before the matched root (so the
order stays topological), stamped with the source nodes it replaces and `pass/rule` as its creator
(`PassContext.created`), and named after the root. `replace` redirects the readers of an old value,
keeping a graph output's name on the interface; `remove` drops the matched nodes once nothing
reads them. The private builders of the legalization passes are this, written three times.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mlc.errors import InternalError
from mlc.ir.core import Graph, Node, Value
from mlc.ir.tensor import Tensor
from mlc.ir.types import Type
from mlc.pass_api import PassContext


class IRBuilder:
    def __init__(self, graph: Graph, ctx: PassContext, anchor: Node | None, rule: str,
                 replaced: Sequence[Node] = ()) -> None:
        """`anchor` is the matched root, where new nodes go; None for a value rule (no nodes to emit)."""
        self.graph, self.ctx, self.anchor, self.rule = graph, ctx, anchor, rule
        self.replaced = tuple(replaced) or ((anchor,) if anchor is not None else ())
        self.created: list[Node] = []

    def op(self, op_type: str, inputs: Sequence[Value | None], attributes: Mapping[str, Any] | None = None, *,
           type: Type | None = None, name: str = "", domain: str = "", outputs: int = 1) -> Value:
        """A new node before the root; returns its (first) output, of `type` when given."""
        if self.anchor is None:
            raise InternalError(f"{self.ctx.pass_name}: rule {self.rule} emits a node but matched no node")
        base = name or f"{self.anchor.name or op_type}/{op_type}"
        node = Node(op_type, list(inputs), [self.graph.unique_name(f"{base}_out{i}" if outputs > 1 else base)
                                            for i in range(outputs)],
                    dict(attributes or {}), domain=domain, name=self.graph.unique_name(base))
        self.ctx.created(node, self.replaced, self.rule)
        self.graph.insert_before(self.anchor, node)
        self.created.append(node)
        first = node.outputs[0]
        assert first is not None
        if type is not None:
            first.type = type
        return first

    def constant(self, array: np.ndarray | Tensor, hint: str) -> Value:
        """A new initializer named after `hint` (unique in the model)."""
        return self.graph.make_constant(array, hint)

    def replace(self, old: Value, new: Value) -> None:
        """Every reader of `old` reads `new`; a graph output keeps its name."""
        old.replace_all_uses_with(new, replace_graph_outputs=True)

    def bypass(self, node: Node, kept: Value) -> None:
        """`node` goes, `kept` takes its (single) output's place: the no-op laws' rewrite."""
        out = node.outputs[0]
        assert out is not None
        self.replace(out, kept)
        self.remove(node)

    def remove(self, *nodes: Node) -> None:
        """Drop matched nodes whose outputs nothing reads any more."""
        for node in nodes:
            if node.graph is not None and not any(v is not None and (v.uses or v.is_graph_output)
                                                  for v in node.outputs):
                node.graph.remove(node)


__all__ = ["IRBuilder"]
