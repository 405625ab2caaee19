"""The pattern walk of fuse-attention: from a Softmax to the whole block around it.

    Softmax(Add(scale(Q·Kᵀ) or Where(causal, scale(Q·Kᵀ), fill), mask)), axis = last
    then Reshape(Transpose(MatMul(P, V), [0, 2, 1, 3]))

The scores side is `_attention_scores`, the head split and merge `_attention_heads`, the causal
select `_attention_causal`. The scale must be 1/sqrt(head_dim). Every function answers the part it
found or why not.
"""

from __future__ import annotations

import math

from mlc.ir.core import Node, Value
from mlc.passes._attention_block import Block, HeadSplit, first_output, fmt, operand
from mlc.passes._attention_causal import causal_select
from mlc.passes._attention_heads import head_merge_problem, head_split
from mlc.passes._attention_scores import masked_scores
from mlc.passes._match_basics import STANDARD, label


def _readers(value: Value, op_type: str) -> list[Node]:
    return [n for n in value.consumers if n.op_type == op_type and n.domain in STANDARD]


def _query_and_key(qk: Node, scale: float) -> tuple[HeadSplit, HeadSplit] | str:
    """Q and Kᵀ of the scores Q·Kᵀ, split into the same heads and scaled by 1/sqrt(head_dim)."""
    q_in, k_in = operand(qk, 0), operand(qk, 1)
    q = q_in if isinstance(q_in, str) else head_split(q_in, (0, 2, 1, 3), "Q")
    if isinstance(q, str):
        return q
    k = k_in if isinstance(k_in, str) else head_split(k_in, (0, 2, 3, 1), "Kᵀ")
    if isinstance(k, str):
        return k
    if (q.heads, q.head_dim) != (k.heads, k.head_dim):
        return f"Q has {q.heads} heads of {q.head_dim}, K {k.heads} heads of {k.head_dim}"
    expected = 1.0 / math.sqrt(q.head_dim)
    if not math.isclose(scale, expected, rel_tol=1e-5):
        return f"scale {fmt(scale)} is not 1/sqrt(head_dim)={fmt(expected)}"
    return q, k


def _context(softmax: Node, q: HeadSplit) -> tuple[HeadSplit, list[Node]] | str:
    """V's head split and the nodes from P·V to the head merge (P·V, Transpose, Reshape)."""
    probs = first_output(softmax)
    readers = _readers(probs, "MatMul")
    if not readers or readers[0].inputs[0] is not probs:
        return "the probabilities are not multiplied by V"
    pv = readers[0]
    v_in = operand(pv, 1)
    v = v_in if isinstance(v_in, str) else head_split(v_in, (0, 2, 1, 3), "V")
    if isinstance(v, str):
        return v
    if v.heads != q.heads:
        return f"V has {v.heads} heads, Q {q.heads}"
    back = _readers(first_output(pv), "Transpose")
    if not back or list(back[0].attr("perm") or []) != [0, 2, 1, 3]:
        return "P·V is not transposed back by [0, 2, 1, 3]"
    merges = _readers(first_output(back[0]), "Reshape")
    if not merges:
        return "the heads are not merged back by a Reshape"
    why = head_merge_problem(merges[0], q, v)
    return why if why is not None else (v, [pv, back[0], merges[0]])


def match_block(softmax: Node) -> Block | str:
    """The attention block whose Softmax is `softmax`, or why there is none."""
    axis = softmax.attr("axis", -1 if (softmax.graph and (softmax.graph.opset_version("") or 13) >= 13) else 1)
    if axis not in (-1, 3):
        return f"Softmax axis is {axis}, not the last"
    logits = operand(softmax)
    found = logits if isinstance(logits, str) else masked_scores(logits)
    if isinstance(found, str):
        return found
    (qk, scale_node, scale), select, add, mask = found
    heads = _query_and_key(qk, scale)
    if isinstance(heads, str):
        return heads
    context = _context(softmax, heads[0])
    if isinstance(context, str):
        return context
    (q, k), (v, tail) = heads, context
    inner = [softmax, *([add] if add is not None else []), qk, *([scale_node] if scale_node is not None else []), *tail]
    block = Block(softmax, q, k, v, inner, mask, first_output(tail[-1]))
    if select is not None:
        causal = causal_select(block, select.where, select.position, qk)
        if isinstance(causal, str):
            return causal
        block.causal = causal
    return block


def readers_problem(block: Block) -> str | None:
    """Why the fusion cannot remove the block: a value it removes is read outside it."""
    nodes = block.nodes
    members = set(nodes)
    for node in nodes:
        for value in node.outputs:
            if value is None or value is block.out:
                continue
            if value.is_graph_output:
                return f"the output of {label(node)} is a graph output"
            outside = [n for n in value.consumers if n not in members]
            if outside:
                return f"the output of {label(node)} is also read outside the block, by {label(outside[0])}"
    return None
