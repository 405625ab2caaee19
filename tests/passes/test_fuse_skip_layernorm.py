"""fuse-skip-layernorm: residual Add (+ bias) + LayerNormalization becomes com.microsoft::SkipLayerNormalization."""

from __future__ import annotations

import pytest

from mlc.pass_api import Numerics
from mlc.testing import assert_numerically_equivalent, assert_pass, run_pass
from tests.passes.test_fuse_layernorm import assert_model_numbers, fused_model, op_counts, remarks

PLAIN = 'model ir_version=8 opset_import={"": 17}\n'
MS = 'model ir_version=8 opset_import={"": 17, "com.microsoft": 1}\n'
PARAMS = '''  const %gamma = dense<f32[4]> [1.0, 0.5, -1.0, 2.0]
  const %beta = dense<f32[4]> [0.1, 0.2, 0.3, 0.4]
  const %bias = dense<f32[4]> [0.25, -0.25, 0.5, -0.5]
'''
SKIP = PLAIN + '''graph "g" (%a: f32[2,3,4], %b: f32[2,3,4]) {
%PARAMS  %s: f32[2,3,4] = Add(%a, %b) name="/l/Add"
  %y: f32[2,3,4] = LayerNormalization(%s, %gamma, %beta) {axis=-1, epsilon=1e-05} name="/l/LayerNorm"
  return %y
}'''.replace("%PARAMS", PARAMS)
FUSED = MS + '''graph "g" (%a: f32[2,3,4], %b: f32[2,3,4]) {
%PARAMS  %y: f32[2,3,4] = com.microsoft::SkipLayerNormalization(%a, %b, %gamma, %beta) {epsilon=1e-05} \
name="/l/SkipLayerNormalization"
  return %y
}'''.replace("%PARAMS", PARAMS)


def _edit(text: str, edit: dict[str, str]) -> str:
    for old, new in edit.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


def test_add_and_layernorm_become_skip_layernorm() -> None:
    ctx = assert_pass("fuse-skip-layernorm", SKIP, FUSED, fused=1)
    assert dict(ctx.rules) == {"skip-layernorm": 1} and ctx.remarks == []
    graph, _ = run_pass("fuse-skip-layernorm", SKIP)
    assert graph.nodes[0].source == ("/l/Add", "/l/LayerNorm")


@pytest.mark.parametrize(("edit", "rule"), [
    # Add(Add(a, b), bias)
    ({'%s: f32[2,3,4] = Add(%a, %b) name="/l/Add"':
      '%s0: f32[2,3,4] = Add(%a, %b)\n  %s: f32[2,3,4] = Add(%bias, %s0) name="/l/Add"'}, "skip-layernorm-bias"),
    # BERT: Add(Add(bias, dense), residual)
    ({'%s: f32[2,3,4] = Add(%a, %b) name="/l/Add"':
      '%m: f32[2,3,4] = Add(%bias, %a)\n  %s: f32[2,3,4] = Add(%m, %b) name="/l/Add"'}, "skip-layernorm-bias"),
], ids=["bias-after", "bias-before"])
def test_bias_becomes_the_fifth_input(edit: dict[str, str], rule: str) -> None:
    expected = FUSED.replace("(%a, %b, %gamma, %beta)", "(%a, %b, %gamma, %beta, %bias)")
    ctx = assert_pass("fuse-skip-layernorm", _edit(SKIP, edit), expected, fused=1)
    assert dict(ctx.rules) == {rule: 1}


def test_a_residual_reads_the_fourth_output() -> None:
    # the sum is read before the LayerNormalization (and is a graph output): the fused node takes the Add's place
    before = _edit(SKIP, {'  %y: f32[2,3,4] = LayerNormalization': '  %r: f32[2,3,4] = Relu(%s)\n'
                                                                     '  %y: f32[2,3,4] = LayerNormalization',
                          "return %y": "return %y, %r, %s"})
    expected = _edit(FUSED, {'  %y: f32[2,3,4] = com.microsoft::SkipLayerNormalization':
                             '  %y: f32[2,3,4], none, none, %s: f32[2,3,4] = com.microsoft::SkipLayerNormalization',
                             "  return %y": "  %r: f32[2,3,4] = Relu(%s)\n  return %y, %r, %s"})
    ctx = assert_pass("fuse-skip-layernorm", before, expected, fused=1)
    assert dict(ctx.rules) == {"skip-layernorm-sum": 1}
    graph, _ = run_pass("fuse-skip-layernorm", before)
    assert [v.name for v in graph.outputs] == ["y", "r", "s"]


def test_symbolic_shapes() -> None:
    # the same symbols; an unknown middle dim (the kernel checks the last two dims at run time); 2-D
    for a, b, total in (("N,S,4", "N,S,4", "N,S,4"), ("N,?,4", "N,S,4", "N,S,4"), ("S,4", "S,4", "S,4")):
        retyped = []
        for text in (SKIP, FUSED):
            text = text.replace("(%a: f32[2,3,4], %b: f32[2,3,4])", f"(%a: f32[{a}], %b: f32[{b}])")
            retyped.append(text.replace("f32[2,3,4] =", f"f32[{total}] ="))
        assert_pass("fuse-skip-layernorm", retyped[0], retyped[1], fused=1)


def test_dims_lost_by_shape_inference_are_rederived() -> None:
    # declared [?,?,4] (what ONNX inference leaves after a computed Reshape): the dims are re-derived as
    # [N,S,4] through Shape/Gather/Unsqueeze/Concat -> Reshape and MatMul, so the batch dims are provably equal
    before = PLAIN + '''graph "g" (%x: f32[N,S,4]) {
%PARAMS  const %w = dense<f32[4,4]> [1.0, 0.0, 0.5, 0.0, 0.0, 1.0, 0.0, 0.5, 0.25, 0.0, 1.0, 0.0, 0.0, 0.25, 0.0, 1.0]
  const %zero = dense<i64[]> [0]
  const %one = dense<i64[]> [1]
  const %axes = dense<i64[1]> [0]
  const %four = dense<i64[1]> [4]
  %shape: i64[3] = Shape(%x)
  %n: i64[] = Gather(%shape, %zero) {axis=0}
  %s: i64[] = Gather(%shape, %one) {axis=0}
  %n1: i64[1] = Unsqueeze(%n, %axes)
  %s1: i64[1] = Unsqueeze(%s, %axes)
  %target: i64[3] = Concat(%n1, %s1, %four) {axis=0}
  %r: f32[?,?,4] = Reshape(%x, %target)
  %m: f32[?,?,4] = MatMul(%r, %w)
  %sum: f32[?,?,4] = Add(%m, %x) name="/l/Add"
  %y: f32[?,?,4] = LayerNormalization(%sum, %gamma, %beta) {axis=-1, epsilon=1e-05} name="/l/LayerNorm"
  return %y
}'''.replace("%PARAMS", PARAMS)
    graph, ctx = run_pass("fuse-skip-layernorm", before)
    assert [n.op_type for n in graph][-1] == "SkipLayerNormalization" and ctx.remarks == [], ctx.remarks
    assert_numerically_equivalent(before, graph, Numerics.TOLERANCE)
    unknown = before.replace("%r: f32[?,?,4] = Reshape(%x, %target)", "%r: f32[?,?,4] = Relu(%x)")
    unknown = unknown.replace("%m: f32[?,?,4] = MatMul(%r, %w)", "%m: f32[?,?,4] = Reshape(%r, %target)")
    graph, ctx = run_pass("fuse-skip-layernorm", unknown)  # Reshape of a Relu: still [N,S,4]
    assert [n.op_type for n in graph][-1] == "SkipLayerNormalization", ctx.remarks
    unknown = before.replace("Concat(%n1, %s1, %four)", "Concat(%s1, %n1, %four)")  # [S,N,4] + [N,S,4]
    graph, ctx = run_pass("fuse-skip-layernorm", unknown)
    assert ctx.remarks == ["skip-layernorm at '/l/LayerNorm': not applied, the Add's operands are not provably of one "
                           "batch size ([S,N,4] + [N,S,4]): with a broadcast batch, SkipLayerNormalization would "
                           "silently return the input's shape"]


@pytest.mark.parametrize(("edit", "why"), [
    ({"%b: f32[2,3,4]": "%b: f32[1,3,4]"}, "the Add's operands are not provably of one batch size ([2,3,4] + "
                                          "[1,3,4])"),
    ({"%a: f32[2,3,4]": "%a: f32[N,3,4]", "%b: f32[2,3,4]": "%b: f32[M,3,4]"},
     "the Add's operands are not provably of one batch size"),
    ({"%b: f32[2,3,4]": "%b: f32[2,1,4]"}, "the Add broadcasts ([2,3,4] + [2,1,4])"),
    ({"%a: f32[2,3,4]": "%a: f32[2,2,3,4]", "%b: f32[2,3,4]": "%b: f32[2,2,3,4]", "f32[2,3,4] =": "f32[2,2,3,4] ="},
     "not known to be 2-D or 3-D"),
    ({"axis=-1": "axis=-2", "const %gamma = dense<f32[4]> [1.0, 0.5, -1.0, 2.0]":
      "const %gamma = dense<f32[3,4]> [1.0, 0.5, -1.0, 2.0, 1.0, 0.5, -1.0, 2.0, 1.0, 0.5, -1.0, 2.0]",
      "LayerNormalization(%s, %gamma, %beta)": "LayerNormalization(%s, %gamma)"},
     "it normalizes from axis -2, not the last axis alone"),
    ({"%s: f32[2,3,4] = Add(%a, %b)": "%s: f32[2,3,4] = Mul(%a, %b)"}, "its input is not an Add"),
    ({"Add(%a, %b)": "Add(%a, %bias)"}, "the Add adds a constant, not a skip connection"),
    ({'%s: f32[2,3,4] = Add(%a, %b) name="/l/Add"':
      '%s0: f32[2,3,4] = Add(%a, %b)\n  %s: f32[2,3,4] = Add(%s0, %bias) name="/l/Add"', "return %y": "return %y, %s0"},
     "the Add adds a constant, not a skip connection"),
    ({"%y: f32[2,3,4] = LayerNormalization": "%y: f32[2,3,4], %mu: f32[2,3,1] = LayerNormalization",
      "return %y": "return %y, %mu"}, "its Mean/InvStdDev outputs are read"),
], ids=["batch-broadcast", "other-batch-symbol", "sequence-broadcast", "rank-4", "two-axes", "not-add",
        "constant-operand", "inner-add-read", "mean-read"])
def test_must_not_change(edit: dict[str, str], why: str) -> None:
    text = _edit(SKIP, edit)
    ctx = assert_pass("fuse-skip-layernorm", text, text)
    (remark,) = ctx.remarks
    assert remark.startswith("skip-layernorm at '/l/LayerNorm': not applied, ") and why in remark, remark


def test_float64_is_left_alone() -> None:
    text = SKIP.replace("f32", "f64")
    ctx = assert_pass("fuse-skip-layernorm", text, text, numeric=False)
    assert ctx.remarks == ["skip-layernorm at '/l/LayerNorm': not applied, the input is not float32/float16 "
                           "(onnxruntime's SkipLayerNormalization kernels)"]


# ----------------------------------------------------------------- the transformer models
O3_ORT = ["fuse-layernorm", "fuse-gelu{contrib=true}", "fuse-skip-layernorm", "fuse-bias-gelu", "dce"]


def test_bert() -> None:
    graph, contexts, folded = fused_model("bert", O3_ORT)
    counts = op_counts(graph)
    assert counts["com.microsoft::SkipLayerNormalization"] == 4, counts  # 2 per layer
    assert counts["LayerNormalization"] == 1  # the embeddings': word + token type + a [1, S, H] position table
    assert dict(contexts["fuse-skip-layernorm"].rules) == {"skip-layernorm-bias": 4}  # the dense layers' biases
    (remark,) = remarks(contexts["fuse-skip-layernorm"], "skip-layernorm")
    assert remark.startswith("skip-layernorm at '/embeddings/LayerNorm/LayerNormalization': not applied, the Add's "
                             "operands are not provably of one batch size ([batch,sequence,64] + [1,"), remark
    assert (folded, len(graph)) == (183, 125)
    assert_model_numbers("bert", graph)


@pytest.mark.parametrize("linear", ["gemm", "matmul"])
def test_gpt(linear: str) -> None:
    graph, contexts, folded = fused_model("gpt", O3_ORT, linear)
    counts = op_counts(graph)
    assert counts["com.microsoft::SkipLayerNormalization"] == 4, counts  # ln_2 of each block, ln_1 of the 2nd, ln_f
    # pre-LN: the residual stream is read by the next block's Add too, through the fourth output
    sums = [n for n in graph if n.op_type == "SkipLayerNormalization" and len(n.outputs) == 4]
    assert len(sums) == 3
    bias = "-bias" if linear == "matmul" else ""
    assert dict(contexts["fuse-skip-layernorm"].rules) == {f"skip-layernorm{bias}-sum": 3, f"skip-layernorm{bias}": 1}
    (remark,) = remarks(contexts["fuse-skip-layernorm"], "skip-layernorm")
    assert remark.startswith("skip-layernorm at '/transformer/h.0/ln_1/LayerNormalization': not applied"), remark
    assert_model_numbers("gpt", graph, linear)


def test_dims_are_followed_through_fused_attention() -> None:
    """After fuse-attention, the residual Adds of both layers still prove one batch size."""
    graph, contexts, _ = fused_model("bert", ["simplify-shapes", "dce", "fuse-layernorm",
                                              "fuse-attention", "fuse-skip-layernorm", "dce"])
    assert contexts["fuse-skip-layernorm"].stats["fused"] == 4, contexts["fuse-skip-layernorm"].remarks
    assert op_counts(graph)["com.microsoft::Attention"] == 2
    assert_model_numbers("bert", graph)
