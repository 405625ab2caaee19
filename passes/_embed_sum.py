"""The embedding sum before BERT's first LayerNormalization, taken apart (`fuse-embed-layernorm`).

    Gather(W, ids) + Gather(T, segments) + Gather(P, positions)     (any order and association)

`embedding_sum` finds the word, position and optional token-type Gathers of constant 2-D tables,
the Adds between them and the ids (a graph input), or says why the sum is not one
EmbedLayerNormalization computes; the positions must be 0..S-1 (`_embed_positions.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlc.ir.core import Node, Value
from mlc.ir.dtypes import DType
from mlc.ir.types import TensorType
from mlc.passes._embed_positions import positions_of
from mlc.passes._match_basics import const_array

INT_IDS = (DType.INT64, DType.INT32)


@dataclass
class Embeddings:
    """The Gathers of the sum (word, position, optional token type), its Adds, and the ids."""

    word: Node
    position: Node
    segment: Node | None
    adds: list[Node]
    ids: Value


def _terms(value: Value, adds: list[Node]) -> list[Value]:
    """The leaves of a tree of single-reader Adds rooted at `value`."""
    node = value.producer
    if node is not None and node.op_type == "Add" and node.domain == "" and (
            len(value.uses) == 1 or not adds):
        adds.append(node)
        return [leaf for operand in node.inputs if operand is not None for leaf in _terms(operand, adds)]
    return [value]


def _gather(value: Value) -> tuple[Node, np.ndarray] | None:
    node = value.producer
    if node is None or node.op_type != "Gather" or node.attr("axis", 0) != 0 or len(value.uses) != 1:
        return None
    table = const_array(node.inputs[0])
    if table is None or table.ndim != 2:
        return None
    return node, table


def _is_int_ids(value: Value | None) -> bool:
    return value is not None and isinstance(value.type, TensorType) and value.type.dtype in INT_IDS


def embedding_sum(x: Value, hidden: int) -> Embeddings | str:
    """The embedding sum `x` taken apart, or why it is not one EmbedLayerNormalization computes."""
    adds: list[Node] = []
    terms = _terms(x, adds)
    if len(terms) not in (2, 3):
        return f"the sum has {len(terms)} terms, not 2 or 3 embeddings"
    gathers = [_gather(t) for t in terms]
    found = [g for g in gathers if g is not None]
    if len(found) != len(gathers):
        return "a term of the sum is not a Gather from a constant 2-D table"
    ids = next((g[0].inputs[1] for g in found if g[0].inputs[1] is not None and g[0].inputs[1].is_graph_input), None)
    if ids is None:
        return "no term is indexed by a graph input"
    word = next(g for g in found if g[0].inputs[1] is ids)
    position = next((g for g in found if g is not word and g[0].inputs[1] is not None
                     and positions_of(g[0].inputs[1], ids)), None)
    if position is None:
        return f"no term is a position embedding of 0..S-1 for {ids.name!r}"
    segment = next((g[0] for g in found if g is not word and g is not position), None)
    if segment is not None and (segment.inputs[1] is None or not segment.inputs[1].is_graph_input):
        return "the token-type term is not indexed by a graph input"
    if any(g[1].shape[1] != hidden for g in found) or not _is_int_ids(ids) or (
            segment is not None and not _is_int_ids(segment.inputs[1])):
        return "the tables' widths or the id types do not fit"
    dtype = x.type.dtype if isinstance(x.type, TensorType) else None
    if dtype != DType.FLOAT:
        return "the embeddings are not float32"
    return Embeddings(word[0], position[0], segment, adds, ids)


__all__ = ["INT_IDS", "Embeddings", "embedding_sum"]
