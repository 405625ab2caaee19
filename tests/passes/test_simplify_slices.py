"""simplify-slices: full Slices go, Concats of adjacent Slices or of a whole Split shorten."""

from __future__ import annotations

import numpy as np
import pytest

from mlc.ir.core import Graph
from mlc.ir.equality import assert_graph_equal
from mlc.pass_api import PassContext
from mlc.testing import as_graph, assert_numerically_equivalent, assert_pass, run_pass
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


def _xy(x: tuple[int, ...], y: tuple[int, ...]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(sum(x) + sum(y))
    return {"x": rng.standard_normal(x).astype(np.float32), "y": rng.standard_normal(y).astype(np.float32)}


def _simplified(text: str, opset: int = 17) -> tuple[Graph, PassContext]:
    graph, ctx = run_pass("simplify-slices", as_graph(text, opset))
    run_pass("dce", graph)
    return graph, ctx


# F.interpolate(x, size=y.shape[2:]) as the TorchScript exporter writes the sizes
RESIZE_SIZES_TS = '''graph "g" (%x: f32[N,C,H,W], %y: f32[N,C,P,Q]) {
  const %i2 = dense<i64[]> [2]
  const %i3 = dense<i64[]> [%k]
  const %z = dense<i64[1]> [0]
  const %two = dense<i64[1]> [2]
  const %one = dense<f32[1]> [1.0]
  %sy: i64[4] = Shape(%y)
  %h: i64[] = Gather(%sy, %i2) {axis = 0}
  %h1: i64[1] = Unsqueeze(%h, %z)
  %w: i64[] = Gather(%sy, %i3) {axis = 0}
  %w1: i64[1] = Unsqueeze(%w, %z)
  %hw: i64[2] = Concat(%h1, %w1) {axis = 0}
  %sx: i64[4] = Shape(%x)
  %nc: i64[2] = Slice(%sx, %z, %two, %z)
  %sizes: i64[4] = Concat(%nc, %hw) {axis = 0}
  %c: f32[N,C,P,Q] = ConstantOfShape(%sizes) {value = dense<f32[1]> [1.0]}
  %r: f32[N,C,P,Q] = Add(%c, %y)
  return %r
}'''

RESIZE_SIZES_EXPECTED = '''graph "g" (%x: f32[N,C,H,W], %y: f32[N,C,P,Q]) {
  %sy: i64[2] = Shape(%y) {start = 2}
  %sx: i64[2] = Shape(%x) {end = 2}
  %sizes: i64[4] = Concat(%sx, %sy) {axis = 0}
  %c: f32[N,C,P,Q] = ConstantOfShape(%sizes) {value = dense<f32[1]> [1.0]}
  %r: f32[N,C,P,Q] = Add(%c, %y)
  return %r
}'''


def _check_shapes(before: str, after: Graph) -> None:
    """The same numbers at two sets of dims (the rewrites rest on symbolic dims)."""
    for x, y in (((2, 3, 5, 7), (2, 3, 4, 6)), ((1, 2, 3, 3), (1, 2, 9, 2))):
        assert_numerically_equivalent(before, after, feeds=_xy(x, y))


@pytest.mark.parametrize("k", [3, -1])
def test_a_resize_sizes_vector_of_gathered_dims_is_a_concat_of_two_shapes(k: int) -> None:
    """Unsqueeze(Gather(Shape(y), 2)), Unsqueeze(Gather(Shape(y), 3)) are Shape(y)[2:4]; the
    Slice of Shape(x) is Shape(x) up to 2: 9 nodes -> 3 (a negative index counts from the end)."""
    before = RESIZE_SIZES_TS.replace("%k", str(k))
    graph, ctx = _simplified(before)
    assert ctx.rules == {"concat-slices": 1, "slice-shape": 2}, ctx.rules
    assert_graph_equal(graph, as_graph(RESIZE_SIZES_EXPECTED), check_metadata=False)
    _check_shapes(before, graph)


def test_a_resize_sizes_vector_of_shape_pieces_is_a_concat_of_two_shapes() -> None:
    """The dynamo exporter's spelling: Shape(x, 0, 2), Concat(Shape(y, 2, 3), Shape(y, 3, 4))."""
    before = '''graph "g" (%x: f32[N,C,H,W], %y: f32[N,C,P,Q]) {
  %nc: i64[2] = Shape(%x) {start = 0, end = 2}
  %h: i64[1] = Shape(%y) {start = 2, end = 3}
  %w: i64[1] = Shape(%y) {start = 3, end = 4}
  %hw: i64[2] = Concat(%h, %w) {axis = 0}
  %sizes: i64[4] = Concat(%nc, %hw) {axis = 0}
  %c: f32[N,C,P,Q] = ConstantOfShape(%sizes) {value = dense<f32[1]> [1.0]}
  %r: f32[N,C,P,Q] = Add(%c, %y)
  return %r
}'''
    graph, ctx = _simplified(before)
    assert ctx.rules == {"concat-shapes": 1}, ctx.rules
    expected = RESIZE_SIZES_EXPECTED.replace("  %sx: i64[2] = Shape(%x) {end = 2}\n", "").replace(
        "  %sy: i64[2]", "  %sx: i64[2] = Shape(%x) {start = 0, end = 2}\n  %sy: i64[2]")
    assert_graph_equal(graph, as_graph(expected), check_metadata=False)
    _check_shapes(before, graph)


def test_an_inner_concat_on_the_same_axis_is_spliced_into_the_outer_one() -> None:
    before = '''graph "g" (%x: f32[B,12], %y: f32[B,3]) {
  const %a = dense<i64[1]> [0]
  const %b = dense<i64[1]> [4]
  const %c = dense<i64[1]> [8]
  const %ax = dense<i64[1]> [1]
  %p: f32[B,4] = Slice(%x, %a, %b, %ax)
  %q: f32[B,4] = Slice(%x, %b, %c, %ax)
  %r: f32[B,3] = Relu(%y)
  %inner: f32[B,7] = Concat(%q, %r) {axis = -1}
  %outer: f32[B,11] = Concat(%p, %inner) {axis = 1}
  return %outer
}'''
    graph, ctx = _simplified(before)
    assert ctx.rules == {"concat-concat": 1, "concat-slices": 1}, ctx.rules
    assert ctx.stats["concats_spliced"] == 1
    assert [n.op_type for n in graph] == ["Relu", "Slice", "Concat"], [n.op_type for n in graph]
    feeds = {"x": np.arange(24, dtype=np.float32).reshape(2, 12), "y": -np.ones((2, 3), np.float32)}
    assert_numerically_equivalent(before, graph, feeds=feeds)
    feeds = {"x": np.arange(60, dtype=np.float32).reshape(5, 12), "y": np.ones((5, 3), np.float32)}
    assert_numerically_equivalent(before, graph, feeds=feeds)
    # without anything to merge after splicing, the splice alone still saves the inner Concat
    plain = before.replace("Concat(%p, %inner)", "Concat(%y, %inner)").replace("%outer: f32[B,11]", "%outer: f32[B,10]")
    graph, ctx = _simplified(plain)
    assert ctx.rules == {"concat-concat": 1}
    concat = next(n for n in graph if n.op_type == "Concat")
    assert [v.name for v in concat.inputs] == ["y", "q", "r"]


ROWS = '''graph "g" (%x: f32[4,B]) {
  const %i1 = dense<i64[]> [1]
  const %i2 = dense<i64[]> [-2]
  const %zero = dense<i64[1]> [0]
  const %one = dense<i64[1]> [1]
  %a: f32[B] = Gather(%x, %i1) {axis = 0}
  %a1: f32[1,B] = Unsqueeze(%a, %zero)
  %b: f32[B] = Gather(%x, %i2) {axis = 0}
  %b1: f32[1,B] = Unsqueeze(%b, %zero)
  %y: f32[2,B] = Concat(%a1, %b1) {axis = 0}
  return %y
}'''


def test_a_concat_of_gathered_rows_of_data_is_a_slice() -> None:
    """The rule is not only for shapes: rows 1 and -2 (= 2) of x are x[1:3]."""
    graph, ctx = _simplified(ROWS)
    assert ctx.rules == {"concat-slices": 1}
    (node,) = list(graph)
    assert node.op_type == "Slice" and [node.inputs[i].const.numpy().tolist() for i in (1, 2, 3)] == [[1], [3], [0]]
    for b in (3, 5):
        assert_numerically_equivalent(ROWS, graph, feeds=_x(4, b))


def test_concat_concat_and_gathered_rows_must_not_change() -> None:
    nested = '''graph "g" (%x: f32[2,3], %y: f32[2,3]) {
  %r: f32[2,3] = Relu(%y)
  %inner: f32[2,6] = Concat(%x, %r) {axis = 1}
  %outer: f32[2,9] = Concat(%y, %inner) {axis = 1}
  return %outer
}'''
    other_axis = '''graph "g" (%x: f32[2,3], %y: f32[4,3]) {
  %r: f32[2,3] = Relu(%x)
  %inner: f32[4,3] = Concat(%x, %r) {axis = 0}
  %outer: f32[4,6] = Concat(%y, %inner) {axis = 1}
  return %outer
}'''
    # the inner Concat also read elsewhere; on another axis than the outer one
    assert_pass("simplify-slices", nested.replace("return %outer", "%n: f32[2,6] = Neg(%inner)\n  return %outer, %n"),
                nested.replace("return %outer", "%n: f32[2,6] = Neg(%inner)\n  return %outer, %n"),
                feeds={"x": np.ones((2, 3), np.float32), "y": -np.ones((2, 3), np.float32)})
    assert_pass("simplify-slices", other_axis, other_axis,
                feeds={"x": np.ones((2, 3), np.float32), "y": -np.ones((4, 3), np.float32)})
    # an index that is no constant
    text = RESIZE_SIZES_TS.replace("  const %i3 = dense<i64[]> [%k]\n", "").replace(
        'graph "g" (%x: f32[N,C,H,W], %y: f32[N,C,P,Q])', 'graph "g" (%x: f32[N,C,H,W], %y: f32[N,C,P,Q], %i3: i64[])')
    graph, _ = _simplified(text)
    (gather,) = [n for n in graph if n.op_type == "Gather"]  # row 2 alone is a Slice; this one stays
    assert gather.inputs[1].name == "i3" and gather.outputs[0].uses[0][0].op_type == "Unsqueeze"
    for x, y in (((2, 3, 5, 7), (2, 3, 4, 6)), ((1, 2, 3, 3), (1, 2, 9, 2))):
        assert_numerically_equivalent(text, graph, feeds={**_xy(x, y), "i3": np.array(3, np.int64)})
    # rows gathered along axis 0 but concatenated along 1 (a transpose, not a slice)
    across = ROWS.replace("Unsqueeze(%a, %zero)", "Unsqueeze(%a, %one)").replace(
        "Unsqueeze(%b, %zero)", "Unsqueeze(%b, %one)").replace("f32[1,B]", "f32[B,1]").replace(
        "%y: f32[2,B] = Concat(%a1, %b1) {axis = 0}", "%y: f32[B,2] = Concat(%a1, %b1) {axis = 1}")
    assert_pass("simplify-slices", across, across, feeds=_x(4, 3))
    # before opset 15 the Slice of a Shape stays (Shape has no start, end)
    sliced = RESIZE_SIZES_TS.replace("%k", "3").replace("Concat(%nc, %hw)", "Concat(%nc, %nc)")
    graph, ctx = run_pass("simplify-slices", as_graph(sliced, 13))
    assert "slice-shape" not in ctx.rules, ctx.rules


PATCH_MERGING = '''graph "g" (%x: f32[B,H,W,C]) {
  const %z = dense<i64[1]> [0]
  const %o = dense<i64[1]> [1]
  const %end = dense<i64[1]> [9223372036854775807]
  const %a1 = dense<i64[1]> [1]
  const %a2 = dense<i64[1]> [2]
  const %two = dense<i64[1]> [2]
  %r0: f32[B,?,W,C] = Slice(%x, %z, %end, %a1, %two)
  %r1: f32[B,?,W,C] = Slice(%x, %o, %end, %a1, %two)
  %x0: f32[B,?,?,C] = Slice(%r0, %z, %end, %a2, %two)
  %x1: f32[B,?,?,C] = Slice(%r1, %z, %end, %a2, %two)
  %x2: f32[B,?,?,C] = Slice(%r0, %o, %end, %a2, %two)
  %x3: f32[B,?,?,C] = Slice(%r1, %o, %end, %a2, %two)
  %y: f32[B,?,?,?] = Concat(%x0, %x1, %x2, %x3) {axis = -1}
  return %y
}'''


def test_slices_on_other_axes_merge_with_any_step_even_where_the_inner_one_is_shared() -> None:
    """swin's patch merging x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]:
    two row Slices, each read by two column Slices -> four Slices of x (6 -> 4)."""
    graph, ctx = _simplified(PATCH_MERGING)
    assert ctx.rules == {"slice-slice": 4}, ctx.rules
    slices = [n for n in graph if n.op_type == "Slice"]
    assert len(slices) == 4 and all(n.inputs[0] is graph.inputs[0] for n in slices)
    assert [n.inputs[i].const.numpy().tolist() for n in slices[:1] for i in (1, 3, 4)] == [[0, 0], [1, 2], [2, 2]]
    for shape in ((2, 6, 4, 3), (1, 4, 8, 2)):
        assert_numerically_equivalent(PATCH_MERGING, graph, feeds=_x(*shape))
    # %r1 also read by a Slice on its own axis (a step 2 of a step 2), or by a Neg: only %r0 merges
    same_axis = PATCH_MERGING.replace("Slice(%r1, %o, %end, %a2, %two)", "Slice(%r1, %o, %end, %a1, %two)")
    shared = PATCH_MERGING.replace("  return %y", "  %n: f32[B,?,W,C] = Neg(%r1)\n  return %y, %n")
    for text in (same_axis, shared):
        graph, ctx = _simplified(text)
        assert ctx.rules == {"slice-slice": 2}, ctx.rules
        assert sum(1 for n in graph if n.op_type == "Slice" and n.inputs[0].name == "r1") == 2
        if text is shared:
            assert_numerically_equivalent(text, graph, feeds=_x(2, 6, 6, 3))


def test_one_gathered_dim_in_a_concat_is_a_shape_of_that_dim() -> None:
    """timm's class token: Expand(token, Concat(Unsqueeze(Gather(Shape(t), 0)), 1, 1)): the batch
    entry is Shape(t) up to 1 (3 nodes -> 1); with the Gather also read elsewhere it stays."""
    before = '''graph "g" (%x: f32[B,S,4]) {
  const %i0 = dense<i64[]> [0]
  const %z = dense<i64[1]> [0]
  const %m = dense<i64[1]> [1]
  const %tok = dense<f32[1,1,4]> [1.0, 2.0, 3.0, 4.0]
  %s: i64[3] = Shape(%x)
  %b: i64[] = Gather(%s, %i0) {axis = 0}
  %b1: i64[1] = Unsqueeze(%b, %z)
  %shape: i64[3] = Concat(%b1, %m, %m) {axis = 0}
  %t: f32[B,1,4] = Expand(%tok, %shape)
  %y: f32[B,?,4] = Concat(%t, %x) {axis = 1}
  return %y
}'''
    graph, ctx = _simplified(before)
    assert ctx.rules == {"concat-slices": 1, "slice-shape": 1}, ctx.rules
    shape = next(n for n in graph if n.op_type == "Shape")
    assert dict((k, a.value) for k, a in shape.attributes.items()) == {"end": 1}
    assert [n.op_type for n in graph] == ["Shape", "Concat", "Expand", "Concat"]
    for dims in ((2, 3, 4), (5, 1, 4)):
        assert_numerically_equivalent(before, graph, feeds=_x(*dims))
    shared = before.replace("return %y", "%n: i64[] = Neg(%b)\n  return %y, %n")
    graph, ctx = run_pass("simplify-slices", shared)
    assert "concat-slices" not in ctx.rules, ctx.rules
