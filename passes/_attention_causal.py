"""Proof that a decoder's select `Where(keep, scores, fill)` is the causal mask: keep[i, j] = (j <= i).

The condition may be computed from constants (HF GPT-2 slices a tril buffer) and from the shapes of
the block's own tensors (`bias[:, :, ns - nd:ns, :ns]` with nd, ns read from the scores), never
from input values: its cone is collected here and run by `_attention_causal_eval`. The nodes of the
cone that read the block's tensors go with the block.
"""

from __future__ import annotations

from mlc.ir.core import Node, Value
from mlc.passes._attention_block import Block, Causal, fmt, operand
from mlc.passes._attention_causal_eval import BlockShapes, evaluator, triangle_problem
from mlc.passes._match_basics import STANDARD, const_array, label

FILL_MAX = -1e4  # Attention's own causal fill is at least this strong
CONE_LIMIT = 64


def _fill(where: Node, position: int) -> float | str:
    """The constant the select puts where keys are masked: a large negative value."""
    fill = const_array(where.inputs[3 - position])
    if fill is None or fill.size != 1 or fill.dtype.kind != "f":
        return f"{label(where)} does not fill the masked scores with a constant"
    value = float(fill.reshape(-1)[0])
    if value > FILL_MAX:
        return f"{label(where)} fills masked scores with {fmt(value)}, not a large negative value (<= {fmt(FILL_MAX)})"
    return value


def _cone(where: Node, condition: Value, shapes: BlockShapes) -> tuple[list[Node], list[Node]] | str:
    """The nodes computing the condition, and among them its Shape/Size leaves (the rest are constants)."""
    cone: list[Node] = []
    leaves: list[Node] = []
    pending, seen = [condition], set()
    while pending:
        value = pending.pop()
        if id(value) in seen or value.const is not None:
            continue
        seen.add(id(value))
        node = value.producer
        if node is None:
            return f"the causal condition of {label(where)} reads %{value.name}, an input value"
        if node.domain not in STANDARD or node.subgraphs():
            return f"the causal condition of {label(where)} is computed by {label(node)}"
        cone.append(node)
        if len(cone) > CONE_LIMIT:
            return f"the causal condition of {label(where)} takes more than {CONE_LIMIT} nodes"
        if node.op_type in ("Shape", "Size"):
            leaves.append(node)
            read = operand(node)
            if isinstance(read, str):
                return read
            if shapes(read, 1, 2) is None:
                return (f"the causal condition of {label(where)} reads the shape of %{read.name}, which is not one "
                        "of the block's tensors")
            continue
        pending.extend(v for v in node.inputs if v is not None)
    graph = where.graph
    assert graph is not None
    order = {n: i for i, n in enumerate(graph)}
    return list(dict.fromkeys(sorted(cone, key=lambda n: order[n]))), leaves


def _owned(block: Block, cone: list[Node]) -> list[Node]:
    """The cone's nodes reading the block's own tensors (and what they feed): they go with the block."""
    block_values = {id(v) for n in block.nodes for v in n.outputs if v is not None}
    owned: list[Node] = []
    for node in cone:
        if any(v is not None and id(v) in block_values for v in node.inputs):
            owned.append(node)
            block_values.update(id(v) for v in node.outputs if v is not None)
    return owned


def causal_select(block: Block, where: Node, position: int, qk: Node) -> Causal | str:
    """`where` (the scores at input `position`) as the causal select of `block`, or why not."""
    fill = _fill(where, position)
    if isinstance(fill, str):
        return fill
    condition = operand(where, 0)
    if isinstance(condition, str):
        return condition
    scores = operand(where, position)  # present: the match found the scaled Q·Kᵀ there
    assert not isinstance(scores, str)
    shapes = BlockShapes(block, qk, scores)
    found = _cone(where, condition, shapes)
    if isinstance(found, str):
        return found
    cone, leaves = found
    run = evaluator(where, condition, cone, leaves)
    if isinstance(run, str):
        return run
    problem = triangle_problem(where, position, run, leaves, shapes)
    return problem if problem is not None else Causal(where, fill, _owned(block, cone))
