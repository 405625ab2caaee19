"""`IRBuilder`: how a rule emits nodes and constants, with provenance, in one place.

Every node a rewrite creates goes through the builder: it is inserted before the matched root (so
the order stays topological) and stamped with the source nodes it replaces and `pass/rule` as its
creator (`PassContext.created`). Three ways, by what the rewrite needs to name:

* `op`: a new intermediate node, named after the root;
* `fuse` / `fuse_chain`: one node replacing a matched pattern (a chain), whose outputs keep the
  old values' names and types, so that the fusion changes nothing else in the IR's text;
* `insert`: a node the rule built itself (named after the values it stands for, or placed before
  another node than the root).

`replace` redirects the readers of an old value, keeping a graph output's name on the interface;
`remove` drops matched nodes once nothing reads them. The private builders the legalization
passes had are this, written three times.
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


class _Same:
    """The default of `IRBuilder.insert`'s rule: this builder's rule (None means another thing)."""


SAME = _Same()


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

    def insert(self, node: Node, *, replaced: Sequence[Node] | None = None, rule: str | _Same | None = SAME,
               before: Node | None = None) -> Value:
        """Insert `node` before `before` (the root by default), stamped as replacing `replaced` (the
        match's nodes by default) by `rule` (this rule by default; None: the last rule counted);
        returns its first output."""
        where = before or self.anchor
        if where is None:
            raise InternalError(f"{self.ctx.pass_name}: rule {self.rule} emits a node but matched no node")
        self.graph.insert_before(where, node)
        self.ctx.created(node, self.replaced if replaced is None else replaced,
                         self.rule if isinstance(rule, _Same) else rule)
        self.created.append(node)
        first = node.outputs[0]
        assert first is not None
        return first

    def fuse(self, matched: Sequence[Node], op_type: str, inputs: Sequence[Value | None],
             outputs: Sequence[Value | None], attributes: Mapping[str, Any] | None = None, *, domain: str = "",
             name: str = "", before: Node | None = None) -> Node:
        """Replace the matched nodes by one new node. outputs[i] is the old value the new node's
        output i stands for (None: an omitted optional output); each keeps its name and type. The
        node goes before `before` (default: the last matched node, which reads everything the
        pattern reads); the readers of the old values move to the new ones; the matched nodes go."""
        specs = [None if old is None else Value(old.name, old.type) for old in outputs]
        node = Node(op_type, list(inputs), specs, dict(attributes or {}), domain=domain, name=name)
        self.insert(node, replaced=matched, before=before if before is not None else matched[-1])
        for old, new in zip(outputs, node.outputs, strict=True):
            if old is not None and new is not None:
                self.replace(old, new)
        self.remove_all(matched)
        return node

    def fuse_chain(self, chain: Sequence[Node], op_type: str, inputs: Sequence[Value | None],
                   attributes: Mapping[str, Any] | None = None, *, domain: str = "", name: str | None = None) -> Node:
        """`fuse` for a single-reader chain (first -> last) computing the last node's first output;
        the new node is named after the chain's first node unless `name` says otherwise."""
        out = chain[-1].outputs[0]
        assert out is not None
        return self.fuse(chain, op_type, inputs, [out], attributes, domain=domain,
                         name=chain[0].name if name is None else name)

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

    def remove_all(self, nodes: Sequence[Node]) -> None:
        """Remove every one of `nodes`, each once nothing reads it (in whatever order they come);
        one still read after the rewrite is the rule's fault."""
        pending = [n for n in nodes if n.graph is not None]
        while pending:
            ready = next((n for n in pending if not any(v is not None and (v.uses or v.is_graph_output)
                                                        for v in n.outputs)), None)
            if ready is None:
                raise InternalError(f"{self.ctx.pass_name}: rule {self.rule} left {pending[0]!r} read after "
                                    "its rewrite")
            self.graph.remove(ready)
            pending.remove(ready)

    def remove(self, *nodes: Node) -> None:
        """Drop matched nodes whose outputs nothing reads any more."""
        for node in nodes:
            if node.graph is not None and not any(v is not None and (v.uses or v.is_graph_output)
                                                  for v in node.outputs):
                node.graph.remove(node)


__all__ = ["IRBuilder"]
