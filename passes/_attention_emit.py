"""Emission of a matched attention block: the fused node in the block's place, and its mask input.

    com.microsoft::Attention(x, [Wq|Wk|Wv], [bq|bk|bv], Cast(m, int32))          packed projections
    com.microsoft::MultiHeadAttention(q, k, v, bias, Cast(m, int32))             any 3-D projections
    ai.onnx Attention(q, k, v, Expand(mask, [1, 1, S, 1]))                        opset >= 23

The fused node goes where the block's head-merge Reshape was (every value the block reads is
defined by then), takes the block output's name and the block's provenance; the block goes, and
the constants it alone read go with it. The int32 Cast of a raw mask is made once per graph and
mask, right where the mask is defined, and shared by the layers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mlc.ir.core import Node, Value
from mlc.ir.dtypes import DType
from mlc.ir.types import Dim, TensorType
from mlc.passes._attention_block import Block, ExtendedMask, first_output
from mlc.passes._graph_edits import drop_dead_constants, ensure_ms_opset
from mlc.passes._match_basics import dtype_of
from mlc.passes._transformer_match import MS_DOMAIN, dims_of
from mlc.rewrite import IRBuilder

MaskCasts = dict[tuple[int, int], Value]  # (graph, raw mask) -> its int32 Cast, for one run of the pass


def _fused_name(block: Block, op_type: str) -> str:
    """The fused node's name in the Softmax's scope: `/l/attn/Softmax` -> `/l/attn/<op_type>`."""
    name = block.softmax.name
    return name.rsplit("/", 1)[0] + f"/{op_type}" if name else ""


def _replace_block(builder: IRBuilder, block: Block, op_type: str, inputs: Sequence[Value | None],
                   attributes: dict[str, Any], *, domain: str = "") -> Node:
    return builder.fuse(builder.replaced, op_type, inputs, [block.out], attributes, domain=domain,
                        name=_fused_name(block, op_type), before=block.inner[-1])


def _same_rows(x: Value, out: Value) -> TensorType | None:
    """The fused output's type: [batch, sequence] of the projected input (which shape inference
    may have lost track of through the decomposed block), the hidden size of the old output."""
    x_shape, out_shape = dims_of(x), dims_of(out)
    if x_shape is None or out_shape is None or len(x_shape) != 3 or len(out_shape) != 3:
        return out.type if isinstance(out.type, TensorType) else None
    assert isinstance(out.type, TensorType)
    return TensorType(out.type.dtype, (x_shape[0], x_shape[1], out_shape[2]))


def int32_mask(builder: IRBuilder, raw: Value, casts: MaskCasts) -> Value:
    """Cast(raw, int32), made once per graph and mask right where the mask is defined."""
    graph = builder.graph
    key = (id(graph), id(raw))
    if key in casts:
        return casts[key]
    if dtype_of(raw) == DType.INT32:
        casts[key] = raw
        return raw
    out = Value(graph.unique_name(f"{raw.name}_int32"), TensorType(DType.INT32, dims_of(raw)))
    cast = Node("Cast", [raw], [out], {"to": int(DType.INT32)}, name=f"{raw.name}_int32")
    builder.ctx.created(cast, [], builder.rule)
    defined_by = raw.producer
    if defined_by is not None and defined_by.graph is graph:
        graph.insert_after(defined_by, cast)
    elif graph.first is not None:
        graph.insert_before(graph.first, cast)
    else:
        graph.append(cast)
    casts[key] = first_output(cast)
    return casts[key]


def emit_multihead(builder: IRBuilder, block: Block, extended: ExtendedMask | None, casts: MaskCasts) -> None:
    mha = block.mha
    assert mha is not None
    ensure_ms_opset(builder.graph)
    inputs: list[Value | None] = [*mha.qkv, None if mha.bias is None else builder.constant(mha.bias, "qkv_bias")]
    attributes: dict[str, Any] = {"num_heads": block.q.heads}
    if extended is not None:
        inputs.append(int32_mask(builder, extended.raw, casts))
        attributes["mask_filter_value"] = extended.filter_value
    while inputs[-1] is None:
        inputs.pop()
    _replace_block(builder, block, "MultiHeadAttention", inputs, attributes, domain=MS_DOMAIN)
    drop_dead_constants(mha.constants)


def emit_packed(builder: IRBuilder, block: Block, extended: ExtendedMask | None, casts: MaskCasts) -> None:
    q, k, v = block.projections
    ensure_ms_opset(builder.graph)
    weights = np.concatenate([q.weight, k.weight, v.weight], axis=1)
    biases = [p.bias if p.bias is not None else np.zeros(p.weight.shape[1], p.weight.dtype) for p in (q, k, v)]
    inputs: list[Value | None] = [q.x, builder.constant(weights, "qkv_weight")]
    has_bias = any(p.bias is not None for p in (q, k, v))
    inputs.append(builder.constant(np.concatenate(biases).astype(weights.dtype), "qkv_bias") if has_bias else None)
    attributes: dict[str, Any] = {"num_heads": block.q.heads}
    if block.causal is not None:
        attributes["unidirectional"] = 1
    if block.v.head_dim != block.q.head_dim:
        hidden = block.q.heads * block.q.head_dim
        attributes["qkv_hidden_sizes"] = [hidden, hidden, block.v.heads * block.v.head_dim]
    if extended is not None:
        inputs.append(int32_mask(builder, extended.raw, casts))
        attributes["mask_filter_value"] = extended.filter_value
    out_type = _same_rows(q.x, block.out)
    node = _replace_block(builder, block, "Attention", inputs, attributes, domain=MS_DOMAIN)
    first_output(node).type = out_type
    drop_dead_constants([c for p in block.projections for c in p.constants])


def emit_onnx(builder: IRBuilder, block: Block) -> None:
    inputs: list[Value | None] = [block.q.src, block.k.src, block.v.src]
    if block.mask is not None:
        inputs.append(_query_broadcast_mask(builder, block))
    attributes: dict[str, Any] = {"q_num_heads": block.q.heads, "kv_num_heads": block.k.heads}
    if block.causal is not None:
        attributes["is_causal"] = 1
    _replace_block(builder, block, "Attention", inputs, attributes)


def _query_broadcast_mask(builder: IRBuilder, block: Block) -> Value:
    """The mask with its query axis broadcast to S: Expand(mask, [1, 1, S, 1]) unless it is S already."""
    mask = block.mask
    assert mask is not None
    shape, q_shape = dims_of(mask), dims_of(block.q.src)
    if shape is not None and q_shape is not None and len(shape) >= 2 and shape[-2] is not None \
            and shape[-2] == q_shape[1] and shape[-2] != 1:
        return mask
    graph, int64 = builder.graph, DType.INT64

    def op(op_type: str, inputs: list[Value], type_: TensorType | None, **attributes: object) -> Value:
        node = Node(op_type, inputs, [Value(graph.unique_name(op_type.lower()), type_)], attributes or None)
        return builder.insert(node, replaced=[block.softmax], before=block.inner[-1])

    seq = op("Shape", [block.q.src], TensorType(int64, (1,)), start=1, end=2)
    ones = builder.constant(np.array([1, 1], np.int64), "ones")
    one = builder.constant(np.array([1], np.int64), "one")
    target = op("Concat", [ones, seq, one], TensorType(int64, (4,)), axis=0)
    rank = max(len(shape) if shape is not None else 4, 4)
    full = None if shape is None else (*((1,) * (rank - len(shape))), *shape)
    expanded: tuple[Dim, ...] | None = None
    if full is not None and q_shape is not None:
        expanded = (full[0], full[1], q_shape[1], full[3])
    return op("Expand", [mask, target], TensorType(dtype_of(mask) or DType.FLOAT, expanded))
