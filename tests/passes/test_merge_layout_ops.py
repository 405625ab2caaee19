"""merge-layout-ops: consecutive Transposes, Reshapes, Squeezes, Unsqueezes and Flattens become one op
(or none); pairs whose middle value is read elsewhere, or whose 0 entries would change meaning, stay."""

from __future__ import annotations

import numpy as np

from mlc.ir.printer import print_ir
from mlc.pass_api import PassContext
from mlc.testing import as_graph, assert_pass, run_pass


def _at(text: str, opset: int) -> str:
    """The text with a `model` line for `opset` (assert_pass parses bare graphs at opset 17)."""
    return print_ir(as_graph(text, opset=opset))


def _check(before: str, expected: str, rule: str, opset: int = 17, **stats: int) -> PassContext:
    ctx = assert_pass("merge-layout-ops", _at(before, opset), _at(expected, opset), **stats)
    assert set(ctx.rules) == {rule}, ctx.rules
    return ctx


def test_transposes_compose() -> None:
    before = '''graph "g" (%x: f32[2,3,4]) {
  %a: f32[3,4,2] = Transpose(%x) {perm = [1, 2, 0]}
  %b: f32[3,2,4] = Transpose(%a) {perm = [0, 2, 1]}
  %c: f32[3,4,2] = Transpose(%b) {perm = [0, 2, 1]}
  %y: f32[3,4,2] = Relu(%c)
  %t: f32[3,2,4] = Transpose(%x) {perm = [1, 0, 2]}
  %u: f32[4,3,2] = Transpose(%t) {perm = [2, 0, 1]}
  return %y, %u
}'''
    expected = '''graph "g" (%x: f32[2,3,4]) {
  %c: f32[3,4,2] = Transpose(%x) {perm = [1, 2, 0]}
  %y: f32[3,4,2] = Relu(%c)
  %u: f32[4,3,2] = Transpose(%x) {perm = [2, 1, 0]}
  return %y, %u
}'''
    # (%a then %b compose to [1, 0, 2]; with %c that is x's own [1, 2, 0] again)
    _check(before, expected, "transpose-transpose", merged=3)


def test_transposes_cancel() -> None:
    # (the second pair has no perms: reversing twice cancels whatever the rank)
    before = '''graph "g" (%x: f32[2,3,4], %u: f32[2,3]) {
  %a: f32[3,2,4] = Transpose(%x) {perm = [1, 0, 2]}
  %b: f32[2,3,4] = Transpose(%a) {perm = [1, 0, 2]}
  %y: f32[2,3,4] = Relu(%b)
  %t: f32[3,2] = Transpose(%u)
  %v: f32[2,3] = Transpose(%t)
  %w: f32[2,3] = Relu(%v)
  return %y, %w
}'''
    expected = '''graph "g" (%x: f32[2,3,4], %u: f32[2,3]) {
  %y: f32[2,3,4] = Relu(%x)
  %w: f32[2,3] = Relu(%u)
  return %y, %w
}'''
    _check(before, expected, "transpose-cancel", cancelled=2, merged=0)


def test_cancel_into_graph_output_of_graph_input_leaves_an_identity() -> None:
    before = '''graph "g" (%x: f32[2,3]) {
  %a: f32[3,2] = Transpose(%x) {perm = [1, 0]}
  %y: f32[2,3] = Transpose(%a) {perm = [1, 0]}
  return %y
}'''
    expected = '''graph "g" (%x: f32[2,3]) {
  %y: f32[2,3] = Identity(%x)
  return %y
}'''
    ctx = _check(before, expected, "transpose-cancel", merged=1)
    assert any("kept as an Identity" in r for r in ctx.remarks)
    graph, _ = run_pass("merge-layout-ops", before)
    assert [v.name for v in graph.outputs] == ["y"]


def test_reshape_of_reshape() -> None:
    before = '''graph "g" (%x: f32[2,3,4]) {
  const %s1 = dense<i64[2]> [6, 4]
  const %s2 = dense<i64[3]> [0, 2, 2]
  %a: f32[6,4] = Reshape(%x, %s1)
  %y: f32[6,2,2] = Reshape(%a, %s2)
  return %y
}'''
    # the 0 copied the intermediate dim 6, not x's 2: it is written out
    expected = '''graph "g" (%x: f32[2,3,4]) {
  const %s1 = dense<i64[2]> [6, 4]
  const %s2 = dense<i64[3]> [0, 2, 2]
  const %s = dense<i64[3]> [6, 2, 2]
  %y: f32[6,2,2] = Reshape(%x, %s)
  return %y
}'''
    _check(before, expected, "reshape-reshape", merged=1)
    graph, _ = run_pass("merge-layout-ops", before)
    assert [v.name for v in graph.outputs] == ["y"]


def test_reshape_zero_copied_through_a_symbolic_dim() -> None:
    before = '''graph "g" (%x: f32[N,12]) {
  const %s1 = dense<i64[3]> [0, 3, 4]
  const %s2 = dense<i64[2]> [0, -1]
  %a: f32[N,3,4] = Reshape(%x, %s1)
  %b: f32[N,12] = Reshape(%a, %s2)
  %y: f32[N,12] = Relu(%b)
  return %y
}'''
    expected = '''graph "g" (%x: f32[N,12]) {
  const %s1 = dense<i64[3]> [0, 3, 4]
  const %s2 = dense<i64[2]> [0, -1]
  %b: f32[N,12] = Reshape(%x, %s2)
  %y: f32[N,12] = Relu(%b)
  return %y
}'''
    _check(before, expected, "reshape-reshape", merged=1)


def test_squeeze_unsqueeze_flatten_then_reshape() -> None:
    before = '''graph "g" (%x: f32[2,1,3], %u: f32[2,3], %f: f32[2,3,4]) {
  const %ax = dense<i64[1]> [1]
  const %s = dense<i64[2]> [3, 2]
  %a: f32[2,3] = Squeeze(%x, %ax)
  %y: f32[3,2] = Reshape(%a, %s)
  const %ax0 = dense<i64[1]> [0]
  const %t = dense<i64[2]> [0, 6]
  %b: f32[1,2,3] = Unsqueeze(%u, %ax0)
  %z: f32[1,6] = Reshape(%b, %t)
  const %q = dense<i64[2]> [4, 6]
  %c: f32[2,12] = Flatten(%f) {axis = 1}
  %w: f32[4,6] = Reshape(%c, %q)
  return %y, %z, %w
}'''
    expected = '''graph "g" (%x: f32[2,1,3], %u: f32[2,3], %f: f32[2,3,4]) {
  const %ax = dense<i64[1]> [1]
  const %s = dense<i64[2]> [3, 2]
  %y: f32[3,2] = Reshape(%x, %s)
  const %ax0 = dense<i64[1]> [0]
  const %t = dense<i64[2]> [0, 6]
  const %t1 = dense<i64[2]> [1, 6]
  %z: f32[1,6] = Reshape(%u, %t1)
  const %q = dense<i64[2]> [4, 6]
  %w: f32[4,6] = Reshape(%f, %q)
  return %y, %z, %w
}'''
    ctx = assert_pass("merge-layout-ops", before, expected, merged=3)
    assert dict(ctx.rules) == {"squeeze-reshape": 1, "unsqueeze-reshape": 1, "flatten-reshape": 1}


def test_squeezes_merge() -> None:
    before = '''graph "g" (%x: f32[1,2,1,3,1]) {
  const %a = dense<i64[1]> [0]
  const %b = dense<i64[2]> [-1, 1]
  %s: f32[2,1,3,1] = Squeeze(%x, %a)
  %y: f32[2,3] = Squeeze(%s, %b)
  return %y
}'''
    expected = '''graph "g" (%x: f32[1,2,1,3,1]) {
  const %a = dense<i64[1]> [0]
  const %b = dense<i64[2]> [-1, 1]
  const %c = dense<i64[3]> [0, 2, 4]
  %y: f32[2,3] = Squeeze(%x, %c)
  return %y
}'''
    _check(before, expected, "squeeze-squeeze", merged=1)
    # before opset 13 the axes are an attribute
    _check('''graph "g" (%x: f32[1,2,1,3,1]) {
  %s: f32[2,1,3,1] = Squeeze(%x) {axes = [0]}
  %y: f32[2,3] = Squeeze(%s) {axes = [-1, 1]}
  return %y
}''', '''graph "g" (%x: f32[1,2,1,3,1]) {
  %y: f32[2,3] = Squeeze(%x) {axes = [0, 2, 4]}
  return %y
}''', "squeeze-squeeze", opset=11, merged=1)


def test_unsqueezes_merge() -> None:
    before = '''graph "g" (%x: f32[2,3]) {
  const %a = dense<i64[1]> [0]
  const %b = dense<i64[2]> [-1, 2]
  %s: f32[1,2,3] = Unsqueeze(%x, %a)
  %y: f32[1,2,1,3,1] = Unsqueeze(%s, %b)
  return %y
}'''
    expected = '''graph "g" (%x: f32[2,3]) {
  const %a = dense<i64[1]> [0]
  const %b = dense<i64[2]> [-1, 2]
  const %c = dense<i64[3]> [0, 2, 4]
  %y: f32[1,2,1,3,1] = Unsqueeze(%x, %c)
  return %y
}'''
    _check(before, expected, "unsqueeze-unsqueeze", merged=1)
    _check('''graph "g" (%x: f32[2,3]) {
  %s: f32[2,3,1] = Unsqueeze(%x) {axes = [-1]}
  %y: f32[1,2,3,1] = Unsqueeze(%s) {axes = [0]}
  return %y
}''', '''graph "g" (%x: f32[2,3]) {
  %y: f32[1,2,3,1] = Unsqueeze(%x) {axes = [0, 3]}
  return %y
}''', "unsqueeze-unsqueeze", opset=11, merged=1)


def test_static_pair_becomes_one_reshape() -> None:
    before = '''graph "g" (%x: f32[2,1,3]) {
  const %a = dense<i64[1]> [1]
  const %b = dense<i64[1]> [0]
  %s: f32[2,3] = Squeeze(%x, %a)
  %y: f32[1,2,3] = Unsqueeze(%s, %b)
  return %y
}'''
    expected = '''graph "g" (%x: f32[2,1,3]) {
  const %a = dense<i64[1]> [1]
  const %b = dense<i64[1]> [0]
  const %c = dense<i64[3]> [1, 2, 3]
  %y: f32[1,2,3] = Reshape(%x, %c)
  return %y
}'''
    _check(before, expected, "static-reshape", merged=1)


def test_inside_subgraphs() -> None:
    before = '''graph "g" (%c: bool[], %x: f32[2,3]) {
  %y: f32[3,2] = If(%c) {then_branch=graph "then" () {
    %a: f32[2,3] = Relu(%x)
    %b: f32[3,2] = Transpose(%a) {perm = [1, 0]}
    %t: f32[2,3] = Transpose(%b) {perm = [1, 0]}
    %u: f32[3,2] = Transpose(%t) {perm = [1, 0]}
    return %u
  }, else_branch=graph "else" () {
    %e: f32[3,2] = Transpose(%x) {perm = [1, 0]}
    return %e
  }}
  return %y
}'''
    expected = '''graph "g" (%c: bool[], %x: f32[2,3]) {
  %y: f32[3,2] = If(%c) {then_branch=graph "then" () {
    %a: f32[2,3] = Relu(%x)
    %u: f32[3,2] = Transpose(%a) {perm = [1, 0]}
    return %u
  }, else_branch=graph "else" () {
    %e: f32[3,2] = Transpose(%x) {perm = [1, 0]}
    return %e
  }}
  return %y
}'''
    assert_pass("merge-layout-ops", before, expected, cancelled=1, merged=0)


def _kept(text: str, remark: str | None) -> None:
    ctx = assert_pass("merge-layout-ops", text, text)
    if remark is None:
        assert not ctx.remarks, ctx.remarks
    else:
        assert any(remark in r for r in ctx.remarks), ctx.remarks


def test_must_not_change() -> None:
    # The 0 at 1 would copy the intermediate dim 4M, and x's dim there is 4; the other entries are no
    # non-zero constants (a copied N), so -1 cannot stand for it either.
    _kept('''graph "g" (%x: f32[N,4,M]) {
  const %s1 = dense<i64[2]> [0, -1]
  const %s2 = dense<i64[3]> [0, 0, 1]
  %a: f32[N,?] = Reshape(%x, %s1)
  %y: f32[N,?,1] = Reshape(%a, %s2)
  return %y
}''', "reshape-reshape at '<Reshape>': not applied, its shape's 0 at 1 copies a dim of the Reshape's output")
    # The first Transpose has a second reader: merging would save nothing.
    _kept('''graph "g" (%x: f32[2,3]) {
  %a: f32[3,2] = Transpose(%x) {perm = [1, 0]}
  %b: f32[2,3] = Transpose(%a) {perm = [1, 0]}
  %y: f32[3,2] = Relu(%a)
  return %b, %y
}''', "transpose-cancel at '<Transpose>': not applied, the Transpose '' before it has 2 readers")
    # The middle value is a graph output.
    _kept('''graph "g" (%x: f32[2,3]) {
  %a: f32[3,2] = Transpose(%x) {perm = [1, 0]}
  %b: f32[2,3] = Transpose(%a) {perm = [1, 0]}
  return %a, %b
}''', "transpose-cancel at '<Transpose>': not applied, the Transpose '' before it names a graph output")
    # A Squeeze without axes, with a symbolic result: no merge is provable.
    _kept('''graph "g" (%x: f32[1,N,1]) {
  const %a = dense<i64[1]> [0]
  %s: f32[N,1] = Squeeze(%x, %a)
  %y: f32[*] = Squeeze(%s)
  return %y
}''', "squeeze-squeeze at '<Squeeze>': not applied, a Squeeze without axes removes whichever dims are 1")
    # Not layout pairs at all.
    _kept('''graph "g" (%x: f32[2,3]) {
  const %s = dense<i64[2]> [3, 2]
  %a: f32[3,2] = Transpose(%x) {perm = [1, 0]}
  %r: f32[3,2] = Relu(%a)
  %y: f32[3,2] = Reshape(%r, %s)
  return %y
}''', None)


def test_axes_form_follows_the_opset() -> None:
    graph, ctx = run_pass("merge-layout-ops", as_graph('''graph "g" (%x: f32[2]) {
  %a: f32[1,2] = Unsqueeze(%x) {axes = [0]}
  %y: f32[1,2,1] = Unsqueeze(%a) {axes = [2]}
  return %y
}''', opset=11))
    (node,) = graph.nodes
    assert node.attr("axes") == [0, 2] and len(node.inputs) == 1
    assert node.created_by == "merge-layout-ops/unsqueeze-unsqueeze" and ctx.rewrites == 1


def test_a_copied_dim_x_lacks_becomes_minus_one() -> None:
    """x [N,12] viewed as [-1, 6] ([2N, 6]) then as [0, 2, 3]: the 0 copies 2N, which x does not
    have, but it is the element count over the constants 2 and 3."""
    before = '''graph "g" (%x: f32[N,12]) {
  const %s1 = dense<i64[2]> [-1, 6]
  const %s2 = dense<i64[3]> [0, 2, 3]
  %a: f32[?,6] = Reshape(%x, %s1)
  %y: f32[?,2,3] = Reshape(%a, %s2)
  return %y
}'''
    expected = '''graph "g" (%x: f32[N,12]) {
  const %s1 = dense<i64[2]> [-1, 6]
  const %s2 = dense<i64[3]> [0, 2, 3]
  const %t = dense<i64[3]> [-1, 2, 3]
  %y: f32[?,2,3] = Reshape(%x, %t)
  return %y
}'''
    assert_pass("merge-layout-ops", before, expected, feeds={"x": np.arange(36, dtype=np.float32).reshape(3, 12)})


def test_a_transpose_that_moves_only_ones_merges_into_the_reshape() -> None:
    """The dynamo exporter's LSTM output [S, 1, B, H] transposed to [S, B, 1, H] and viewed as [S, B, H]."""
    before = '''graph "g" (%y: f32[7,1,B,4]) {
  const %s = dense<i64[3]> [7, -1, 4]
  %t: f32[7,B,1,4] = Transpose(%y) {perm = [0, 2, 1, 3]}
  %r: f32[7,B,4] = Reshape(%t, %s)
  return %r
}'''
    expected = '''graph "g" (%y: f32[7,1,B,4]) {
  const %s = dense<i64[3]> [7, -1, 4]
  %r: f32[7,B,4] = Reshape(%y, %s)
  return %r
}'''
    feeds = {"y": np.random.default_rng(0).standard_normal((7, 1, 3, 4)).astype(np.float32)}
    assert_pass("merge-layout-ops", before, expected, feeds=feeds, merged=1)
    moves = before.replace("f32[7,1,B,4]", "f32[7,2,B,4]").replace("f32[7,B,1,4]", "f32[7,B,2,4]").replace(
        "[7, -1, 4]", "[7, -1, 8]").replace("f32[7,B,4]", "f32[7,B,8]")  # a real transpose: kept
    assert_pass("merge-layout-ops", moves, moves, feeds={"y": np.ones((7, 2, 3, 4), np.float32)})


def test_an_unsqueeze_or_squeeze_of_a_constant_reshape_is_one_reshape() -> None:
    """torchvision's MultiheadAttention: Unsqueeze(Reshape(qkv, [L, -1, 3, E]), 0) with a dynamic
    batch behind the -1 -> Reshape(qkv, [1, L, -1, 3, E]); a Squeeze of a literal 1 likewise."""
    from mlc.testing import assert_numerically_equivalent

    before = '''graph "g" (%x: f32[5,B,12]) {
  const %t = dense<i64[4]> [5, -1, 3, 4]
  const %zero = dense<i64[1]> [0]
  const %u = dense<i64[4]> [-1, 1, 6, 2]
  const %one = dense<i64[1]> [-3]
  %r: f32[5,B,3,4] = Reshape(%x, %t)
  %y: f32[1,5,B,3,4] = Unsqueeze(%r, %zero)
  %q: f32[?,1,6,2] = Reshape(%x, %u)
  %z: f32[?,6,2] = Squeeze(%q, %one)
  return %y, %z
}'''
    expected = '''graph "g" (%x: f32[5,B,12]) {
  const %t = dense<i64[4]> [5, -1, 3, 4]
  const %zero = dense<i64[1]> [0]
  const %u = dense<i64[4]> [-1, 1, 6, 2]
  const %one = dense<i64[1]> [-3]
  const %t1 = dense<i64[5]> [1, 5, -1, 3, 4]
  %y: f32[1,5,B,3,4] = Reshape(%x, %t1)
  const %u1 = dense<i64[3]> [-1, 6, 2]
  %z: f32[?,6,2] = Reshape(%x, %u1)
  return %y, %z
}'''
    graph, ctx = run_pass("merge-layout-ops", before)
    assert ctx.rules == {"reshape-unsqueeze": 1, "reshape-squeeze": 1}, ctx.rules
    assert_pass("merge-layout-ops", before, expected, merged=2, numeric=False)
    for batch in (1, 3):
        feeds = {"x": np.random.default_rng(batch).standard_normal((5, batch, 12)).astype(np.float32)}
        assert_numerically_equivalent(before, graph, feeds=feeds)
    # opset 11: the axes an attribute
    old = before.replace("Unsqueeze(%r, %zero)", "Unsqueeze(%r) {axes = [0]}").replace(
        "Squeeze(%q, %one)", "Squeeze(%q) {axes = [-3]}")
    _, ctx = run_pass("merge-layout-ops", as_graph(old, 11))
    assert ctx.rules == {"reshape-unsqueeze": 1, "reshape-squeeze": 1}, ctx.rules


def test_reshape_then_axes_must_not_change() -> None:
    # a 0 copies x's dim at its position, which the inserted 1 would shift
    _kept('''graph "g" (%x: f32[5,B,12]) {
  const %t = dense<i64[4]> [0, -1, 3, 4]
  const %zero = dense<i64[1]> [0]
  %r: f32[5,B,3,4] = Reshape(%x, %t)
  %y: f32[1,5,B,3,4] = Unsqueeze(%r, %zero)
  return %y
}''', "the Reshape's shape copies a dim with 0")
    # the squeezed dim is the -1 (1 only at run time), or the target is computed
    _kept('''graph "g" (%x: f32[5,B,12]) {
  const %t = dense<i64[3]> [5, -1, 12]
  const %one = dense<i64[1]> [1]
  %r: f32[5,B,12] = Reshape(%x, %t)
  %y: f32[5,S] = Squeeze(%r, %one)
  return %y
}''', "is not a literal 1")
    _kept('''graph "g" (%x: f32[5,B,12]) {
  const %zero = dense<i64[1]> [0]
  const %one = dense<i64[1]> [1]
  %s: i64[3] = Shape(%x)
  %t: i64[4] = Concat(%s, %one) {axis = 0}
  %r: f32[5,B,12,1] = Reshape(%x, %t)
  %y: f32[1,5,B,12,1] = Unsqueeze(%r, %zero)
  return %y
}''', "the Reshape's shape is not a constant")
