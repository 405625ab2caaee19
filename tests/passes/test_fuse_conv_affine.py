"""fuse-conv-affine: a per-channel constant Mul/Add after Conv, Gemm or MatMul folds into its constants."""

from __future__ import annotations

import numpy as np
from onnx import helper

from mlc.pass_api import Numerics
from mlc.testing import assert_numerically_equivalent, assert_pass, run_pass
from tests.passes.test_fuse_batchnorm import light_model, op_counts, random_model

CONV_MUL_ADD = '''graph "g" (%x: f32[1,2,3,3]) {
  const %w = dense<f32[2,2,1,1]> [1.0, 2.0, 3.0, 4.0]
  const %b = dense<f32[2]> [1.0, 2.0]
  %c: f32[1,2,3,3] = Conv(%x, %w, %b) {kernel_shape=[1, 1]} name="c1"
  const %s = dense<f32[2,1,1]> [0.5, 4.0]
  %m: f32[1,2,3,3] = Mul(%c, %s) name="mul"
  const %t = dense<f32[1,2,1,1]> [1.0, -1.0]
  %y: f32[1,2,3,3] = Add(%t, %m) name="add"
  return %y
}'''


def test_conv_mul_then_add_fold_into_weight_and_bias() -> None:
    expected = '''graph "g" (%x: f32[1,2,3,3]) {
  const %w = dense<f32[2,2,1,1]> [0.5, 1.0, 12.0, 16.0]
  const %b = dense<f32[2]> [1.5, 7.0]
  %y: f32[1,2,3,3] = Conv(%x, %w, %b) {kernel_shape=[1, 1]}
  return %y
}'''
    ctx = assert_pass("fuse-conv-affine", CONV_MUL_ADD, expected, fused=2)
    assert dict(ctx.rules) == {"conv-mul": 1, "conv-add": 1}


def test_add_creates_a_bias_and_needs_no_constant_weight() -> None:
    before = '''graph "g" (%x: f32[1,2,3,3], %w: f32[2,2,1,1]) {
  %c: f32[1,2,3,3] = Conv(%x, %w) {kernel_shape=[1, 1]}
  const %t = dense<f32[]> [0.25]
  %y: f32[1,2,3,3] = Add(%c, %t)
  return %y
}'''
    assert_pass("fuse-conv-affine", before, '''graph "g" (%x: f32[1,2,3,3], %w: f32[2,2,1,1]) {
  const %b = dense<f32[2]> [0.25, 0.25]
  %y: f32[1,2,3,3] = Conv(%x, %w, %b) {kernel_shape=[1, 1]}
  return %y
}''', fused=1)


def test_gemm_and_matmul_per_column() -> None:
    gemm = '''graph "g" (%a: f32[3,2]) {
  const %w = dense<f32[2,2]> [1.0, 2.0, 3.0, 4.0]
  const %c = dense<f32[2]> [1.0, 1.0]
  %g: f32[3,2] = Gemm(%a, %w, %c) {beta=2.0}
  const %s = dense<f32[1,2]> [0.5, 4.0]
  %m: f32[3,2] = Mul(%g, %s)
  const %t = dense<f32[2]> [1.0, -1.0]
  %y: f32[3,2] = Add(%m, %t)
  return %y
}'''
    # columns of W scale; beta*C*s + t = [2, 7] with beta=1
    assert_pass("fuse-conv-affine", gemm, '''graph "g" (%a: f32[3,2]) {
  const %w = dense<f32[2,2]> [0.5, 8.0, 1.5, 16.0]
  const %c = dense<f32[2]> [2.0, 7.0]
  %y: f32[3,2] = Gemm(%a, %w, %c)
  return %y
}''', fused=2)
    matmul = '''graph "g" (%a: f32[2,3,2]) {
  const %w = dense<f32[2,2]> [1.0, 2.0, 3.0, 4.0]
  %g: f32[2,3,2] = MatMul(%a, %w) name="mm"
  const %s = dense<f32[2]> [0.5, 4.0]
  %m: f32[2,3,2] = Mul(%g, %s)
  const %t = dense<f32[2]> [1.0, -1.0]
  %y: f32[2,3,2] = Add(%m, %t)
  return %y
}'''
    ctx = assert_pass("fuse-conv-affine", matmul, '''graph "g" (%a: f32[2,3,2]) {
  const %w = dense<f32[2,2]> [0.5, 8.0, 1.5, 16.0]
  %g: f32[2,3,2] = MatMul(%a, %w)
  const %t = dense<f32[2]> [1.0, -1.0]
  %y: f32[2,3,2] = Add(%g, %t)
  return %y
}''', fused=1)
    assert any("affine at 'mm': not applied, with Add" in r and "fuse-matmul-add" in r
               for r in ctx.remarks), ctx.remarks


def _unchanged(before: str, remark: str) -> None:
    ctx = assert_pass("fuse-conv-affine", before, before)
    assert any(remark in r for r in ctx.remarks), ctx.remarks


def test_must_not_change() -> None:
    read_twice = CONV_MUL_ADD.replace("  return %y", "  %r: f32[1,2,3,3] = Relu(%c)\n  return %y, %r")
    _unchanged(read_twice, "affine at 'c1': not applied, its output has 2 readers")
    per_pixel = CONV_MUL_ADD.replace("const %s = dense<f32[2,1,1]> [0.5, 4.0]",
                                     "const %s = dense<f32[3]> [0.5, 4.0, 2.0]").replace(
        '''  const %t = dense<f32[1,2,1,1]> [1.0, -1.0]
  %y: f32[1,2,3,3] = Add(%t, %m) name="add"
  return %y''', "  return %m")
    _unchanged(per_pixel, "affine at 'c1': not applied, with Mul 'mul', the constant of shape [3] is not per "
               "output channel")
    enlarging = '''graph "g" (%x: f32[1,2,3]) {
  const %w = dense<f32[2,2,1]> [1.0, 2.0, 3.0, 4.0]
  %c: f32[1,2,3] = Conv(%x, %w) {kernel_shape=[1]} name="c1"
  const %s = dense<f32[1,1,2,1]> [0.5, 4.0]
  %y: f32[1,1,2,3] = Mul(%c, %s)
  return %y
}'''
    _unchanged(enlarging, "is not per output channel")  # a 4-D constant after a 3-D Conv adds an axis
    variable = CONV_MUL_ADD.replace('(%x: f32[1,2,3,3])', '(%x: f32[1,2,3,3], %s: f32[2,1,1])').replace(
        "  const %s = dense<f32[2,1,1]> [0.5, 4.0]\n", "")
    _unchanged(variable, "affine at 'c1': not applied, with Mul 'mul', its other operand is not a constant")
    dynamic_weight = CONV_MUL_ADD.replace('(%x: f32[1,2,3,3])', '(%x: f32[1,2,3,3], %w: f32[2,2,1,1])').replace(
        "  const %w = dense<f32[2,2,1,1]> [1.0, 2.0, 3.0, 4.0]\n", "").replace(
        '''  const %t = dense<f32[1,2,1,1]> [1.0, -1.0]
  %y: f32[1,2,3,3] = Add(%t, %m) name="add"
  return %y''', "  return %m")
    _unchanged(dynamic_weight, "affine at 'c1': not applied, with Mul 'mul', its weight is not a constant")


def test_random_weights() -> None:
    rng = np.random.default_rng(3)
    inits = {"w1": rng.standard_normal((6, 2, 3, 3)), "b1": rng.standard_normal(6),
             "s1": rng.uniform(0.5, 2, (1, 6, 1, 1)), "t1": rng.standard_normal((6, 1, 1)),
             "w2": rng.standard_normal((6, 4)), "s2": rng.uniform(0.5, 2, 4), "t2": rng.standard_normal((1, 4)),
             "w3": rng.standard_normal((4, 3)), "s3": rng.uniform(0.5, 2, (1, 1, 3))}
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], group=2, pads=[1, 1, 1, 1]),
             helper.make_node("Mul", ["s1", "c1"], ["m1"]), helper.make_node("Add", ["m1", "t1"], ["a1"]),
             helper.make_node("GlobalAveragePool", ["a1"], ["p"]), helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "w2"], ["g2"]), helper.make_node("Mul", ["g2", "s2"], ["m2"]),
             helper.make_node("Add", ["m2", "t2"], ["a2"]), helper.make_node("Constant", [], ["ax"], value_ints=[0]),
             helper.make_node("Unsqueeze", ["a2", "ax"], ["u"]),
             helper.make_node("MatMul", ["u", "w3"], ["g3"]), helper.make_node("Mul", ["g3", "s3"], ["y"])]
    before, after = (random_model(nodes, inits, {"x": [2, 4, 5, 5]}, {"y": [1, 2, 3]}) for _ in range(2))
    run_pass("fold-constants", after)
    _, ctx = run_pass("fuse-conv-affine", after)
    assert dict(ctx.rules) == {"conv-mul": 1, "conv-add": 1, "gemm-mul": 1, "gemm-add": 1, "matmul-mul": 1}, ctx.remarks
    assert op_counts(after) == {"Conv": 1, "GlobalAveragePool": 1, "Flatten": 1, "Gemm": 1, "Unsqueeze": 1,
                                "MatMul": 1}
    for seed in (0, 1):
        assert_numerically_equivalent(before, after, Numerics.TOLERANCE, seed=seed)


def test_light_inception_v2_after_batchnorm() -> None:
    """Caffe2's Inception-v2 has Conv→BatchNormalization→Mul→Add→Relu 69 times: after
    fuse-batchnorm, the Mul and the Add fold too (138 rewrites), leaving Conv→Relu."""
    before, after = light_model("inception_v2")
    nodes = len(after)
    _, bn = run_pass("fuse-batchnorm", after)
    _, ctx = run_pass("fuse-conv-affine", after)
    run_pass("dce", after)
    assert (bn.stats["fused"], ctx.stats["fused"]) == (69, 138)
    assert len(after) == nodes - 69 - 138
    assert not {"BatchNormalization", "Mul", "Add"} & set(op_counts(after))
    assert_numerically_equivalent(before, after, Numerics.TOLERANCE)
