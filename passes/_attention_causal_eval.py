"""Running a causal condition: the block's tensor shapes at any sequence length, and the trials.

The condition's Shape/Size leaves read the block's own tensors, whose dims are known at every
batch and sequence length (`BlockShapes`); the rest of its cone is evaluated with onnx's reference
evaluator for every sequence length S from 1 to 16, then 32, 64, ... 1024, until it fails (a buffer
of max_positions rows stops there: the decomposed graph cannot run longer sequences, the fused op
can); every length it computes must give the lower triangle, and S = 1 must compute.
"""

from __future__ import annotations

import numpy as np

from mlc.ir.core import Node, Value
from mlc.numerics.evaluate import EvaluationError, SubgraphEvaluator
from mlc.passes._attention_block import Block, first_output, operand
from mlc.passes._match_basics import label
from mlc.passes._transformer_match import dims_of

LENGTHS = (*range(1, 17), 32, 64, 128, 256, 512, 1024)


class BlockShapes:
    """The dims of the block's tensors at a given batch and sequence length (what Shape/Size read)."""

    def __init__(self, block: Block, qk: Node, scores: Value) -> None:
        self.block, self.qk = block, qk
        self.scores = {id(first_output(qk)), id(scores)}  # Q·Kᵀ, and scaled if there is a scale node

    def __call__(self, value: Value, batch: int, length: int) -> tuple[int, ...] | None:
        q, v, qk = self.block.q, self.block.v, self.qk
        if id(value) in self.scores:
            return (batch, q.heads, length, length)
        if value is qk.inputs[0]:
            return (batch, q.heads, length, q.head_dim)
        if value is qk.inputs[1]:
            return (batch, q.heads, q.head_dim, length)
        if value in (q.src, self.block.k.src):
            return (batch, length, q.heads * q.head_dim)
        if value is v.src:
            return (batch, length, q.heads * v.head_dim)
        static = dims_of(value)
        if static is not None and all(isinstance(d, int) for d in static):
            return tuple(d for d in static if isinstance(d, int))
        return None

    def leaf_value(self, node: Node, batch: int, length: int) -> np.ndarray:
        """What Shape or Size `node` gives at this batch and length."""
        read = operand(node)
        assert not isinstance(read, str)  # _cone checked it
        dims = self(read, batch, length)
        assert dims is not None
        if node.op_type == "Size":
            return np.array(int(np.prod(dims)), np.int64)
        rank = len(dims)
        start, end = node.attr("start", 0), node.attr("end", rank)
        return np.array(dims[slice(start + rank if start < 0 else start, end + rank if end < 0 else end)], np.int64)


def evaluator(where: Node, condition: Value, cone: list[Node], leaves: list[Node]) -> SubgraphEvaluator | str:
    """The condition as a function of its Shape/Size leaves' values, or why it cannot be evaluated."""
    graph = where.graph
    assert graph is not None
    opsets = dict(graph.root.model.opset_imports) if graph.root.model is not None else {"": 17}
    try:
        return SubgraphEvaluator([n for n in cone if n not in leaves], [first_output(n) for n in leaves],
                                 [condition], opsets)
    except EvaluationError as why:
        return f"the causal condition of {label(where)} cannot be evaluated ({why})"


def triangle_problem(where: Node, position: int, run: SubgraphEvaluator, leaves: list[Node],
                     shapes: BlockShapes) -> str | None:
    """Why the condition is not the lower triangle at every length it computes (None: it is)."""
    # (1, 1) and a batch of 2 must compute; past that, the first failure is the model's longest sequence.
    trials = [(1, 1), (2, 3)] + [(1, length) for length in LENGTHS[1:]]
    static = dims_of(first_output(shapes.qk))
    if static is not None and isinstance(static[-1], int):
        trials = [(1, static[-1])]  # a static sequence: the one length that runs
    for batch, length in trials:
        try:
            (keep,) = run.run([shapes.leaf_value(n, batch, length) for n in leaves])
            if position == 2:
                keep = ~keep.astype(bool)
            full = np.broadcast_to(keep.astype(bool), (batch, shapes.block.q.heads, length, length))
        except (EvaluationError, ValueError) as why:
            if (batch, length) in trials[:2]:
                return f"the causal condition of {label(where)} fails at sequence length {length} ({why})"
            break  # past the model's longest sequence
        if not np.array_equal(full, np.broadcast_to(np.tri(length, dtype=bool), full.shape)):
            return (f"the condition of {label(where)} is not the causal (lower-triangular) mask at sequence "
                    f"length {length}")
    return None
