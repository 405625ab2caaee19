"""simplify-shapes: runtime reshape targets built from Shape become constants with copied dims."""

from __future__ import annotations

from mlc.testing import assert_pass

BEFORE = '''graph "g" (%x: f32[B,S,128]) {
  const %i0 = dense<i64[]> [0]
  const %i1 = dense<i64[]> [1]
  const %ax = dense<i64[1]> [0]
  const %heads = dense<i64[1]> [4]
  const %size = dense<i64[1]> [32]
  %s: i64[3] = Shape(%x)
  %b: i64[] = Gather(%s, %i0) {axis = 0}
  %n: i64[] = Gather(%s, %i1) {axis = 0}
  %b1: i64[1] = Unsqueeze(%b, %ax)
  %n1: i64[1] = Unsqueeze(%n, %ax)
  %t: i64[4] = Concat(%b1, %n1, %heads, %size) {axis = 0}
  %y: f32[B,S,4,32] = Reshape(%x, %t)
  return %y
}'''

EXPECTED = '''graph "g" (%x: f32[B,S,128]) {
  const %target = dense<i64[4]> [0, 0, 4, 32]
  %y: f32[B,S,4,32] = Reshape(%x, %target)
  return %y
}'''


def test_dims_copied_from_the_input_become_zeros() -> None:
    from mlc.testing import run_pass

    graph, ctx = run_pass("simplify-shapes", BEFORE)
    assert ctx.stats["reshapes_simplified"] == 1
    cleaned, _ = run_pass("dce", graph)
    from mlc.ir.equality import assert_graph_equal
    from mlc.testing import as_graph, assert_numerically_equivalent

    assert_graph_equal(cleaned, as_graph(EXPECTED), check_metadata=False)
    for seed in (0, 1):
        assert_numerically_equivalent(BEFORE, cleaned, seed=seed)


def test_static_dim_of_a_partly_dynamic_shape_folds() -> None:
    before = '''graph "g" (%x: f32[B,6,4], %z: f32[C,2]) {
  const %i1 = dense<i64[1]> [1]
  const %i0 = dense<i64[1]> [0]
  %s: i64[3] = Shape(%x)
  %six: i64[1] = Gather(%s, %i1) {axis = 0}
  %zs: i64[2] = Shape(%z)
  %c: i64[1] = Gather(%zs, %i0) {axis = 0}
  %t: i64[3] = Concat(%c, %six, %six) {axis = 0}
  %y: f32[C,6,6] = Reshape(%x, %t)
  return %y
}'''
    from mlc.testing import run_pass

    graph, ctx = run_pass("simplify-shapes", before)
    # %six folds (dim 1 of x is 6); C is no dim of x, so it becomes -1 (B*24 = C*36 holds at run time)
    assert ctx.stats["dims_folded"] == 1 and ctx.stats["reshapes_simplified"] == 1
    reshape = next(n for n in graph if n.op_type == "Reshape")
    assert reshape.inputs[1].const.numpy().tolist() == [-1, 6, 6]


def test_one_dim_known_only_as_a_product_becomes_minus_one() -> None:
    before = '''graph "g" (%x: f32[B,S,4], %z: f32[C]) {
  const %i0 = dense<i64[1]> [0]
  %s: i64[3] = Shape(%x)
  %b: i64[1] = Gather(%s, %i0) {axis = 0}
  %zs: i64[1] = Shape(%z)
  %t: i64[2] = Concat(%b, %zs) {axis = 0}
  %y: f32[B,C] = Reshape(%x, %t)
  return %y
}'''
    from mlc.testing import run_pass

    graph, ctx = run_pass("simplify-shapes", before)
    reshape = next(n for n in graph if n.op_type == "Reshape")
    assert ctx.stats["reshapes_simplified"] == 1
    assert reshape.inputs[1].const.numpy().tolist() == [0, -1]


def test_must_not_change() -> None:
    allowzero = BEFORE.replace("Reshape(%x, %t)", "Reshape(%x, %t) {allowzero = 1}")
    assert_pass("simplify-shapes", allowzero, allowzero)
    moved = BEFORE.replace("Concat(%b1, %n1, %heads, %size)", "Concat(%n1, %b1, %heads, %size)").replace(
        "f32[B,S,4,32] = Reshape", "f32[S,B,4,32] = Reshape")
    from mlc.testing import run_pass

    _, ctx = run_pass("simplify-shapes", moved)
    assert ctx.rewrites == 0 and any("neither constant nor copied" in r for r in ctx.remarks), ctx.remarks
