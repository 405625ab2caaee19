"""fuse-pad: a constant-mode spatial Pad folds into the pads of the Conv/AveragePool/MaxPool reading it."""

from __future__ import annotations

import numpy as np
from onnx import helper

from mlc.pass_api import Numerics
from mlc.testing import assert_numerically_equivalent, assert_pass, run_pass
from tests.passes.test_fuse_batchnorm import dense, light_model, op_counts, random_model

PAD_CONV = '''graph "g" (%x: f32[1,2,4,5]) {
  const %pads = dense<i64[8]> [0, 0, 1, 2, 0, 0, 2, 1]
  %p: f32[1,2,7,8] = Pad(%x, %pads) name="pad"
  const %w = dense<f32[3,2,3,3]> [%W]
  %y: f32[1,3,7,8] = Conv(%p, %w) {kernel_shape=[3, 3], pads=[1, 1, 1, 1]} name="conv"
  return %y
}'''.replace("[%W]", dense("w", np.linspace(-1, 1, 54, dtype=np.float32).reshape(3, 2, 3, 3)).split("> ")[1])


def test_pad_folds_into_conv_pads() -> None:
    expected = '''graph "g" (%x: f32[1,2,4,5]) {
  const %w = dense<f32[3,2,3,3]> [%W]
  %y: f32[1,3,7,8] = Conv(%x, %w) {kernel_shape=[3, 3], pads=[2, 3, 3, 2]}
  return %y
}'''.replace("[%W]", PAD_CONV.split("dense<f32[3,2,3,3]> ")[1].split("\n")[0])
    ctx = assert_pass("fuse-pad", PAD_CONV, expected, fused=1)
    assert dict(ctx.rules) == {"pad-conv": 1}
    graph, _ = run_pass("fuse-pad", PAD_CONV)
    assert graph.nodes[0].source == ("pad", "conv")


def test_pools_and_opset_forms() -> None:
    maxpool = '''graph "g" (%x: f32[1,2,4,4]) {
  const %pads = dense<i64[8]> [0, 0, 1, 1, 0, 0, 1, 1]
  const %v = dense<f32[]> [-inf]
  %p: f32[1,2,6,6] = Pad(%x, %pads, %v)
  %y: f32[1,2,3,3] = MaxPool(%p) {kernel_shape=[3, 3], strides=[2, 2]}
  return %y
}'''
    assert_pass("fuse-pad", maxpool, '''graph "g" (%x: f32[1,2,4,4]) {
  %y: f32[1,2,3,3] = MaxPool(%x) {kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]}
  return %y
}''', fused=1)
    average = '''graph "g" (%x: f32[1,2,4,4]) {
  const %pads = dense<i64[8]> [0, 0, 1, 0, 0, 0, 0, 1]
  %p: f32[1,2,5,5] = Pad(%x, %pads)
  %y: f32[1,2,3,3] = AveragePool(%p) {kernel_shape=[3, 3], count_include_pad=1}
  return %y
}'''
    assert_pass("fuse-pad", average, '''graph "g" (%x: f32[1,2,4,4]) {
  %y: f32[1,2,3,3] = AveragePool(%x) {kernel_shape=[3, 3], count_include_pad=1, pads=[1, 0, 0, 1]}
  return %y
}''', fused=1)
    axes = '''model ir_version=8 opset_import={"": 18}
graph "g" (%x: f32[1,2,4,4]) {
  const %pads = dense<i64[4]> [1, 2, 0, 1]
  const %axes = dense<i64[2]> [-1, 2]
  %p: f32[1,2,5,7] = Pad(%x, %pads, none, %axes)
  const %w = dense<f32[1,2,1,1]> [1.0, -2.0]
  %y: f32[1,1,5,7] = Conv(%p, %w) {kernel_shape=[1, 1]}
  return %y
}'''
    # axes [-1, 2]: W gets begin 1 / end 0, H gets begin 2 / end 1 -> Conv pads [H_b, W_b, H_e, W_e]
    assert_pass("fuse-pad", axes, '''model ir_version=8 opset_import={"": 18}
graph "g" (%x: f32[1,2,4,4]) {
  const %w = dense<f32[1,2,1,1]> [1.0, -2.0]
  %y: f32[1,1,5,7] = Conv(%x, %w) {kernel_shape=[1, 1], pads=[2, 1, 1, 0]}
  return %y
}''', fused=1)
    legacy = '''model ir_version=5 opset_import={"": 10}
graph "g" (%x: f32[1,2,4,4]) {
  %p: f32[1,2,6,6] = Pad(%x) {pads=[0, 0, 1, 1, 0, 0, 1, 1]}
  const %w = dense<f32[1,2,1,1]> [1.0, -2.0]
  %y: f32[1,1,6,6] = Conv(%p, %w) {kernel_shape=[1, 1]}
  return %y
}'''
    assert_pass("fuse-pad", legacy, '''model ir_version=5 opset_import={"": 10}
graph "g" (%x: f32[1,2,4,4]) {
  const %w = dense<f32[1,2,1,1]> [1.0, -2.0]
  %y: f32[1,1,6,6] = Conv(%x, %w) {kernel_shape=[1, 1], pads=[1, 1, 1, 1]}
  return %y
}''', fused=1)


def _unchanged(before: str, remark: str) -> None:
    ctx = assert_pass("fuse-pad", before, before)
    assert any(remark in r for r in ctx.remarks), ctx.remarks


def test_must_not_change() -> None:
    reflect = PAD_CONV.replace('Pad(%x, %pads) name="pad"', 'Pad(%x, %pads) {mode="reflect"} name="pad"')
    _unchanged(reflect, "pad at 'pad': not applied, mode 'reflect' is not constant padding")
    auto = PAD_CONV.replace("{kernel_shape=[3, 3], pads=[1, 1, 1, 1]}", '{kernel_shape=[3, 3], auto_pad="SAME_UPPER"}')
    _unchanged(auto, "pad at 'pad': not applied, into Conv 'conv': it has auto_pad=SAME_UPPER")
    channel = PAD_CONV.replace("[0, 0, 1, 2, 0, 0, 2, 1]", "[0, 1, 1, 2, 0, 0, 2, 1]").replace(
        "%p: f32[1,2,7,8]", "%p: f32[1,3,7,8]").replace("dense<f32[3,2,3,3]>", "dense<f32[2,3,3,3]>").replace(
        "%y: f32[1,3,7,8]", "%y: f32[1,2,7,8]")
    _unchanged(channel, "pad at 'pad': not applied, it pads the batch or channel axis")
    crop = PAD_CONV.replace("[0, 0, 1, 2, 0, 0, 2, 1]", "[0, 0, 1, 2, 0, 0, -1, 1]").replace(
        "%p: f32[1,2,7,8]", "%p: f32[1,2,4,8]").replace("%y: f32[1,3,7,8]", "%y: f32[1,3,4,8]")
    _unchanged(crop, "negative pads crop")
    twice = PAD_CONV.replace("  return %y", "  %r: f32[1,2,7,8] = Relu(%p)\n  return %y, %r")
    _unchanged(twice, "pad at 'pad': not applied, its output has 2 readers")
    nonzero = PAD_CONV.replace('%p: f32[1,2,7,8] = Pad(%x, %pads)', '%p: f32[1,2,7,8] = Pad(%x, %pads, %v)').replace(
        "  const %pads", "  const %v = dense<f32[]> [1.0]\n  const %pads")
    _unchanged(nonzero, "the padding value 1.0 is not 0")
    zero_max = '''graph "g" (%x: f32[1,2,4,4]) {
  const %pads = dense<i64[8]> [0, 0, 1, 1, 0, 0, 1, 1]
  %p: f32[1,2,6,6] = Pad(%x, %pads) name="pad"
  %y: f32[1,2,4,4] = MaxPool(%p) {kernel_shape=[3, 3]}
  return %y
}'''
    _unchanged(zero_max, "the padding value 0.0 is not -inf")  # a zero border can win the max
    exclude = '''graph "g" (%x: f32[1,2,4,4]) {
  const %pads = dense<i64[8]> [0, 0, 1, 1, 0, 0, 1, 1]
  %p: f32[1,2,6,6] = Pad(%x, %pads) name="pad"
  %y: f32[1,2,4,4] = AveragePool(%p) {kernel_shape=[3, 3]}
  return %y
}'''
    _unchanged(exclude, "count_include_pad=0 would leave the padding out of the average")
    too_big = zero_max.replace("Pad(%x, %pads)", "Pad(%x, %pads, %v)").replace(
        "  const %pads = dense<i64[8]> [0, 0, 1, 1, 0, 0, 1, 1]",
        "  const %v = dense<f32[]> [-inf]\n  const %pads = dense<i64[8]> [0, 0, 2, 2, 0, 0, 2, 2]").replace(
        "%p: f32[1,2,6,6]", "%p: f32[1,2,8,8]").replace("{kernel_shape=[3, 3]}", "{kernel_shape=[2, 2]}").replace(
        "%y: f32[1,2,4,4]", "%y: f32[1,2,7,7]")
    _unchanged(too_big, "the padding would reach the kernel size")


def test_random_model_and_light_models() -> None:
    rng = np.random.default_rng(5)
    inits = {"pads1": np.array([0, 0, 1, 0, 0, 0, 2, 3], np.int64), "w": rng.standard_normal((4, 3, 3, 3)),
             "b": rng.standard_normal(4), "pads2": np.array([0, 0, 1, 1, 0, 0, 0, 1], np.int64),
             "ninf": np.array(-np.inf)}
    nodes = [helper.make_node("Pad", ["x", "pads1"], ["p1"]),
             helper.make_node("Conv", ["p1", "w", "b"], ["c"], pads=[1, 2, 0, 1], strides=[2, 1]),
             helper.make_node("Pad", ["c", "pads2", "ninf"], ["p2"]),
             helper.make_node("MaxPool", ["p2"], ["y"], kernel_shape=[2, 2])]
    before, after = (random_model(nodes, inits, {"x": [2, 3, 6, 5]}, {"y": [2, 4, 4, 10]}) for _ in range(2))
    _, ctx = run_pass("fuse-pad", after)
    assert dict(ctx.rules) == {"pad-conv": 1, "pad-maxpool": 1}, ctx.remarks
    assert op_counts(after) == {"Conv": 1, "MaxPool": 1}
    assert [n.attr("pads") for n in after] == [[2, 2, 2, 4], [1, 1, 0, 1]]
    for seed in (0, 1):
        assert_numerically_equivalent(before, after, Numerics.TOLERANCE, seed=seed)
    _, light = light_model("inception_v1")  # ONNX-zoo CNNs carry their padding in the Conv already
    _, ctx = run_pass("fuse-pad", light)
    assert ctx.rewrites == 0 and "Pad" not in op_counts(light)
