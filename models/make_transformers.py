"""Build two transformer test models, `bert.onnx` and `gpt.onnx`, in the form PyTorch's exporter writes.

Why the decomposed form: these models exist to test graph-fusion passes (LayerNormalization, GELU,
attention, SkipLayerNorm, bias + GELU). A fusion pass is only useful if it recognizes the subgraphs
that real exported models contain, and the TorchScript-based `torch.onnx.export` of HuggingFace BERT
and GPT-2 does not emit fused ops: it spells every layer norm as ReduceMean -> Sub -> Pow(2) ->
ReduceMean -> Add(eps) -> Sqrt -> Div -> Mul(gamma) -> Add(beta) (its form below opset 17, and in every
model exported before that opset existed; at opset 17 it can emit LayerNormalization, which a fusion pass
has nothing to do for, so the models keep the decomposed form while declaring opset 17), GELU as
`x * (1 + Erf(x / 1.4142135)) * 0.5` (BERT) or `0.5 * x * (1 + Tanh(0.79788456 * (x + 0.044715 *
Pow(x, 3))))` (GPT-2), every `Linear` as MatMul + Add(bias, .) (GPT-2's Conv1D as Reshape -> Gemm ->
Reshape, from its `torch.addmm`), and every `x.view(x.size()[:-1] + (heads, head_dim))` as a
Shape -> Gather -> Unsqueeze -> Concat -> Reshape chain. This script writes exactly those patterns with
onnx's helper API, so no torch is needed; node and tensor names follow the exporter's scheme
(`/encoder/layer.0/attention/self/query/MatMul`, `..._output_0`, `onnx::MatMul_N` for transposed
weights, parameter names for the rest). onnxruntime's own transformer optimizer
(`onnxruntime.transformers.optimizer`, which was written against real exports) fuses LayerNormalization,
SkipLayerNormalization, Gelu / FastGelu / BiasGelu and Attention in both models, which is the evidence that
the patterns are the real ones (tests/test_transformer_models.py checks it).

Shapes of the GPT-2 causal mask: `nd, ns = w.size(-2), w.size(-1)` of the scaled scores `w` are written
as Shape -> Slice -> Squeeze (the exporter's form for negative `size` dims that onnxruntime's GPT-2
attention fusion matches), the uint8 `bias` buffer is sliced `[:, :, ns - nd:ns, :ns]`, cast to bool and
applied with Where(mask, w, finfo(float32).min).

Weights are seeded (numpy `default_rng(seed)`, normal * 0.02 like HF's init). Unlike HF's init the biases
and the layer-norm beta are random too and gamma is 1 + N(0, 0.02): a fusion that drops or swaps a bias
then changes the numbers. The same seed and config give byte-identical files. The models are not
committed; tests and benchmarks build them (well under a second each at the default size).

Run: `python models/make_transformers.py --out DIR [--layers N] [--hidden H] [--heads A] [--seed S]`
writes DIR/bert.onnx and DIR/gpt.onnx. From Python: `build_bert(**cfg)` and `build_gpt(**cfg)` return
`onnx.ModelProto`s.

bert: input_ids, attention_mask, token_type_ids int64[batch, sequence] -> word + position + token-type
embeddings -> LayerNorm -> N x (self-attention with the HF extended mask `(1 - mask) * finfo.min`,
dense, residual, LayerNorm, dense -> erf GELU -> dense, residual, LayerNorm) -> last_hidden_state
f32[batch, sequence, hidden], and the pooler (token 0 -> dense -> Tanh) -> pooler_output f32[batch, hidden].

gpt: input_ids int64[batch, sequence] (+ attention_mask with `attention_mask=True`) -> token + position
(Range) embeddings -> N x pre-LN blocks (c_attn -> Split q/k/v, causal Where mask, Softmax, c_proj,
residual; LayerNorm, c_fc -> tanh GELU -> c_proj, residual) -> final LayerNorm -> lm_head MatMul with
the tied (transposed, constant-folded) word embedding -> logits f32[batch, sequence, vocab].
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8
PRODUCER = "mlc-models"
INT64_MAX = np.iinfo(np.int64).max
FLOAT_MIN = float(np.finfo(np.float32).min)  # torch.finfo(torch.float32).min
INIT_STD = 0.02


class _GraphBuilder:
    """Collects nodes and initializers, naming them the way torch.onnx.export's scope names do."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._counts: dict[tuple[str, str], int] = {}
        self._matmul_weights = 0

    # -- naming and raw emission ----------------------------------------------------------------------
    def _name(self, scope: str, op: str) -> str:
        k = self._counts.get((scope, op), 0)
        self._counts[(scope, op)] = k + 1
        return f"{scope}/{op}" if k == 0 else f"{scope}/{op}_{k}"

    def op(self, scope: str, op: str, inputs: list[str], *, outputs: int = 1, out: str | None = None,
           **attrs: object) -> str | list[str]:
        name = self._name(scope, op)
        names = [out] if out is not None else [f"{name}_output_{i}" for i in range(outputs)]
        self.nodes.append(helper.make_node(op, inputs, names, name=name, **attrs))
        return names[0] if outputs == 1 else names

    def const(self, scope: str, value: np.ndarray) -> str:
        """A Constant node, as the exporter writes Python scalars, shape pieces and axes."""
        name = self._name(scope, "Constant")
        out = f"{name}_output_0"
        self.nodes.append(helper.make_node("Constant", [], [out], name=name,
                                           value=numpy_helper.from_array(np.asarray(value))))
        return out

    def f32(self, scope: str, value: float) -> str:
        return self.const(scope, np.array(value, dtype=np.float32))

    def i64(self, scope: str, value: int | list[int]) -> str:
        return self.const(scope, np.array(value, dtype=np.int64))

    def init(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(value, name))
        return name

    def normal(self, *shape: int, mean: float = 0.0) -> np.ndarray:
        return (mean + INIT_STD * self.rng.standard_normal(shape)).astype(np.float32)

    # -- exporter idioms ------------------------------------------------------------------------------
    def size(self, scope: str, x: str, dim: int) -> str:
        """`x.size(dim)` for a non-negative dim: Shape -> Gather(scalar index), an int64 scalar."""
        shape = self.op(scope, "Shape", [x])
        return self.op(scope, "Gather", [shape, self.i64(scope, dim)], axis=0)

    def size_neg(self, scope: str, x: str, dim: int) -> str:
        """`x.size(-k)`: Shape -> Slice([-k:-k+1]) -> Squeeze, the form onnxruntime's GPT-2 fusion matches."""
        shape = self.op(scope, "Shape", [x])
        end = INT64_MAX if dim == -1 else dim + 1
        piece = self.op(scope, "Slice", [shape, self.i64(scope, [dim]), self.i64(scope, [end]), self.i64(scope, [0])])
        return self.op(scope, "Squeeze", [piece, self.i64(scope, [0])])

    def unsqueeze0(self, scope: str, scalar: str) -> str:
        return self.op(scope, "Unsqueeze", [scalar, self.i64(scope, [0])])

    def view_keep2(self, scope: str, x: str, tail: list[int]) -> str:
        """`x.view(x.size()[:2] + tuple(tail))` -> Reshape(x, Concat(size(0), size(1), *tail))."""
        d0 = self.unsqueeze0(scope, self.size(scope, x, 0))
        d1 = self.unsqueeze0(scope, self.size(scope, x, 1))
        shape = self.op(scope, "Concat", [d0, d1] + [self.i64(scope, [t]) for t in tail], axis=0)
        return self.op(scope, "Reshape", [x, shape])

    def folded_weight(self, value: np.ndarray) -> str:
        """A Linear weight after the exporter's constant folding of its Transpose: `onnx::MatMul_N`."""
        self._matmul_weights += 1
        return self.init(f"onnx::MatMul_{self._matmul_weights - 1}", value)

    def linear(self, scope: str, x: str, d_in: int, d_out: int, param: str) -> str:
        """nn.Linear: MatMul(x, onnx::MatMul_N = W^T folded) -> Add(bias, .), bias first as aten::linear writes."""
        w = self.folded_weight(self.normal(d_in, d_out))
        b = self.init(f"{param}.bias", self.normal(d_out))
        mm = self.op(scope, "MatMul", [x, w])
        return self.op(scope, "Add", [b, mm])

    def conv1d(self, scope: str, x: str, d_in: int, d_out: int, param: str, form: str) -> str:
        """GPT-2's Conv1D: `addmm(bias, x.view(-1, nx), weight).view(x.size()[:-1] + (nf,))`."""
        w = self.init(f"{param}.weight", self.normal(d_in, d_out))
        b = self.init(f"{param}.bias", self.normal(d_out))
        if form == "matmul":
            mm = self.op(scope, "MatMul", [x, w])
            return self.op(scope, "Add", [mm, b])
        d0 = self.unsqueeze0(scope, self.size(scope, x, 0))
        d1 = self.unsqueeze0(scope, self.size(scope, x, 1))
        flat = self.op(scope, "Reshape", [x, self.i64(scope, [-1, d_in])])
        gemm = self.op(scope, "Gemm", [flat, w, b], alpha=1.0, beta=1.0)
        shape = self.op(scope, "Concat", [d0, d1, self.i64(scope, [d_out])], axis=0)
        return self.op(scope, "Reshape", [gemm, shape])

    def layer_norm(self, scope: str, x: str, hidden: int, param: str, eps: float, out: str | None = None) -> str:
        """nn.LayerNorm decomposed as the exporter writes it when LayerNormalization is not used."""
        gamma = self.init(f"{param}.weight", self.normal(hidden, mean=1.0))
        beta = self.init(f"{param}.bias", self.normal(hidden))
        mean = self.op(scope, "ReduceMean", [x], axes=[-1], keepdims=1)
        centered = self.op(scope, "Sub", [x, mean])
        squared = self.op(scope, "Pow", [centered, self.f32(scope, 2.0)])
        var = self.op(scope, "ReduceMean", [squared], axes=[-1], keepdims=1)
        var_eps = self.op(scope, "Add", [var, self.f32(scope, eps)])
        std = self.op(scope, "Sqrt", [var_eps])
        normed = self.op(scope, "Div", [centered, std])
        scaled = self.op(scope, "Mul", [normed, gamma])
        return self.op(scope, "Add", [scaled, beta], out=out)

    def gelu_erf(self, scope: str, x: str) -> str:
        """torch's exact gelu symbolic: Mul(Mul(x, Add(Erf(Div(x, sqrt 2)), 1)), 0.5)."""
        erf = self.op(scope, "Erf", [self.op(scope, "Div", [x, self.f32(scope, 1.4142135623730951)])])
        plus_one = self.op(scope, "Add", [erf, self.f32(scope, 1.0)])
        return self.op(scope, "Mul", [self.op(scope, "Mul", [x, plus_one]), self.f32(scope, 0.5)])

    def gelu_tanh(self, scope: str, x: str) -> str:
        """GPT-2's NewGELUActivation: 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * pow(x, 3))))."""
        half_x = self.op(scope, "Mul", [x, self.f32(scope, 0.5)])
        cube = self.op(scope, "Pow", [x, self.f32(scope, 3.0)])
        inner = self.op(scope, "Add", [x, self.op(scope, "Mul", [cube, self.f32(scope, 0.044715)])])
        scaled = self.op(scope, "Mul", [inner, self.f32(scope, math.sqrt(2.0 / math.pi))])
        plus_one = self.op(scope, "Add", [self.op(scope, "Tanh", [scaled]), self.f32(scope, 1.0)])
        return self.op(scope, "Mul", [half_x, plus_one])

    def model(self, name: str, inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto],
              doc: str) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name=PRODUCER, producer_version="1")
        model.ir_version = IR_VERSION
        model.doc_string = doc
        return model


def _ints(name: str) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "sequence"])


def _check_heads(hidden: int, heads: int) -> int:
    if hidden % heads:
        raise ValueError(f"hidden size {hidden} is not a multiple of the head count {heads}")
    return hidden // heads


def build_bert(layers: int = 2, hidden: int = 128, heads: int = 4, intermediate: int | None = None,
               vocab: int = 1000, max_positions: int = 128, type_vocab: int = 2, eps: float = 1e-12,
               seed: int = 0) -> onnx.ModelProto:
    """A HuggingFace-BertModel-shaped encoder as torch.onnx.export (opset 17, eager attention) writes it."""
    head_dim = _check_heads(hidden, heads)
    intermediate = intermediate or 4 * hidden
    g = _GraphBuilder(seed)

    # Embeddings: word + token type + position (position_ids buffer sliced to the sequence length).
    word = g.init("embeddings.word_embeddings.weight", g.normal(vocab, hidden))
    pos_table = g.init("embeddings.position_embeddings.weight", g.normal(max_positions, hidden))
    type_table = g.init("embeddings.token_type_embeddings.weight", g.normal(type_vocab, hidden))
    position_ids = g.init("embeddings.position_ids", np.arange(max_positions, dtype=np.int64)[None, :])
    seq_len = g.size("", "input_ids", 1)
    emb = "/embeddings"
    x = g.op(f"{emb}/word_embeddings", "Gather", [word, "input_ids"])
    x = g.op(emb, "Add", [x, g.op(f"{emb}/token_type_embeddings", "Gather", [type_table, "token_type_ids"])])
    ids = g.op(emb, "Slice", [position_ids, g.i64(emb, [0]), g.unsqueeze0(emb, seq_len), g.i64(emb, [1]),
                              g.i64(emb, [1])])
    x = g.op(emb, "Add", [x, g.op(f"{emb}/position_embeddings", "Gather", [pos_table, ids])])
    x = g.layer_norm(f"{emb}/LayerNorm", x, hidden, "embeddings.LayerNorm", eps)

    # get_extended_attention_mask: mask[:, None, None, :].to(float); (1.0 - m) * finfo.min
    m = g.op("", "Unsqueeze", ["attention_mask", g.i64("", [1])])
    m = g.op("", "Unsqueeze", [m, g.i64("", [2])])
    m = g.op("", "Cast", [m], to=TensorProto.FLOAT)
    m = g.op("", "Sub", [g.f32("", 1.0), m])
    ext_mask = g.op("", "Mul", [m, g.f32("", FLOAT_MIN)])

    for i in range(layers):
        scope, param = f"/encoder/layer.{i}", f"encoder.layer.{i}"
        sa, sp = f"{scope}/attention/self", f"{param}.attention.self"
        q = g.linear(f"{sa}/query", x, hidden, hidden, f"{sp}.query")
        k = g.linear(f"{sa}/key", x, hidden, hidden, f"{sp}.key")
        v = g.linear(f"{sa}/value", x, hidden, hidden, f"{sp}.value")
        # transpose_for_scores(key) followed by .transpose(-1, -2): the exporter merges the two Transposes.
        k = g.op(sa, "Transpose", [g.view_keep2(sa, k, [heads, head_dim])], perm=[0, 2, 3, 1])
        v = g.op(sa, "Transpose", [g.view_keep2(sa, v, [heads, head_dim])], perm=[0, 2, 1, 3])
        q = g.op(sa, "Transpose", [g.view_keep2(sa, q, [heads, head_dim])], perm=[0, 2, 1, 3])
        scores = g.op(sa, "Div", [g.op(sa, "MatMul", [q, k]), g.f32(sa, math.sqrt(head_dim))])
        probs = g.op(sa, "Softmax", [g.op(sa, "Add", [scores, ext_mask])], axis=-1)
        ctx = g.op(sa, "Transpose", [g.op(sa, "MatMul", [probs, v])], perm=[0, 2, 1, 3])
        ctx = g.view_keep2(sa, ctx, [hidden])
        so, sop = f"{scope}/attention/output", f"{param}.attention.output"
        h = g.op(so, "Add", [g.linear(f"{so}/dense", ctx, hidden, hidden, f"{sop}.dense"), x])
        x = g.layer_norm(f"{so}/LayerNorm", h, hidden, f"{sop}.LayerNorm", eps)
        inter = g.linear(f"{scope}/intermediate/dense", x, hidden, intermediate, f"{param}.intermediate.dense")
        inter = g.gelu_erf(f"{scope}/intermediate/intermediate_act_fn", inter)
        out = g.linear(f"{scope}/output/dense", inter, intermediate, hidden, f"{param}.output.dense")
        h = g.op(f"{scope}/output", "Add", [out, x])
        last = i == layers - 1
        x = g.layer_norm(f"{scope}/output/LayerNorm", h, hidden, f"{param}.output.LayerNorm", eps,
                         out="last_hidden_state" if last else None)
    if layers == 0:
        x = g.op("", "Identity", [x], out="last_hidden_state")

    first = g.op("/pooler", "Gather", [x, g.i64("/pooler", 0)], axis=1)
    pooled = g.linear("/pooler/dense", first, hidden, hidden, "pooler.dense")
    g.op("/pooler/activation", "Tanh", [pooled], out="pooler_output")

    return g.model(
        "bert",
        [_ints("input_ids"), _ints("attention_mask"), _ints("token_type_ids")],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", hidden]),
         helper.make_tensor_value_info("pooler_output", TensorProto.FLOAT, ["batch", hidden])],
        f"BERT-style encoder (layers={layers} hidden={hidden} heads={heads} intermediate={intermediate} "
        f"vocab={vocab} seed={seed}), decomposed like torch.onnx.export; built by models/make_transformers.py",
    )


def build_gpt(layers: int = 2, hidden: int = 128, heads: int = 4, intermediate: int | None = None,
              vocab: int = 1000, max_positions: int = 128, eps: float = 1e-5, seed: int = 0,
              attention_mask: bool = False, linear: str = "gemm") -> onnx.ModelProto:
    """A HuggingFace-GPT2LMHeadModel-shaped decoder (no past) as torch.onnx.export writes it.

    `linear="gemm"` writes Conv1D the way the exporter does (Reshape -> Gemm -> Reshape);
    `linear="matmul"` writes it as MatMul + Add instead. `attention_mask=True` adds the int64
    attention_mask input, applied as `(1 - mask) * -10000` added to the scores before Softmax
    (onnxruntime's no-past GPT-2 attention fusion does not handle that input).
    """
    if linear not in ("gemm", "matmul"):
        raise ValueError(f"linear must be 'gemm' or 'matmul', not {linear!r}")
    head_dim = _check_heads(hidden, heads)
    intermediate = intermediate or 4 * hidden
    g = _GraphBuilder(seed)

    wte_value = g.normal(vocab, hidden)
    wte = g.init("transformer.wte.weight", wte_value)
    wpe = g.init("transformer.wpe.weight", g.normal(max_positions, hidden))
    lm_head = g.folded_weight(np.ascontiguousarray(wte_value.T))  # tied: lm_head.weight is wte.weight
    causal_value = np.tril(np.ones((max_positions, max_positions), dtype=np.uint8))[None, None]

    t = "/transformer"
    seq_len = g.size(t, "input_ids", 1)
    positions = g.op(t, "Range", [g.i64(t, 0), seq_len, g.i64(t, 1)])
    positions = g.unsqueeze0(t, positions)
    x = g.op(t, "Add", [g.op(f"{t}/wte", "Gather", [wte, "input_ids"]),
                        g.op(f"{t}/wpe", "Gather", [wpe, positions])])

    ext_mask = None
    if attention_mask:
        m = g.op(t, "Unsqueeze", ["attention_mask", g.i64(t, [1])])
        m = g.op(t, "Unsqueeze", [m, g.i64(t, [2])])
        m = g.op(t, "Cast", [m], to=TensorProto.FLOAT)
        m = g.op(t, "Sub", [g.f32(t, 1.0), m])
        ext_mask = g.op(t, "Mul", [m, g.f32(t, -10000.0)])

    for i in range(layers):
        scope, param = f"{t}/h.{i}", f"transformer.h.{i}"
        a = f"{scope}/attn"
        causal = g.init(f"{param}.attn.bias", causal_value)  # each block registers its own buffer
        hn = g.layer_norm(f"{scope}/ln_1", x, hidden, f"{param}.ln_1", eps)
        qkv = g.conv1d(f"{a}/c_attn", hn, hidden, 3 * hidden, f"{param}.attn.c_attn", linear)
        q, k, v = g.op(a, "Split", [qkv, g.i64(a, [hidden] * 3)], outputs=3, axis=2)
        q = g.op(a, "Transpose", [g.view_keep2(a, q, [heads, head_dim])], perm=[0, 2, 1, 3])
        k = g.op(a, "Transpose", [g.view_keep2(a, k, [heads, head_dim])], perm=[0, 2, 3, 1])
        v = g.op(a, "Transpose", [g.view_keep2(a, v, [heads, head_dim])], perm=[0, 2, 1, 3])
        w = g.op(a, "Div", [g.op(a, "MatMul", [q, k]), g.f32(a, math.sqrt(head_dim))])
        # nd, ns = w.size(-2), w.size(-1); mask = self.bias[:, :, ns - nd:ns, :ns]
        nd = g.size_neg(a, w, -2)
        ns = g.size_neg(a, w, -1)
        start = g.unsqueeze0(a, g.op(a, "Sub", [ns, nd]))
        mask = g.op(a, "Slice", [causal, start, g.unsqueeze0(a, ns), g.i64(a, [2]), g.i64(a, [1])])
        mask = g.op(a, "Slice", [mask, g.i64(a, [0]), g.unsqueeze0(a, ns), g.i64(a, [3]), g.i64(a, [1])])
        w = g.op(a, "Where", [g.op(a, "Cast", [mask], to=TensorProto.BOOL), w, g.f32(a, FLOAT_MIN)])
        if ext_mask is not None:
            w = g.op(a, "Add", [w, ext_mask])
        probs = g.op(a, "Softmax", [w], axis=-1)
        ctx = g.op(a, "Transpose", [g.op(a, "MatMul", [probs, v])], perm=[0, 2, 1, 3])
        ctx = g.view_keep2(a, ctx, [hidden])
        attn = g.conv1d(f"{a}/c_proj", ctx, hidden, hidden, f"{param}.attn.c_proj", linear)
        x = g.op(scope, "Add", [attn, x])
        hn = g.layer_norm(f"{scope}/ln_2", x, hidden, f"{param}.ln_2", eps)
        ff = g.conv1d(f"{scope}/mlp/c_fc", hn, hidden, intermediate, f"{param}.mlp.c_fc", linear)
        ff = g.gelu_tanh(f"{scope}/mlp/act", ff)
        ff = g.conv1d(f"{scope}/mlp/c_proj", ff, intermediate, hidden, f"{param}.mlp.c_proj", linear)
        x = g.op(scope, "Add", [x, ff])
    x = g.layer_norm(f"{t}/ln_f", x, hidden, "transformer.ln_f", eps)
    g.op("/lm_head", "MatMul", [x, lm_head], out="logits")

    inputs = [_ints("input_ids")] + ([_ints("attention_mask")] if attention_mask else [])
    return g.model(
        "gpt",
        inputs,
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "sequence", vocab])],
        f"GPT-2-style decoder (layers={layers} hidden={hidden} heads={heads} intermediate={intermediate} "
        f"vocab={vocab} linear={linear} seed={seed}), decomposed like torch.onnx.export; "
        "built by models/make_transformers.py",
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="directory for bert.onnx and gpt.onnx")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    cfg = {"layers": args.layers, "hidden": args.hidden, "heads": args.heads, "seed": args.seed}
    args.out.mkdir(parents=True, exist_ok=True)
    for name, build in (("bert", build_bert), ("gpt", build_gpt)):
        model = build(**cfg)
        onnx.checker.check_model(model, full_check=True)
        path = args.out / f"{name}.onnx"
        onnx.save(model, path)
        print(f"wrote {path}: {len(model.graph.node)} nodes, {path.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
