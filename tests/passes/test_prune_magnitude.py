"""prune-magnitude: per-layer, global and N:M magnitude pruning of Conv/Gemm/MatMul weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from mlc.errors import BadInputError
from mlc.ir.core import Graph
from mlc.ir.printer import print_ir
from mlc.numerics.reference import run_graph
from mlc.onnx_io import import_onnx, save_onnx
from mlc.pass_api import parse_pass_spec
from mlc.passes.prune_magnitude import nm_mask, smallest, target_count
from mlc.prune import model_stats
from mlc.testing import as_graph, assert_pass, run_pass

MODELS = Path(__file__).resolve().parents[2] / "models"

# Layer scope, 0.5: w1 loses its 4 smallest |w| (0.05, 0.1, 0.2, 0.3), w2 its 2 smallest (1, 10);
# the bias b1 (smaller than any weight) is never pruned.
TWO_LAYERS = '''graph "g" (%x: f32[3,4]) {
  const %w1 = dense<f32[2,4]> [0.1, -0.5, 0.3, -0.2, 0.8, -0.05, 0.6, 0.4]
  const %b1 = dense<f32[2]> [0.01, -0.02]
  %h: f32[3,2] = Gemm(%x, %w1, %b1) {transB=1} name="fc1"
  const %w2 = dense<f32[2,2]> [10.0, -20.0, 30.0, 1.0]
  %y: f32[3,2] = MatMul(%h, %w2) name="fc2"
  return %y
}'''


def _with(text: str, **weights: str) -> str:
    """TWO_LAYERS (or `text`) with the named weights' values replaced."""
    for name, values in weights.items():
        start = text.index(f"const %{name} = ")
        open_at = text.index("> [", start) + 3
        text = text[:open_at] + values + text[text.index("]", open_at):]
    return text


def _prune(spec: str, before: str, expected: str, **stats: int) -> list[str]:
    # lossy on purpose: a 2x4 weight losing half its entries is not within any cosine gate
    ctx = assert_pass(spec, before, expected, numeric=False, **stats)
    return ctx.remarks


# ----------------------------------------------------------------- unstructured
def test_layer_scope_zeroes_each_weights_smallest_half() -> None:
    expected = _with(TWO_LAYERS, w1="0.0, -0.5, 0.0, 0.0, 0.8, 0.0, 0.6, 0.4", w2="0.0, -20.0, 30.0, 0.0")
    _prune("prune-magnitude", TWO_LAYERS, expected, weights_zeroed=6, layers_pruned=2)
    # 0.25: floor(0.25 * 8) = 2 of w1 (0.05, 0.1), floor(0.25 * 4) = 1 of w2 (1.0)
    expected = _with(TWO_LAYERS, w1="0.0, -0.5, 0.3, -0.2, 0.8, 0.0, 0.6, 0.4", w2="10.0, -20.0, 30.0, 0.0")
    _prune("prune-magnitude{sparsity=0.25}", TWO_LAYERS, expected, weights_zeroed=3, layers_pruned=2)


def test_global_scope_uses_one_threshold() -> None:
    # the 6 smallest of all 12 magnitudes are all in w1 (w2's are >= 1): w2 keeps every weight
    expected = _with(TWO_LAYERS, w1="0.0, 0.0, 0.0, 0.0, 0.8, 0.0, 0.6, 0.0")
    _prune("prune-magnitude{scope=global}", TWO_LAYERS, expected, weights_zeroed=6, layers_pruned=1)


def test_ties_are_broken_by_position() -> None:
    ties = _with(TWO_LAYERS, w1="-1.0, 1.0, 1.0, -1.0, 1.0, -1.0, -1.0, 1.0", w2="2.0, -2.0, 2.0, -2.0")
    expected = _with(ties, w1="0.0, 0.0, 0.0, 0.0, 1.0, -1.0, -1.0, 1.0", w2="0.0, 0.0, 2.0, -2.0")
    _prune("prune-magnitude", ties, expected, weights_zeroed=6)
    # global: equal magnitudes across layers go in the order the layers appear
    same = _with(TWO_LAYERS, w1="1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0", w2="1.0, 1.0, 1.0, 1.0")
    expected = _with(same, w1="0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0")
    _prune("prune-magnitude{scope=global}", same, expected, weights_zeroed=6)
    for _ in range(3):  # the same bits every time
        graph, _ = run_pass("prune-magnitude{scope=global}", same)
        assert print_ir(graph) == print_ir(as_graph(expected))


def test_existing_zeros_count_and_a_second_run_changes_nothing() -> None:
    sparse = _with(TWO_LAYERS, w1="0.0, -0.5, 0.0, 0.0, 0.8, 0.0, 0.6, 0.4")
    # w1 is already half zeros: only w2 changes
    _prune("prune-magnitude", sparse, _with(sparse, w2="0.0, -20.0, 30.0, 0.0"), weights_zeroed=2, layers_pruned=1)
    once, _ = run_pass("prune-magnitude{sparsity=0.7}", TWO_LAYERS)
    text = print_ir(once)
    again, ctx = run_pass("prune-magnitude{sparsity=0.7}", text)
    assert ctx.rewrites == 0 and print_ir(again) == text


def test_target_count_and_smallest() -> None:
    assert target_count(0.29, 100) == 29 and target_count(0.5, 9) == 4 and target_count(0.0, 10) == 0
    mask = smallest(np.array([3.0, 1.0, 2.0, 1.0, np.nan, 0.0]), 3)
    assert mask.tolist() == [False, True, False, True, False, True]
    assert smallest(np.array([np.nan, 1.0]), 2).all() and not smallest(np.array([1.0]), 0).any()


# ----------------------------------------------------------------- N:M
def test_conv_2_4_along_input_channels() -> None:
    # W [O=2, I=4, 1, 2]: groups of 4 run along I for each (o, kw), not along the flat memory.
    # o=0, kw=0: I-values [1, -4, 2, 3] keep -4, 3; kw=1: [8, 5, -6, 7] keep 8, 7.
    # o=1, kw=0: [0.5, 0.25, -0.75, 1] keep -0.75, 1; kw=1: [2, 2, 2, 2] ties: the last two stay.
    before = '''graph "g" (%x: f32[1,4,3,3]) {
  const %w = dense<f32[2,4,1,2]> [1.0, 8.0, -4.0, 5.0, 2.0, -6.0, 3.0, 7.0, 0.5, 2.0, 0.25, 2.0, -0.75, 2.0, 1.0, 2.0]
  const %b = dense<f32[2]> [0.5, -0.5]
  %y: f32[1,2,3,2] = Conv(%x, %w, %b) {kernel_shape=[1, 2]} name="conv"
  return %y
}'''
    expected = _with(before, w="0.0, 8.0, -4.0, 0.0, 0.0, 0.0, 3.0, 7.0, 0.0, 0.0, 0.0, 0.0, -0.75, 2.0, 1.0, 2.0")
    remarks = _prune("prune-magnitude{pattern=2:4}", before, expected, weights_zeroed=8, layers_pruned=1)
    assert remarks == []
    # a 2:4 along the flat memory would keep [8, 5] of [1, 8, -4, 5] and zero the -4 kept above
    assert nm_mask(np.array([1.0, 8.0, -4.0, 5.0]), 0, 2, 4)[0].tolist() == [True, False, True, False]


def test_conv_transpose_n_m_within_each_group() -> None:
    # W [I=12, O/g=1, 1, 1], group=2: each group sums over its own 6 input channels, so the runs
    # of 4 are [0:4] and [6:10] (then 2 dense each), never [4:8] across the groups' border
    before = '''graph "g" (%x: f32[1,12,2,2]) {
  const %w = dense<f32[12,1,1,1]> [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, -6.0, 5.0, -4.0, 3.0, 2.0, 1.0]
  %y: f32[1,2,2,2] = ConvTranspose(%x, %w) {group=2} name="up"
  return %y
}'''
    expected = _with(before, w="0.0, 0.0, 3.0, 4.0, 5.0, 6.0, -6.0, 5.0, 0.0, 0.0, 2.0, 1.0")
    remarks = _prune("prune-magnitude{pattern=2:4}", before, expected, weights_zeroed=4, layers_pruned=1)
    assert remarks == ["ConvTranspose 'up': weight %w: the last 2 of 6 weights along the reduction axis are left "
                       "dense (6 is not a multiple of 4)"]


GEMMS = '''graph "g" (%x: f32[3,4]) {
  const %b0 = dense<f32[4,2]> [1.0, 4.0, 2.0, -3.0, -5.0, 1.0, 0.5, 2.0]
  %g0: f32[3,2] = Gemm(%x, %b0) name="g0"
  const %b1 = dense<f32[2,4]> [1.0, 4.0, 2.0, -3.0, -5.0, 1.0, 0.5, 2.0]
  %g1: f32[3,2] = Gemm(%x, %b1) {transB=1} name="g1"
  %y: f32[3,2] = Add(%g0, %g1)
  return %y
}'''


def test_gemm_2_4_along_k_for_both_layouts() -> None:
    # transB=0, B [K, N]: the columns [1, 2, -5, 0.5] and [4, -3, 1, 2] -> keep (2, -5) and (4, -3)
    # transB=1, B [N, K]: the rows [1, 4, 2, -3] and [-5, 1, 0.5, 2] -> keep (4, -3) and (-5, 2)
    expected = _with(GEMMS, b0="0.0, 4.0, 2.0, -3.0, -5.0, 0.0, 0.0, 0.0",
                     b1="0.0, 4.0, 0.0, -3.0, -5.0, 0.0, 0.0, 2.0")
    _prune("prune-magnitude{pattern=2:4}", GEMMS, expected, weights_zeroed=8, layers_pruned=2)


def test_matmul_n_m_along_k_and_the_ragged_tail() -> None:
    before = '''graph "g" (%a: f32[2,3,6], %c: f32[2,3,4]) {
  const %w = dense<f32[6,2]> [1.0, -6.0, 2.0, 5.0, 3.0, -4.0, 4.0, 3.0, -9.0, 0.1, 0.2, 0.3]
  %m: f32[2,3,2] = MatMul(%a, %w) name="mm"
  const %wb = dense<f32[2,4,1]> [4.0, 3.0, 2.0, 1.0, 1.0, 2.0, 3.0, 4.0]
  %n: f32[2,3,1] = MatMul(%c, %wb) name="batched"
  return %m, %n
}'''
    # w [K=6, N=2], 1:2 would divide 6; with 2:4 the first 4 rows of K form one group per column
    # (col 0: [1, 2, 3, 4] keep 3, 4; col 1: [-6, 5, -4, 3] keep -6, 5) and rows 4-5 stay dense.
    # wb [2, K=4, 1]: along the second-last axis for each batch: keep [4, 3] and [3, 4].
    expected = _with(before, w="0.0, -6.0, 0.0, 5.0, 3.0, 0.0, 4.0, 0.0, -9.0, 0.1, 0.2, 0.3",
                     wb="4.0, 3.0, 0.0, 0.0, 0.0, 0.0, 3.0, 4.0")
    remarks = _prune("prune-magnitude{pattern=2:4}", before, expected, weights_zeroed=8, layers_pruned=2)
    assert remarks == ["MatMul 'mm': weight %w: the last 2 of 6 weights along the reduction axis are left dense "
                       "(6 is not a multiple of 4)"]
    # 1:2 over K=6 divides evenly: 3 of each column's 6 go
    graph, ctx = run_pass("prune-magnitude{pattern=1:2}", before)
    assert ctx.remarks == [] and np.count_nonzero(graph.initializers["w"].const.numpy() == 0) == 6


def test_pattern_spec_parses_and_bad_options_are_refused() -> None:
    assert parse_pass_spec("prune-magnitude{pattern=2:4}").option("pattern") == "2:4"
    for spec in ("prune-magnitude{pattern=4:2}", "prune-magnitude{pattern=2-4}", "prune-magnitude{pattern=0:4}",
                 "prune-magnitude{sparsity=1.0}", "prune-magnitude{sparsity=-0.1}", "prune-magnitude{scope=model}"):
        with pytest.raises(BadInputError):
            run_pass(spec, TWO_LAYERS)
    # sparsity is ignored with a pattern (it is 1 - N/M)
    run_pass("prune-magnitude{pattern=1:2,sparsity=1.5}", TWO_LAYERS)


def test_fused_forms_are_pruned_like_the_ops_they_fuse() -> None:
    # FusedConv (fuse-conv-activation's output) keeps Conv's layout: 2:4 along I per output channel
    before = '''model ir_version=8 opset_import={"": 17, "com.microsoft": 1}
graph "g" (%x: f32[1,4,3,3]) {
  const %w = dense<f32[2,4,1,1]> [1.0, -4.0, 2.0, 3.0, 8.0, 5.0, -6.0, 7.0]
  %y: f32[1,2,3,3] = com.microsoft::FusedConv(%x, %w) {activation="Relu", kernel_shape=[1, 1]} name="fc"
  return %y
}'''
    _prune("prune-magnitude{pattern=2:4}", before, _with(before, w="0.0, -4.0, 0.0, 3.0, 8.0, 0.0, 0.0, 7.0"),
           weights_zeroed=4, layers_pruned=1)


# ----------------------------------------------------------------- left dense
def test_exclude_nodes_and_min_size() -> None:
    expected = _with(TWO_LAYERS, w1="0.0, -0.5, 0.0, 0.0, 0.8, 0.0, 0.6, 0.4")
    remarks = _prune("prune-magnitude{exclude_nodes=fc2+nothere}", TWO_LAYERS, expected, layers_pruned=1,
                     layers_left_dense=1)
    assert remarks == ["exclude_nodes: the graph has no node named 'nothere'",
                       "MatMul 'fc2': weight %w2 left dense, 'fc2' is in exclude_nodes"]
    remarks = _prune("prune-magnitude{exclude_nodes=fc1+fc2}", TWO_LAYERS, TWO_LAYERS, layers_left_dense=2)
    assert len(remarks) == 2
    remarks = _prune("prune-magnitude{min_size=5}", TWO_LAYERS, _with(TWO_LAYERS, w1="0.0, -0.5, 0.0, 0.0, 0.8, "
                                                                       "0.0, 0.6, 0.4"), layers_left_dense=1)
    assert remarks == ["MatMul 'fc2': weight %w2 left dense, it has 4 weights, fewer than min_size=5"]


def test_must_not_change() -> None:
    cases = {
        "not a constant": '''graph "g" (%x: f32[3,4], %w1: f32[2,4]) {
  const %b1 = dense<f32[2]> [0.01, -0.02]
  %h: f32[3,2] = Gemm(%x, %w1, %b1) {transB=1} name="fc1"
  return %h
}''',
        "also read by Transpose 't' (input 0)": '''graph "g" (%x: f32[3,2]) {
  const %w = dense<f32[2,2]> [1.0, 2.0, 3.0, 4.0]
  %m: f32[3,2] = MatMul(%x, %w) name="mm"
  %t: f32[2,2] = Transpose(%w) name="t"
  %y: f32[3,2] = MatMul(%m, %t)
  return %y
}''',
        "also a graph output": '''graph "g" (%x: f32[3,2]) {
  const %w = dense<f32[2,2]> [1.0, 2.0, 3.0, 4.0]
  %m: f32[3,2] = MatMul(%x, %w) name="mm"
  return %m, %w
}''',
        "is not a float tensor": '''graph "g" (%x: i64[3,2]) {
  const %w = dense<i64[2,2]> [1, 2, 3, 4]
  %m: i64[3,2] = MatMul(%x, %w) name="mm"
  return %m
}''',
    }
    for why, before in cases.items():
        ctx = assert_pass("prune-magnitude", before, before, numeric=False)
        assert ctx.remarks and all("left dense" in r for r in ctx.remarks), ctx.remarks
        assert any(why in r for r in ctx.remarks), (why, ctx.remarks)
    assert_pass("prune-magnitude{sparsity=0.0}", TWO_LAYERS, TWO_LAYERS, numeric=False)


def test_shared_weight_pruned_once_and_conflicting_n_m_layouts() -> None:
    shared = '''graph "g" (%x: f32[3,4], %z: f32[3,4]) {
  const %w = dense<f32[4,4]> [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0]
  %a: f32[3,4] = MatMul(%x, %w) name="a"
  %b: f32[3,4] = MatMul(%z, %w) name="b"
  %y: f32[3,4] = Add(%a, %b)
  return %y
}'''
    expected = _with(shared, w="0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0")
    _prune("prune-magnitude", shared, expected, weights_zeroed=8, layers_pruned=2)
    # a Gemm with transB=1 sums over axis 1, the MatMul over axis 0: no 2:4 layout serves both
    mixed = shared.replace('MatMul(%z, %w) name="b"', 'Gemm(%z, %w) {transB=1} name="b"')
    ctx = assert_pass("prune-magnitude{pattern=2:4}", mixed, mixed, numeric=False)
    assert ctx.remarks == ["MatMul 'a': weight %w left dense, its readers sum over different axes (0, 1): "
                           "no one N:M layout"]
    _prune("prune-magnitude", mixed, _with(mixed, w="0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 9.0, 10.0, 11.0, "
                                                    "12.0, 13.0, 14.0, 15.0, 16.0"), layers_pruned=2)


# ----------------------------------------------------------------- a real model
def _digits() -> tuple[Graph, dict[str, np.ndarray]]:
    data = dict(np.load(MODELS / "digits_cnn.eval.npz"))
    return import_onnx(MODELS / "digits_cnn.onnx"), data


def _accuracy(graph: Graph, data: dict[str, np.ndarray]) -> float:
    (logits,) = run_graph(graph, {"image": data["image"]}).values()
    return float((logits.argmax(1) == data["labels"]).mean())


def test_digits_cnn_half_pruned_runs_and_keeps_accuracy(tmp_path: Path) -> None:
    graph, data = _digits()
    base = _accuracy(graph, data)
    pruned, ctx = run_pass("prune-magnitude{sparsity=0.5}", graph.clone())
    assert ctx.stats["layers_pruned"] == 5 and ctx.remarks == []
    stats = model_stats(pruned)
    for layer in stats.layers:  # the target within rounding: floor(0.5 * n) of n
        assert layer.zeros == layer.weight_elements // 2, layer
    # the digits CNN (98.2 %) keeps 94.7 % with its smallest half gone; zeroing a random half of
    # each layer drops it to 29-53 % (seeds 0-2), the largest half to 12 %
    accuracy = _accuracy(pruned, data)
    assert base - accuracy < 0.05, (base, accuracy)
    # onnxruntime with its own optimizations runs the saved model and agrees with the reference
    path = save_onnx(pruned, tmp_path / "pruned.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"image": data["image"][:16]})
    (want,) = run_graph(pruned, {"image": data["image"][:16]}).values()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_digits_cnn_2_4_every_group_of_four_input_channels() -> None:
    graph, data = _digits()
    pruned, ctx = run_pass("prune-magnitude{pattern=2:4}", graph)
    # the stem Conv has one input channel: no group of 4 to prune
    assert ctx.remarks == ["Conv '/stem/Conv': weight %stem.weight left dense, its reduction axis has 1 weights, "
                           "fewer than 4"]
    for node in pruned:
        if node.op_type not in ("Conv", "Gemm") or node.name == "/stem/Conv":
            continue
        weight = node.inputs[1].const.numpy()  # type: ignore[union-attr]
        along = np.moveaxis(weight, 1, -1)  # Conv: I; Gemm transB=1: K
        groups = along.reshape(*along.shape[:-1], -1, 4)
        assert (np.count_nonzero(groups, axis=-1) <= 2).all(), node.name
    assert _accuracy(pruned, data) > 0.93


def test_random_model_grouped_conv_and_global_scope() -> None:
    """A model built with onnx.helper: a grouped Conv, a Gemm (transB=0) and a batched MatMul."""
    rng = np.random.default_rng(3)
    inits = {"wc": rng.standard_normal((8, 2, 3, 3)), "bc": rng.standard_normal(8),
             "wg": rng.standard_normal((8, 6)), "wm": rng.standard_normal((2, 6, 5))}
    nodes = [helper.make_node("Conv", ["x", "wc", "bc"], ["c"], group=2, pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("GlobalAveragePool", ["c"], ["p"]), helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "wg"], ["g"], name="gemm"),
             helper.make_node("MatMul", ["g", "wm"], ["y"], name="mm")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 5, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 1, 5])],
        [onnx.numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    before = import_onnx(model)
    after, ctx = run_pass("prune-magnitude{sparsity=0.6,scope=global}", before.clone())
    total = sum(v.size for k, v in inits.items() if k != "bc")  # 252 weights; the bias is not one
    zeros = sum(np.count_nonzero(after.initializers[k].const.numpy() == 0) for k in ("wc", "wg", "wm"))
    assert zeros == ctx.stats["weights_zeroed"] == int(0.6 * total) == 151
    kept = np.concatenate([np.abs(after.initializers[k].const.numpy()).ravel() for k in ("wc", "wg", "wm")])
    pruned = np.concatenate([np.abs(v.astype(np.float32)).ravel()[after.initializers[k].const.numpy().ravel() == 0]
                             for k, v in inits.items() if k != "bc"])
    assert pruned.max() <= kept[kept > 0].min()  # one threshold over all layers
    assert np.array_equal(after.initializers["bc"].const.numpy(), inits["bc"].astype(np.float32))
    run_graph(after, {"x": rng.standard_normal((1, 4, 5, 5)).astype(np.float32)})  # still runs
