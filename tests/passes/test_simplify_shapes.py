"""simplify-shapes: runtime reshape targets built from Shape become constants with copied dims."""

from __future__ import annotations

import numpy as np
import pytest

from mlc.testing import assert_numerically_equivalent, assert_pass, run_pass
from tests.passes.real_exports import ALL, assert_export_numbers, imported

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

    graph, ctx = run_pass("simplify-shapes", before)
    reshape = next(n for n in graph if n.op_type == "Reshape")
    assert ctx.stats["reshapes_simplified"] == 1
    assert reshape.inputs[1].const.numpy().tolist() == [0, -1]


def test_allowzero_goes_where_no_output_dim_is_zero() -> None:
    allowzero = BEFORE.replace("Reshape(%x, %t)", "Reshape(%x, %t) {allowzero = 1}")
    graph, ctx = run_pass("simplify-shapes", allowzero)
    reshape = next(n for n in graph if n.op_type == "Reshape")
    assert reshape.inputs[1].const.numpy().tolist() == [0, 0, 4, 32] and "allowzero" not in reshape.attributes
    from mlc.testing import assert_numerically_equivalent

    assert_numerically_equivalent(allowzero, graph, feeds=_x(3, 5, 128))


def test_must_not_change() -> None:
    # allowzero: a literal 0 in the target (an empty output dim) forbids copying with 0
    empty = BEFORE.replace("Reshape(%x, %t)", "Reshape(%x, %t) {allowzero = 1}").replace(
        "const %heads = dense<i64[1]> [4]", "const %heads = dense<i64[1]> [0]").replace(
        "f32[B,S,4,32]", "f32[B,S,0,32]")
    _, ctx = run_pass("simplify-shapes", empty)
    assert ctx.rewrites == 0 and any("neither constant nor copied" in r for r in ctx.remarks), ctx.remarks
    moved = BEFORE.replace("Concat(%b1, %n1, %heads, %size)", "Concat(%n1, %b1, %heads, %size)").replace(
        "f32[B,S,4,32] = Reshape", "f32[S,B,4,32] = Reshape")

    _, ctx = run_pass("simplify-shapes", moved)
    assert ctx.rewrites == 0 and any("neither constant nor copied" in r for r in ctx.remarks), ctx.remarks


# The rewrite tests below keep their made-up dims: the types the analysis derives are
# infer-shapes's subject (tests/passes/test_infer_shapes.py), and one test here checks both at once.
REWRITES_ONLY = "simplify-shapes{refine_types=false}"


def _x(*shape: int) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(len(shape)).standard_normal(shape).astype(np.float32)}


def test_a_static_tail_of_a_shape_folds_and_the_view_becomes_constant() -> None:
    """GPT-2's Conv1D: x.view(-1, x.size(-1)) with Slice(Shape(x), -1) and a Squeeze/Unsqueeze."""
    before = '''graph "g" (%x: f32[B,S,64]) {
  const %m1 = dense<i64[1]> [-1]
  const %end = dense<i64[1]> [9223372036854775807]
  const %ax = dense<i64[1]> [0]
  %s: i64[3] = Shape(%x)
  %last: i64[1] = Slice(%s, %m1, %end, %ax)
  %k: i64[] = Squeeze(%last, %ax)
  %k1: i64[1] = Unsqueeze(%k, %ax)
  %t: i64[2] = Concat(%m1, %k1) {axis = 0}
  %y: f32[unk__1,64] = Reshape(%x, %t)
  return %y
}'''
    # the Concat folds (to [-1, 64]) and the chain it orphans goes with it
    expected = '''graph "g" (%x: f32[B,S,64]) {
  const %m1 = dense<i64[1]> [-1]
  const %end = dense<i64[1]> [9223372036854775807]
  const %ax = dense<i64[1]> [0]
  const %target = dense<i64[2]> [-1, 64]
  %y: f32[unk__1,64] = Reshape(%x, %target)
  return %y
}'''
    ctx = assert_pass(REWRITES_ONLY, before, expected, feeds=_x(3, 5, 64))
    assert ctx.rules == {"fold-shape-value": 1} and ctx.stats["dead_nodes_removed"] == 5, (ctx.rules, ctx.stats)


def test_torch_expand_minus_one_idiom_folds_its_comparison() -> None:
    """x.expand(b, -1, -1): Equal(Concat(b, -1, -1), -1) is [false, true, true] (a dim is never -1)."""
    before = '''graph "g" (%x: f32[B,3], %c: f32[1,1,4]) {
  const %i0 = dense<i64[]> [0]
  const %ax = dense<i64[1]> [0]
  const %m = dense<i64[2]> [-1, -1]
  const %m3 = dense<i64[3]> [-1, -1, -1]
  const %ones = dense<i64[3]> [1, 1, 1]
  %s: i64[2] = Shape(%x)
  %b: i64[] = Gather(%s, %i0) {axis = 0}
  %b1: i64[1] = Unsqueeze(%b, %ax)
  %t: i64[3] = Concat(%b1, %m) {axis = 0}
  %eq: bool[3] = Equal(%t, %m3)
  %w: i64[3] = Where(%eq, %ones, %t)
  %y: f32[unk__1,unk__2,4] = Expand(%c, %w)
  return %y
}'''
    expected = before.replace("Where(%eq, %ones, %t)", "Where(%known, %ones, %t)").replace(
        "  %eq: bool[3] = Equal(%t, %m3)\n", "").replace(
        "  const %ones = dense<i64[3]> [1, 1, 1]\n",
        "  const %ones = dense<i64[3]> [1, 1, 1]\n  const %known = dense<bool[3]> [false, true, true]\n")
    feeds = {"x": np.ones((3, 3), np.float32), "c": np.arange(4, dtype=np.float32).reshape(1, 1, 4)}
    assert_pass(REWRITES_ONLY, before, expected, feeds=feeds, dims_folded=1)


def test_a_reshape_to_its_own_dims_goes() -> None:
    """GPT-2's padding mask: ones of Shape(ids), reshaped to [Gather(Shape(Reshape(ids, [-1, 0])), 0), -1]."""
    before = '''graph "g" (%ids: i64[B,S]) {
  const %flat = dense<i64[2]> [-1, 0]
  const %i0 = dense<i64[]> [0]
  const %ax = dense<i64[1]> [0]
  const %m1 = dense<i64[1]> [-1]
  %s: i64[2] = Shape(%ids)
  %ones: i64[B,S] = ConstantOfShape(%s) {value = dense<i64[1]> [1]}
  %r: i64[unk__1,S] = Reshape(%ids, %flat)
  %rs: i64[2] = Shape(%r)
  %b: i64[] = Gather(%rs, %i0) {axis = 0}
  %b1: i64[1] = Unsqueeze(%b, %ax)
  %t: i64[2] = Concat(%b1, %m1) {axis = 0}
  %mask: i64[unk__1,unk__2] = Reshape(%ones, %t)
  %y: i64[unk__1,unk__2] = Mul(%mask, %r)
  return %y
}'''
    # Reshape(ids, [-1, 0]) is [B, S] too: both go
    expected = '''graph "g" (%ids: i64[B,S]) {
  const %flat = dense<i64[2]> [-1, 0]
  const %i0 = dense<i64[]> [0]
  const %ax = dense<i64[1]> [0]
  const %m1 = dense<i64[1]> [-1]
  %s: i64[2] = Shape(%ids)
  %ones: i64[B,S] = ConstantOfShape(%s) {value = dense<i64[1]> [1]}
  %y: i64[unk__1,unk__2] = Mul(%ones, %ids)
  return %y
}'''
    feeds = {"ids": np.arange(15, dtype=np.int64).reshape(3, 5)}
    assert_pass(REWRITES_ONLY, before, expected, feeds=feeds, reshapes_removed=2)


def test_an_expand_to_its_own_dims_goes() -> None:
    before = '''graph "g" (%x: f32[B,S], %m: f32[B,1]) {
  const %i1 = dense<i64[]> [1]
  const %ax = dense<i64[1]> [0]
  const %one = dense<i64[1]> [1]
  %s: i64[2] = Shape(%x)
  %b: i64[1] = Slice(%s, %ax, %one, %ax)
  %t: i64[2] = Concat(%b, %one) {axis = 0}
  %e: f32[unk__1,unk__2] = Expand(%m, %t)
  %y: f32[B,S] = Add(%x, %e)
  return %y
}'''
    expected = '''graph "g" (%x: f32[B,S], %m: f32[B,1]) {
  const %i1 = dense<i64[]> [1]
  const %ax = dense<i64[1]> [0]
  const %one = dense<i64[1]> [1]
  %y: f32[B,S] = Add(%x, %m)
  return %y
}'''
    feeds = {"x": np.ones((3, 4), np.float32), "m": np.arange(3, dtype=np.float32).reshape(3, 1)}
    assert_pass(REWRITES_ONLY, before, expected, feeds=feeds, expands_removed=1)
    grows = before.replace("Concat(%b, %one)", "Concat(%b, %b)").replace("const %one = dense<i64[1]> [1]",
                                                                          "const %one = dense<i64[1]> [1]")
    assert_pass(REWRITES_ONLY, grows, grows, feeds={"x": np.ones((3, 3), np.float32),
                                                        "m": np.ones((3, 1), np.float32)})


@pytest.mark.parametrize("name", ALL)
def test_real_exports_keep_their_numbers(name: str) -> None:
    graph = imported(name, ("fold-constants", "infer-shapes", "simplify-shapes", "dce"))
    assert_export_numbers(name, graph)
    if name in ("vit-ts", "bert-dynamo"):
        # every Reshape target is a constant
        assert all(n.inputs[1].is_constant for n in graph if n.op_type == "Reshape"), name


def test_the_derived_dims_are_written_into_the_types() -> None:
    """With refine_types (the default), the rewritten view also gets its dims' names."""
    before = '''graph "g" (%x: f32[B,S,64]) {
  const %i0 = dense<i64[]> [0]
  const %ax = dense<i64[1]> [0]
  const %rest = dense<i64[2]> [-1, 16]
  %s: i64[3] = Shape(%x)
  %b: i64[] = Gather(%s, %i0) {axis = 0}
  %b1: i64[1] = Unsqueeze(%b, %ax)
  %t: i64[3] = Concat(%b1, %rest) {axis = 0}
  %y: f32[unk__1,unk__2,16] = Reshape(%x, %t)
  return %y
}'''
    graph, ctx = run_pass("simplify-shapes", before)
    assert ctx.rules == {"refine-type": 1, "reshape-copy-dims": 1}, ctx.rules
    reshape = next(n for n in graph if n.op_type == "Reshape")
    assert reshape.inputs[1].const.numpy().tolist() == [0, -1, 16]
    assert reshape.outputs[0].type.shape == ("B", "4*S", 16)


# TorchScript's F.pad(x, (0, 0, 0, pw, 0, ph)) for a Swin window partition: the pads are computed
# with Mod from x's (static) spatial dims, listed last-dim-first, then reordered to ONNX's order by
# Reshape(-1, 2) → Slice(step -1) → Transpose → Reshape(-1). Batch stays dynamic.
SWIN_PAD = '''graph "g" (%x: f32[B,6,8,3]) {
  const %i1 = dense<i64[]> [1]
  const %i2 = dense<i64[]> [2]
  const %win = dense<i64[]> [4]
  const %ax = dense<i64[1]> [0]
  const %zero = dense<i64[1]> [0]
  const %zeros = dense<i64[2]> [0, 0]
  const %pairs = dense<i64[2]> [-1, 2]
  const %m1 = dense<i64[1]> [-1]
  const %mhuge = dense<i64[1]> [-9223372036854775807]
  %s: i64[4] = Shape(%x)
  %h: i64[] = Gather(%s, %i1) {axis = 0}
  %w: i64[] = Gather(%s, %i2) {axis = 0}
  %hm: i64[] = Mod(%h, %win) {fmod = 0}
  %hr: i64[] = Sub(%win, %hm)
  %ph: i64[] = Mod(%hr, %win) {fmod = 0}
  %wm: i64[] = Mod(%w, %win) {fmod = 0}
  %wr: i64[] = Sub(%win, %wm)
  %pw: i64[] = Mod(%wr, %win) {fmod = 0}
  %ph1: i64[1] = Unsqueeze(%ph, %ax)
  %pw1: i64[1] = Unsqueeze(%pw, %ax)
  %torch: i64[6] = Concat(%zero, %zero, %zero, %pw1, %zero, %ph1) {axis = 0}
  %all: i64[8] = Concat(%torch, %zeros) {axis = 0}
  %rows: i64[4,2] = Reshape(%all, %pairs)
  %rev: i64[4,2] = Slice(%rows, %m1, %mhuge, %zero, %m1)
  %cols: i64[2,4] = Transpose(%rev) {perm = [1, 0]}
  %flat: i64[8] = Reshape(%cols, %m1)
  %p: f32[unk__1,unk__2,unk__3,unk__4] = Pad(%x, %flat) {mode = "constant"}
  %y: f32[unk__1,unk__2,unk__3,unk__4] = Relu(%p)
  return %y
}'''


def test_torchscript_pad_amounts_from_static_dims_fold_and_type_the_pad() -> None:
    """Mod, Slice with a negative step and Transpose keep their values known: the pads become
    one constant and Pad's output dims follow from them (the Swin blocks after it see static
    spatial dims, so their own shape plumbing folds in the same pass)."""
    graph, ctx = run_pass("simplify-shapes", SWIN_PAD)
    pad = next(n for n in graph if n.op_type == "Pad")
    assert pad.inputs[1].is_constant and pad.inputs[1].const.numpy().tolist() == [0, 0, 0, 0, 0, 2, 0, 0]
    assert pad.outputs[0].type.shape == ("B", 8, 8, 3)
    assert not any(n.op_type in ("Shape", "Mod", "Transpose", "Slice") for n in graph), [n.op_type for n in graph]
    assert ctx.rules == {"fold-shape-value": 1, "refine-type": 2}, ctx.rules  # Pad's and Relu's types
    for batch in (2, 3):
        feeds = {"x": np.random.default_rng(batch).standard_normal((batch, 6, 8, 3)).astype(np.float32)}
        assert_numerically_equivalent(SWIN_PAD, graph, feeds=feeds)
