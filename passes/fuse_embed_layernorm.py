"""Fuse BERT's embedding sum and its LayerNormalization into onnxruntime's EmbedLayerNormalization.

    LayerNormalization(Gather(W, ids) + Gather(T, segments) + Gather(P, positions), gamma, beta)
        ->  com.microsoft::EmbedLayerNormalization(Cast(ids, int32), Cast(segments, int32),
                                                   W, P, T, gamma, beta) {epsilon}

The three additions may come in any order and association. `positions` must be what exporters
write for `position_ids[:, :seq_len]`: a Slice of a constant [1, N] arange from 0 to the sequence
length of `ids` (Unsqueeze(Gather(Shape(ids), 1))) on axis 1, GPT-2's
`Unsqueeze(Range(0, Gather(Shape(ids), 1), 1), [0])`, or a constant arange matching a static
sequence length; EmbedLayerNormalization then uses positions 0..S-1 itself. When the sum is also
read elsewhere (GPT-2's residual stream starts there), those readers get the kernel's optional
third output, `embedding_sum`. The token-type
term is optional. The kernel's mask input and mask_index output are not used: mask_index assumes
right padding, which the attention mask need not follow, so attention keeps its own mask.

onnxruntime-only (-O3 for the onnxruntime target); imports com.microsoft (version 1).
`tolerance`: the kernel adds and normalizes in its own order. Shape-chain leftovers go to `dce`.
"""

from __future__ import annotations

import numpy as np

from mlc.ir.core import Graph, Node, Value
from mlc.ir.dtypes import DType
from mlc.ir.types import TensorType
from mlc.pass_api import Numerics, Pass, PassContext, register_pass
from mlc.passes._patterns import MS_DOMAIN, const_array, ensure_ms_opset, fused_name, replace_pattern

_INT_IDS = (DType.INT64, DType.INT32)


def _terms(value: Value, adds: list[Node]) -> list[Value]:
    """The leaves of a tree of single-reader Adds rooted at `value`."""
    node = value.producer
    if node is not None and node.op_type == "Add" and node.domain in ("", "ai.onnx") and (
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


def _is_arange(array: np.ndarray) -> bool:
    flat = array.reshape(-1)
    return array.ndim == 2 and array.shape[0] == 1 and bool(np.array_equal(flat, np.arange(flat.size)))


def _positions_of(positions: Value, ids: Value) -> bool:
    """Whether `positions` is 0..S-1 for the sequence axis of `ids` (shape [1, S])."""
    constant = const_array(positions)
    if constant is not None:
        ids_shape = ids.type.shape if isinstance(ids.type, TensorType) else None
        return _is_arange(constant) and ids_shape is not None and ids_shape[-1] == constant.shape[1]
    node = positions.producer
    if node is not None and node.op_type == "Unsqueeze":
        return _is_unsqueezed_range(node, ids)
    if node is None or node.op_type != "Slice" or len(node.inputs) < 3:
        return False
    table = const_array(node.inputs[0])
    starts, axes = const_array(node.inputs[1]), const_array(node.inputs[3]) if len(node.inputs) > 3 else None
    steps = const_array(node.inputs[4]) if len(node.inputs) > 4 and node.inputs[4] is not None else None
    if table is None or not _is_arange(table) or starts is None or starts.reshape(-1).tolist() != [0]:
        return False
    if axes is None or axes.reshape(-1).tolist() not in ([1], [-1]):
        return False
    if steps is not None and steps.reshape(-1).tolist() != [1]:
        return False
    return _is_sequence_length(node.inputs[2], ids)


def _is_unsqueezed_range(unsqueeze: Node, ids: Value) -> bool:
    """Unsqueeze(Range(0, S, 1), [0]) with S the sequence length of ids (GPT-2's position_ids)."""
    axes = const_array(unsqueeze.inputs[1]) if len(unsqueeze.inputs) > 1 else None
    if axes is None and unsqueeze.attr("axes") is not None:
        axes = np.array(unsqueeze.attr("axes"))
    arange = unsqueeze.inputs[0].producer if unsqueeze.inputs[0] is not None else None
    if axes is None or axes.reshape(-1).tolist() != [0] or arange is None or arange.op_type != "Range":
        return False
    start, delta = const_array(arange.inputs[0]), const_array(arange.inputs[2])
    return (start is not None and delta is not None and start.size == 1 and delta.size == 1
            and int(start.reshape(-1)[0]) == 0 and int(delta.reshape(-1)[0]) == 1
            and _is_sequence_length(arange.inputs[1], ids))


def _is_sequence_length(value: Value | None, ids: Value) -> bool:
    """Unsqueeze(Gather(Shape(ids), 1 or -1)), or Gather(Shape(ids), 1 or [1])."""
    node = value.producer if value is not None else None
    if node is not None and node.op_type == "Unsqueeze":
        node = node.inputs[0].producer if node.inputs[0] is not None else None
    if node is None or node.op_type != "Gather":
        return False
    index = const_array(node.inputs[1])
    shape = node.inputs[0].producer if node.inputs[0] is not None else None
    return (index is not None and index.reshape(-1).tolist() in ([1], [-1]) and shape is not None
            and shape.op_type == "Shape" and shape.inputs[0] is ids and not shape.attributes)


@register_pass
class FuseEmbedLayerNorm(Pass):
    name = "fuse-embed-layernorm"
    description = "Fuse BERT's word + position (+ token type) embedding sum and LayerNorm into EmbedLayerNormalization"
    numerics = Numerics.TOLERANCE
    statistics = ("fused",)

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        for node in list(graph):
            if node.op_type != "LayerNormalization" or node.domain not in ("", "ai.onnx"):
                continue
            match = self._match(node, ctx)
            if match is None:
                continue
            if not ensure_ms_opset(graph):
                ctx.remark(f"EmbedLayerNorm at {node.name!r}: not fused, the graph has no model")
                continue
            if not ctx.rewrite("embed-layernorm"):
                return changed
            self._rewrite(graph, node, match, ctx)
            ctx.stats["fused"] += 1
            changed = True
        return changed

    @staticmethod
    def _match(ln: Node, ctx: PassContext) -> dict[str, object] | None:
        x = ln.inputs[0]
        if x is None or x.producer is None or x.producer.op_type != "Add":
            return None  # not a candidate
        where = f"EmbedLayerNorm at {ln.name!r}: not fused"
        if ln.attr("axis", -1) != -1 or any(v is not None and v.uses for v in ln.outputs[1:]):
            ctx.remark(f"{where}, the LayerNormalization is not over the last axis alone or its statistics are read")
            return None
        gamma, beta = const_array(ln.inputs[1]), const_array(ln.inputs[2]) if len(ln.inputs) > 2 else None
        if gamma is None or beta is None or gamma.ndim != 1:
            ctx.remark(f"{where}, gamma and beta are not constant vectors")
            return None
        adds: list[Node] = []
        terms = _terms(x, adds)
        if len(terms) not in (2, 3):
            ctx.remark(f"{where}, the sum has {len(terms)} terms, not 2 or 3 embeddings")
            return None
        gathers = [_gather(t) for t in terms]
        if any(g is None for g in gathers):
            ctx.remark(f"{where}, a term of the sum is not a Gather from a constant 2-D table")
            return None
        found = [g for g in gathers if g is not None]
        indices = [g[0].inputs[1] for g in found]
        ids_candidates = [i for i in indices if i is not None and i.is_graph_input]
        if not ids_candidates:
            ctx.remark(f"{where}, no term is indexed by a graph input")
            return None
        word = next((g for g in found if g[0].inputs[1] is ids_candidates[0]), None)
        ids = ids_candidates[0]
        position = next((g for g in found if g is not word and g[0].inputs[1] is not None
                         and _positions_of(g[0].inputs[1], ids)), None)  # type: ignore[arg-type]
        if word is None or position is None:
            ctx.remark(f"{where}, no term is a position embedding of 0..S-1 for {ids.name!r}")
            return None
        rest = [g for g in found if g is not word and g is not position]
        segment = rest[0] if rest else None
        if segment is not None and (segment[0].inputs[1] is None or not segment[0].inputs[1].is_graph_input):
            ctx.remark(f"{where}, the token-type term is not indexed by a graph input")
            return None
        hidden = gamma.shape[0]
        if any(g[1].shape[1] != hidden for g in found) or any(
                not isinstance(v.type, TensorType) or v.type.dtype not in _INT_IDS
                for v in (ids, *( [segment[0].inputs[1]] if segment else []))):  # type: ignore[index]
            ctx.remark(f"{where}, the tables' widths or the id types do not fit")
            return None
        dtype = x.type.dtype if isinstance(x.type, TensorType) else None
        if dtype != DType.FLOAT:
            ctx.remark(f"{where}, the embeddings are not float32")
            return None
        return {"word": word[0], "position": position[0], "segment": segment[0] if segment else None,
                "adds": adds, "ids": ids}

    @staticmethod
    def _rewrite(graph: Graph, ln: Node, match: dict[str, object], ctx: PassContext) -> None:
        word, position = match["word"], match["position"]
        segment, adds = match["segment"], match["adds"]
        assert isinstance(word, Node) and isinstance(position, Node) and isinstance(adds, list)

        def as_int32(value: Value) -> Value:
            if isinstance(value.type, TensorType) and value.type.dtype == DType.INT32:
                return value
            for user, _ in value.uses:  # share one Cast per input
                out = user.outputs[0]
                if user.op_type == "Cast" and user.attr("to") == int(DType.INT32) and out is not None:
                    return out
            shape = value.type.shape if isinstance(value.type, TensorType) else None
            cast = Node("Cast", [value], [Value(graph.unique_name(f"{value.name}_int32"),
                                                TensorType(DType.INT32, shape))], {"to": int(DType.INT32)})
            ctx.created(cast, [ln], "embed-layernorm")
            first = graph.first
            assert first is not None
            graph.insert_before(first, cast)
            out = cast.outputs[0]
            assert out is not None
            return out

        ids = word.inputs[1]
        assert ids is not None
        inputs: list[Value | None] = [as_int32(ids), None, word.inputs[0], position.inputs[0], None,
                                      ln.inputs[1], ln.inputs[2]]
        if isinstance(segment, Node) and segment.inputs[1] is not None:
            inputs[1] = as_int32(segment.inputs[1])
            inputs[4] = segment.inputs[0]
        matched = [n for n in (word, position, segment) if isinstance(n, Node)] + list(adds) + [ln]
        # mask_index is optional in the schema, but onnxruntime's type inference writes output 1:
        # declare it (int32 [batch]); nothing reads it
        batch = ids.type.shape[:1] if isinstance(ids.type, TensorType) and ids.type.shape else None
        mask_index = Value(graph.unique_name("mask_index"), TensorType(DType.INT32, batch))
        outputs: list[Value | None] = [ln.outputs[0], mask_index]
        total = ln.inputs[0]
        assert total is not None
        if total.is_graph_output or any(user is not ln for user, _ in total.uses):
            outputs.append(total)  # GPT-2's residual stream reads the sum: output 2, embedding_sum
        replace_pattern(graph, ctx, "embed-layernorm", matched, "EmbedLayerNormalization", inputs, outputs,
                        {"epsilon": float(ln.attr("epsilon", 1e-5))}, domain=MS_DOMAIN,
                        name=fused_name(ln, "EmbedLayerNormalization"))
