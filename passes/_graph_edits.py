"""Edits the fusion passes share beside what `IRBuilder` does: constants and producers a rewrite
left dead removed, the com.microsoft opset declared where a contrib op is emitted, names for
fused nodes in the exporter's scope."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from mlc.ir.core import Graph, Node, Value
from mlc.passes._match_basics import STANDARD
from mlc.passes._transformer_match import MS_DOMAIN


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
