"""The attention block of fuse-attention as data: what the matchers find and the emitters read.

The seam between finding a block (`_attention_match` with its head splits, `_attention_causal`,
`_attention_mask`, `_attention_projections`) and emitting the fused op (`_attention_emit`). The
matchers answer `T | str`: the part found, or why the Softmax's block does not fuse (the rule turns
the words into its `Reject`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mlc.ir.core import Node, Value
from mlc.passes._match_basics import input_at, label


@dataclass
class HeadSplit:
    """Transpose(...(Reshape(src, [b, s, H, d]))): src [B, S, H*d] split into heads."""

    src: Value
    heads: int
    head_dim: int
    nodes: list[Node]  # reshape first, then transposes


@dataclass
class Projection:
    """Add(MatMul(x, W), b) or MatMul(x, W): the linear map a head split reads."""

    x: Value
    weight: np.ndarray
    bias: np.ndarray | None
    nodes: list[Node]
    constants: list[Value]  # the weight (and bias) values, dropped once the fusion leaves them unread


@dataclass
class ExtendedMask:
    """(1 - Cast(Unsqueeze(m))) * filter_value of a 2-D 0/1 mask m."""

    raw: Value
    filter_value: float


@dataclass
class MhaInputs:
    """MultiHeadAttention's query, key, value and packed bias: a bias Add in front of a head split
    is folded into the op's bias input when the block is its only reader."""

    qkv: list[Value]
    bias: np.ndarray | None
    adds: list[Node]
    constants: list[Value]


@dataclass
class Causal:
    """Where(keep, scores, fill) with keep[i, j] = (j <= i) for every sequence length tried: the
    causal (unidirectional) mask of a decoder; `owned` are the nodes computing `keep` from the
    block's own shapes, removed with the block."""

    where: Node
    fill: float
    owned: list[Node]


@dataclass
class Block:
    softmax: Node
    q: HeadSplit
    k: HeadSplit
    v: HeadSplit
    inner: list[Node]  # Q·Kᵀ MatMul, scale, mask Add, Softmax, P·V MatMul, Transpose, Reshape
    mask: Value | None  # the additive mask operand of the Add (None: no mask)
    out: Value
    projections: list[Projection] = field(default_factory=list)  # com.microsoft::Attention: Q, K, V
    mha: MhaInputs | None = None  # com.microsoft::MultiHeadAttention
    causal: Causal | None = None

    @property
    def nodes(self) -> list[Node]:
        result = [*self.inner]
        if self.causal is not None:
            result += [self.causal.where, *self.causal.owned]
        if self.mha is not None:
            result += self.mha.adds
        for split in (self.q, self.k, self.v):
            result += split.nodes
        for projection in self.projections:
            result += projection.nodes
        return list(dict.fromkeys(result))  # Q, K and V may share a Reshape or a projection


def operand(node: Node, index: int = 0) -> Value | str:
    """Input `index` of `node`, or why the block has none there."""
    value = input_at(node, index)
    return value if value is not None else f"{label(node)} has no input {index}"


def first_output(node: Node) -> Value:
    value = node.outputs[0] if node.outputs else None
    assert value is not None
    return value


def fmt(x: float) -> str:
    """A factor as reasons print it."""
    return f"{x:.5g}"
