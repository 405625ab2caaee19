"""fuse-matmul-add: a 2-D MatMul plus a bias that broadcasts to its output becomes Gemm."""

from __future__ import annotations

import numpy as np
from onnx import helper

from mlc.pass_api import Numerics
from mlc.testing import assert_numerically_equivalent, assert_pass, run_pass
from tests.passes.test_fuse_batchnorm import light_model, op_counts, random_model

MATMUL_ADD = '''graph "g" (%a: f32[4,3], %b: f32[3,2]) {
  %m: f32[4,2] = MatMul(%a, %b) name="mm"
  const %bias = dense<f32[2]> [0.5, -1.0]
  %y: f32[4,2] = Add(%m, %bias) name="add"
  return %y
}'''


def test_matmul_add_becomes_gemm() -> None:
    expected = '''graph "g" (%a: f32[4,3], %b: f32[3,2]) {
  const %bias = dense<f32[2]> [0.5, -1.0]
  %y: f32[4,2] = Gemm(%a, %b, %bias)
  return %y
}'''
    ctx = assert_pass("fuse-matmul-add", MATMUL_ADD, expected, fused=1)
    assert dict(ctx.rules) == {"matmul-add": 1}
    graph, _ = run_pass("fuse-matmul-add", MATMUL_ADD)
    assert graph.nodes[0].source == ("mm", "add") and [v.name for v in graph.outputs] == ["y"]


def test_bias_first_full_and_symbolic_rows() -> None:
    before = '''graph "g" (%a: f32[N,3], %b: f32[3,2], %c: f32[N,2]) {
  %m: f32[N,2] = MatMul(%a, %b)
  %y: f32[N,2] = Add(%c, %m)
  return %y
}'''
    assert_pass("fuse-matmul-add", before, '''graph "g" (%a: f32[N,3], %b: f32[3,2], %c: f32[N,2]) {
  %y: f32[N,2] = Gemm(%a, %b, %c)
  return %y
}''', fused=1)
    column = MATMUL_ADD.replace("const %bias = dense<f32[2]> [0.5, -1.0]",
                                "const %bias = dense<f32[4,1]> [0.5, -1.0, 2.0, 0.0]")
    assert_pass("fuse-matmul-add", column, '''graph "g" (%a: f32[4,3], %b: f32[3,2]) {
  const %bias = dense<f32[4,1]> [0.5, -1.0, 2.0, 0.0]
  %y: f32[4,2] = Gemm(%a, %b, %bias)
  return %y
}''', fused=1)


def _unchanged(before: str, remark: str) -> None:
    ctx = assert_pass("fuse-matmul-add", before, before)
    assert any(remark in r for r in ctx.remarks), ctx.remarks


def test_must_not_change() -> None:
    batched = '''graph "g" (%a: f32[2,4,3], %b: f32[3,2]) {
  %m: f32[2,4,2] = MatMul(%a, %b) name="mm"
  const %bias = dense<f32[2]> [0.5, -1.0]
  %y: f32[2,4,2] = Add(%m, %bias)
  return %y
}'''
    _unchanged(batched, "matmul-add at 'mm': not applied, A is 3-D (Gemm takes 2-D)")
    twice = MATMUL_ADD.replace("  return %y", "  %r: f32[4,2] = Relu(%m)\n  return %y, %r")
    _unchanged(twice, "matmul-add at 'mm': not applied, its output has 2 readers")
    enlarging = MATMUL_ADD.replace("const %bias = dense<f32[2]> [0.5, -1.0]",
                                   "const %bias = dense<f32[3,1,2]> [0.5, -1.0, 1.0, 2.0, 3.0, 4.0]").replace(
        "%y: f32[4,2]", "%y: f32[3,4,2]")
    _unchanged(enlarging, "matmul-add at 'mm': not applied, with Add 'add', the bias is 3-D")
    one_row = '''graph "g" (%a: f32[1,3], %b: f32[3,2]) {
  %m: f32[1,2] = MatMul(%a, %b) name="mm"
  const %bias = dense<f32[3,2]> [0.5, -1.0, 1.0, 2.0, 3.0, 4.0]
  %y: f32[3,2] = Add(%m, %bias) name="add"
  return %y
}'''
    _unchanged(one_row, "the bias of shape [3, 2] does not broadcast to the product's [1, 2] in one direction")
    unknown = '''graph "g" (%a: f32[4,3], %b: f32[3,2], %c: f32[*]) {
  %m: f32[4,2] = MatMul(%a, %b) name="mm"
  %y: f32[4,2] = Add(%m, %c)
  return %y
}'''
    ctx = assert_pass("fuse-matmul-add", unknown, unknown, numeric=False)
    assert any("the bias's shape is unknown" in r for r in ctx.remarks), ctx.remarks
    ints = MATMUL_ADD.replace("f32", "i64").replace("[0.5, -1.0]", "[1, -1]")
    _unchanged(ints, "element type i64 is not a float Gemm type")


def test_random_weights_and_light_model() -> None:
    rng = np.random.default_rng(11)
    inits = {"w1": rng.standard_normal((6, 5)), "b1": rng.standard_normal(5),
             "w2": rng.standard_normal((5, 3)), "b2": rng.standard_normal((4, 3))}
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["m1"]), helper.make_node("Add", ["m1", "b1"], ["h"]),
             helper.make_node("Relu", ["h"], ["r"]), helper.make_node("MatMul", ["r", "w2"], ["m2"]),
             helper.make_node("Add", ["b2", "m2"], ["y"])]
    before, after = (random_model(nodes, inits, {"x": [4, 6]}, {"y": [4, 3]}) for _ in range(2))
    _, ctx = run_pass("fuse-matmul-add", after)
    assert ctx.stats["fused"] == 2 and op_counts(after) == {"Gemm": 2, "Relu": 1}
    for seed in (0, 1):
        assert_numerically_equivalent(before, after, Numerics.TOLERANCE, seed=seed)
    _, light = light_model("vgg19")  # Caffe2 exports its classifier as Gemm already: nothing to do
    _, ctx = run_pass("fuse-matmul-add", light)
    assert ctx.rewrites == 0
