"""The two ends of an attention block: Q, K and V split into heads, the context merged back.

    Transpose(...(Reshape(src, [0, 0, H, d])))   src [B, S, H*d] -> [B, H, S, d] (K: [B, H, d, S])
    Reshape(Transpose(P·V, [0, 2, 1, 3]), [0, 0, H*dv])          -> [B, S, H*dv]

Both Reshape targets must be constants (`simplify-shapes` makes them so) that copy the batch and
sequence dims (0, the dim itself, or one -1).
"""

from __future__ import annotations

from mlc.ir.core import Node, Value
from mlc.ir.types import Dim
from mlc.passes._attention_block import HeadSplit, operand
from mlc.passes._match_basics import const_array, label
from mlc.passes._transformer_match import dims_of, producer


def reshape_copies(entry: int, dim: Dim) -> bool:
    """Whether a Reshape target entry keeps input dim `dim` at the same position."""
    return entry == 0 or (isinstance(dim, int) and entry == dim)


def _transposes(value: Value, what: str) -> tuple[list[Node], tuple[int, ...], Value] | str:
    """The Transpose chain ending in `value` (last first), its composed perm and what it reads."""
    transposes: list[Node] = []
    perm: tuple[int, ...] = (0, 1, 2, 3)
    current = value
    while (node := producer(current, "Transpose")) is not None:
        p = node.attr("perm")
        if p is None or len(p) != 4:
            return f"{what}: {label(node)} is not a 4-D transpose with a perm"
        perm = tuple(int(p[i]) for i in perm)  # y2[i] = y1[p2[i]] = x[p1[p2[i]]]
        transposes.append(node)
        source = operand(node)
        if isinstance(source, str):
            return source
        current = source
    return transposes, perm, current


def head_split(value: Value, want_perm: tuple[int, ...], what: str) -> HeadSplit | str:
    """`value` as the Transpose chain (composed perm `want_perm`) of Reshape(src, [B, S, H, d])."""
    chain = _transposes(value, what)
    if isinstance(chain, str):
        return chain
    transposes, perm, current = chain
    if not transposes:
        return f"{what} is not a Transpose of the head split"
    if perm != want_perm:
        return f"{what} is transposed by {list(perm)}, not {list(want_perm)}"
    reshape = producer(current, "Reshape")
    if reshape is None:
        return f"{what} is not split into heads by a Reshape"
    src = operand(reshape)
    if isinstance(src, str):
        return src
    target = const_array(reshape.inputs[1] if len(reshape.inputs) > 1 else None)
    if target is None:
        return (f"the head-split target of {what} ({label(reshape)}) is not a constant "
                "(run simplify-shapes first)")
    entries = [int(t) for t in target.reshape(-1)]
    shape = dims_of(src)
    if shape is None or len(shape) != 3 or not isinstance(shape[2], int):
        return f"the input of {label(reshape)} is not known to be 3-D with a static last dim"
    if len(entries) != 4 or (0 in entries and reshape.attr("allowzero", 0)):
        return f"{label(reshape)} target {entries} is not [batch, sequence, heads, head_dim]"
    heads, head_dim = entries[2], entries[3]
    leading_ok = (entries[:2].count(-1) <= 1 and all(e == -1 or reshape_copies(e, d)
                                                      for e, d in zip(entries[:2], shape[:2], strict=True)))
    if heads <= 0 or head_dim <= 0 or heads * head_dim != shape[2] or not leading_ok:
        return f"{label(reshape)} target {entries} does not split {list(shape)} into heads"
    return HeadSplit(src, heads, head_dim, [reshape, *reversed(transposes)])


def head_merge_problem(merge: Node, q: HeadSplit, v: HeadSplit) -> str | None:
    """Why Reshape `merge` does not turn the [B, S, H, dv] context into [B, S, H*dv]."""
    target = const_array(merge.inputs[1] if len(merge.inputs) > 1 else None)
    width = v.heads * v.head_dim
    if target is None:
        return f"the head-merge target of {label(merge)} is not a constant (run simplify-shapes first)"
    entries = [int(t) for t in target.reshape(-1)]
    q_shape = dims_of(q.src)  # the merged tensor is [B, S_q, H, dv]: its leading dims are Q's
    lead: tuple[Dim, ...] = q_shape[:2] if q_shape is not None else (None, None)
    if (len(entries) != 3 or entries.count(-1) > 1 or (0 in entries and merge.attr("allowzero", 0))
            or entries[2] not in (width, -1)
            or not all(e == -1 or reshape_copies(e, d) for e, d in zip(entries[:2], lead, strict=True))):
        return f"{label(merge)} target {entries} does not merge the heads into [batch, sequence, {width}]"
    return None
