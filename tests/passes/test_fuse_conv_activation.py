"""fuse-conv-activation: Conv + activation becomes onnxruntime's com.microsoft::FusedConv (float32)."""

from __future__ import annotations

import numpy as np
import pytest

from mlc.pass_api import Numerics
from mlc.testing import as_graph, assert_numerically_equivalent, assert_pass, run_pass
from tests.passes.test_fuse_batchnorm import dense, light_model, op_counts

_W = dense("w", np.linspace(-1, 1, 24, dtype=np.float32).reshape(2, 3, 2, 2))
CONV_ACT = '''graph "g" (%x: f32[1,3,5,5]) {
%W
  const %b = dense<f32[2]> [0.25, -0.5]
  %c: f32[1,2,4,4] = Conv(%x, %w, %b) {kernel_shape=[2, 2]} name="conv"
  %y: f32[1,2,4,4] = %ACT
  return %y
}'''.replace("%W", _W)


def _conv_act(activation: str) -> str:
    return CONV_ACT.replace("%ACT", activation)


def test_conv_relu_becomes_fused_conv() -> None:
    expected = '''model ir_version=8 opset_import={"": 17, "com.microsoft": 1}
graph "g" (%x: f32[1,3,5,5]) {
%W
  const %b = dense<f32[2]> [0.25, -0.5]
  %y: f32[1,2,4,4] = com.microsoft::FusedConv(%x, %w, %b) {kernel_shape=[2, 2], activation="Relu"}
  return %y
}'''.replace("%W", _W)
    ctx = assert_pass("fuse-conv-activation", _conv_act('Relu(%c) name="relu"'), expected, fused=1)
    assert dict(ctx.rules) == {"conv-relu": 1}
    graph, _ = run_pass("fuse-conv-activation", _conv_act('Relu(%c) name="relu"'))
    assert graph.nodes[0].source == ("conv", "relu") and [v.name for v in graph.outputs] == ["y"]


@pytest.mark.parametrize(("activation", "name", "params", "opset"), [
    ("Sigmoid(%c)", "Sigmoid", None, 17),
    ("Tanh(%c)", "Tanh", None, 17),
    ("LeakyRelu(%c) {alpha=0.25}", "LeakyRelu", [0.25], 17),
    ("LeakyRelu(%c)", "LeakyRelu", [0.01], 17),
    ("HardSigmoid(%c) {alpha=0.5, beta=0.25}", "HardSigmoid", [0.5, 0.25], 17),
    ("Clip(%c, %lo, %hi)", "Clip", [-0.5, 0.75], 17),
    ("Clip(%c, %lo)", "Clip", [-0.5, float(np.finfo(np.float32).max)], 17),
    ("Clip(%c) {min=-0.5, max=0.75}", "Clip", [-0.5, 0.75], 10),
])
def test_activations_and_their_parameters(activation: str, name: str, params: list[float] | None,
                                          opset: int) -> None:
    text = _conv_act(activation)
    for bound, value in (("lo", "-0.5"), ("hi", "0.75")):
        if f"%{bound}" in activation:
            text = text.replace("  const %b", f"  const %{bound} = dense<f32[]> [{value}]\n  const %b")
    graph, ctx = run_pass("fuse-conv-activation", as_graph(text, opset=opset))
    (fused,) = graph.nodes
    assert (fused.domain, fused.op_type, fused.attr("activation")) == ("com.microsoft", "FusedConv", name)
    if params:
        assert fused.attr("activation_params") == pytest.approx(params)
    else:
        assert "activation_params" not in fused.attributes
    assert graph.model is not None and graph.model.opset_imports["com.microsoft"] == 1
    assert not graph.initializers.keys() & {"lo", "hi"}, "Clip's bounds are dead constants now"
    for seed in (0, 1):
        assert_numerically_equivalent(as_graph(text, opset=opset), graph, Numerics.TOLERANCE, seed=seed)


def _unchanged(before: str, remark: str) -> None:
    ctx = assert_pass("fuse-conv-activation", before, before)
    assert any(remark in r for r in ctx.remarks), ctx.remarks


def test_must_not_change() -> None:
    twice = _conv_act("Relu(%c)").replace("  return %y", "  %s: f32[1,2,4,4] = Sigmoid(%c)\n  return %y, %s")
    _unchanged(twice, "conv-relu at 'conv': not applied, its output has 2 readers")
    output = _conv_act("Relu(%c)").replace("  return %y", "  return %y, %c")
    _unchanged(output, "conv-relu at 'conv': not applied, its output is a graph output")
    half = _conv_act("Relu(%c)").replace("f32", "f16")
    _unchanged(half, "conv-relu at 'conv': not applied, its input is not known to be float32")
    variable = _conv_act("Clip(%c, %lo)").replace('(%x: f32[1,3,5,5])', '(%x: f32[1,3,5,5], %lo: f32[])')
    _unchanged(variable, "conv-clip at 'conv': not applied, Clip: its min/max are not constant scalars")
    unrelated = _conv_act("Abs(%c)")
    ctx = assert_pass("fuse-conv-activation", unrelated, unrelated)
    assert ctx.remarks == [], "a Conv followed by no activation is not a candidate"


def test_light_models_run_under_onnxruntime() -> None:
    """SqueezeNet: each of its 26 Convs is followed by Relu; ResNet-50 after fuse-batchnorm: 33
    of 53 (the other 20 feed a Sum first)."""
    for name, fused in (("squeezenet", 26), ("resnet50", 33)):
        before, after = light_model(name)
        if name == "resnet50":
            run_pass("fuse-batchnorm", after)
        _, ctx = run_pass("fuse-conv-activation", after)
        assert ctx.stats["fused"] == fused, (name, ctx.stats)
        assert op_counts(after)["FusedConv"] == fused
        assert after.model is not None and after.model.opset_imports.get("com.microsoft") == 1
        assert_numerically_equivalent(before, after, Numerics.TOLERANCE)
