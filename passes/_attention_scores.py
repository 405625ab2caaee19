"""The scores side of an attention block: what feeds the Softmax.

    Add(scale(Q·Kᵀ), mask)  or  scale(Q·Kᵀ),   scale(s) = Div(s, c) | Mul(s, c) | Mul(c, s) | s
    where scale(Q·Kᵀ) may sit in a causal select Where(keep, ·, fill) or Where(keep, fill, ·)

Each function answers the part it found or why not.
"""

from __future__ import annotations

from typing import NamedTuple

from mlc.ir.core import Node, Value
from mlc.passes._attention_block import operand
from mlc.passes._match_basics import const_array, label
from mlc.passes._transformer_match import producer


class Scores(NamedTuple):
    matmul: Node  # Q·Kᵀ
    scale_node: Node | None
    scale: float


class Select(NamedTuple):
    where: Node  # Where(c, scores, fill) or Where(c, fill, scores)
    position: int  # of the scores in it


def scaled_scores(value: Value) -> Scores | str:
    """`value` = Div(mm, c) | Mul(mm, c) | Mul(c, mm) | mm."""
    node = producer(value, "Div", "Mul", "MatMul")
    if node is None:
        return "not scaled scores"
    if node.op_type == "MatMul":
        return Scores(node, None, 1.0)
    for position in ((0, 1) if node.op_type == "Mul" else (0,)):
        mm = producer(node.inputs[position], "MatMul")
        c = const_array(node.inputs[1 - position])
        if mm is None:
            continue
        if c is None or c.size != 1 or c.dtype.kind != "f":
            return f"the scores are scaled by {label(node)} with a non-constant or non-scalar factor"
        factor = float(c.reshape(-1)[0])
        if node.op_type == "Div":
            if factor == 0.0:
                return f"{label(node)} divides by zero"
            factor = 1.0 / factor
        return Scores(mm, node, factor)
    return f"{label(node)} does not scale a MatMul"


def scores_or_causal(value: Value) -> tuple[Scores, Select | None] | str:
    """The scaled Q·Kᵀ that `value` is, directly or through a causal select (None: no select)."""
    where = producer(value, "Where")
    if where is None:
        found = scaled_scores(value)
        return found if isinstance(found, str) else (found, None)
    for position in (1, 2):
        selected = operand(where, position)
        scored = selected if isinstance(selected, str) else scaled_scores(selected)
        if not isinstance(scored, str):
            return scored, Select(where, position)
    return f"{label(where)} selects between values neither of which is the scaled Q·Kᵀ"


def masked_scores(logits: Value) -> tuple[Scores, Select | None, Node | None, Value | None] | str:
    """(scores, select, mask Add, mask) that the Softmax's input `logits` is made of."""
    add = producer(logits, "Add")
    if add is None:
        found = scores_or_causal(logits)
        if not isinstance(found, str):
            return (*found, None, None)
        source = logits.producer
        kind = f"{label(source)}" if source is not None else "a graph input"
        detail = f" ({found})" if source is not None and source.op_type == "Where" else ""
        return f"its input comes from {kind}, not from Add(scaled Q·Kᵀ, mask) or scaled Q·Kᵀ{detail}"
    reasons = []
    for position in (0, 1):
        term = operand(add, position)
        found = term if isinstance(term, str) else scores_or_causal(term)
        if not isinstance(found, str):
            return (*found, add, add.inputs[1 - position])
        reasons.append(found)
    return f"neither input of {label(add)} is the scaled Q·Kᵀ ({'; '.join(reasons)})"
