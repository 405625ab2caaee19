"""fuse-embed-layernorm: BERT's embedding sum + LayerNorm becomes onnxruntime's EmbedLayerNormalization."""

from __future__ import annotations

from mlc.testing import assert_pass, run_pass
from tests.passes.test_fuse_layernorm import assert_model_numbers, fused_model, op_counts, remarks

BEFORE = '''model ir_version=8 opset_import={"": 17}
graph "g" (%ids: i64[1,3], %types: i64[1,3]) {
  const %words = dense<f32[5,2]> [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
  const %segments = dense<f32[2,2]> [0.01, 0.02, 0.03, 0.04]
  const %places = dense<f32[4,2]> [1.0, -1.0, 2.0, -2.0, 3.0, -3.0, 4.0, -4.0]
  const %positions = dense<i64[1,3]> [0, 1, 2]
  const %gamma = dense<f32[2]> [1.0, 2.0]
  const %beta = dense<f32[2]> [0.5, -0.5]
  %w: f32[1,3,2] = Gather(%words, %ids) {axis=0}
  %t: f32[1,3,2] = Gather(%segments, %types) {axis=0}
  %s: f32[1,3,2] = Add(%w, %t)
  %p: f32[1,3,2] = Gather(%places, %positions) {axis=0}
  %e: f32[1,3,2] = Add(%s, %p)
  %y: f32[1,3,2] = LayerNormalization(%e, %gamma, %beta) {axis=-1, epsilon=1e-05}
  return %y
}'''


def test_embedding_sum_and_layernorm_fuse() -> None:
    expected = '''model ir_version=8 opset_import={"": 17, "com.microsoft": 1}
graph "g" (%ids: i64[1,3], %types: i64[1,3]) {
  const %words = dense<f32[5,2]> [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
  const %segments = dense<f32[2,2]> [0.01, 0.02, 0.03, 0.04]
  const %places = dense<f32[4,2]> [1.0, -1.0, 2.0, -2.0, 3.0, -3.0, 4.0, -4.0]
  const %positions = dense<i64[1,3]> [0, 1, 2]
  const %gamma = dense<f32[2]> [1.0, 2.0]
  const %beta = dense<f32[2]> [0.5, -0.5]
  %t32: i32[1,3] = Cast(%types) {to=6}
  %i32: i32[1,3] = Cast(%ids) {to=6}
  %y: f32[1,3,2], %mask_index: i32[1] = com.microsoft::EmbedLayerNormalization(%i32, %t32, %words, %places, %segments, %gamma, %beta) {epsilon=1e-05}
  return %y
}'''
    from mlc.numerics.inputs import InputSpec, make_inputs
    from mlc.testing import as_graph

    feeds = make_inputs(as_graph(BEFORE), InputSpec(seed=0, ranges={"ids": (0, 4), "types": (0, 1)}))
    assert_pass("fuse-embed-layernorm", BEFORE, expected, fused=1, feeds=feeds)


def test_must_not_change() -> None:
    shifted = BEFORE.replace("[0, 1, 2]", "[1, 2, 3]")  # positions that do not start at 0
    _, ctx = run_pass("fuse-embed-layernorm", shifted)
    assert ctx.rewrites == 0 and remarks(ctx, "embed-layernorm") and "position embedding" in ctx.remarks[0]
    assert_pass("fuse-embed-layernorm", shifted, shifted, numeric=False)


def test_bert_embeddings_fuse_and_match_onnxruntime() -> None:
    graph, contexts, _ = fused_model("bert", ["fuse-layernorm", "fuse-embed-layernorm", "dce"])
    assert contexts["fuse-embed-layernorm"].stats["fused"] == 1
    assert op_counts(graph)["com.microsoft::EmbedLayerNormalization"] == 1
    assert_model_numbers("bert", graph)


GPT_BEFORE = '''model ir_version=8 opset_import={"": 17}
graph "g" (%ids: i64[B,S]) {
  const %words = dense<f32[5,2]> [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
  const %places = dense<f32[4,2]> [1.0, -1.0, 2.0, -2.0, 3.0, -3.0, 4.0, -4.0]
  const %gamma = dense<f32[2]> [1.0, 2.0]
  const %beta = dense<f32[2]> [0.5, -0.5]
  const %zero = dense<i64[]> [0]
  const %one = dense<i64[]> [1]
  const %axis0 = dense<i64[1]> [0]
  %shape: i64[2] = Shape(%ids)
  %length: i64[] = Gather(%shape, %one) {axis=0}
  %range: i64[S] = Range(%zero, %length, %one)
  %positions: i64[1,S] = Unsqueeze(%range, %axis0)
  %w: f32[B,S,2] = Gather(%words, %ids) {axis=0}
  %p: f32[1,S,2] = Gather(%places, %positions) {axis=0}
  %e: f32[B,S,2] = Add(%w, %p)
  %y: f32[B,S,2] = LayerNormalization(%e, %gamma, %beta) {axis=-1, epsilon=1e-05}
  %r: f32[B,S,2] = Add(%e, %y)
  return %r
}'''


def test_gpt_range_positions_and_a_residual_read_of_the_sum() -> None:
    """GPT-2: positions from Range(0, S, 1), no token types, and the sum read again by the
    residual Add, which then reads the kernel's embedding_sum output."""
    from mlc.numerics.inputs import InputSpec, make_inputs
    from mlc.testing import as_graph

    graph, ctx = run_pass("fuse-embed-layernorm", GPT_BEFORE)
    run_pass("dce", graph)
    assert ctx.stats["fused"] == 1
    fused = next(n for n in graph if n.op_type == "EmbedLayerNormalization")
    assert [v.name if v else None for v in fused.inputs[1:]] == [None, "words", "places", None, "gamma", "beta"]
    assert fused.inputs[0] is not None and fused.inputs[0].producer.op_type == "Cast"
    total = fused.outputs[2]
    assert total is not None and [u.op_type for u, _ in total.uses] == ["Add"]
    assert {n.op_type for n in graph} == {"Cast", "EmbedLayerNormalization", "Add"}
    from mlc.pass_api import Numerics
    from mlc.testing import assert_numerically_equivalent

    for batch, seq in ((1, 1), (2, 4)):
        spec = InputSpec(seed=batch, shapes={"ids": (batch, seq)}, ranges={"ids": (0, 4)})
        assert_numerically_equivalent(GPT_BEFORE, graph, Numerics.TOLERANCE,
                                      feeds=make_inputs(as_graph(GPT_BEFORE), spec))


def test_gpt_embeddings_fuse_and_match_onnxruntime() -> None:
    graph, contexts, _ = fused_model("gpt", ["fuse-layernorm", "fuse-embed-layernorm", "dce"])
    assert contexts["fuse-embed-layernorm"].stats["fused"] == 1
    assert op_counts(graph)["com.microsoft::EmbedLayerNormalization"] == 1 and "Range" not in op_counts(graph)
    assert_model_numbers("gpt", graph)
