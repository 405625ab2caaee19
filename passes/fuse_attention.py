"""Fuse the multi-head self-attention block of BERT- and GPT-style exports into one Attention node.

What torch.onnx.export writes for one HuggingFace `BertSelfAttention` (eager attention), after
`fold-constants` and `simplify-shapes` have made the Reshape targets constants (0 = copy dim):

    q = Add(MatMul(x, Wq), bq)                      k, v likewise, from the same x [B, S, in]
    Q = Transpose(Reshape(q, [0, 0, H, d]), [0, 2, 1, 3])                          [B, H, S, d]
    K = Transpose(Reshape(k, [0, 0, H, d]), [0, 2, 3, 1])   (or [0,2,1,3] then [0,1,3,2])
    V = Transpose(Reshape(v, [0, 0, H, dv]), [0, 2, 1, 3])
    s = Div(MatMul(Q, K), sqrt(d))                  or Mul(MatMul(Q, K), 1/sqrt(d))
    p = Softmax(Add(s, mask), axis=-1)              the mask Add is optional
    y = Reshape(Transpose(MatMul(p, V), [0, 2, 1, 3]), [0, 0, H*dv])                 [B, S, H*dv]

GPT-2 (decoder) blocks differ in two places, both handled:

    q, k, v = Split(Add(MatMul(x, W), b), [H*d] * 3, axis=2)    one packed projection (c_attn)
    s = Where(keep, scaled Q·Kᵀ, fill)                           the causal select, before the mask Add

Q, K and V are then column slices of the packed W and b. `keep` must be the lower triangle
(key j <= query i): GPT-2 slices a constant tril buffer with the scores' own dims,
`bias[:, :, ns - nd:ns, :ns]`; whatever computes it, the condition is evaluated (onnx reference
evaluator) at every sequence length from 1 to 16 and at 32 ... 1024 until the model's buffer
runs out, and must read only constants and the shapes of the block's tensors. The select
becomes `unidirectional=1` (contrib) or `is_causal=1` (onnx); `fill` must be <= -10000. A causal
block whose Q/K/V are not one input's constant projections is left alone (MultiHeadAttention is
not used for it). With a padding mask as well, contrib `mask_filter_value` is the padding
mask's c; onnxruntime then matches the decomposed graph even on queries whose every allowed key
is padded when c = -10000, not when c = finfo.min.

The mask is HF's extended attention mask, `(1 - Cast(Unsqueeze(Unsqueeze(m, 1), 2))) * c` of
the 2-D 0/1 `attention_mask` m, with c = finfo(float32).min (BERT) or -10000 (older exports).

Option `form`:

- `contrib` (onnxruntime): `com.microsoft::Attention(x, [Wq|Wk|Wv], [bq|bk|bv], Cast(m, int32))
  {num_heads=H, mask_filter_value=c}`. onnxruntime turns the raw [B, S] mask into the additive
  bias itself (0 where m > 0, `mask_filter_value` elsewhere) and adds it to scale * Q·Kᵀ, which is
  what the decomposed graph computes when m holds 0/1 (HF's contract for attention_mask; a value
  such as 2 would give (1 - 2) * c there and "keep" here). Setting `mask_filter_value` to the
  model's c keeps fully masked rows (all of a sequence padded) equal to the decomposed graph's:
  uniform weights with finfo.min, near-softmax with -10000. The extended-mask arithmetic is left
  unused (shared by every layer), as are the Reshape targets and their Shape→Gather→Concat
  leftovers and the scale constant: `dce` removes them. The replaced Q/K/V weights and biases are
  dropped by the pass itself once nothing reads them (a large unread initializer breaks the numeric
  check, which hands weights to onnxruntime from memory). The `com.microsoft` opset
  (version 1) is imported. Attention needs Q, K and V projected from the same x by constant
  weights, read by nothing else; any other block (cross-attention: K and V from an encoder's output,
  possibly of another length; non-constant weights; a projection also read elsewhere) becomes,
  unless `multihead=false`,
  `com.microsoft::MultiHeadAttention(q, k, v, bias, Cast(m, int32)) {num_heads, mask_filter_value}`
  on the 3-D projections, each bias Add folded into the packed `bias` input where the block is
  the Add's only reader (rule `multihead-attention-contrib`).
- `onnx` (portable, opset >= 23): ai.onnx `Attention(q, k, v, mask) {q_num_heads=H,
  kv_num_heads=H}` on the 3-D projections, which stay as they are (so any projection, and
  cross-attention, fuse). The extended mask is passed as the float `attn_mask`; where its
  query axis is not already the sequence length it is broadcast there with
  Expand(mask, [1, 1, S, 1]): onnxruntime 1.31's kernel requires attn_mask dim -2 == q_sequence_length
  although the operator broadcasts it. Known difference: onnxruntime's opset-23 kernel returns 0
  for a fully masked row whose mask is finfo.min (it treats the lowest float as -inf), where the
  decomposed graph averages V; rows with at least one unmasked key agree.

Either form requires the scale to be 1/sqrt(head_dim) (the operators' default) and every value
inside the block to be read only by the next node of the block: a value read outside (a debug
output, a Shape left for `dce`) blocks the fusion. Each Softmax that does not match gets a remark
`attention-contrib at '...': not applied, <why>` (or `attention-onnx`) for `mlc debug`.

`tolerance`: the fused kernels multiply by the scale instead of dividing by sqrt(d) and
accumulate in another order.
"""

from __future__ import annotations

from collections.abc import Sequence

from mlc.errors import BadInputError
from mlc.pass_api import Numerics, PassOption, register_pass
from mlc.passes._attention_rules import ContribAttention, OnnxAttention
from mlc.rewrite import Rule, RulePass

_FORMS = ("contrib", "onnx")


@register_pass
class FuseAttention(RulePass):
    """The rule set; the match (`_attention_match`, `_attention_heads`, `_attention_causal`,
    `_attention_mask`, `_attention_projections`), the forms' rules (`_attention_rules`) and the
    emission (`_attention_emit`) live in their modules."""

    name = "fuse-attention"
    description = "Fuse BERT-style multi-head self-attention into com.microsoft::Attention or ai.onnx Attention"
    numerics = Numerics.TOLERANCE
    options = (PassOption("form", str, "contrib",
                          "contrib: com.microsoft::Attention (onnxruntime); onnx: ai.onnx Attention (opset >= 23)"),
               PassOption("multihead", bool, True,
                          "form=contrib: fuse the blocks Attention cannot take (Q, K, V from different inputs, "
                          "weights that are not constant) into com.microsoft::MultiHeadAttention"))
    statistics = ("fused",)

    def __init__(self, **values: object) -> None:
        super().__init__(**values)
        if self.option("form") not in _FORMS:  # refused when the pipeline is built, not halfway through it
            raise BadInputError(f"pass {self.name}: form must be one of {', '.join(_FORMS)}, "
                                f"not {self.option('form')!r}")

    def rule_set(self) -> Sequence[Rule]:
        """A fresh rule per run: the contrib rule keeps that run's shared mask Casts."""
        if self.option("form") == "onnx":
            return (OnnxAttention(),)
        return (ContribAttention(self.option("multihead")),)
