"""fuse-attention's rules, one per form: what each fused op requires of a matched block.

`attention-contrib` (com.microsoft): Attention where Q, K and V are constant projections of one
input, else (option `multihead`) MultiHeadAttention on the projections, counted as
`multihead-attention-contrib`; a padding mask must be HF's extended mask of a [batch, sequence]
mask. `attention-onnx` (ai.onnx opset >= 23): Attention on the projections as they are. Either
way every value the block removes must be read only inside it.
"""

from __future__ import annotations

from dataclasses import replace

from mlc.ir.core import Node
from mlc.passes._attention_block import Block, ExtendedMask
from mlc.passes._attention_emit import MaskCasts, emit_multihead, emit_onnx, emit_packed
from mlc.passes._attention_mask import extended_mask
from mlc.passes._attention_match import match_block, readers_problem
from mlc.passes._attention_projections import mha_inputs, packed_projections
from mlc.passes._match_basics import dtype_of
from mlc.passes._transformer_match import CONTRIB_DTYPES, dims_of
from mlc.rewrite import IRBuilder, Match, Reject, Rule

ONNX_ATTENTION_OPSET = 23
_CAUSAL_NEEDS = ("causal attention is fused only into Attention (unidirectional), which needs Q, K and V projected "
                 "from one input by constant weights")


def contrib_plan(block: Block, multihead: bool, packed: bool = True) -> tuple[Block, ExtendedMask | None] | str:
    """The block planned as Attention (packed constant projections of one x; not with `packed=False`)
    or else MultiHeadAttention, with its mask; or why neither."""
    dtype = dtype_of(block.out)
    if dtype not in CONTRIB_DTYPES:
        return f"element type {dtype.short_name if dtype else '?'} is not float32/float16"
    projections = packed_projections(block) if packed else "packed projections not wanted"
    if not isinstance(projections, str):
        planned = replace(block, projections=projections, mha=None)
        x_shape = dims_of(projections[0].x)
        assert x_shape is not None
        batch, kv_sequence = x_shape[0], x_shape[1]
    elif not multihead:
        return projections
    elif block.causal is not None:
        return f"{_CAUSAL_NEEDS}: {projections}"
    else:  # MultiHeadAttention takes any 3-D query, key and value (head_split checked the ranks).
        planned = replace(block, projections=[], mha=mha_inputs(block))
        q_shape, k_shape = dims_of(block.q.src), dims_of(block.k.src)
        assert q_shape is not None and k_shape is not None
        batch, kv_sequence = q_shape[0], k_shape[1]
    if block.mask is None:
        return planned, None
    extended = extended_mask(block.mask)
    if isinstance(extended, str):
        return extended
    raw_shape = dims_of(extended.raw)
    assert raw_shape is not None
    for axis, dim, what in ((0, batch, "batch"), (1, kv_sequence, "sequence")):
        if raw_shape[axis] == 1 and dim != 1:
            return f"the mask broadcasts over the {what} (dim {axis} is 1): the op's mask needs [batch, sequence]"
    return planned, extended


def onnx_problem(block: Block, opset: int) -> str | None:
    """Why ai.onnx Attention cannot take the block."""
    if opset < ONNX_ATTENTION_OPSET:
        return f"form=onnx needs ai.onnx opset >= {ONNX_ATTENTION_OPSET} (the model imports {opset})"
    dtype = dtype_of(block.out)
    if dtype is None or not dtype.is_float:
        return f"element type {dtype.short_name if dtype else '?'} is not a float type"
    if block.mask is not None:
        mask_type, mask_shape = dtype_of(block.mask), dims_of(block.mask)
        if mask_type != dtype:
            return f"the mask's type {mask_type.short_name if mask_type else '?'} is not the scores' type"
        if mask_shape is None or len(mask_shape) > 4:
            return "the mask's rank is unknown or above 4"
    return None


class ContribAttention(Rule):
    """`attention-contrib` and its member `multihead-attention-contrib`; one instance per run of
    the pass (the int32 Casts of the masks are shared by the layers of that run)."""

    name = "attention-contrib"
    law = "Softmax(scale * Q·Kᵀ + mask)·V of one x's constant projections -> com.microsoft::Attention"
    ops = ("Softmax",)

    def __init__(self, multihead: bool) -> None:
        self.multihead = multihead
        self.casts: MaskCasts = {}

    def match(self, softmax: Node) -> Match | Reject | None:
        block = match_block(softmax)
        if isinstance(block, str):
            return self.reject(softmax, block)
        plan = contrib_plan(block, self.multihead)
        if isinstance(plan, str):
            return self.reject(softmax, plan)
        why = readers_problem(plan[0])
        if why is not None and plan[0].mha is None and self.multihead:
            # A projection read elsewhere stays: MultiHeadAttention reads its output.
            plan = contrib_plan(block, True, packed=False)
            if isinstance(plan, str):
                return self.reject(softmax, plan)
            why = readers_problem(plan[0])
        if why is not None:
            return self.reject(softmax, why)
        planned, extended = plan
        member = self.name if planned.mha is None else "multihead-attention-contrib"
        return Match(softmax, nodes=tuple(planned.nodes), facts={"block": planned, "mask": extended}, rule=member)

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        block: Block = match.facts["block"]
        if block.mha is not None:
            emit_multihead(builder, block, match.facts["mask"], self.casts)
        else:
            emit_packed(builder, block, match.facts["mask"], self.casts)
        builder.ctx.stats["fused"] += 1


class OnnxAttention(Rule):
    name = "attention-onnx"
    law = "Softmax(scale * Q·Kᵀ + mask)·V -> ai.onnx Attention(q, k, v, mask) (opset >= 23)"
    ops = ("Softmax",)

    def match(self, softmax: Node) -> Match | Reject | None:
        block = match_block(softmax)
        if isinstance(block, str):
            return self.reject(softmax, block)
        graph = softmax.graph
        assert graph is not None
        why = onnx_problem(block, graph.root.opset_version("") or 1) or readers_problem(block)
        if why is not None:
            return self.reject(softmax, why)
        return Match(softmax, nodes=tuple(block.nodes), facts={"block": block})

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        emit_onnx(builder, match.facts["block"])
        builder.ctx.stats["fused"] += 1
