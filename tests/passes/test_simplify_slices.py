"""simplify-slices: full Slices go, Concats of adjacent Slices or of a whole Split shorten."""

from __future__ import annotations

import numpy as np
import pytest

from mlc.testing import assert_numerically_equivalent, assert_pass, run_pass
from tests.passes.real_exports import ALL, assert_export_numbers, imported


def _x(*shape: int) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(sum(shape)).standard_normal(shape).astype(np.float32)}


def test_a_slice_to_the_computed_end_of_its_dim_goes() -> None:
    """x[:, :x.size(1)] with the end read from Shape: the whole axis."""
    before = '''graph "g" (%x: f32[B,S,4]) {
  const %i1 = dense<i64[1]> [1]
  const %z = dense<i64[1]> [0]
  %s: i64[3] = Shape(%x)
  %n: i64[1] = Gather(%s, %i1) {axis = 0}
  %y: f32[B,S,4] = Slice(%x, %z, %n, %i1)
  %r: f32[B,S,4] = Relu(%y)
  return %r
}'''
    expected = before.replace("  %y: f32[B,S,4] = Slice(%x, %z, %n, %i1)\n", "").replace("Relu(%y)", "Relu(%x)")
    assert_pass("simplify-slices", before, expected, feeds=_x(2, 5, 4), slices_removed=1)
    # a computed end that is another tensor's dim may stop short: kept
    other = before.replace('graph "g" (%x: f32[B,S,4])', 'graph "g" (%x: f32[B,S,4], %o: f32[T])').replace(
        "Shape(%x)", "Shape(%o)").replace("%s: i64[3]", "%s: i64[1]").replace("Gather(%s, %i1)", "Gather(%s, %z)")
    feeds = {**_x(2, 5, 4), "o": np.ones(3, np.float32)}
    assert_pass("simplify-slices", other.replace("f32[B,S,4] = Slice", "f32[B,?,4] = Slice"),
                other.replace("f32[B,S,4] = Slice", "f32[B,?,4] = Slice"), feeds=feeds)


CONCAT = '''graph "g" (%x: f32[B,12]) {
  const %a = dense<i64[1]> [0]
  const %b = dense<i64[1]> [4]
  const %c = dense<i64[1]> [8]
  const %d = dense<i64[1]> [12]
  const %ax = dense<i64[1]> [1]
  %p: f32[B,4] = Slice(%x, %a, %b, %ax)
  %q: f32[B,4] = Slice(%x, %b, %c, %ax)
  %r: f32[B,4] = Slice(%x, %c, %d, %ax)
  %y: f32[B,12] = Concat(%p, %q, %r) {axis = 1}
  %z: f32[B,12] = Relu(%y)
  return %z
}'''


def test_a_concat_of_adjacent_slices_is_one_slice_or_the_tensor() -> None:
    graph, ctx = run_pass("simplify-slices", CONCAT)
    assert ctx.rules == {"concat-slices": 1}
    run_pass("dce", graph)
    assert [n.op_type for n in graph] == ["Relu"] and graph.nodes[0].inputs[0] is graph.inputs[0]
    assert_numerically_equivalent(CONCAT, graph, feeds=_x(3, 12))
    # two of three, with something else after them: one Slice [0, 8) and the rest
    part = CONCAT.replace("Concat(%p, %q, %r)", "Concat(%p, %q, %x)").replace("%y: f32[B,12]", "%y: f32[B,20]") \
        .replace("%z: f32[B,12]", "%z: f32[B,20]").replace("  %r: f32[B,4] = Slice(%x, %c, %d, %ax)\n", "")
    graph, ctx = run_pass("simplify-slices", part)
    concat = next(n for n in graph if n.op_type == "Concat")
    head = concat.inputs[0].producer
    assert head.op_type == "Slice" and [head.inputs[i].const.numpy().tolist() for i in (1, 2, 3)] == [[0], [8], [1]]
    assert concat.inputs[1] is graph.inputs[0]
    assert_numerically_equivalent(part, graph, feeds=_x(2, 12))


def test_concat_slices_must_not_change() -> None:
    # out of order, a gap, another axis, a Slice also read elsewhere
    for text in (CONCAT.replace("Concat(%p, %q, %r)", "Concat(%q, %p, %r)"),
                 CONCAT.replace("Slice(%x, %b, %c, %ax)", "Slice(%x, %c, %d, %ax)"),
                 CONCAT.replace("Relu(%y)", "Relu(%y)\n  %w: f32[B,4] = Neg(%q)").replace(
                     "return %z", "return %z, %w")):
        assert_pass("simplify-slices", text, text, feeds=_x(2, 12))
    other_axis = '''graph "g" (%x: f32[4,B]) {
  const %a = dense<i64[1]> [0]
  const %b = dense<i64[1]> [2]
  const %c = dense<i64[1]> [4]
  const %ax = dense<i64[1]> [0]
  %p: f32[2,B] = Slice(%x, %a, %b, %ax)
  %q: f32[2,B] = Slice(%x, %b, %c, %ax)
  %y: f32[2,?] = Concat(%p, %q) {axis = 1}
  return %y
}'''
    assert_pass("simplify-slices", other_axis, other_axis, feeds=_x(4, 3))


def test_a_concat_of_a_whole_split_is_its_input() -> None:
    before = '''graph "g" (%x: f32[B,S,12]) {
  const %sizes = dense<i64[3]> [4, 4, 4]
  %q: f32[B,S,4], %k: f32[B,S,4], %v: f32[B,S,4] = Split(%x, %sizes) {axis = 2}
  %y: f32[B,S,12] = Concat(%q, %k, %v) {axis = -1}
  %z: f32[B,S,12] = Relu(%y)
  return %z
}'''
    expected = before.replace("  %y: f32[B,S,12] = Concat(%q, %k, %v) {axis = -1}\n", "").replace(
        "Relu(%y)", "Relu(%x)")
    assert_pass("simplify-slices", before, expected, feeds=_x(2, 3, 12), concats_simplified=1)
    reordered = before.replace("Concat(%q, %k, %v)", "Concat(%k, %q, %v)")
    assert_pass("simplify-slices", reordered, reordered, feeds=_x(2, 3, 12))
    partial = before.replace("Concat(%q, %k, %v)", "Concat(%q, %k)").replace("%y: f32[B,S,12]", "%y: f32[B,S,8]") \
        .replace("%z: f32[B,S,12] = Relu(%y)", "%z: f32[B,S,8] = Relu(%y)\n  %w: f32[B,S,4] = Neg(%v)") \
        .replace("return %z", "return %z, %w")
    assert_pass("simplify-slices", partial, partial, feeds=_x(2, 3, 12))  # the Split stays: no saving


def test_a_slice_of_a_slice_is_one_slice() -> None:
    before = '''graph "g" (%x: f32[B,16]) {
  const %s1 = dense<i64[1]> [2]
  const %e1 = dense<i64[1]> [14]
  const %s2 = dense<i64[1]> [3]
  const %e2 = dense<i64[1]> [100]
  const %ax = dense<i64[1]> [1]
  const %z = dense<i64[1]> [0]
  const %one = dense<i64[1]> [1]
  %a: f32[B,12] = Slice(%x, %s1, %e1, %ax)
  %b: f32[B,9] = Slice(%a, %s2, %e2, %ax)
  %c: f32[?,9] = Slice(%b, %z, %one, %z)
  return %c
}'''
    graph, ctx = run_pass("simplify-slices", before)
    assert ctx.stats["slices_merged"] == 2
    (node,) = list(graph)
    assert [node.inputs[i].const.numpy().tolist() for i in (1, 2, 3)] == [[0, 5], [1, 14], [0, 1]]
    assert_numerically_equivalent(before, graph, feeds=_x(3, 16))
    negative = before.replace("dense<i64[1]> [14]", "dense<i64[1]> [-2]")
    _, ctx = run_pass("simplify-slices", negative)
    assert ctx.stats["slices_merged"] == 1  # only the outer pair (non-negative bounds)


@pytest.mark.parametrize("name", ALL)
def test_real_exports_keep_their_numbers(name: str) -> None:
    graph = imported(name, ("fold-constants", "infer-shapes", "simplify-shapes", "simplify-slices", "dce"))
    assert_export_numbers(name, graph)
