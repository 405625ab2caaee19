"""legalize-tvm: IsInf flags and a softplus that keeps its precision, checked against onnxruntime."""

from __future__ import annotations

import numpy as np

from mlc.testing import as_graph, assert_numerically_equivalent, assert_pass, run_pass


def test_isinf_detect_negative_off() -> None:
    before = '''graph "g" (%x: f32[4]) {
  %y: bool[4] = IsInf(%x) {detect_negative = 0}
  return %y
}'''
    expected = '''graph "g" (%x: f32[4]) {
  const %zero = dense<f32[]> [0.0]
  %i: bool[4] = IsInf(%x)
  %p: bool[4] = Greater(%x, %zero)
  %y: bool[4] = And(%i, %p)
  return %y
}'''
    feeds = {"x": np.array([np.inf, -np.inf, 1.0, np.nan], np.float32)}
    assert_pass("legalize-tvm", before, expected, feeds=feeds, rewritten=1)
    graph, _ = run_pass("legalize-tvm", before)
    assert [v.name for v in graph.outputs] == ["y"], "the graph output keeps its name"


def test_must_not_change() -> None:
    plain = '''graph "g" (%x: f32[4]) {
  %y: bool[4] = IsInf(%x)
  %z: f32[4] = Relu(%x)
  return %y, %z
}'''
    assert_pass("legalize-tvm", plain, plain)
    half = '''graph "g" (%x: f16[4]) {
  %y: f16[4] = Softplus(%x)
  return %y
}'''
    _, ctx = run_pass("legalize-tvm", half)
    assert ctx.rewrites == 0 and any("float32/float64" in r for r in ctx.remarks)


def test_softplus_and_mish_keep_precision_where_the_naive_formula_loses_it() -> None:
    x = np.array([-1e4, -100, -20, -9.98, -1, 0, 1, 9.98, 20, 100, 1e4], np.float32)
    for op in ("Softplus", "Mish"):
        before = f'''graph "g" (%x: f32[11]) {{
  %y: f32[11] = {op}(%x)
  return %y
}}'''
        before_graph = as_graph(before, opset=18)  # Mish is opset 18
        after, ctx = run_pass("legalize-tvm", as_graph(before, opset=18))
        assert ctx.stats["rewritten"] == 1 and all(n.op_type != op for n in after)
        assert_numerically_equivalent(before_graph, after, feeds={"x": x})
        for seed in (0, 1):
            assert_numerically_equivalent(before_graph, after, seed=seed)
    # the decomposition itself, in float64, against the exact value at -20 (log1p(e^-20) = 2.06e-9)
    from mlc.numerics.reference import run_graph

    graph, _ = run_pass("legalize-tvm", '''graph "g" (%x: f32[1]) {
  %y: f32[1] = Softplus(%x)
  return %y
}''')
    got = run_graph(graph, {"x": np.array([-20.0], np.float32)})
    assert abs(float(next(iter(got.values()))[0]) - np.log1p(np.exp(-20.0))) < 1e-15


def test_float16_math_is_computed_in_float32_when_asked() -> None:
    before = '''graph "g" (%a: f16[2,8], %b: f16[8,3]) {
  %m: f16[2,3] = MatMul(%a, %b)
  %s: f16[2,3] = Softmax(%m) {axis = -1}
  %r: f16[2,3] = Relu(%s)
  return %r
}'''
    expected = '''graph "g" (%a: f16[2,8], %b: f16[8,3]) {
  %a32: f32[2,8] = Cast(%a) {to = 1}
  %b32: f32[8,3] = Cast(%b) {to = 1}
  %m32: f32[2,3] = MatMul(%a32, %b32)
  %m: f16[2,3] = Cast(%m32) {to = 10}
  %m2: f32[2,3] = Cast(%m) {to = 1}
  %s32: f32[2,3] = Softmax(%m2) {axis = -1}
  %s: f16[2,3] = Cast(%s32) {to = 10}
  %r: f16[2,3] = Relu(%s)
  return %r
}'''
    assert_pass("legalize-tvm{f16_as_f32=true}", before, expected, f16_upcast=2)
    assert_pass("legalize-tvm", before, before)  # off by default (cuda keeps float16 arithmetic)


def test_tile_becomes_reshape_expand_reshape() -> None:
    before = '''graph "g" (%x: f32[2,3]) {
  const %r = dense<i64[2]> [2, 3]
  %y: f32[4,9] = Tile(%x, %r)
  return %y
}'''
    expected = '''graph "g" (%x: f32[2,3]) {
  const %r = dense<i64[2]> [2, 3]
  const %spread = dense<i64[4]> [1, 2, 1, 3]
  const %wide = dense<i64[4]> [2, 2, 3, 3]
  const %shape = dense<i64[2]> [4, 9]
  %a: f32[1,2,1,3] = Reshape(%x, %spread)
  %b: f32[2,2,3,3] = Expand(%a, %wide)
  %y: f32[4,9] = Reshape(%b, %shape)
  return %y
}'''
    assert_pass("legalize-tvm", before, expected, rewritten=1)
    dynamic = before.replace("f32[2,3]", "f32[N,3]").replace("f32[4,9]", "f32[?,9]")
    _, ctx = run_pass("legalize-tvm", dynamic)
    assert ctx.rewrites == 0 and any("not static" in r for r in ctx.remarks)


def test_layernorm_statistics_are_computed_beside_it() -> None:
    before = '''graph "g" (%x: f32[2,3,4], %s: f32[4], %b: f32[4]) {
  %y: f32[2,3,4], %m: f32[2,3,1], %inv: f32[2,3,1] = LayerNormalization(%x, %s, %b) {axis = -1}
  return %y, %m, %inv
}'''
    after, ctx = run_pass("legalize-tvm", as_graph(before, opset=18))
    ln = next(n for n in after if n.op_type == "LayerNormalization")
    assert len(ln.outputs) == 1 and ctx.stats["rewritten"] == 1
    assert [v.name for v in after.outputs] == ["y", "m", "inv"]
    for seed in (0, 1):
        assert_numerically_equivalent(as_graph(before, opset=18), after, seed=seed)
    plain = '''graph "g" (%x: f32[2,3,4], %s: f32[4]) {
  %y: f32[2,3,4] = LayerNormalization(%x, %s)
  return %y
}'''
    assert_pass("legalize-tvm", plain, plain)


def test_prelu_along_a_symbolic_axis_becomes_its_definition() -> None:
    """TVM's converter makes nn.prelu along x's last axis (a slope of one value), which fails on a
    symbolic dim (fuzz seed 500012): Where(x < 0, x * s, x) instead; a static axis stays."""
    before = '''graph "g" (%x: f32[N]) {
  const %s = dense<f32[1]> [0.25]
  %y: f32[N] = PRelu(%x, %s)
  return %y
}'''
    expected = '''graph "g" (%x: f32[N]) {
  const %s = dense<f32[1]> [0.25]
  const %zero = dense<f32[]> [0.0]
  %n: bool[N] = Less(%x, %zero)
  %m: f32[N] = Mul(%x, %s)
  %y: f32[N] = Where(%n, %m, %x)
  return %y
}'''
    feeds = {"x": np.array([-2.0, -0.5, 0.0, 3.0], np.float32)}
    assert_pass("legalize-tvm", before, expected, feeds=feeds, rewritten=1)
    channels = '''graph "g" (%x: f32[N,3,H,W]) {
  const %s = dense<f32[3,1,1]> [0.1, 0.2, 0.3]
  %y: f32[N,3,H,W] = PRelu(%x, %s)
  return %y
}'''
    _, ctx = run_pass("legalize-tvm", channels)
    assert ctx.rewrites == 0, "the channel axis is static: TVM's nn.prelu takes it"
    graph, _ = run_pass("legalize-tvm", channels.replace("N,3,H,W", "N,C,H,W"))
    assert [n.op_type for n in graph] == ["Less", "Mul", "Where"]
    assert_numerically_equivalent(channels.replace("N,3,H,W", "N,C,H,W"), graph, seed=0)
