"""unflatten-gemm: Reshape(Gemm(Reshape(x, [-1, K])), x's leading dims + [N]) -> Add(MatMul(x, W), b)."""

from __future__ import annotations

from mlc.ir.equality import assert_graph_equal
from mlc.pass_api import Numerics
from mlc.testing import as_graph, assert_numerically_equivalent, assert_pass, run_pass
from tests.passes.test_fuse_layernorm import assert_model_numbers, fused_model, op_counts

# GPT-2's Conv1D as torch.onnx.export writes it, on a [B, S, 4] input with dynamic B and S.
CONV1D = '''graph "g" (%x: f32[B,S,4]) {
  const %w = dense<f32[4,3]> [0.5, -1.0, 2.0, 0.25, 1.5, -0.5, 1.0, 0.75, -2.0, 0.125, 3.0, -1.25]
  const %b = dense<f32[3]> [0.1, -0.2, 0.3]
  const %flat = dense<i64[2]> [-1, 4]
  const %i0 = dense<i64[]> [0]
  const %i1 = dense<i64[]> [1]
  const %ax = dense<i64[1]> [0]
  const %n = dense<i64[1]> [3]
  %s: i64[3] = Shape(%x)
  %d0: i64[] = Gather(%s, %i0) {axis = 0}
  %d1: i64[] = Gather(%s, %i1) {axis = 0}
  %u0: i64[1] = Unsqueeze(%d0, %ax)
  %u1: i64[1] = Unsqueeze(%d1, %ax)
  %f: f32[unk__0,4] = Reshape(%x, %flat)
  %g: f32[unk__0,3] = Gemm(%f, %w, %b) {alpha = 1.0, beta = 1.0} name="c_attn"
  %t: i64[3] = Concat(%u0, %u1, %n) {axis = 0}
  %y: f32[B,unk__1,3] = Reshape(%g, %t)
  return %y
}'''

EXPECTED = '''graph "g" (%x: f32[B,S,4]) {
  const %w = dense<f32[4,3]> [0.5, -1.0, 2.0, 0.25, 1.5, -0.5, 1.0, 0.75, -2.0, 0.125, 3.0, -1.25]
  const %b = dense<f32[3]> [0.1, -0.2, 0.3]
  %m: f32[B,S,3] = MatMul(%x, %w)
  %y: f32[B,S,3] = Add(%m, %b)
  return %y
}'''


def test_conv1d_becomes_matmul_add_with_the_input_leading_dims() -> None:
    graph, ctx = run_pass("unflatten-gemm", CONV1D)
    assert ctx.stats["unflattened"] == 1 and dict(ctx.rules) == {"unflatten-gemm": 1}
    cleaned, _ = run_pass("dce", graph)
    assert_graph_equal(cleaned, as_graph(EXPECTED), check_metadata=False)
    # the output now carries the input's symbols instead of shape inference's made-up unk__1
    assert cleaned.outputs[0].type.shape == ("B", "S", 3)
    assert all("c_attn" in n.source for n in cleaned), [n.source for n in cleaned]  # mlc debug traces them
    for seed in (0, 1):
        assert_numerically_equivalent(CONV1D, cleaned, Numerics.TOLERANCE, seed=seed)


def test_static_target_transb_alpha_and_beta_fold_into_the_constants() -> None:
    before = '''graph "g" (%x: f32[2,5,4]) {
  const %w = dense<f32[3,4]> [0.5, -1.0, 2.0, 0.25, 1.5, -0.5, 1.0, 0.75, -2.0, 0.125, 3.0, -1.25]
  const %b = dense<f32[1,3]> [0.1, -0.2, 0.3]
  const %flat = dense<i64[2]> [-1, 4]
  const %back = dense<i64[3]> [2, 5, 3]
  %f: f32[10,4] = Reshape(%x, %flat)
  %g: f32[10,3] = Gemm(%f, %w, %b) {alpha = 2.0, beta = 0.5, transB = 1}
  %y: f32[2,5,3] = Reshape(%g, %back)
  return %y
}'''
    expected = '''graph "g" (%x: f32[2,5,4]) {
  const %w = dense<f32[4,3]> [1.0, 3.0, -4.0, -2.0, -1.0, 0.25, 4.0, 2.0, 6.0, 0.5, 1.5, -2.5]
  const %b = dense<f32[1,3]> [0.05, -0.1, 0.15]
  %m: f32[2,5,3] = MatMul(%x, %w)
  %y: f32[2,5,3] = Add(%m, %b)
  return %y
}'''
    assert_pass("unflatten-gemm", before, expected, unflattened=1)


def test_no_bias_and_a_4d_input() -> None:
    before = '''graph "g" (%x: f32[N,2,3,4], %w: f32[4,5]) {
  const %flat = dense<i64[2]> [-1, 4]
  const %back = dense<i64[4]> [-1, 2, 3, 5]
  %f: f32[unk__0,4] = Reshape(%x, %flat)
  %g: f32[unk__0,5] = Gemm(%f, %w)
  %y: f32[unk__1,2,3,5] = Reshape(%g, %back)
  return %y
}'''
    # a -1 in a leading position is not provably x's dim: left alone (with a remark)
    ctx = assert_pass("unflatten-gemm", before, before)
    assert any("does not restore the flattened input's leading dims" in r for r in ctx.remarks), ctx.remarks
    static = before.replace("[-1, 2, 3, 5]", "[-1, 2, 3, 5]").replace("%x: f32[N,2,3,4]", "%x: f32[7,2,3,4]") \
        .replace("%y: f32[unk__1,2,3,5]", "%y: f32[7,2,3,5]").replace("[-1, 2, 3, 5]", "[7, 2, 3, 5]")
    expected = '''graph "g" (%x: f32[7,2,3,4], %w: f32[4,5]) {
  %y: f32[7,2,3,5] = MatMul(%x, %w)
  return %y
}'''
    assert_pass("unflatten-gemm", static, expected, unflattened=1)


def test_must_not_change() -> None:
    plain = '''graph "g" (%a: f32[6,4], %w: f32[4,3]) {
  %y: f32[6,3] = Gemm(%a, %w)
  return %y
}'''
    assert_pass("unflatten-gemm", plain, plain)
    other_dims = CONV1D.replace("%t: i64[3] = Concat(%u0, %u1, %n)", "%t: i64[3] = Concat(%u1, %u0, %n)")
    ctx = assert_pass("unflatten-gemm", other_dims, other_dims)
    assert any("unflatten-gemm at 'c_attn': not applied, Reshape does not restore" in r for r in ctx.remarks), \
        ctx.remarks
    per_row = CONV1D.replace('graph "g" (%x: f32[B,S,4])', 'graph "g" (%x: f32[B,S,4], %c: f32[R,1])') \
        .replace("Gemm(%f, %w, %b)", "Gemm(%f, %w, %c)")
    graph, ctx = run_pass("unflatten-gemm", as_graph(per_row))
    assert not ctx.stats["unflattened"] and any("not a row vector" in r for r in ctx.remarks), ctx.remarks
    transposed_rows = CONV1D.replace("{alpha = 1.0, beta = 1.0}", "{transA = 1}")
    graph, ctx = run_pass("unflatten-gemm", as_graph(transposed_rows))
    assert not ctx.stats["unflattened"] and any("transA=1" in r for r in ctx.remarks), ctx.remarks


def test_exporter_style_gpt_loses_every_flattening_and_keeps_its_numbers() -> None:
    graph, _, _ = fused_model("gpt", ["simplify-shapes"])
    gemms = op_counts(graph)["Gemm"]
    graph, ctx = run_pass("unflatten-gemm", graph)
    assert ctx.stats["unflattened"] == gemms == 4 * 2  # 4 linear layers per block, 2 blocks
    run_pass("dce", graph)
    counts = op_counts(graph)
    assert "Gemm" not in counts and counts["MatMul"] == 2 * (4 + 2) + 1  # + Q·Kᵀ, P·V per block; lm_head
    assert_model_numbers("gpt", graph)
