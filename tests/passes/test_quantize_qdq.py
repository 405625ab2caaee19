"""quantize-qdq: QuantizeLinear/DequantizeLinear from a calibration table, onnxruntime's placement."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from mlc.errors import BadInputError
from mlc.ir.core import Graph, Node
from mlc.ir.dtypes import DType
from mlc.ir.equality import assert_graph_equal
from mlc.ir.types import TensorType
from mlc.numerics.reference import run_graph
from mlc.onnx_io import export_onnx
from mlc.passes._quant_math import activation_qparams, weight_scales
from mlc.quantize.cache import CalibrationTable, TensorRange, graph_digest, save_table
from mlc.testing import as_graph, run_pass
from tests.passes.test_fuse_batchnorm import dense

# ------------------------------------------------------------------ helpers
SMALL = '''graph "g" (%x: f32[1,2,4,4]) {
  const %w1 = dense<f32[2,2,1,1]> [1.27, -0.5, 0.25, -0.635]
  const %b1 = dense<f32[2]> [0.1, -0.2]
  const %w2 = dense<f32[2,2,1,1]> [0.5, 1.27, -1.27, 0.3]
  const %b2 = dense<f32[2]> [0.0, 0.05]
  const %wg = dense<f32[3,8]> [1.27, 0, 0, 0, 0, 0, 0, 0.5, 0, 0.635, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
  const %bg = dense<f32[3]> [0.5, 0, -0.25]
  %c1: f32[1,2,4,4] = Conv(%x, %w1, %b1) {kernel_shape=[1, 1]} name="conv1"
  %r1: f32[1,2,4,4] = Relu(%c1) name="relu1"
  %p1: f32[1,2,2,2] = MaxPool(%r1) {kernel_shape=[2, 2], strides=[2, 2]} name="pool"
  %c2: f32[1,2,2,2] = Conv(%p1, %w2, %b2) {kernel_shape=[1, 1]} name="conv2"
  %a: f32[1,2,2,2] = Add(%c2, %p1) name="add"
  %f: f32[1,8] = Flatten(%a) name="flatten"
  %y: f32[1,3] = Gemm(%f, %wg, %bg) {transB=1} name="gemm"
  return %y
}'''
# Ranges whose scales are round numbers: x [-1, 1.55] -> 0.01, zp 100; r1 [0, 2.55] -> 0.01, zp 0;
# c2 [-1.27, 1.28] -> 0.01, zp 127; a [-1, 4.1] -> 0.02, zp 50; y [-5.1, 5.1] -> 0.04, zp 128.
SMALL_RANGES = {"x": (-1.0, 1.55), "c1": (-2.0, 3.0), "r1": (0.0, 2.55), "p1": (0.0, 2.55), "c2": (-1.27, 1.28),
                "a": (-1.0, 4.1), "f": (-1.0, 4.1), "y": (-5.1, 5.1)}

# Weights int8 (max|w| per output channel / 127: w1 [0.01, 0.005], w2 [0.01, 0.01], wg [0.01, 0.005,
# and 0.01 for the all-zero row: the largest other scale]); biases int32 at x_scale * w_scale.
# The Relu is folded into conv1's output range; MaxPool and Flatten reuse their input's constants.
SMALL_EXPECTED = '''graph "g" (%x: f32[1,2,4,4]) {
  const %xs = dense<f32[]> [0.01]
  const %xz = dense<u8[]> [100]
  const %cs = dense<f32[]> [0.01]
  const %cz = dense<u8[]> [0]
  const %c2s = dense<f32[]> [0.01]
  const %c2z = dense<u8[]> [127]
  const %as = dense<f32[]> [0.02]
  const %az = dense<u8[]> [50]
  const %ys = dense<f32[]> [0.04]
  const %yz = dense<u8[]> [128]
  const %w1q = dense<i8[2,2,1,1]> [127, -50, 50, -127]
  const %w1s = dense<f32[2]> [0.01, 0.005]
  const %w1z = dense<i8[2]> [0, 0]
  const %b1q = dense<i32[2]> [1000, -4000]
  const %b1s = dense<f32[2]> [1e-04, 5e-05]
  const %b1z = dense<i32[2]> [0, 0]
  const %w2q = dense<i8[2,2,1,1]> [50, 127, -127, 30]
  const %w2s = dense<f32[2]> [0.01, 0.01]
  const %w2z = dense<i8[2]> [0, 0]
  const %b2q = dense<i32[2]> [0, 500]
  const %b2s = dense<f32[2]> [1e-04, 1e-04]
  const %b2z = dense<i32[2]> [0, 0]
  const %wgq = dense<i8[3,8]> [127, 0, 0, 0, 0, 0, 0, 50, 0, 127, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
  const %wgs = dense<f32[3]> [0.01, 0.005, 0.01]
  const %wgz = dense<i8[3]> [0, 0, 0]
  const %bgq = dense<i32[3]> [2500, 0, -1250]
  const %bgs = dense<f32[3]> [0.0002, 1e-04, 0.0002]
  const %bgz = dense<i32[3]> [0, 0, 0]
  %xq: u8[1,2,4,4] = QuantizeLinear(%x, %xs, %xz)
  %xd: f32[1,2,4,4] = DequantizeLinear(%xq, %xs, %xz)
  %w1d: f32[2,2,1,1] = DequantizeLinear(%w1q, %w1s, %w1z) {axis=0}
  %b1d: f32[2] = DequantizeLinear(%b1q, %b1s, %b1z) {axis=0}
  %c1: f32[1,2,4,4] = Conv(%xd, %w1d, %b1d) {kernel_shape=[1, 1]}
  %c1q: u8[1,2,4,4] = QuantizeLinear(%c1, %cs, %cz)
  %c1d: f32[1,2,4,4] = DequantizeLinear(%c1q, %cs, %cz)
  %p1: f32[1,2,2,2] = MaxPool(%c1d) {kernel_shape=[2, 2], strides=[2, 2]}
  %p1q: u8[1,2,2,2] = QuantizeLinear(%p1, %cs, %cz)
  %p1d: f32[1,2,2,2] = DequantizeLinear(%p1q, %cs, %cz)
  %w2d: f32[2,2,1,1] = DequantizeLinear(%w2q, %w2s, %w2z) {axis=0}
  %b2d: f32[2] = DequantizeLinear(%b2q, %b2s, %b2z) {axis=0}
  %c2: f32[1,2,2,2] = Conv(%p1d, %w2d, %b2d) {kernel_shape=[1, 1]}
  %c2q: u8[1,2,2,2] = QuantizeLinear(%c2, %c2s, %c2z)
  %c2d: f32[1,2,2,2] = DequantizeLinear(%c2q, %c2s, %c2z)
  %a: f32[1,2,2,2] = Add(%c2d, %p1d)
  %aq: u8[1,2,2,2] = QuantizeLinear(%a, %as, %az)
  %ad: f32[1,2,2,2] = DequantizeLinear(%aq, %as, %az)
  %f: f32[1,8] = Flatten(%ad)
  %fq: u8[1,8] = QuantizeLinear(%f, %as, %az)
  %fd: f32[1,8] = DequantizeLinear(%fq, %as, %az)
  %wgd: f32[3,8] = DequantizeLinear(%wgq, %wgs, %wgz) {axis=0}
  %bgd: f32[3] = DequantizeLinear(%bgq, %bgs, %bgz) {axis=0}
  %g: f32[1,3] = Gemm(%fd, %wgd, %bgd) {transB=1}
  %yq: u8[1,3] = QuantizeLinear(%g, %ys, %yz)
  %y: f32[1,3] = DequantizeLinear(%yq, %ys, %yz)
  return %y
}'''


def _table(graph: Graph, ranges: dict[str, tuple[float, float]], path: Path) -> str:
    """Write a calibration table for `graph` with hand-given ranges; returns the pass option text."""
    table = CalibrationTable("minmax", graph_digest(graph), "hand", 1,
                             {name: TensorRange(lo, hi) for name, (lo, hi) in ranges.items()})
    save_table(table, path)
    return str(path)


def _float_names(graph: Graph) -> list[str]:
    values = [*graph.inputs, *(o for n in graph for o in n.outputs if o is not None)]
    return [v.name for v in values if isinstance(v.type, TensorType) and v.type.dtype == DType.FLOAT]


def _calibrate(graph: Graph, feeds: dict[str, np.ndarray], path: Path) -> str:
    """Min-max ranges of every float tensor on `feeds` (onnxruntime, intermediates exposed)."""
    names = _float_names(graph)
    values = run_graph(graph, feeds, outputs=names)
    return _table(graph, {n: (float(values[n].min()), float(values[n].max())) for n in names}, path)


def _quantize(text: str | Graph, tmp_path: Path, feeds: dict[str, np.ndarray] | None = None,
              ranges: dict[str, tuple[float, float]] | None = None, **options: object) -> tuple[Graph, Graph, object]:
    """(float graph, quantized graph, context) with ranges calibrated on `feeds` or given."""
    original = as_graph(text)
    graph = as_graph(text) if isinstance(text, str) else original.clone()
    path = tmp_path / "table.json"
    if ranges is not None:
        table = _table(original, ranges, path)
    else:
        assert feeds is not None
        table = _calibrate(original, feeds, path)
    spec = ",".join([f"calibration={table}", *(f"{k}={v}" for k, v in options.items())])
    quantized, ctx = run_pass(f"quantize-qdq{{{spec}}}", graph)
    return original, quantized, ctx


def _sqnr(reference: np.ndarray, got: np.ndarray) -> float:
    noise = float(np.sum((got.astype(np.float64) - reference) ** 2))
    return float(10 * np.log10(np.sum(reference.astype(np.float64) ** 2) / max(noise, 1e-300)))


def _ort_session(graph: Graph, optimized: Path | None = None) -> ort.InferenceSession:
    options = ort.SessionOptions()
    if optimized is not None:
        options.optimized_model_filepath = str(optimized)
    return ort.InferenceSession(export_onnx(graph).SerializeToString(), options, providers=["CPUExecutionProvider"])


def _ops(graph: Graph) -> Counter[str]:
    return Counter(n.op_type for n in graph)


def _cnn(seed: int = 0, channels: int = 8, scale1: np.ndarray | None = None) -> str:
    """Conv+Relu -> MaxPool -> Conv -> Add (residual) -> Relu -> Flatten -> Gemm, random weights."""
    rng = np.random.default_rng(seed)
    c = channels
    w1 = (rng.standard_normal((c, 3, 3, 3)) * 0.3).astype(np.float32)
    if scale1 is not None:
        w1 *= scale1.reshape(-1, 1, 1, 1).astype(np.float32)
    w2 = (rng.standard_normal((c, c, 3, 3)) * 0.15).astype(np.float32)
    wg = (rng.standard_normal((10, c * 16)) * 0.1).astype(np.float32)
    consts = "\n".join([dense("w1", w1), dense("b1", (rng.standard_normal(c) * 0.1).astype(np.float32)),
                        dense("w2", w2), dense("b2", (rng.standard_normal(c) * 0.1).astype(np.float32)),
                        dense("wg", wg), dense("bg", (rng.standard_normal(10) * 0.1).astype(np.float32))])
    return f'''graph "cnn" (%x: f32[16,3,8,8]) {{
{consts}
  %c1: f32[16,{c},8,8] = Conv(%x, %w1, %b1) {{kernel_shape=[3, 3], pads=[1, 1, 1, 1]}} name="conv1"
  %r1: f32[16,{c},8,8] = Relu(%c1) name="relu1"
  %p1: f32[16,{c},4,4] = MaxPool(%r1) {{kernel_shape=[2, 2], strides=[2, 2]}} name="pool"
  %c2: f32[16,{c},4,4] = Conv(%p1, %w2, %b2) {{kernel_shape=[3, 3], pads=[1, 1, 1, 1]}} name="conv2"
  %a: f32[16,{c},4,4] = Add(%c2, %p1) name="add"
  %r2: f32[16,{c},4,4] = Relu(%a) name="relu2"
  %f: f32[16,{c * 16}] = Flatten(%r2) name="flatten"
  %y: f32[16,10] = Gemm(%f, %wg, %bg) {{transB=1}} name="gemm"
  return %y
}}'''


def _feeds(seed: int = 1) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(seed).standard_normal((16, 3, 8, 8)).astype(np.float32)}


def _dq_of(node: Node, index: int) -> Node:
    value = node.inputs[index]
    assert value is not None and value.producer is not None and value.producer.op_type == "DequantizeLinear"
    return value.producer


def _const(node: Node, index: int) -> np.ndarray:
    value = node.inputs[index]
    assert value is not None and value.const is not None
    return np.asarray(value.const.numpy())


# ------------------------------------------------------------------ placement
# By default the Gemm writing the graph output writes it in float: no QDQ pair after it.
SMALL_EXPECTED_FLOAT_OUTPUT = (SMALL_EXPECTED
                               .replace("  const %ys = dense<f32[]> [0.04]\n  const %yz = dense<u8[]> [128]\n", "")
                               .replace("  %g: f32[1,3] = Gemm(%fd, %wgd, %bgd) {transB=1}\n"
                                        "  %yq: u8[1,3] = QuantizeLinear(%g, %ys, %yz)\n"
                                        "  %y: f32[1,3] = DequantizeLinear(%yq, %ys, %yz)\n",
                                        "  %y: f32[1,3] = Gemm(%fd, %wgd, %bgd) {transB=1}\n"))


def test_conv_relu_maxpool_add_gemm_placement(tmp_path: Path) -> None:
    assert SMALL_EXPECTED_FLOAT_OUTPUT.count("QuantizeLinear") == SMALL_EXPECTED.count("QuantizeLinear") - 1
    _, quantized, ctx = _quantize(SMALL, tmp_path, ranges=SMALL_RANGES)
    assert_graph_equal(quantized, as_graph(SMALL_EXPECTED_FLOAT_OUTPUT), check_metadata=False)
    assert [v.name for v in quantized.outputs] == ["y"]
    assert dict(ctx.stats) == {"nodes_quantized": 7, "activations_folded": 1, "tensors_quantized": 6,
                               "weights_quantized": 3, "biases_quantized": 3, "float_outputs": 1}
    assert not ctx.remarks
    assert quantized.model is not None and quantized.model.opset_imports[""] == 17


def test_int8_graph_output_when_float_outputs_is_off(tmp_path: Path) -> None:
    _, quantized, ctx = _quantize(SMALL, tmp_path, ranges=SMALL_RANGES, float_outputs="false")
    assert_graph_equal(quantized, as_graph(SMALL_EXPECTED), check_metadata=False)
    assert [v.name for v in quantized.outputs] == ["y"], "the graph output keeps its name (on the last DQ)"
    assert dict(ctx.stats) == {"nodes_quantized": 7, "activations_folded": 1, "tensors_quantized": 7,
                               "weights_quantized": 3, "biases_quantized": 3}


def test_float_graph_output_runs_as_qgemm_and_is_closer_to_float(tmp_path: Path) -> None:
    """The float logits come from onnxruntime's QGemm itself (no float Gemm left) and are closer to
    the float model's than the ones rounded to 256 levels; a quantized reader of that output
    still gets its own QDQ pair."""
    original, with_float, _ = _quantize(_cnn(0), tmp_path, feeds=_feeds(0))
    _, rounded, _ = _quantize(_cnn(0), tmp_path, feeds=_feeds(0), float_outputs="false")
    optimized = tmp_path / "optimized.onnx"
    _ort_session(with_float, optimized)
    ops = Counter(n.op_type for n in onnx.load(str(optimized)).graph.node)
    assert ops["QGemm"] == 1 and "Gemm" not in ops and "DequantizeLinear" not in ops, ops
    feeds = _feeds(5)
    (expected,) = _ort_session(original).run(None, feeds)
    (got_float,) = _ort_session(with_float).run(None, feeds)
    (got_rounded,) = _ort_session(rounded).run(None, feeds)
    assert _sqnr(expected, got_float) > _sqnr(expected, got_rounded) + 1.0


def test_quantized_cnn_is_close_to_float_under_onnxruntime(tmp_path: Path) -> None:
    """Ranges calibrated (min-max) on the very inputs compared. One 8-bit quantization of a
    Gaussian-like tensor over its min-max range (about ±4σ over 16·C·64 values) has a noise of
    step/√12 = 8σ/255/√12, an SQNR of about 41 dB; the graph chains six such roundings (input, two
    convs, add, gemm, and the weights'), whose noise powers add: 41 - 10·log10(6) ≈ 33 dB expected
    (measured 35-38 dB on seeds 0-2). 25 dB (5.6 % RMS error) leaves room for seeds, and anything wrong in the
    arithmetic (a scale off by a factor, a zero point or axis wrong, a bias at the wrong scale)
    lands far below: the tests below perturb a scale and see < 20 dB."""
    for seed in (0, 1, 2):
        original, quantized, _ = _quantize(_cnn(seed), tmp_path, feeds=_feeds(seed))
        feeds = _feeds(seed)
        (expected,) = _ort_session(original).run(None, feeds)
        reference = run_graph(quantized, feeds)["y"]  # optimizer off: QDQ in float arithmetic
        (int8,) = _ort_session(quantized).run(None, feeds)  # onnxruntime's int8 kernels
        assert _sqnr(expected, reference) > 25, seed
        assert _sqnr(expected, int8) > 25, seed
        # the int8 kernels compute what the QDQ graph means (up to one output quantum of rounding)
        assert np.max(np.abs(int8 - reference)) <= 0.04 * np.max(np.abs(expected)) + 1e-6


def test_a_wrong_scale_is_caught_by_the_sqnr_threshold(tmp_path: Path) -> None:
    """The threshold of the test above is not vacuous: the same graph with one activation scale
    doubled (its zero point kept) falls below it."""
    original, quantized, _ = _quantize(_cnn(0), tmp_path, feeds=_feeds(0))
    q = next(n for n in quantized if n.op_type == "QuantizeLinear" and n.inputs[0] is not None
             and n.inputs[0].name == "c2")
    scale = q.inputs[1]
    assert scale is not None
    q.set_input(1, quantized.make_constant(np.asarray(_const(q, 1) * 2, np.float32), "wrong"))
    feeds = _feeds(0)
    (expected,) = _ort_session(original).run(None, feeds)
    assert _sqnr(expected, run_graph(quantized, feeds)["y"]) < 20


def test_onnxruntime_picks_its_int8_kernels(tmp_path: Path) -> None:
    _, quantized, _ = _quantize(_cnn(0), tmp_path, feeds=_feeds(0))
    optimized = tmp_path / "optimized.onnx"
    _ort_session(quantized, optimized)
    ops = Counter(n.op_type for n in onnx.load(str(optimized)).graph.node)
    assert ops["QLinearConv"] == 2 and ops["QLinearAdd"] == 1 and ops["QGemm"] == 1, ops
    assert not {"Conv", "Gemm", "Relu", "Add"} & set(ops), ops  # nothing left in float


def test_matmul_weights_per_column_and_activation_products(tmp_path: Path) -> None:
    """A constant B of MatMul is per column (axis 1); a product of two activations (attention's
    Q·Kᵀ) gets QDQ on both operands; onnxruntime runs both as int8 matrix products."""
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((16, 12)) * np.linspace(0.1, 2, 12)).astype(np.float32)
    text = f'''graph "mm" (%x: f32[4,8,16], %k: f32[4,12,8]) {{
{dense("w", w)}
  %h: f32[4,8,12] = MatMul(%x, %w) name="proj"
  %s: f32[4,8,8] = MatMul(%h, %k) name="scores"
  return %s
}}'''
    feeds = {"x": rng.standard_normal((4, 8, 16)).astype(np.float32),
             "k": rng.standard_normal((4, 12, 8)).astype(np.float32)}
    original, quantized, ctx = _quantize(text, tmp_path, feeds=feeds)
    proj = next(n for n in quantized if n.name == "proj")
    dq = _dq_of(proj, 1)
    assert dq.attr("axis") == 1 and _const(dq, 1).shape == (12,) and _const(dq, 0).dtype == np.int8
    np.testing.assert_allclose(_const(dq, 1), np.abs(w).max(axis=0) / 127, rtol=1e-6)
    scores = next(n for n in quantized if n.name == "scores")
    assert all(_dq_of(scores, i).inputs[0].producer.op_type == "QuantizeLinear" for i in (0, 1))  # type: ignore[union-attr]
    assert ctx.stats["nodes_quantized"] == 2
    optimized = tmp_path / "optimized.onnx"
    session = _ort_session(quantized, optimized)
    ops = {n.op_type for n in onnx.load(str(optimized)).graph.node}
    assert "MatMul" not in ops and ops & {"QLinearMatMul", "MatMulInteger", "MatMulIntegerToFloat"}, ops
    (expected,) = _ort_session(original).run(None, feeds)
    assert _sqnr(expected, session.run(None, feeds)[0]) > 25


def test_adds_of_float_producers_stay_float(tmp_path: Path) -> None:
    """An Add whose inputs are both written in float (graph inputs here) gains nothing from QDQ
    (a requantization more, no int8 kernel fed); the Conv after it quantizes its own input."""
    rng = np.random.default_rng(0)
    text = f'''graph "g" (%x: f32[1,2,4,4], %z: f32[1,2,4,4]) {{
{dense("w", (rng.standard_normal((2, 2, 1, 1)) * 0.5).astype(np.float32))}
  %s: f32[1,2,4,4] = Add(%x, %z) name="sum"
  %y: f32[1,2,4,4] = Conv(%s, %w) {{kernel_shape=[1, 1]}} name="conv"
  return %y
}}'''
    feeds = {n: rng.standard_normal((1, 2, 4, 4)).astype(np.float32) for n in ("x", "z")}
    _, quantized, ctx = _quantize(text, tmp_path, feeds=feeds)
    assert "Add 'sum': kept float, no input is int8 already (a float add/concat of float producers stays float)" \
        in ctx.remarks
    add = next(n for n in quantized if n.name == "sum")
    assert [v.name for v in add.inputs if v is not None] == ["x", "z"]
    conv = next(n for n in quantized if n.name == "conv")
    assert _dq_of(conv, 0).inputs[0].producer.inputs[0] is add.outputs[0]  # type: ignore[union-attr]


# ------------------------------------------------------------------ options
def test_per_channel_against_per_tensor(tmp_path: Path) -> None:
    """Channels 100x apart: one scale for the tensor leaves the small channels a few int8 levels."""
    spread = np.array([100, 1, 1, 1, 1, 1, 1, 1], np.float32)
    text = _cnn(0, scale1=spread)
    results = {}
    for per_channel in (True, False):
        original, quantized, _ = _quantize(text, tmp_path, feeds=_feeds(0), per_channel=per_channel)
        conv1 = next(n for n in quantized if n.name == "conv1")
        weight_dq, bias_dq = _dq_of(conv1, 1), _dq_of(conv1, 2)
        if per_channel:
            assert weight_dq.attr("axis") == 0 and _const(weight_dq, 1).shape == (8,)
            assert bias_dq.attr("axis") == 0 and _const(bias_dq, 1).shape == (8,)
        else:
            assert "axis" not in weight_dq.attributes and _const(weight_dq, 1).shape == ()
            assert "axis" not in bias_dq.attributes and _const(bias_dq, 1).shape == ()
        codes = _const(weight_dq, 0)
        results[per_channel] = int(np.abs(codes[1:]).max())
        # conv1's small channels, before its output is quantized: the weights' error alone
        expected = run_graph(original, _feeds(0), outputs=["c1"])["c1"][:, 1:]
        results[("sqnr", per_channel)] = _sqnr(expected, run_graph(quantized, _feeds(0), outputs=["c1"])["c1"][:, 1:])
    assert results[True] == 127 and results[False] <= 4  # the small channels' largest code
    assert results[("sqnr", True)] > results[("sqnr", False)] + 10, results


def test_exclusions_keep_nodes_entirely_in_float(tmp_path: Path) -> None:
    """An excluded node computes in float from float weights; a tensor it reads from a quantized
    producer is that producer's DQ, and its output gets QDQ only for quantized readers."""
    for options, float_nodes in (({"exclude_nodes": "conv2"}, {"conv2"}),
                                 ({"keep_float": "conv2+gemm"}, {"conv2", "gemm"}),
                                 ({"exclude_ops": "Gemm+MaxPool"}, {"gemm", "pool"})):
        original, quantized, ctx = _quantize(_cnn(0), tmp_path, feeds=_feeds(0), **options)
        for node in quantized:
            if node.name in float_nodes:
                for value in node.inputs[1:]:  # weights and biases stay float constants
                    assert value is not None and value.const is not None and value.const.dtype == DType.FLOAT
                if node.name == "gemm":  # nothing reads it quantized: the output stays the float Gemm's
                    assert quantized.outputs[0].producer is node
        assert ctx.stats["nodes_kept_float"] == len(float_nodes), options
        for name in float_nodes:
            assert any(r.startswith(f"{next(n.op_type for n in original if n.name == name)} {name!r}: kept float, "
                                    "excluded") for r in ctx.remarks), ctx.remarks
        (expected,) = _ort_session(original).run(None, _feeds(0))
        assert _sqnr(expected, _ort_session(quantized).run(None, _feeds(0))[0]) > 25
    # a float Gemm reads the DQ of the quantized Flatten's output; its output has no QDQ
    _, quantized, _ = _quantize(_cnn(0), tmp_path, feeds=_feeds(0), exclude_ops="Gemm")
    gemm = next(n for n in quantized if n.name == "gemm")
    assert _dq_of(gemm, 0) is not None and quantized.outputs[0].producer is gemm


def test_tensors_without_a_range_stay_float_with_a_remark(tmp_path: Path) -> None:
    ranges = {k: v for k, v in SMALL_RANGES.items() if k != "c2"}
    _, quantized, ctx = _quantize(SMALL, tmp_path, ranges=ranges)
    conv2 = next(n for n in quantized if n.name == "conv2")
    assert conv2.inputs[1] is not None and conv2.inputs[1].const is not None  # float weight
    assert "Conv 'conv2': kept float, no calibration range for %c2" in ctx.remarks
    assert "Add 'add': kept float, no calibration range for %c2" in ctx.remarks
    assert "Flatten 'flatten': kept float, its input is not quantized" in ctx.remarks
    assert ctx.stats["nodes_kept_float"] == 3
    gemm = next(n for n in quantized if n.name == "gemm")  # its input has a range: quantized again
    assert _dq_of(gemm, 0).inputs[0].producer.op_type == "QuantizeLinear"  # type: ignore[union-attr]


def test_symmetric_and_signed_activations(tmp_path: Path) -> None:
    """Symmetric activations keep the Relu (negative codes would pass it), with QDQ around it;
    s8 symmetric has zero point 0 and scale absmax/127, u8 symmetric zero point 128."""
    for activations, zero_point, dtype in (("s8", 0, np.int8), ("u8", 128, np.uint8)):
        _, quantized, ctx = _quantize(SMALL, tmp_path, ranges=SMALL_RANGES, activations=activations,
                                      symmetric_activations="true")
        assert "relu1" in {n.name for n in quantized} and ctx.stats.get("activations_folded", 0) == 0
        relu = next(n for n in quantized if n.name == "relu1")
        dq = _dq_of(relu, 0)
        assert _const(dq, 2).dtype == dtype and int(_const(dq, 2)) == zero_point
        expected = 3.0 / 127 if activations == "s8" else 6.0 / 255  # c1: [-2, 3]
        assert float(_const(dq, 1)) == pytest.approx(expected, rel=1e-6)
    _, quantized, _ = _quantize(SMALL, tmp_path, ranges=SMALL_RANGES, activations="s8")
    first = next(n for n in quantized if n.op_type == "QuantizeLinear")
    assert _const(first, 2).dtype == np.int8 and int(_const(first, 2)) == -28  # x: -128 + 100


# ------------------------------------------------------------------ biases and degenerate ranges
def test_int32_bias_at_input_times_weight_scale(tmp_path: Path) -> None:
    original, quantized, _ = _quantize(_cnn(0), tmp_path, feeds=_feeds(0))
    for name, x_name in (("conv1", "x"), ("conv2", "p1"), ("gemm", "f")):
        node = next(n for n in quantized if n.name == name)
        bias_dq, weight_dq, x_dq = _dq_of(node, 2), _dq_of(node, 1), _dq_of(node, 0)
        codes, scale, zero_point = _const(bias_dq, 0), _const(bias_dq, 1), _const(bias_dq, 2)
        assert codes.dtype == np.int32 and zero_point.dtype == np.int32 and not zero_point.any()
        expected_scale = (np.float64(_const(x_dq, 1)) * _const(weight_dq, 1).astype(np.float64)).astype(np.float32)
        np.testing.assert_array_equal(scale, expected_scale)
        bias = _const(next(n for n in original if n.name == name), 2)
        np.testing.assert_allclose(codes * scale.astype(np.float64), bias, atol=float(scale.max()) / 2 * 1.0001)
        assert x_name


def test_bias_that_would_overflow_int32_widens_the_weight_scale(tmp_path: Path) -> None:
    """A near-zero input range makes x_scale·w_scale tiny: bias / scale would leave int32. The
    channel's weight scale grows until the bias fits (onnxruntime does the same)."""
    ranges = dict(SMALL_RANGES, x=(-1e-9, 1e-9))
    _, quantized, _ = _quantize(SMALL, tmp_path, ranges=ranges)
    conv1 = next(n for n in quantized if n.name == "conv1")
    codes, scale = _const(_dq_of(conv1, 2), 0), _const(_dq_of(conv1, 2), 1)
    assert np.all(np.abs(codes.astype(np.int64)) < 2**31 - 1) and np.all(scale > 0)
    np.testing.assert_allclose(codes * scale.astype(np.float64), [0.1, -0.2], rtol=1e-3)


def test_degenerate_activation_range_gets_a_valid_nonzero_scale(tmp_path: Path) -> None:
    """A constant-zero activation (hi == lo == 0) is quantized as the unit range [0, 1] (scale
    1/255), never with scale 0; the graph runs and gives finite, right numbers."""
    for low, high in ((0.0, 0.0), (-1e-12, 0.0)):
        params = activation_qparams(low, high, DType.UINT8, False)
        assert params.degenerate and params.scale == pytest.approx(1 / 255) and params.zero_point == 0
    assert activation_qparams(0.0, 0.0, DType.INT8, True).scale == pytest.approx(1 / 127)
    assert activation_qparams(3.0, 3.0, DType.UINT8, False).scale == pytest.approx(3 / 255)  # [0, 3]
    # A Relu that is always 0 (every conv2 output negative): its range is [0, 0].
    text = SMALL.replace("[0.0, 0.05]", "[-50.0, -50.0]").replace(
        '%a: f32[1,2,2,2] = Add(%c2, %p1) name="add"',
        '%z: f32[1,2,2,2] = Relu(%c2) name="relu2"\n  %a: f32[1,2,2,2] = Add(%z, %p1) name="add"')
    ranges = dict(SMALL_RANGES, c2=(-60.0, -40.0), z=(0.0, 0.0))
    original, quantized, ctx = _quantize(text, tmp_path, ranges=ranges)
    assert any("degenerate range [0.0, 0.0]" in r for r in ctx.remarks), ctx.remarks
    scales = [float(_const(n, 1)) for n in quantized if n.op_type == "QuantizeLinear"]
    assert all(s > 0 for s in scales) and len(scales) == 6  # x, c1, p1, c2 (z folded), a, f (y: float output)
    feeds = {"x": np.random.default_rng(0).uniform(-1, 1.5, (1, 2, 4, 4)).astype(np.float32)}
    got = _ort_session(quantized).run(None, feeds)[0]
    (expected,) = _ort_session(original).run(None, feeds)
    assert np.all(np.isfinite(got)) and _sqnr(expected, got) > 25


def test_all_zero_weight_channel(tmp_path: Path) -> None:
    """A channel of zeros takes the largest scale of the others (1.0 when all are zero), so that
    its bias keeps its precision; its codes are 0 and its output is its bias."""
    np.testing.assert_allclose(weight_scales(np.zeros((3, 2, 1, 1), np.float32), 0), [1.0, 1.0, 1.0])
    np.testing.assert_allclose(weight_scales(np.array([[0.0, 0.0], [1.27, 0.5]]).reshape(2, 2, 1, 1), 0),
                               [0.01, 0.01])
    text = SMALL.replace("[1.27, -0.5, 0.25, -0.635]", "[0.0, 0.0, 0.25, -0.635]")
    original, quantized, _ = _quantize(text, tmp_path, ranges=SMALL_RANGES)
    conv1 = next(n for n in quantized if n.name == "conv1")
    weight_dq, bias_dq = _dq_of(conv1, 1), _dq_of(conv1, 2)
    assert _const(weight_dq, 1).tolist() == pytest.approx([0.005, 0.005]) and not _const(weight_dq, 0)[0].any()
    assert float(_const(bias_dq, 0)[0] * _const(bias_dq, 1)[0]) == pytest.approx(0.1, rel=1e-6)
    feeds = {"x": np.random.default_rng(0).uniform(-1, 1.5, (1, 2, 4, 4)).astype(np.float32)}
    got = _ort_session(quantized).run(None, feeds)[0]
    assert np.all(np.isfinite(got))
    (expected,) = _ort_session(original).run(None, feeds)
    assert _sqnr(expected, got) > 25


# ------------------------------------------------------------------ preconditions
def test_opset_below_13_is_raised_when_nothing_changes_meaning(tmp_path: Path) -> None:
    _, quantized, _ = _quantize(as_graph(SMALL, opset=12), tmp_path, ranges=SMALL_RANGES)
    assert quantized.model is not None and quantized.model.opset_imports[""] == 13
    text = SMALL.replace('%y: f32[1,3] = Gemm(%f, %wg, %bg) {transB=1} name="gemm"',
                         '%g: f32[1,3] = Gemm(%f, %wg, %bg) {transB=1} name="gemm"\n'
                         '  %y: f32[1,3] = Softmax(%g) name="softmax"')
    with pytest.raises(BadInputError, match=r"opset 12 is below 13 .* Softmax change meaning"):
        _quantize(as_graph(text, opset=12), tmp_path, ranges=dict(SMALL_RANGES, g=(-5.1, 5.1)))


def test_a_table_for_another_graph_is_refused(tmp_path: Path) -> None:
    other = as_graph(SMALL.replace("[0.5, 0, -0.25]", "[0.5, 0, -0.5]"))
    path = _table(other, SMALL_RANGES, tmp_path / "other.json")
    with pytest.raises(BadInputError, match="made for another graph"):
        run_pass(f"quantize-qdq{{calibration={path}}}", as_graph(SMALL))
    with pytest.raises(BadInputError, match="option calibration"):
        run_pass("quantize-qdq", as_graph(SMALL))


def test_quantized_graph_compiles_for_tvm_llvm(tmp_path: Path) -> None:
    """TVM's ONNX frontend lowers QuantizeLinear/DequantizeLinear (per-axis and int32 ones too)."""
    pytest.importorskip("tvm", reason="apache-tvm is not installed (pip install 'mlc[tvm]')")
    import mlc

    original, quantized, _ = _quantize(_cnn(0), tmp_path, feeds=_feeds(0))
    model = tmp_path / "q.onnx"
    onnx.save(export_onnx(quantized), str(model))
    artifact = mlc.load(mlc.compile(model, "llvm", tmp_path / "out"))
    (got,) = artifact.run(_feeds(0)).values()
    reference = run_graph(quantized, _feeds(0))["y"]
    assert np.max(np.abs(got - reference)) <= 0.05 * np.max(np.abs(reference))


def test_tensorrt_form_keeps_biases_float_and_zero_points_zero(tmp_path: Path) -> None:
    """`int32_bias=false` with signed symmetric activations: what TensorRT's parser takes (int8
    DequantizeLinear only, zero point 0); the bias is the original float constant, numbers close."""
    original, quantized, ctx = _quantize(_cnn(0), tmp_path, feeds=_feeds(0), activations="s8",
                                         symmetric_activations="true", int32_bias="false")
    assert ctx.stats.get("biases_quantized", 0) == 0 and ctx.stats["weights_quantized"] == 3
    for node in quantized:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            zero_point = _const(node, 2)
            assert zero_point.dtype == np.int8 and not zero_point.any(), node.name
    for name in ("conv1", "conv2", "gemm"):
        node = next(n for n in quantized if n.name == name)
        np.testing.assert_array_equal(_const(node, 2), _const(next(n for n in original if n.name == name), 2))
    feeds = _feeds(3)
    expected = _ort_session(original).run(None, feeds)[0]
    got = _ort_session(quantized).run(None, feeds)[0]
    assert _sqnr(expected, got) > 20
