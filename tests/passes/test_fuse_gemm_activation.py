"""fuse-gemm-activation: Gemm + activation becomes onnxruntime's com.microsoft::FusedGemm (float32)."""

from __future__ import annotations

import numpy as np
import pytest

from mlc.pass_api import Numerics
from mlc.testing import assert_numerically_equivalent, assert_pass, run_pass
from tests.passes.test_fuse_batchnorm import dense, light_model, op_counts

_B = dense("w", np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4))
GEMM_ACT = '''graph "g" (%x: f32[2,4]) {
%W
  const %c = dense<f32[3]> [0.25, -0.5, 0.125]
  %g: f32[2,3] = Gemm(%x, %w, %c) {transB=1} name="fc"
  %y: f32[2,3] = %ACT
  return %y
}'''.replace("%W", _B)


def test_gemm_relu_becomes_fused_gemm() -> None:
    expected = '''model ir_version=8 opset_import={"": 17, "com.microsoft": 1}
graph "g" (%x: f32[2,4]) {
%W
  const %c = dense<f32[3]> [0.25, -0.5, 0.125]
  %y: f32[2,3] = com.microsoft::FusedGemm(%x, %w, %c) {transB=1, activation="Relu"}
  return %y
}'''.replace("%W", _B)
    assert_pass("fuse-gemm-activation", GEMM_ACT.replace("%ACT", 'Relu(%g) name="relu"'), expected, fused=1)


@pytest.mark.parametrize("activation", ["Sigmoid(%g)", "Tanh(%g)", "LeakyRelu(%g) {alpha=0.25}",
                                        "HardSigmoid(%g) {alpha=0.5, beta=0.25}"])
def test_activations_match_onnxruntime(activation: str) -> None:
    before = GEMM_ACT.replace("%ACT", activation)
    after, ctx = run_pass("fuse-gemm-activation", before)
    assert ctx.stats["fused"] == 1 and after.nodes[0].op_type == "FusedGemm"
    for seed in (0, 1):
        assert_numerically_equivalent(before, after, Numerics.TOLERANCE, seed=seed)


def test_must_not_change() -> None:
    shared = GEMM_ACT.replace("%ACT", "Relu(%g)").replace("return %y", "return %y, %g").replace(
        "%y: f32[2,3] = Relu", "%y: f32[2,3] = Relu")
    _, ctx = run_pass("fuse-gemm-activation", shared)
    assert ctx.rewrites == 0 and ctx.remarks == ["gemm-relu at 'fc': not applied, its output is a graph output"]
    double = GEMM_ACT.replace("f32[", "f64[").replace("dense<f64", "dense<f64").replace("%ACT", "Relu(%g)")
    _, ctx = run_pass("fuse-gemm-activation", double)
    assert ctx.rewrites == 0 and any("float32" in r for r in ctx.remarks), ctx.remarks


@pytest.mark.parametrize(("model", "fused"), [("bvlc_alexnet", 2), ("vgg19", 2)])
def test_classifier_heads_of_light_models(model: str, fused: int) -> None:
    before, folded = light_model(model)
    after, ctx = run_pass("fuse-gemm-activation", folded)
    assert ctx.stats["fused"] == fused and op_counts(after).get("FusedGemm") == fused
    assert_numerically_equivalent(before, after, Numerics.TOLERANCE)
