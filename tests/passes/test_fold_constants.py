"""fold-constants: constant sub-expressions and static shapes become constants; the size guard holds."""

from __future__ import annotations

import numpy as np
import pytest

from mlc.testing import assert_pass, run_pass
from tests.passes.real_exports import assert_export_numbers, imported


def test_constant_chain_and_static_shape_fold() -> None:
    before = '''graph "g" (%x: f32[2,3]) {
  const %a = dense<f32[3]> [1.0, 2.0, 3.0]
  const %b = dense<f32[3]> [0.5, 0.5, 0.5]
  %s: f32[3] = Mul(%a, %b)
  const %one = dense<i64[1]> [1]
  const %two = dense<i64[1]> [2]
  %n: i64[2] = Shape(%x)
  %last: i64[1] = Slice(%n, %one, %two)
  %y: f32[2,3] = Add(%x, %s)
  %r: f32[2,3] = Reshape(%y, %n)
  return %r, %last
}'''
    expected = '''graph "g" (%x: f32[2,3]) {
  const %s = dense<f32[3]> [0.5, 1.0, 1.5]
  const %one = dense<i64[1]> [1]
  const %two = dense<i64[1]> [2]
  const %n = dense<i64[2]> [2, 3]
  %last: i64[1] = Slice(%n, %one, %two)
  %y: f32[2,3] = Add(%x, %s)
  %r: f32[2,3] = Reshape(%y, %n)
  return %r, %last
}'''
    # %last is a graph output: it stays a node (an initializer cannot stand for a node output there)
    assert_pass("fold-constants", before, expected, folded=2)


def test_constant_node_and_constant_of_shape() -> None:
    before = '''graph "g" (%x: f32[2,2]) {
  %c: f32[] = Constant() {value_float = 2.0}
  %shape: i64[2] = Constant() {value_ints = [2, 2]}
  %z: f32[2,2] = ConstantOfShape(%shape) {value = dense<f32[1]> [3.0]}
  %p: f32[2,2] = Mul(%x, %c)
  %y: f32[2,2] = Add(%p, %z)
  return %y
}'''
    graph, ctx = run_pass("fold-constants", before)
    assert [n.op_type for n in graph] == ["Mul", "Add"], [n.op_type for n in graph]
    splat = graph.nodes[1].inputs[1].const
    assert splat.is_splat and splat.shape == (2, 2) and float(splat.splat_value) == 3.0
    assert ctx.stats["folded"] == 3
    assert_pass("fold-constants", before, '''graph "g" (%x: f32[2,2]) {
  const %c = dense<f32[]> [2.0]
  const %z = dense<f32[2,2]> [3.0, 3.0, 3.0, 3.0]
  %p: f32[2,2] = Mul(%x, %c)
  %y: f32[2,2] = Add(%p, %z)
  return %y
}''')


def test_must_not_change() -> None:
    dynamic = '''graph "g" (%x: f32[N,3]) {
  %n: i64[2] = Shape(%x)
  %r: f32[N,3] = Reshape(%x, %n)
  return %r
}'''
    assert_pass("fold-constants", dynamic, dynamic)  # N is symbolic: Shape stays
    overridable = '''graph "g" (%x: f32[2], %w: f32[2] = dense<f32[2]> [1.0, 1.0]) {
  const %c = dense<f32[2]> [1.0, 1.0]
  %s: f32[2] = Add(%w, %c)
  %y: f32[2] = Mul(%x, %s)
  return %y
}'''
    assert_pass("fold-constants", overridable, overridable)  # %w is an input with a default: not constant
    random = '''graph "g" (%x: f32[2]) {
  %r: f32[2] = RandomUniform() {shape = [2]}
  %y: f32[2] = Add(%x, %r)
  return %y
}'''
    assert_pass("fold-constants", random, random, numeric=False)


def test_growth_and_size_guards_leave_nodes_and_say_why() -> None:
    grows = '''graph "g" (%x: f32[64,64]) {
  const %v = dense<f32[64]> [%s]
  const %reps = dense<i64[2]> [64, 1]
  const %zero = dense<i64[1]> [0]
  %v1: f32[1,64] = Unsqueeze(%v, %zero)
  %t: f32[64,64] = Tile(%v1, %reps)
  %y: f32[64,64] = Add(%x, %t)
  return %y
}'''.replace("[%s]", "[" + ", ".join(str(float(i)) for i in range(64)) + "]")
    graph, ctx = run_pass("fold-constants", grows)
    assert [n.op_type for n in graph] == ["Tile", "Add"], "the Unsqueeze folds, the 16 KB Tile does not"
    assert ctx.stats["skipped_growth"] == 1
    assert any("grow the model" in r and "Tile" in r for r in ctx.remarks), ctx.remarks
    _, small = run_pass("fold-constants{limit=1000}", grows)
    assert small.stats["skipped_size"] == 1
    assert any("limit 1000" in r for r in small.remarks), small.remarks
    _, allowed = run_pass("fold-constants{growth=100000}", grows)
    assert allowed.stats["folded"] == 2


def test_uniform_results_are_stored_as_splats() -> None:
    before = '''graph "g" (%x: f32[256,256]) {
  const %one = dense<f32[]> [1.0]
  const %shape = dense<i64[2]> [256, 256]
  %e: f32[256,256] = Expand(%one, %shape)
  %y: f32[256,256] = Mul(%x, %e)
  return %y
}'''
    graph, ctx = run_pass("fold-constants", before)
    const = graph.nodes[0].inputs[1].const
    assert const.is_splat and const.shape == (256, 256), "256 KB of ones cost one element"
    assert ctx.stats["folded"] == 1


def test_folding_matches_onnxruntime_on_a_real_model(tmp_path) -> None:
    """A ResNet-style light model: the Shape→Gather→Unsqueeze→Concat→Reshape chain before the
    classifier folds, and the numbers stay."""
    import onnx
    from onnx import TensorProto, helper

    from mlc.onnx_io.importer import import_onnx
    from mlc.testing import assert_numerically_equivalent

    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Shape", ["c"], ["s"]),
        helper.make_node("Gather", ["s", "i0"], ["b"], axis=0),
        helper.make_node("Unsqueeze", ["b", "ax"], ["b1"]),
        helper.make_node("Concat", ["b1", "m1"], ["shape"], axis=0),
        helper.make_node("Reshape", ["c", "shape"], ["flat"]),
        helper.make_node("Exp", ["k"], ["ek"]),
        helper.make_node("MatMul", ["flat", "ek"], ["y"]),
    ]
    rng = np.random.default_rng(0)
    inits = [helper.make_tensor("w", TensorProto.FLOAT, [4, 3, 3, 3], rng.standard_normal(108).tolist()),
             helper.make_tensor("i0", TensorProto.INT64, [], [0]),
             helper.make_tensor("ax", TensorProto.INT64, [1], [0]),
             helper.make_tensor("m1", TensorProto.INT64, [1], [-1]),
             helper.make_tensor("k", TensorProto.FLOAT, [64, 5], (rng.standard_normal(320) * 0.1).tolist())]
    graph_proto = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4, 4])],
                                    [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5])], inits)
    model = helper.make_model(graph_proto, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    before = import_onnx(model)
    after = import_onnx(model)
    _, ctx = run_pass("fold-constants", after)
    assert [n.op_type for n in after] == ["Conv", "Reshape", "MatMul"]
    assert ctx.stats["folded"] == 5  # Shape, Gather, Unsqueeze, Concat, Exp
    for seed in (0, 1):
        assert_numerically_equivalent(before, after, seed=seed)


def test_layout_ops_keep_splats_and_match_the_reference() -> None:
    before = '''graph "g" (%x: f32[1,64,1,1]) {
  const %w = dense<f32[64]> [%s]
  const %ax = dense<i64[3]> [0, 2, 3]
  const %shape = dense<i64[2]> [0, -1]
  %u: f32[1,64,1,1] = Unsqueeze(%w, %ax)
  %f: f32[1,64] = Reshape(%u, %shape)
  %q: f32[64] = Squeeze(%f, %zero)
  const %zero = dense<i64[1]> [0]
  %y: f32[1,64,1,1] = Mul(%x, %u)
  %z: f32[64] = Flatten(%q) {axis = 0}
  return %y
}'''.replace("[%s]", "[" + ", ".join(str(float(i)) for i in range(64)) + "]")
    # (Flatten's output is unused and its declared type wrong on purpose: folding computes, not copies, shapes)
    before = before.replace('''  %q: f32[64] = Squeeze(%f, %zero)
  const %zero = dense<i64[1]> [0]''', '''  const %zero = dense<i64[1]> [0]
  %q: f32[64] = Squeeze(%f, %zero)''').replace('''  %z: f32[64] = Flatten(%q) {axis = 0}
''', "")
    graph, ctx = run_pass("fold-constants", before)
    assert ctx.stats["folded"] == 3 and [n.op_type for n in graph] == ["Mul"]
    assert graph.nodes[0].inputs[1].const.shape == (1, 64, 1, 1)
    from mlc.testing import assert_numerically_equivalent

    assert_numerically_equivalent(before, graph)
    splat = '''graph "g" (%x: f32[1,3,1,1]) {
  const %w = dense<f32[3]> [0.5, 0.5, 0.5]
  const %ax = dense<i64[3]> [0, 2, 3]
  %u: f32[1,3,1,1] = Unsqueeze(%w, %ax)
  %y: f32[1,3,1,1] = Mul(%x, %u)
  return %y
}'''
    from mlc.ir.tensor import Tensor
    from mlc.testing import as_graph

    g = as_graph(splat)
    g.initializers["w"].const = Tensor.splat_of(0.5, g.initializers["w"].const.dtype, (3,))
    run_pass("fold-constants", g)
    assert g.nodes[0].inputs[1].const.is_splat and g.nodes[0].inputs[1].const.shape == (1, 3, 1, 1)


def test_sequences_are_not_folded_into_tensors() -> None:
    before = '''graph "g" (%x: f32[2]) {
  %e: seq<f32[*]> = SequenceEmpty() {dtype = 1}
  %s: seq<f32[*]> = SequenceInsert(%e, %x)
  const %zero = dense<i64[]> [0]
  %y: f32[2] = SequenceAt(%s, %zero)
  return %y
}'''
    assert_pass("fold-constants", before, before)


def _dense(array: np.ndarray) -> str:
    return f"dense<f32[{','.join(map(str, array.shape))}]> [{', '.join(repr(float(v)) for v in array.reshape(-1))}]"


def test_a_constant_region_folds_as_a_whole_where_no_node_alone_may() -> None:
    """The dynamo exporter's LSTM recurrence weight: four gate Slices of R, a Concat reordering them
    (PyTorch's i, f, g, o into ONNX's i, o, f, c) and an Unsqueeze. Each Slice alone would add a
    copy of a quarter of R (no growth allowed: growth 0 and no budget); the region replaces R by its reordered self."""
    rng = np.random.default_rng(0)
    w, r = rng.standard_normal((1, 8, 2)).astype(np.float32), rng.standard_normal((8, 2)).astype(np.float32)
    before = f'''graph "g" (%x: f32[3,B,2]) {{
  const %w = {_dense(w)}
  const %r = {_dense(r)}
  const %c0 = dense<i64[1]> [0]
  const %c2 = dense<i64[1]> [2]
  const %c4 = dense<i64[1]> [4]
  const %c6 = dense<i64[1]> [6]
  const %c8 = dense<i64[1]> [8]
  %i: f32[2,2] = Slice(%r, %c0, %c2, %c0)
  %f: f32[2,2] = Slice(%r, %c2, %c4, %c0)
  %g: f32[2,2] = Slice(%r, %c4, %c6, %c0)
  %o: f32[2,2] = Slice(%r, %c6, %c8, %c0)
  %cat: f32[8,2] = Concat(%i, %o, %f, %g) {{axis = 0}}
  %ru: f32[1,8,2] = Unsqueeze(%cat, %c0)
  %y: f32[3,1,B,2] = LSTM(%x, %w, %ru) {{hidden_size = 2}}
  return %y
}}'''
    reordered = np.concatenate([r[0:2], r[6:8], r[2:4], r[4:6]])[None]
    expected = f'''graph "g" (%x: f32[3,B,2]) {{
  const %w = {_dense(w)}
  const %ru = {_dense(reordered)}
  %y: f32[3,1,B,2] = LSTM(%x, %w, %ru) {{hidden_size = 2}}
  return %y
}}'''
    feeds = {"x": rng.standard_normal((3, 2, 2)).astype(np.float32)}
    ctx = assert_pass("fold-constants{growth=0,growth_ratio=0}", before, expected, feeds=feeds, folded=6,
                      folded_in_regions=6)
    assert ctx.stats["skipped_growth"] == 4  # each Slice alone
    # R also read elsewhere: the region would add the reordered copy beside it, and nothing folds.
    shared = before.replace('graph "g" (%x: f32[3,B,2])', 'graph "g" (%x: f32[3,B,2], %x8: f32[8,2])').replace(
        "  %y: f32[3,1,B,2]", "  %keep: f32[8,2] = Add(%x8, %r)\n  %y: f32[3,1,B,2]").replace(
        "return %y", "return %y, %keep")
    _, ctx = run_pass("fold-constants{growth=0,growth_ratio=0}", shared)
    assert ctx.stats["folded"] == 0 and any("constant region of 6 nodes" in r for r in ctx.remarks), ctx.remarks


@pytest.mark.parametrize("name", ["lstm-dynamo", "bilstm-dynamo", "gru-dynamo"])
def test_dynamo_rnn_exports_lose_their_weight_slicing(name: str) -> None:
    graph = imported(name, ("fold-constants",))
    assert not [n for n in graph if all(v is None or v.is_constant for v in n.inputs)]  # the gate reordering
    assert_export_numbers(name, graph)


def _masked_model(width: int, masks: int = 2):
    """Swin's shifted-window attention masks: Where(Not(Equal(Sub(a, b), 0)), -100, 0) over two 1 KiB
    vectors (a 16 KiB result each), added to the scores, which a [16, width] weight then projects."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from mlc.onnx_io.importer import import_onnx

    rng = np.random.default_rng(width)
    nodes, inits = [], [numpy_helper.from_array(rng.standard_normal((16, width)).astype(np.float32), "w"),
                        numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
                        numpy_helper.from_array(np.array(-100.0, np.float32), "minus")]
    scores = "x"
    for m in range(masks):
        ids = rng.integers(0, 4, (16, 16)).astype(np.float32)
        inits += [numpy_helper.from_array(ids.reshape(16, 1, 16), f"a{m}"),
                  numpy_helper.from_array(ids.reshape(16, 16, 1), f"b{m}")]
        nodes += [helper.make_node("Sub", [f"a{m}", f"b{m}"], [f"d{m}"]),
                  helper.make_node("Equal", [f"d{m}", "zero"], [f"e{m}"]),
                  helper.make_node("Not", [f"e{m}"], [f"n{m}"]),
                  helper.make_node("Where", [f"n{m}", "minus", "zero"], [f"mask{m}"]),
                  helper.make_node("Add", [scores, f"mask{m}"], [f"s{m}"])]
        scores = f"s{m}"
    nodes.append(helper.make_node("MatMul", [scores, "w"], ["y"]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [16, 16, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [16, 16, width])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    onnx.checker.check_model(model)
    return import_onnx(onnx.shape_inference.infer_shapes(model))


@pytest.mark.parametrize(("width", "spec", "masks_folded"), [
    (16, "fold-constants", 0),          # 3 KiB of constants: a 14 KiB mask would blow the model up
    (4096, "fold-constants", 1),        # 260 KiB: a 26 KiB budget holds one mask, not two
    (8192, "fold-constants", 2),        # 516 KiB: both masks (28 KiB, 5.4 %)
    (8192, "fold-constants{growth_cap=20000}", 1),
    (8192, "fold-constants{growth_ratio=0}", 0),  # the floor alone: 1 KiB per fold
])
def test_growth_budget_is_a_fraction_of_the_model_with_a_floor_and_a_cap(width: int, spec: str,
                                                                        masks_folded: int) -> None:
    from mlc.testing import assert_numerically_equivalent

    before, after = _masked_model(width), _masked_model(width)
    _, ctx = run_pass(spec, after)
    left = [n.op_type for n in after]
    assert left.count("Where") == 2 - masks_folded, (left, ctx.remarks)
    assert ctx.stats["folded"] == 4 * masks_folded
    if masks_folded < 2:
        assert any("growth budget left" in r for r in ctx.remarks), ctx.remarks
    feeds = {"x": np.random.default_rng(1).standard_normal((16, 16, 16)).astype(np.float32)}
    assert_numerically_equivalent(before, after, feeds=feeds)
