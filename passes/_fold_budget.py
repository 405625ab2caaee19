"""How much fold-constants may grow a model, and the constant regions it folds as a whole.

The policy is in fold_constants' docstring; this is its arithmetic: what a fold adds (its outputs,
a splat costing one element) minus what it frees (constants only the folded nodes read), checked
against the per-fold floor and the run's budget, which every accepted fold draws on.
"""

from __future__ import annotations

import numpy as np

from mlc.ir.core import Graph, Node
from mlc.ir.dtypes import DType
from mlc.ir.tensor import Tensor
from mlc.ir.types import TensorType

NONDETERMINISTIC = {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial",
                    "Bernoulli", "Dropout"}


def stored_bytes(tensor: Tensor) -> int:
    return max(tensor.dtype.bits // 8, 1) if tensor.is_splat else tensor.nbytes


def static_bytes(t: object) -> int | None:
    """The bytes a value of static tensor type `t` takes, or None when its size is not known."""
    if not isinstance(t, TensorType) or t.shape is None or not t.is_static or t.dtype == DType.STRING:
        return None
    dims = [d for d in t.shape if isinstance(d, int)]  # all of them: the type is static
    return int(np.prod(dims, dtype=np.int64)) * max(t.dtype.bits // 8, 1)


def model_constant_bytes(graph: Graph) -> int:
    """The bytes of constant data the model carries (what the growth budget is a fraction of)."""
    return sum(stored_bytes(v.const) for sub in graph.all_graphs() for v in sub.initializers.values()
               if isinstance(v.const, Tensor))


def foldable(node: Node) -> bool:
    """A node folding may evaluate: deterministic standard ops with tensor outputs, none of them a
    graph output (a graph output cannot be an initializer for every consumer)."""
    if node.domain != "" or node.op_type in NONDETERMINISTIC or node.subgraphs():
        return False
    outputs = [v for v in node.outputs if v is not None]
    if not outputs or any(v.is_graph_output for v in outputs):
        return False
    return all(isinstance(v.type, TensorType) for v in outputs)  # not sequences, optionals, maps


def freed_bytes(nodes: list[Node]) -> int:
    """The stored bytes of the constants that only `nodes` read (dead once they are folded)."""
    members = set(nodes)
    freed, seen = 0, set()
    for node in nodes:
        for value in node.inputs:
            if value is None or id(value) in seen or not value.is_constant or not isinstance(value.const, Tensor):
                continue
            seen.add(id(value))
            if all(user in members for user, _ in value.uses) and not value.is_graph_output:
                freed += stored_bytes(value.const)
    return freed


class FoldBudget:
    """One run's growth allowance: `growth` bytes per fold always, beyond that what is left of
    `budget` (a fraction of the model's constants, capped) after the folds accepted so far."""

    def __init__(self, graph: Graph, limit: int, growth: int, ratio: float, cap: int) -> None:
        self.limit, self.growth = limit, growth
        self.budget = max(0, min(int(ratio * model_constant_bytes(graph.root)), cap))
        self.spent = 0

    def left(self) -> int:
        return max(0, self.budget - self.spent)

    def affordable(self, growth: int) -> bool:
        """Within the per-fold floor, or within what the run's budget has left."""
        return growth <= self.growth or growth <= self.left()

    def region_growth(self, region: list[Node]) -> int | None:
        """By how many bytes folding the region grows the model, or None when an output read outside
        it has no static size or one of its outputs exceeds the limit (affordability is separate)."""
        members = set(region)
        added = 0
        for node in region:
            for value in node.outputs:
                if value is None:
                    continue
                size = static_bytes(value.type)
                if size is None or size > self.limit:
                    return None
                if not all(user in members for user, _ in value.uses):
                    added += size
        return added - freed_bytes(region)


def constant_regions(graph: Graph, seeds: list[Node]) -> dict[Node, list[Node]]:
    """The constant region (in graph order) of each seed not already in an earlier seed's: the
    nodes reachable from it through values, whose inputs are all constants or region outputs."""
    if not seeds:
        return {}  # nothing was refused for growth: no region to look for (a walk of the graph saved)
    constant_nodes: set[Node] = set()
    for node in graph:  # in order: a node is constant when every input is a constant or a constant node's
        if foldable(node) and all(v is None or v.is_constant or v.producer in constant_nodes for v in node.inputs):
            constant_nodes.add(node)
    order = {node: i for i, node in enumerate(graph)}
    done: set[Node] = set()
    regions: dict[Node, list[Node]] = {}
    for seed in seeds:
        if seed in done or seed not in constant_nodes or seed.graph is not graph:
            continue
        region: set[Node] = set()
        stack = [seed]
        while stack:
            node = stack.pop()
            if node in region:
                continue
            region.add(node)
            neighbours = [user for v in node.outputs if v is not None for user, _ in v.uses]
            neighbours += [v.producer for v in node.inputs if v is not None and v.producer is not None]
            stack.extend(n for n in neighbours if n in constant_nodes and n not in region)
        done |= region
        regions[seed] = sorted(region, key=order.__getitem__)
    return regions
