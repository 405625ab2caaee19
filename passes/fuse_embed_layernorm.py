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

Every LayerNormalization of the main graph whose input is an Add is a candidate; one that does
not fuse gets a remark `embed-layernorm at 'name': not applied, <why>`. The position ids are
recognized in `_embed_positions.py`. onnxruntime-only (-O3 for the onnxruntime target); imports
com.microsoft (version 1).
`tolerance`: the kernel adds and normalizes in its own order. Shape-chain leftovers go to `dce`.
"""

from __future__ import annotations

from mlc.ir.core import Node, Value
from mlc.ir.dtypes import DType
from mlc.ir.types import TensorType
from mlc.pass_api import Numerics, register_pass
from mlc.passes._embed_sum import Embeddings, embedding_sum
from mlc.passes._graph_edits import ensure_ms_opset, fused_name
from mlc.passes._match_basics import const_array
from mlc.passes._transformer_match import MS_DOMAIN
from mlc.rewrite import IRBuilder, Match, Reject, Rule, RulePass


class EmbedLayerNormRule(Rule):
    name = "embed-layernorm"
    law = "LayerNormalization(Gather(W, ids) + Gather(T, segments) + Gather(P, 0..S-1)) -> EmbedLayerNormalization"
    ops = ("LayerNormalization",)

    def match(self, ln: Node) -> Match | Reject | None:
        x = ln.inputs[0]
        graph = ln.graph
        if x is None or x.producer is None or x.producer.op_type != "Add" or graph is None or graph.root is not graph:
            return None  # not a candidate (sub-graphs are not searched)
        if ln.attr("axis", -1) != -1 or any(v is not None and v.uses for v in ln.outputs[1:]):
            return self.reject(ln, "the LayerNormalization is not over the last axis alone or its statistics are read")
        gamma, beta = const_array(ln.inputs[1]), const_array(ln.inputs[2]) if len(ln.inputs) > 2 else None
        if gamma is None or beta is None or gamma.ndim != 1:
            return self.reject(ln, "gamma and beta are not constant vectors")
        found = embedding_sum(x, gamma.shape[0])
        if isinstance(found, str):
            return self.reject(ln, found)
        if graph.model is None:
            return self.reject(ln, "the graph has no model")
        nodes = [n for n in (found.word, found.position, found.segment) if n is not None] + found.adds + [ln]
        return Match(ln, nodes=tuple(nodes), facts={"embeddings": found})

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        graph, ctx, ln = builder.graph, builder.ctx, match.root
        found: Embeddings = match.facts["embeddings"]
        ensure_ms_opset(graph)
        inputs: list[Value | None] = [_as_int32(builder, ln, found.ids), None, found.word.inputs[0],
                                      found.position.inputs[0], None, ln.inputs[1], ln.inputs[2]]
        if found.segment is not None and found.segment.inputs[1] is not None:
            inputs[1] = _as_int32(builder, ln, found.segment.inputs[1])
            inputs[4] = found.segment.inputs[0]
        # mask_index is optional in the schema, but onnxruntime's type inference writes output 1:
        # declare it (int32 [batch]); nothing reads it
        ids_type = found.ids.type
        batch = ids_type.shape[:1] if isinstance(ids_type, TensorType) and ids_type.shape else None
        mask_index = Value(graph.unique_name("mask_index"), TensorType(DType.INT32, batch))
        outputs: list[Value | None] = [ln.outputs[0], mask_index]
        total = ln.inputs[0]
        assert total is not None
        if total.is_graph_output or any(user is not ln for user, _ in total.uses):
            outputs.append(total)  # GPT-2's residual stream reads the sum: output 2, embedding_sum
        builder.fuse(match.nodes, "EmbedLayerNormalization", inputs, outputs,
                     {"epsilon": float(ln.attr("epsilon", 1e-5))}, domain=MS_DOMAIN,
                     name=fused_name(ln, "EmbedLayerNormalization"))
        ctx.stats["fused"] += 1


def _as_int32(builder: IRBuilder, ln: Node, value: Value) -> Value:
    """`value` as int32 ids: itself, an existing Cast of it, or a new Cast at the top of the graph."""
    if isinstance(value.type, TensorType) and value.type.dtype == DType.INT32:
        return value
    for user, _ in value.uses:  # share one Cast per input
        out = user.outputs[0]
        if user.op_type == "Cast" and user.attr("to") == int(DType.INT32) and out is not None:
            return out
    shape = value.type.shape if isinstance(value.type, TensorType) else None
    graph = builder.graph
    cast = Node("Cast", [value], [Value(graph.unique_name(f"{value.name}_int32"), TensorType(DType.INT32, shape))],
                {"to": int(DType.INT32)})
    return builder.insert(cast, replaced=[ln], rule="embed-layernorm", before=graph.first)


@register_pass
class FuseEmbedLayerNorm(RulePass):
    name = "fuse-embed-layernorm"
    description = "Fuse BERT's word + position (+ token type) embedding sum and LayerNorm into EmbedLayerNormalization"
    numerics = Numerics.TOLERANCE
    statistics = ("fused",)
    rules = (EmbedLayerNormRule(),)
