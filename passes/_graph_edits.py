"""Edits the fusion passes share: a chain or pattern of nodes replaced by one (with provenance),
constants and producers left dead removed, the com.microsoft opset declared where a contrib op
is emitted."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from mlc.ir.core import Graph, Node, Value
from mlc.pass_api import PassContext
from mlc.passes._match_basics import STANDARD
from mlc.passes._transformer_match import MS_DOMAIN


def replace_chain(graph: Graph, ctx: PassContext, rule: str, chain: Sequence[Node], op_type: str,
                  inputs: Sequence[Value | None], attributes: dict[str, Any], *, domain: str = "",
                  name: str | None = None) -> Node:
    """Replace the single-reader chain `chain` (first → last) by one new node that computes the
    last node's first output. The new node is inserted where the last one was, so every value
    the chain read is still defined before it; the chain is then removed, last node first."""
    last = chain[-1]
    out = last.outputs[0]
    assert out is not None
    node = Node(op_type, inputs, [Value(out.name, out.type)], attributes, domain=domain,
                name=chain[0].name if name is None else name)
    ctx.created(node, chain, rule)
    graph.insert_before(last, node)
    new_out = node.outputs[0]
    assert new_out is not None
    out.replace_all_uses_with(new_out, replace_graph_outputs=True)
    for old in reversed(chain):
        graph.remove(old)
    return node


def drop_dead_constants(values: Iterable[Value | None]) -> None:
    """Remove the constants among `values` that nothing reads any more (a weight the fusion
    replaced), so that the result needs no `dce` to be tidy; shared ones stay."""
    for value in values:
        if value is None or not value.is_constant or value.uses or value.is_graph_output:
            continue
        owner = value.graph
        if owner is not None and owner.initializers.get(value.name) is value:
            owner.remove_initializer(value)


def new_constant(graph: Graph, array: np.ndarray, like: Value | None, hint: str) -> Value:
    name = like.name if like is not None and like.name else hint
    return graph.make_constant(array, name)


def ensure_ms_opset(graph: Graph) -> bool:
    """Import the com.microsoft domain (version 1) into the model; False when there is no model."""
    model = graph.root.model
    if model is None:
        return False
    model.opset_imports.setdefault(MS_DOMAIN, 1)
    return True


def fused_name(node: Node, op_type: str) -> str:
    """A name for the fused node in the exporter's scope of `node` (`/a/b/Sub` -> `/a/b/<op>`)."""
    scope, slash, _ = node.name.rpartition("/")
    return f"{scope}/{op_type}" if slash else (f"{node.name}_{op_type}" if node.name else "")


def replace_pattern(graph: Graph, ctx: PassContext, rule: str, matched: Sequence[Node], op_type: str,
                    inputs: Sequence[Value | None], outputs: Sequence[Value | None], attributes: dict[str, Any],
                    *, domain: str = "", name: str = "", before: Node | None = None) -> Node:
    """Replace the matched nodes by one new node.

    outputs[i] is the old value the new node's output i stands for (None: omitted optional
    output); each keeps its name and type. The node is inserted before `before` (default: the
    last matched node, which reads everything the pattern reads), every use of the old values
    moves to the new ones, and the matched nodes are removed once nothing reads them."""
    specs: list[Value | None] = [None if old is None else Value(old.name, old.type) for old in outputs]
    node = Node(op_type, inputs, specs, attributes, domain=domain, name=name)
    ctx.created(node, matched, rule)
    graph.insert_before(before if before is not None else matched[-1], node)
    for old, new in zip(outputs, node.outputs, strict=True):
        if old is not None and new is not None:
            old.replace_all_uses_with(new, replace_graph_outputs=True)
    remove_nodes(graph, matched)
    return node


def remove_nodes(graph: Graph, nodes: Sequence[Node]) -> None:
    """Remove `nodes`, each once nothing reads its outputs (any order given)."""
    pending = list(nodes)
    while pending:
        for node in pending:
            if all(out is None or (not out.uses and not out.is_graph_output) for out in node.outputs):
                graph.remove(node)
                pending.remove(node)
                break
        else:
            raise AssertionError(f"{pending[0]!r}: its outputs are still read after the rewrite")


def remove_dead_producers(values: Iterable[Value | None]) -> int:
    """Remove the standard-domain nodes that produce `values` once nothing reads any of their
    outputs, and then, transitively, the producers of their inputs that die with them: the chain
    a rewrite has orphaned (a Shape→Gather→Concat that fed a folded target). Returns how many
    nodes went. Nodes with sub-graphs or of other domains stay (dce's rules)."""
    removed = 0
    pending = [v for v in values if v is not None]
    while pending:
        value = pending.pop()
        node = value.producer
        if node is None or node.graph is None or node.domain not in STANDARD or node.subgraphs():
            continue
        if any(out is not None and (out.uses or out.is_graph_output) for out in node.outputs):
            continue
        inputs = [v for v in node.inputs if v is not None]
        node.graph.remove(node)
        removed += 1
        pending.extend(inputs)
    return removed
