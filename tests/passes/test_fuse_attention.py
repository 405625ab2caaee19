"""fuse-attention: BERT-style self-attention becomes com.microsoft::Attention (form=contrib) or ai.onnx
Attention (form=onnx, opset >= 23); the blocks it cannot prove equivalent stay, with a remark."""

from __future__ import annotations

import importlib.util
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import version_converter

from mlc.errors import BadInputError
from mlc.ir.core import Graph
from mlc.ir.equality import assert_graph_equal
from mlc.onnx_io.exporter import export_onnx
from mlc.onnx_io.importer import import_onnx
from mlc.pass_api import Numerics, parse_pass_spec
from mlc.testing import as_graph, assert_numerically_equivalent, assert_pass, run_pass

ROOT = Path(__file__).resolve().parents[2]
FMIN = float(np.finfo(np.float32).min)

# ----------------------------------------------------------------------------- a small block as text
_RNG = np.random.default_rng(7)
# Multiples of 1/16: exact in float32 and short in the text; large enough that the heads differ.
WQ, WK, WV = (_RNG.integers(-8, 9, (8, 8)) / 16 for _ in range(3))
BQ, BK, BV = (_RNG.integers(-8, 9, 8) / 16 for _ in range(3))


def _dense(array: np.ndarray, dtype: str = "f32") -> str:
    dims = ",".join(str(d) for d in array.shape)
    text = (str(int(v)) if dtype[0] in "iu" else str(np.float32(v)) for v in array.reshape(-1))
    return f"dense<{dtype}[{dims}]> [" + ", ".join(text) + "]"


CAUSAL_BUFFER = np.tril(np.ones((8, 8), np.uint8))[None, None]  # GPT-2's `bias` buffer, max_positions 8


def _causal_lines(buffer: np.ndarray, fill: float, condition: str) -> str:
    """GPT-2's causal select as exported: `bias[:, :, ns - nd:ns, :ns]` with nd, ns the scores'
    last two dims, then Where(mask, scores, fill). `condition="input"` reads the mask from a graph
    input instead of the buffer."""
    if condition == "input":
        return f"""
  const %fill = dense<f32[]> [{np.float32(fill)}]
  %sc: f32[B,2,S,S] = Where(%keep, %ss, %fill)"""
    return f"""
  const %buffer = {_dense(buffer, "u8")}
  const %fill = dense<f32[]> [{np.float32(fill)}]
  const %minus2 = dense<i64[1]> [-2]
  const %minus1 = dense<i64[1]> [-1]
  const %big = dense<i64[1]> [9223372036854775807]
  const %zero = dense<i64[1]> [0]
  const %axis2 = dense<i64[1]> [2]
  const %axis3 = dense<i64[1]> [3]
  %shape: i64[4] = Shape(%ss)
  %nd: i64[1] = Slice(%shape, %minus2, %minus1)
  %ns: i64[1] = Slice(%shape, %minus1, %big)
  %start: i64[1] = Sub(%ns, %nd)
  %rows: u8[1,1,S,8] = Slice(%buffer, %start, %ns, %axis2)
  %window: u8[1,1,S,S] = Slice(%rows, %zero, %ns, %axis3)
  %keep: bool[1,1,S,S] = Cast(%window) {{to=9}}
  %sc: f32[B,2,S,S] = Where(%keep, %ss, %fill)"""


def _block(*, scale: str = "Div(%s, %sqrt_d)", sqrt_d: float = 2.0, k_input: str = "%x", kv_input: str = "%x",
           mask: float | None = FMIN, extra: str = "", returns: str = "%y", opset: int = 17,
           causal: str | None = None, causal_fill: float = FMIN, buffer: np.ndarray = CAUSAL_BUFFER) -> str:
    """One exporter-style attention block (hidden 8, 2 heads of 4) after simplify-shapes and dce.
    `k_input="%x2"`: K alone is projected from a second input; `kv_input="%x2"`: K and V are, from a
    sequence of another length T (cross-attention; the mask is then over T). `causal="buffer"`
    adds GPT-2's causal select (see _causal_lines), `causal="input"` one whose condition is the
    graph input %keep."""
    if kv_input == "%x2":
        k_input, t = "%x2", "T"
    else:
        t = "S"
    inputs = f"%x: f32[B,S,8], %attention_mask: i64[B,{t}]" + (f", %x2: f32[B,{t},8]" if k_input == "%x2" else "")
    if causal == "input":
        inputs += ", %keep: bool[1,1,S,S]"
    scores = "%sc" if causal else "%ss"
    causal_text = _causal_lines(buffer, causal_fill, causal) if causal else ""
    mask_lines = f"""
  %m1: i64[B,1,{t}] = Unsqueeze(%attention_mask, %ax1)
  %m2: i64[B,1,1,{t}] = Unsqueeze(%m1, %ax2)
  %mf: f32[B,1,1,{t}] = Cast(%m2) {{to=1}}
  %inv: f32[B,1,1,{t}] = Sub(%one, %mf)
  %ext: f32[B,1,1,{t}] = Mul(%inv, %filter)""" if mask is not None else ""
    softmax_in = "%sm" if mask is not None else scores
    add_line = f"\n  %sm: f32[B,2,S,{t}] = Add({scores}, %ext)" if mask is not None else ""
    return f"""model ir_version=8 opset_import={{"": {opset}}}
graph "attn" ({inputs}) {{
  const %wq = {_dense(WQ)}
  const %bq = {_dense(BQ)}
  const %wk = {_dense(WK)}
  const %bk = {_dense(BK)}
  const %wv = {_dense(WV)}
  const %bv = {_dense(BV)}
  const %heads = dense<i64[4]> [0, 0, 2, 4]
  const %merge = dense<i64[3]> [0, 0, 8]
  const %ax1 = dense<i64[1]> [1]
  const %ax2 = dense<i64[1]> [2]
  const %one = dense<f32[]> [1.0]
  const %filter = dense<f32[]> [{np.float32(mask if mask is not None else 0.0)}]
  const %sqrt_d = dense<f32[]> [{np.float32(sqrt_d)}]{mask_lines}
  %qm: f32[B,S,8] = MatMul(%x, %wq)
  %q: f32[B,S,8] = Add(%bq, %qm)
  %km: f32[B,{t},8] = MatMul({k_input}, %wk)
  %k: f32[B,{t},8] = Add(%bk, %km)
  %vm: f32[B,{t},8] = MatMul({kv_input}, %wv)
  %v: f32[B,{t},8] = Add(%bv, %vm)
  %q4: f32[B,S,2,4] = Reshape(%q, %heads)
  %qt: f32[B,2,S,4] = Transpose(%q4) {{perm=[0, 2, 1, 3]}}
  %k4: f32[B,{t},2,4] = Reshape(%k, %heads)
  %kt: f32[B,2,4,{t}] = Transpose(%k4) {{perm=[0, 2, 3, 1]}}
  %v4: f32[B,{t},2,4] = Reshape(%v, %heads)
  %vt: f32[B,2,{t},4] = Transpose(%v4) {{perm=[0, 2, 1, 3]}}
  %s: f32[B,2,S,{t}] = MatMul(%qt, %kt)
  %ss: f32[B,2,S,{t}] = {scale}{causal_text}{add_line}
  %p: f32[B,2,S,{t}] = Softmax({softmax_in}) {{axis=-1}}
  %c: f32[B,2,S,4] = MatMul(%p, %vt)
  %ct: f32[B,S,2,4] = Transpose(%c) {{perm=[0, 2, 1, 3]}}
  %y: f32[B,S,8] = Reshape(%ct, %merge){extra}
  return {returns}
}}"""


def _feeds(batch: int, seq: int, *, fully_masked: bool = True, seed: int = 0, x2: bool = False,
           kv_seq: int | None = None) -> dict[str, np.ndarray]:
    """x [batch, seq, 8] (and x2 [batch, kv_seq, 8]) and a 0/1 mask over the keys with right padding."""
    rng = np.random.default_rng(seed)
    keys = kv_seq or seq
    mask = np.ones((batch, keys), np.int64)
    mask[-1, keys - 2:] = 0  # right padding
    if fully_masked and batch > 1:
        mask[0, :] = 0  # every key padded: uniform weights with finfo.min, near-softmax with -10000
    feeds: dict[str, np.ndarray] = {"x": rng.uniform(-2, 2, (batch, seq, 8)).astype(np.float32), "attention_mask": mask}
    if x2:
        feeds["x2"] = rng.uniform(-2, 2, (batch, keys, 8)).astype(np.float32)
    return feeds


def _fuse(text: str, form: str = "contrib") -> tuple[Graph, list[str], int]:
    graph, ctx = run_pass(f"fuse-attention{{form={form}}}", as_graph(text))
    run_pass("dce", graph)
    return graph, ctx.remarks, ctx.rewrites


def _expected_contrib(mask: float | None) -> str:
    weights = np.concatenate([WQ, WK, WV], axis=1)
    bias = np.concatenate([BQ, BK, BV])
    if mask is None:
        body = "%y: f32[B,S,8] = com.microsoft::Attention(%x, %w, %b) {num_heads=2}"
    else:
        body = f"""%m: i32[B,S] = Cast(%attention_mask) {{to=6}}
  %y: f32[B,S,8] = com.microsoft::Attention(%x, %w, %b, %m) {{num_heads=2, mask_filter_value={np.float32(mask)}}}"""
    return f"""model ir_version=8 opset_import={{"": 17, "com.microsoft": 1}}
graph "attn" (%x: f32[B,S,8], %attention_mask: i64[B,S]) {{
  const %w = {_dense(weights)}
  const %b = {_dense(bias)}
  {body}
  return %y
}}"""


@pytest.mark.parametrize(("mask", "scale"), [
    (FMIN, "Div(%s, %sqrt_d)"),              # BERT: finfo.min mask, Div by sqrt(d)
    (-10000.0, "Mul(%s, %sqrt_d)"),          # older exports: -10000 mask; Mul by 1/sqrt(d) (0.5 here)
    (None, "Mul(%sqrt_d, %s)"),              # no mask: Attention without mask_index
])
def test_block_becomes_contrib_attention(mask, scale) -> None:
    before = _block(scale=scale, sqrt_d=2.0 if scale.startswith("Div") else 0.5, mask=mask)
    graph, remarks, rewrites = _fuse(before)
    assert rewrites == 1 and remarks == []
    assert_graph_equal(graph, as_graph(_expected_contrib(mask)), check_metadata=False)
    attention = next(n for n in graph if n.op_type == "Attention")
    assert attention.created_by == "fuse-attention/attention-contrib"
    for batch, seq in [(1, 5), (2, 6)]:  # padded rows, and one fully masked row
        assert_numerically_equivalent(before, graph, Numerics.TOLERANCE, feeds=_feeds(batch, seq))


def test_block_becomes_onnx_attention_at_opset_23() -> None:
    before = _block(opset=23)
    graph, remarks, rewrites = _fuse(before, "onnx")
    assert rewrites == 1 and remarks == []
    ops = Counter(n.op_type for n in graph)
    assert ops["Attention"] == 1 and not {"Softmax", "Transpose", "Reshape"} & set(ops)
    attention = next(n for n in graph if n.op_type == "Attention")
    assert attention.domain == "" and (attention.attr("q_num_heads"), attention.attr("kv_num_heads")) == (2, 2)
    assert [v.name for v in attention.inputs[:3]] == ["q", "k", "v"]  # the projections stay
    assert graph.model is not None and "com.microsoft" not in graph.model.opset_imports
    # onnxruntime's opset-23 kernel zeroes a row whose keys are all finfo.min (documented): no fully masked row.
    for batch, seq in [(1, 5), (2, 6)]:
        assert_numerically_equivalent(as_graph(before, 23), graph, Numerics.TOLERANCE,
                                      feeds=_feeds(batch, seq, fully_masked=False))


def _causal_feeds(batch: int, seq: int, *, left_padded: bool = True, seed: int = 0) -> dict[str, np.ndarray]:
    """_feeds without fully masked rows; with `left_padded`, the first two keys of batch 0 are
    padding, so its first two queries see only padded keys (allowed by the causal mask)."""
    feeds = _feeds(batch, seq, fully_masked=False, seed=seed)
    if left_padded and batch > 1:
        feeds["attention_mask"][0, :2] = 0
    return feeds


@pytest.mark.parametrize("mask", [None, -10000.0, FMIN])
def test_causal_block_becomes_unidirectional_attention(mask) -> None:
    before = _block(mask=mask, causal="buffer")
    graph, remarks, rewrites = _fuse(before)
    assert rewrites == 1 and remarks == []
    expected = _expected_contrib(mask).replace("{num_heads=2", "{num_heads=2, unidirectional=1")
    assert_graph_equal(graph, as_graph(expected), check_metadata=False)
    # Left padding leaves queries whose every allowed key is padded: onnxruntime matches the
    # decomposed graph there with a -10000 padding mask, not with finfo.min (documented).
    for batch, seq in [(1, 1), (1, 5), (2, 8)]:
        feeds = _causal_feeds(batch, seq, left_padded=mask != FMIN)
        assert_numerically_equivalent(before, graph, Numerics.TOLERANCE, feeds=feeds)


def test_causal_block_becomes_onnx_attention_with_is_causal() -> None:
    before = _block(opset=23, causal="buffer")
    graph, remarks, rewrites = _fuse(before, "onnx")
    assert rewrites == 1 and remarks == []
    attention = next(n for n in graph if n.op_type == "Attention")
    assert attention.domain == "" and attention.attr("is_causal") == 1
    assert not {"Where", "Slice", "Softmax"} & {n.op_type for n in graph}
    for batch, seq in [(1, 5), (2, 8)]:
        assert_numerically_equivalent(as_graph(before, 23), graph, Numerics.TOLERANCE,
                                      feeds=_causal_feeds(batch, seq, left_padded=False))


@pytest.mark.parametrize(("variant", "why"), [
    ({"causal_fill": -100.0}, "Where fills masked scores with -100, not a large negative value (<= -10000)"),
    ({"buffer": np.triu(np.ones((8, 8), np.uint8))[None, None]},
     "the condition of Where is not the causal (lower-triangular) mask at sequence length 3"),
    ({"causal": "input"}, "the causal condition of Where reads %keep, an input value"),
    ({"buffer": np.zeros((1, 1, 0, 0), np.uint8)}, "the causal condition of Where fails at sequence length 1"),
])
def test_causal_select_left_alone_with_a_remark(variant, why) -> None:
    before = _block(**{"causal": "buffer", "mask": None, **variant})
    ctx = assert_pass("fuse-attention", before, before, numeric=False)  # unchanged (one cannot even run)
    assert len(ctx.remarks) == 1 and ctx.remarks[0].startswith("attention-contrib at '<Softmax>': not applied, ")
    assert why in ctx.remarks[0], ctx.remarks


@pytest.mark.parametrize(("variant", "form", "why"), [
    ({"sqrt_d": 5.0}, "contrib", "scale 0.2 is not 1/sqrt(head_dim)=0.5"),
    ({"k_input": "%x2"}, "contrib,multihead=false", "Q and K are not projected from the same input"),
    ({"extra": "\n  %z: f32[B,2,S,S] = Relu(%s)", "returns": "%y, %z"}, "contrib",
     "the output of MatMul is also read outside the block, by Relu"),
    ({"extra": "\n  %z: f32[B,S,8] = Relu(%q)", "returns": "%y, %z"}, "contrib,multihead=false",
     "the output of Add is also read outside the block, by Relu"),
    ({"returns": "%y, %p"}, "contrib", "the output of Softmax is a graph output"),
    ({}, "onnx", "form=onnx needs ai.onnx opset >= 23 (the model imports 17)"),
])
def test_left_alone_with_a_remark(variant, form, why) -> None:
    before = _block(**variant)
    feeds = _feeds(2, 5, x2="x2" in before)
    ctx = assert_pass(f"fuse-attention{{form={form}}}", before, before, feeds=feeds)
    rule = "attention-onnx" if form == "onnx" else "attention-contrib"
    assert ctx.remarks == [f"{rule} at '<Softmax>': not applied, {why}"]


def _expected_mha() -> str:
    attributes = f"{{num_heads=2, mask_filter_value={np.float32(FMIN)}}}"
    return f"""model ir_version=8 opset_import={{"": 17, "com.microsoft": 1}}
graph "attn" (%x: f32[B,S,8], %attention_mask: i64[B,T], %x2: f32[B,T,8]) {{
  const %wq = {_dense(WQ)}
  const %wk = {_dense(WK)}
  const %wv = {_dense(WV)}
  const %b = {_dense(np.concatenate([BQ, BK, BV]))}
  %m: i32[B,T] = Cast(%attention_mask) {{to=6}}
  %qm: f32[B,S,8] = MatMul(%x, %wq)
  %km: f32[B,T,8] = MatMul(%x2, %wk)
  %vm: f32[B,T,8] = MatMul(%x2, %wv)
  %y: f32[B,S,8] = com.microsoft::MultiHeadAttention(%qm, %km, %vm, %b, %m) {attributes}
  return %y
}}"""


def test_cross_attention_becomes_multihead_attention() -> None:
    """K and V from another input (of another length): MultiHeadAttention on the projections, whose
    bias Adds fold into the op's packed bias."""
    before = _block(kv_input="%x2")
    graph, remarks, rewrites = _fuse(before)
    assert rewrites == 1 and remarks == []
    assert_graph_equal(graph, as_graph(_expected_mha()), check_metadata=False)
    for batch, seq, kv_seq in [(1, 5, 5), (2, 4, 7)]:
        assert_numerically_equivalent(before, graph, Numerics.TOLERANCE,
                                      feeds=_feeds(batch, seq, x2=True, kv_seq=kv_seq))


def test_multihead_attention_keeps_a_bias_add_read_elsewhere() -> None:
    """Self-attention whose K projection is also read elsewhere: not Attention (it would drop the
    projection), but MultiHeadAttention reading the kept Add."""
    before = _block(extra="\n  %z: f32[B,S,8] = Relu(%k)", returns="%y, %z")
    graph, remarks, rewrites = _fuse(before)
    assert rewrites == 1 and remarks == []
    mha = next(n for n in graph if n.op_type == "MultiHeadAttention")
    assert [v.name for v in mha.inputs[:3]] == ["qm", "k", "vm"]  # K's Add stays: Relu reads it
    bias = mha.inputs[3]
    assert bias is not None and bias.const is not None
    np.testing.assert_array_equal(bias.const.numpy(), np.concatenate([BQ, np.zeros(8), BV]).astype(np.float32))
    assert_numerically_equivalent(before, graph, Numerics.TOLERANCE, feeds=_feeds(2, 5))


def test_an_unknown_form_is_refused_when_the_pipeline_is_built() -> None:
    with pytest.raises(BadInputError, match="form must be one of contrib, onnx"):
        parse_pass_spec("fuse-attention{form=tvm}")


# ----------------------------------------------------------------------------- the BERT and GPT-2 test models
def _load_models():
    spec = importlib.util.spec_from_file_location("make_transformers", ROOT / "models" / "make_transformers.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


mt = _load_models()


def compile_attention(model: onnx.ModelProto, form: str = "contrib") -> tuple[onnx.ModelProto, list[str], Counter]:
    """fold-constants, simplify-shapes, dce, fuse-attention, dce; the exported model, remarks, rules."""
    graph = import_onnx(model)
    for name in ("fold-constants", "simplify-shapes", "dce"):
        run_pass(name, graph)
    _, ctx = run_pass(f"fuse-attention{{form={form}}}", graph)
    run_pass("dce", graph)
    return export_onnx(graph), ctx.remarks, ctx.rules


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _bert_feeds(batch: int, seq: int, rng: np.random.Generator, fully_masked: bool) -> dict[str, np.ndarray]:
    mask = np.ones((batch, seq), np.int64)
    mask[-1, seq - 3:] = 0  # trailing padding
    if batch > 1:
        mask[0, seq // 2:] = 0
        if fully_masked:
            mask[0, :] = 0
    return {"input_ids": rng.integers(0, 1000, (batch, seq)).astype(np.int64), "attention_mask": mask,
            "token_type_ids": (np.arange(seq)[None, :].repeat(batch, 0) >= seq // 2).astype(np.int64)}


@pytest.mark.parametrize("form", ["contrib", "onnx"])
def test_bert_fuses_both_layers_and_matches_onnxruntime(form) -> None:
    model = mt.build_bert()
    if form == "onnx":
        model = version_converter.convert_version(model, 23)
    fused, remarks, rules = compile_attention(model, form)
    ops = Counter((n.domain, n.op_type) for n in fused.graph.node)
    domain = "com.microsoft" if form == "contrib" else ""
    assert rules == {f"attention-{form}": 2} and remarks == []
    attention = next(n for n in fused.graph.node if n.op_type == "Attention")
    assert attention.name == "/encoder/layer.0/attention/self/Attention"
    assert ops[(domain, "Attention")] == 2 and ops[("", "Softmax")] == 0 and ops[("", "Transpose")] == 0
    if form == "contrib":
        assert ops[("", "MatMul")] == 2 * 3 + 1  # per layer: attention output, intermediate, output; pooler
        assert {(o.domain, o.version) for o in fused.opset_import} == {("", 17), ("com.microsoft", 1)}
        masks = {n.input[3] for n in fused.graph.node if n.op_type == "Attention"}
        assert ops[("", "Cast")] == 1 and len(masks) == 1  # one int32 Cast of attention_mask, shared by the layers
    original, compiled = _session(model), _session(fused)
    rng = np.random.default_rng(0)
    for batch in (1, 2):
        for seq in (7, 16):
            feeds = _bert_feeds(batch, seq, rng, fully_masked=form == "contrib")
            for want, got in zip(original.run(None, feeds), compiled.run(None, feeds), strict=True):
                np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)


@pytest.mark.parametrize(("linear", "attention_mask"), [("gemm", False), ("matmul", True)])
def test_gpt_fuses_both_layers_as_unidirectional_attention(linear, attention_mask) -> None:
    model = mt.build_gpt(linear=linear, attention_mask=attention_mask)
    graph = import_onnx(model)
    for name in ("fold-constants", "simplify-shapes", "unflatten-gemm", "dce"):
        run_pass(name, graph)
    _, ctx = run_pass("fuse-attention", graph)
    run_pass("dce", graph)
    fused = export_onnx(graph)
    assert ctx.rules == {"attention-contrib": 2} and ctx.remarks == []
    attentions = [n for n in fused.graph.node if n.op_type == "Attention"]
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in attentions[0].attribute}
    assert attributes["unidirectional"] == 1 and attributes["num_heads"] == 4
    assert attributes.get("mask_filter_value") == (-10000.0 if attention_mask else None)
    ops = Counter(n.op_type for n in fused.graph.node)
    assert not {"Where", "Softmax", "Split", "Transpose", "Slice"} & set(ops)
    original, compiled = _session(model), _session(fused)
    rng = np.random.default_rng(0)
    for batch, seq in [(1, 1), (2, 7), (1, 33)]:
        feeds = {"input_ids": rng.integers(0, 1000, (batch, seq)).astype(np.int64)}
        if attention_mask:
            mask = np.ones((batch, seq), np.int64)
            mask[-1, :2] = 0  # left padding: the first queries see only padded keys
            feeds["attention_mask"] = mask
        for want, got in zip(original.run(None, feeds), compiled.run(None, feeds), strict=True):
            np.testing.assert_allclose(got, want, rtol=0, atol=2e-4)
