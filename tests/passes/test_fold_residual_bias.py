"""fold-residual-bias: a residual branch's bias moves into the LayerNormalization producing the
residual; the LN's linear readers absorb -b @ W."""

from __future__ import annotations

import numpy as np
import pytest

from mlc.pass_api import Numerics
from mlc.testing import assert_numerically_equivalent, assert_pass, run_pass
from tests.passes.test_fuse_layernorm import assert_model_numbers, fused_model, op_counts

# Quarters: exact in float32, so EXPECTED's constants are exactly what the pass computes.
GAMMA = np.array([1.0, 0.5, 2.0, 1.0])
BETA = np.array([0.25, -0.5, 0.0, 1.0])
B = np.array([0.5, 0.25, -1.0, 2.0])
W = np.array([[0.5, -1.0, 0.25], [1.0, 0.0, -0.5], [-0.25, 0.75, 1.0], [0.0, 0.5, -1.0]])
C = np.array([0.125, -0.25, 0.5])


def _dense(array: np.ndarray) -> str:
    dims = ",".join(str(d) for d in array.shape)
    return f"dense<f32[{dims}]> [" + ", ".join(str(float(v)) for v in array.reshape(-1)) + "]"


def _graph(*, reader: str = "  %p: f32[B,S,3] = MatMul(%r, %w)\n  %q: f32[B,S,3] = Add(%p, %c)",
           residual: str = "  %xb: f32[B,S,4] = Add(%b, %h)\n  %s: f32[B,S,4] = Add(%xb, %r)",
           returns: str = "%s, %q", beta: np.ndarray = BETA, c: np.ndarray = C, bias: np.ndarray = B) -> str:
    return f'''graph "g" (%z: f32[B,S,4], %h: f32[B,S,4]) {{
  const %gamma = {_dense(GAMMA)}
  const %beta = {_dense(beta)}
  const %w = {_dense(W)}
  const %c = {_dense(c)}
  const %b = {_dense(bias)}
  %r: f32[B,S,4] = LayerNormalization(%z, %gamma, %beta) {{axis=-1}} name="ln"
{reader}
{residual}
  return {returns}
}}'''


BEFORE = _graph()


def test_the_bias_moves_into_beta_and_the_reader_absorbs_it() -> None:
    expected = f'''graph "g" (%z: f32[B,S,4], %h: f32[B,S,4]) {{
  const %gamma = {_dense(GAMMA)}
  const %beta = {_dense(BETA + B)}
  const %w = {_dense(W)}
  const %c = {_dense(C - B @ W)}
  %r: f32[B,S,4] = LayerNormalization(%z, %gamma, %beta) {{axis=-1}} name="ln"
  %p: f32[B,S,3] = MatMul(%r, %w)
  %q: f32[B,S,3] = Add(%p, %c)
  %s: f32[B,S,4] = Add(%h, %r)
  return %s, %q
}}'''
    ctx = assert_pass("fold-residual-bias", BEFORE, expected, folded=1)
    assert dict(ctx.rules) == {"fold-residual-bias": 1}


def test_gemm_and_attention_readers() -> None:
    gemm = _graph(reader="  %r2: f32[6,4] = Reshape(%r, %flat)\n  %q: f32[6,3] = Gemm(%r2, %w, %c)",
                  returns="%s, %q").replace("%z: f32[B,S,4], %h: f32[B,S,4]", "%z: f32[2,3,4], %h: f32[2,3,4]") \
        .replace("f32[B,S,4]", "f32[2,3,4]") \
        .replace("  const %b =", "  const %flat = dense<i64[2]> [6, 4]\n  const %b =")
    # a Reshape reads r: not a linear layer, so nothing moves
    ctx = assert_pass("fold-residual-bias", gemm, gemm)
    assert ctx.remarks == ["fold-residual-bias at 'ln': not applied, it is also read by Reshape, not a linear layer"]
    direct = '''graph "g" (%z: f32[5,4], %h: f32[5,4]) {
  const %gamma = GAMMA
  const %beta = BETA
  const %w = WT
  const %c = C
  const %b = BIAS
  %r: f32[5,4] = LayerNormalization(%z, %gamma, %beta) {axis=-1} name="ln"
  %q: f32[5,3] = Gemm(%r, %w, %c) {alpha=2.0, beta=0.5, transB=1}
  %xb: f32[5,4] = Add(%h, %b)
  %s: f32[5,4] = Add(%r, %xb)
  return %s, %q
}'''
    for key, value in (("GAMMA", GAMMA), ("BETA", BETA), ("WT", W.T), ("BIAS", B), ("C", C)):
        direct = direct.replace(f"= {key}\n", f"= {_dense(value)}\n")
    graph, ctx = run_pass("fold-residual-bias", direct)
    assert ctx.stats["folded"] == 1 and "Add" in op_counts(graph) and op_counts(graph)["Add"] == 1
    for seed in (0, 1):
        assert_numerically_equivalent(direct, graph, Numerics.TOLERANCE, seed=seed)
    attention = _graph(reader="  %q: f32[B,S,3] = com.microsoft::Attention(%r, %wqkv, %c) {num_heads=1}",
                       c=np.array([0.125, -0.25, 0.5, 0.0, 0.25, -0.5])).replace(
        "  const %c =", f"  const %wqkv = {_dense(np.concatenate([W, W[:, ::-1]], axis=1))}\n  const %c =").replace(
        "%q: f32[B,S,3]", "%q: f32[B,S,2]")
    graph, ctx = run_pass("fold-residual-bias", attention)
    assert ctx.stats["folded"] == 1
    shifted = next(n for n in graph if n.op_type == "Attention").inputs[2].const.numpy()
    qkv = np.concatenate([W, W[:, ::-1]], axis=1)
    np.testing.assert_allclose(shifted, np.array([0.125, -0.25, 0.5, 0.0, 0.25, -0.5]) - B @ qkv, rtol=0, atol=1e-6)


@pytest.mark.parametrize(("variant", "why"), [
    ({"returns": "%s, %q, %r"}, "its output is a graph output"),
    ({"reader": "  %q: f32[B,S,4] = Relu(%r)", "returns": "%s, %q"}, "it is also read by Relu, not a linear layer"),
    ({"reader": "  %p: f32[B,S,3] = MatMul(%r, %w)\n  %q: f32[B,S,3] = Relu(%p)"},
     "the product of MatMul is read by Relu, not a bias Add"),
    ({"returns": "%s, %q, %xb"}, "it is read by 0 residual Adds of a biased branch, not one"),
    ({"residual": "  %xb: f32[B,S,4] = Add(%h, %h)\n  %s: f32[B,S,4] = Add(%xb, %r)"},
     "it is read by 0 residual Adds of a biased branch, not one"),
    ({"bias": np.array([0.5])}, "the residual bias of Add is not a vector of the normalized size"),
])
def test_must_not_change(variant, why) -> None:
    before = _graph(**variant)
    ctx = assert_pass("fold-residual-bias", before, before)
    assert ctx.remarks == [f"fold-residual-bias at 'ln': not applied, {why}"]


def test_bert_loses_every_residual_bias_add_and_keeps_its_numbers() -> None:
    graph, _, _ = fused_model("bert", ["simplify-shapes", "fuse-layernorm"])
    adds = op_counts(graph)["Add"]
    graph, ctx = run_pass("fold-residual-bias", graph)
    assert ctx.stats["folded"] == 4 and op_counts(graph)["Add"] == adds - 4  # 2 per layer
    assert_model_numbers("bert", graph)
