"""quantize-dynamic: int8 weights, activations quantized at run time, in the form onnxruntime fuses."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from mlc.errors import BadInputError
from mlc.ir.core import Graph
from mlc.ir.equality import assert_graph_equal
from mlc.numerics.reference import run_graph
from mlc.onnx_io import export_onnx
from mlc.testing import as_graph, run_pass
from tests.cli.helpers import mlc as run_mlc

# x -> MatMul -> Add(bias) -> x*sigmoid(1.702x) (Gelu's sigmoid form) -> MatMul -> y, and a Gemm
# beside it. Weight columns with max |w| 1.27 and 0.635 give scales 0.01 and 0.005.
SMALL = '''graph "g" (%x: f32[2,5,4]) {
  const %w1 = dense<f32[4,3]> [1.27, 0.635, -0.3, -0.5, 0.2, 1.27, 0.25, -0.635, 0.1, 0.0, 0.1, -0.2]
  const %b1 = dense<f32[3]> [0.1, -0.2, 0.05]
  const %k = dense<f32[]> [1.702]
  const %w2 = dense<f32[3,2]> [0.5, -1.27, 1.27, 0.3, -0.2, 0.1]
  %m: f32[2,5,3] = MatMul(%x, %w1) name="mm1"
  %h: f32[2,5,3] = Add(%m, %b1) name="bias"
  %hk: f32[2,5,3] = Mul(%h, %k) name="scale"
  %s: f32[2,5,3] = Sigmoid(%hk) name="sigmoid"
  %g: f32[2,5,3] = Mul(%h, %s) name="gelu"
  %y: f32[2,5,2] = MatMul(%g, %w2) name="mm2"
  return %y
}'''

# mm1 quantized (per column: scales [0.01, 0.005, 0.01]); mm2 excluded stays float.
SMALL_MM1 = '''graph "g" (%x: f32[2,5,4]) {
  const %wq = dense<i8[4,3]> [127, 127, -30, -50, 40, 127, 25, -127, 10, 0, 20, -20]
  const %ws = dense<f32[3]> [0.01, 0.005, 0.01]
  const %wz = dense<i8[3]> [0, 0, 0]
  const %b1 = dense<f32[3]> [0.1, -0.2, 0.05]
  const %k = dense<f32[]> [1.702]
  const %w2 = dense<f32[3,2]> [0.5, -1.27, 1.27, 0.3, -0.2, 0.1]
  %xq: u8[2,5,4], %xs: f32[], %xz: u8[] = DynamicQuantizeLinear(%x) name="mm1/DynamicQuantizeLinear"
  %mi: i32[2,5,3] = MatMulInteger(%xq, %wq, %xz, %wz) name="mm1/MatMulInteger"
  %mf: f32[2,5,3] = Cast(%mi) {to=1} name="mm1/Cast"
  %sc: f32[3] = Mul(%xs, %ws) name="mm1/Mul"
  %m: f32[2,5,3] = Mul(%mf, %sc) name="mm1/Mul_1"
  %h: f32[2,5,3] = Add(%m, %b1) name="bias"
  %hk: f32[2,5,3] = Mul(%h, %k) name="scale"
  %s: f32[2,5,3] = Sigmoid(%hk) name="sigmoid"
  %g: f32[2,5,3] = Mul(%h, %s) name="gelu"
  %y: f32[2,5,2] = MatMul(%g, %w2) name="mm2"
  return %y
}'''

GEMM = '''graph "g" (%x: f32[3,4]) {
  const %w = dense<f32[2,4]> [1.27, 0.5, -0.2, 0.1, 0.3, -0.635, 0.2, 0.0]
  const %c = dense<f32[2]> [0.5, -0.25]
  %y: f32[3,2] = Gemm(%x, %w, %c) {transB=1, alpha=2.0, beta=0.5} name="gemm"
  return %y
}'''


def _graph(text: str) -> Graph:
    return as_graph(text, opset=17)


def _feeds(graph: Graph, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {v.name: rng.normal(0, 1, tuple(int(d) for d in v.type.shape)).astype(np.float32)  # type: ignore[union-attr]
            for v in graph.inputs}


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _optimized_ops(graph: Graph, tmp_path: Path) -> Counter[str]:
    """The op types onnxruntime runs after its own fusions (ORT_ENABLE_EXTENDED: no NCHWc layouts)."""
    path, optimized = tmp_path / "q.onnx", tmp_path / "q.opt.onnx"
    onnx.save(export_onnx(graph), path)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(optimized)
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return Counter(n.op_type for n in onnx.load(optimized).graph.node)


def test_matmul_becomes_the_integer_chain_with_per_column_int8_weights() -> None:
    graph, ctx = run_pass("quantize-dynamic{exclude_nodes=mm2}", _graph(SMALL))
    assert_graph_equal(graph, _graph(SMALL_MM1), check_metadata=False)
    assert ctx.stats["nodes_quantized"] == 1 and ctx.stats["nodes_kept_float"] == 1
    assert any("mm2" in r and "excluded" in r for r in ctx.remarks)


def test_numbers_stay_close_to_float_and_onnxruntime_fuses_the_dynamic_kernels(tmp_path: Path) -> None:
    source = _graph(SMALL)
    feeds = _feeds(source)
    expected = run_graph(source, feeds)["y"]
    graph, ctx = run_pass("quantize-dynamic", _graph(SMALL))
    assert ctx.stats["nodes_quantized"] == 2 and ctx.stats["weights_quantized"] == 2
    got = run_graph(graph, feeds)["y"]
    assert _cosine(got, expected) > 0.999
    assert np.max(np.abs(got - expected)) < 0.05 * np.max(np.abs(expected))
    ops = _optimized_ops(graph, tmp_path)
    # mm1's bias Add goes into the kernel; the DynamicQuantizeLinear of each MatMul folds in too
    assert ops["DynamicQuantizeMatMul"] == 2, ops
    assert not {"MatMulInteger", "DynamicQuantizeLinear", "Cast", "MatMul"} & set(ops), ops
    assert ops["Add"] == 0, "the bias Add is fused into the kernel"


def test_per_tensor_weights_and_the_unfused_chain_compute_the_same(tmp_path: Path) -> None:
    source = _graph(SMALL)
    feeds = _feeds(source, seed=1)
    graph, _ = run_pass("quantize-dynamic{per_channel=false}", _graph(SMALL))
    zero_points = [n.inputs[3] for n in graph if n.op_type == "MatMulInteger"]
    quantized = {n.outputs[1] for n in graph if n.op_type == "DynamicQuantizeLinear"}
    scales = [n.inputs[1] for n in graph if n.op_type == "Mul" and n.inputs[0] in quantized]
    assert len(zero_points) == len(scales) == 2
    assert all(v.type.shape == () for v in zero_points + scales)  # type: ignore[union-attr]
    path = tmp_path / "q.onnx"
    onnx.save(export_onnx(graph), path)
    fused = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    plain = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    np.testing.assert_allclose(fused, plain, rtol=1e-4, atol=1e-5)
    assert _cosine(plain, run_graph(source, feeds)["y"]) > 0.999


def test_gemm_takes_alpha_transb_and_beta_c_as_the_fused_bias(tmp_path: Path) -> None:
    source = _graph(GEMM)
    feeds = _feeds(source)
    graph, ctx = run_pass("quantize-dynamic", _graph(GEMM))
    assert ctx.stats["nodes_quantized"] == 1
    ops = Counter(n.op_type for n in graph)
    assert ops["Gemm"] == 0 and ops["MatMulInteger"] == 1 and ops["Add"] == 1
    weight = next(v for v in graph.initializers.values() if v.type.dtype.name == "INT8" and v.type.shape == (4, 2))  # type: ignore[union-attr]
    assert weight is not None, "B transposed to [K, N] at compile time"
    got, expected = run_graph(graph, feeds)["y"], run_graph(source, feeds)["y"]
    assert _cosine(got, expected) > 0.999
    assert _optimized_ops(graph, tmp_path)["DynamicQuantizeMatMul"] == 1


def test_exclusions_and_what_cannot_be_quantized_stay_float() -> None:
    graph, ctx = run_pass("quantize-dynamic{exclude_ops=MatMul}", _graph(SMALL))
    assert not ctx.stats["nodes_quantized"] and ctx.stats["nodes_kept_float"] == 2
    assert Counter(n.op_type for n in graph)["MatMul"] == 2
    graph, ctx = run_pass("quantize-dynamic{keep_float=mm1}", _graph(SMALL))
    assert [n.name for n in graph if n.op_type == "MatMul"] == ["mm1"]
    activations = '''graph "g" (%a: f32[2,3], %b: f32[3,2]) {
  %y: f32[2,2] = MatMul(%a, %b) name="mm"
  return %y
}'''
    graph, ctx = run_pass("quantize-dynamic", _graph(activations))
    assert [n.op_type for n in graph] == ["MatMul"] and "not a constant" in ctx.remarks[0]


def test_refuses_an_opset_without_dynamic_quantize_linear() -> None:
    with pytest.raises(BadInputError, match="opset 10"):
        run_pass("quantize-dynamic", as_graph(SMALL, opset=10))


def test_cli_compile_int8_dynamic_and_its_refusal_of_calibration_data(capfd, tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"
    onnx.save(export_onnx(_graph(SMALL)), model)
    out = tmp_path / "m.ort"
    code, stdout, err = run_mlc(capfd, "compile", model, "--target", "onnxruntime", "--quantize", "int8-dynamic",
                                "-o", out)
    assert code == 0, err
    assert "lossy: output cosine 0.99" in stdout, stdout
    ops = Counter(n.op_type for n in onnx.load(out / "model.onnx").graph.node)
    assert ops["DynamicQuantizeLinear"] == 2 and ops["MatMulInteger"] == 2 and not ops["MatMul"]
    code, _, err = run_mlc(capfd, "compile", model, "--target", "onnxruntime", "--quantize", "int8-dynamic",
                           "--calibration-data", "random", "-o", tmp_path / "other")
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "--calibration-data" in lines[0], err
    assert not (tmp_path / "other").exists()
