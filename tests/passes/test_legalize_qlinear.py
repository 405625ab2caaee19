"""legalize-qlinear: QLinearMatMul / QLinearConv / MatMulInteger / ConvInteger decomposed.

The numbers are checked against onnxruntime running the ORIGINAL op on seeded random int8/uint8
inputs (MatMulInteger / ConvInteger bit-exact; QLinear* within one unit of the output quantum, the
documented half-way rounding difference), against numpy / the onnx reference evaluator where
onnxruntime has no kernel (per-row zero points, per-channel ConvInteger zero points), and against
the expected outputs of the official ONNX node test cases. Every value the rewrite creates is
checked to carry the dtype and shape onnxruntime actually computes.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from mlc.ir.core import Graph
from mlc.ir.types import TensorType
from mlc.numerics.reference import REFERENCE, run_graph
from mlc.onnx_io.exporter import export_onnx
from mlc.onnx_io.importer import import_onnx
from mlc.pass_api import Numerics, PassContext
from mlc.testing import as_graph, assert_numerically_equivalent, assert_pass, run_pass

P = "legalize-qlinear"
OPS = ("QLinearMatMul", "QLinearConv", "MatMulInteger", "ConvInteger")


# ===================================================================== structure
def test_qlinearmatmul_scalar_scales() -> None:
    """Power-of-two scales make both sides exact, so the quantized outputs must agree bitwise."""
    before = '''graph "g" (%a: u8[2,4], %b: u8[4,3]) {
  const %sa = dense<f32[]> [0.5]
  const %za = dense<u8[]> [3]
  const %sb = dense<f32[]> [0.25]
  const %zb = dense<u8[]> [128]
  const %sy = dense<f32[]> [2.0]
  const %zy = dense<u8[]> [10]
  %y: u8[2,3] = QLinearMatMul(%a, %sa, %za, %b, %sb, %zb, %sy, %zy) name="qmm"
  return %y
}'''
    expected = '''graph "g" (%a: u8[2,4], %b: u8[4,3]) {
  const %sa = dense<f32[]> [0.5]
  const %za = dense<u8[]> [3]
  const %sb = dense<f32[]> [0.25]
  const %zb = dense<u8[]> [128]
  const %sy = dense<f32[]> [2.0]
  const %zy = dense<u8[]> [10]
  %da: f32[2,4] = DequantizeLinear(%a, %sa, %za)
  %db: f32[4,3] = DequantizeLinear(%b, %sb, %zb)
  %m: f32[2,3] = MatMul(%da, %db)
  %y: u8[2,3] = QuantizeLinear(%m, %sy, %zy)
  return %y
}'''
    ctx = assert_pass(P, before, expected, seeds=(0, 1, 2), qlinearmatmul=1)
    assert ctx.rules == {"qlinearmatmul": 1}
    graph, _ = run_pass(P, before)
    assert [v.name for v in graph.outputs] == ["y"], "the model's output keeps its name"
    assert all(n.source == ("qmm",) and n.created_by == "legalize-qlinear/qlinearmatmul" for n in graph)


def test_qlinearconv_per_channel_weights_and_bias() -> None:
    """w's scales run along the output channels (axis 0); the int32 bias is dequantized with
    x_scale * w_scale (folded, zero point 0); the Conv attributes are copied."""
    before = '''graph "g" (%x: u8[1,2,4,4]) {
  const %sx = dense<f32[]> [0.5]
  const %zx = dense<u8[]> [128]
  const %w = dense<i8[2,2,2,2]> [1, -2, 3, -4, 5, -6, 7, -8, 8, 7, -6, 5, -4, 3, -2, 1]
  const %sw = dense<f32[2]> [0.25, 0.5]
  const %zw = dense<i8[2]> [0, 0]
  const %sy = dense<f32[]> [1.0]
  const %zy = dense<u8[]> [100]
  const %bias = dense<i32[2]> [10, -20]
  %y: u8[1,2,4,4] = QLinearConv(%x, %sx, %zx, %w, %sw, %zw, %sy, %zy, %bias) {kernel_shape=[2,2], pads=[1,1,0,0]}
  return %y
}'''
    expected = '''graph "g" (%x: u8[1,2,4,4]) {
  const %sx = dense<f32[]> [0.5]
  const %zx = dense<u8[]> [128]
  const %w = dense<i8[2,2,2,2]> [1, -2, 3, -4, 5, -6, 7, -8, 8, 7, -6, 5, -4, 3, -2, 1]
  const %sw = dense<f32[2]> [0.25, 0.5]
  const %zw = dense<i8[2]> [0, 0]
  const %sy = dense<f32[]> [1.0]
  const %zy = dense<u8[]> [100]
  const %bias = dense<i32[2]> [10, -20]
  const %bias_scale = dense<f32[2]> [0.125, 0.25]
  %dx: f32[1,2,4,4] = DequantizeLinear(%x, %sx, %zx)
  %dw: f32[2,2,2,2] = DequantizeLinear(%w, %sw, %zw) {axis=0}
  %db: f32[2] = DequantizeLinear(%bias, %bias_scale) {axis=0}
  %c: f32[1,2,4,4] = Conv(%dx, %dw, %db) {kernel_shape=[2,2], pads=[1,1,0,0]}
  %y: u8[1,2,4,4] = QuantizeLinear(%c, %sy, %zy)
  return %y
}'''
    assert_pass(P, before, expected, seeds=(0, 1, 2), qlinearconv=1)


def test_one_element_parameters_become_scalars() -> None:
    """TVM's quantize ops take a scalar or an axis-long 1-D parameter: [1] constants are folded
    to scalars, [1] graph inputs reshaped; f16 scales are cast to f32 (QLinearMatMul-21)."""
    before = '''model ir_version=8 opset_import={"": 21}
graph "g" (%a: i8[3,4], %b: i8[4,2], %sb: f16[1]) {
  const %sa = dense<f16[1]> [0.5]
  const %za = dense<i8[1]> [-3]
  const %zb = dense<i8[1]> [0]
  const %sy = dense<f32[1]> [4.0]
  const %zy = dense<i8[1]> [7]
  %y: i8[3,2] = QLinearMatMul(%a, %sa, %za, %b, %sb, %zb, %sy, %zy)
  return %y
}'''
    expected = '''model ir_version=8 opset_import={"": 21}
graph "g" (%a: i8[3,4], %b: i8[4,2], %sb: f16[1]) {
  const %sa1 = dense<f32[]> [0.5]
  const %za1 = dense<i8[]> [-3]
  const %empty = dense<i64[0]> []
  const %zb1 = dense<i8[]> [0]
  const %sy1 = dense<f32[]> [4.0]
  const %zy1 = dense<i8[]> [7]
  %da: f32[3,4] = DequantizeLinear(%a, %sa1, %za1)
  %cast: f32[1] = Cast(%sb) {to=1}
  %sb1: f32[] = Reshape(%cast, %empty)
  %db: f32[4,2] = DequantizeLinear(%b, %sb1, %zb1)
  %m: f32[3,2] = MatMul(%da, %db)
  %y: i8[3,2] = QuantizeLinear(%m, %sy1, %zy1)
  return %y
}'''
    feeds: dict[str, np.ndarray] = {"a": np.arange(-6, 6, dtype=np.int8).reshape(3, 4),
                                    "b": np.arange(-4, 4, dtype=np.int8).reshape(4, 2),
                                    "sb": np.array([0.25], np.float16)}
    # onnxruntime has no QLinearMatMul kernel for f16 scales: the official cases check those numbers
    assert_pass(P, before, expected, numeric=False)
    graph, _ = run_pass(P, before)
    got = run_graph(graph, feeds)["y"]
    exact = (feeds["a"].astype(np.int64) + 3) @ feeds["b"].astype(np.int64) * (0.5 * 0.25 / 4.0)
    np.testing.assert_array_equal(got, np.clip(np.rint(exact) + 7, -128, 127).astype(np.int8))  # ties to even


def test_matmulinteger() -> None:
    """int32 all the way: per-tensor a_zero_point folded to an i32 scalar, per-column b_zero_point to i32[N]."""
    before = '''graph "g" (%a: u8[2,3], %b: i8[3,4]) {
  const %za = dense<u8[1]> [7]
  const %zb = dense<i8[4]> [-3, 0, 5, 127]
  %y: i32[2,4] = MatMulInteger(%a, %b, %za, %zb)
  return %y
}'''
    expected = '''graph "g" (%a: u8[2,3], %b: i8[3,4]) {
  const %za = dense<i32[]> [7]
  const %zb = dense<i32[4]> [-3, 0, 5, 127]
  %ca: i32[2,3] = Cast(%a) {to=6}
  %sa: i32[2,3] = Sub(%ca, %za)
  %cb: i32[3,4] = Cast(%b) {to=6}
  %sb: i32[3,4] = Sub(%cb, %zb)
  %y: i32[2,4] = MatMul(%sa, %sb)
  return %y
}'''
    assert_pass(P, before, expected, seeds=(0, 1, 2), matmulinteger=1)
    no_zero_points = '''graph "g" (%a: i8[2,3], %b: i8[3,4]) {
  const %za = dense<i8[]> [0]
  %y: i32[2,4] = MatMulInteger(%a, %b, %za)
  return %y
}'''
    expected = '''graph "g" (%a: i8[2,3], %b: i8[3,4]) {
  %ca: i32[2,3] = Cast(%a) {to=6}
  %cb: i32[3,4] = Cast(%b) {to=6}
  %y: i32[2,4] = MatMul(%ca, %cb)
  return %y
}'''
    assert_pass(P, no_zero_points, expected)


def test_convinteger_with_a_constant_weight() -> None:
    """w - w_zero_point is folded into a float32 constant; x - x_zero_point is exact in float32;
    the sums are at most 4·255·4 < 2^24, so one float32 Conv is exact."""
    before = '''graph "g" (%x: u8[1,1,3,3]) {
  const %w = dense<u8[1,1,2,2]> [1, 2, 3, 6]
  const %zx = dense<u8[]> [1]
  const %zw = dense<u8[]> [2]
  %y: i32[1,1,2,2] = ConvInteger(%x, %w, %zx, %zw)
  return %y
}'''
    expected = '''graph "g" (%x: u8[1,1,3,3]) {
  const %zx = dense<f32[]> [1.0]
  const %w = dense<f32[1,1,2,2]> [-1.0, 0.0, 1.0, 4.0]
  %cx: f32[1,1,3,3] = Cast(%x) {to=1}
  %sx: f32[1,1,3,3] = Sub(%cx, %zx)
  %c: f32[1,1,2,2] = Conv(%sx, %w)
  %y: i32[1,1,2,2] = Cast(%c) {to=6}
  return %y
}'''
    assert_pass(P, before, expected, seeds=(0, 1, 2), convinteger=1, digit_convs=1)


def test_convinteger_splits_weights_into_digits_when_float32_would_round() -> None:
    """300 products of up to 255·255 exceed 2^24: w - w_zero_point = 16·hi + lo, two exact convs
    combined in int32."""
    before = '''graph "g" (%x: u8[1,300,1,1], %w: u8[1,300,1,1]) {
  %y: i32[1,1,1,1] = ConvInteger(%x, %w) {kernel_shape=[1,1]}
  return %y
}'''
    expected = '''graph "g" (%x: u8[1,300,1,1], %w: u8[1,300,1,1]) {
  const %inv = dense<f32[]> [0.0625]
  const %base = dense<f32[]> [16.0]
  const %weight = dense<i32[]> [16]
  %xf: f32[1,300,1,1] = Cast(%x) {to=1}
  %wf: f32[1,300,1,1] = Cast(%w) {to=1}
  %scaled: f32[1,300,1,1] = Mul(%wf, %inv)
  %hi: f32[1,300,1,1] = Floor(%scaled)
  %back: f32[1,300,1,1] = Mul(%hi, %base)
  %lo: f32[1,300,1,1] = Sub(%wf, %back)
  %c1: f32[1,1,1,1] = Conv(%xf, %hi) {kernel_shape=[1,1]}
  %i1: i32[1,1,1,1] = Cast(%c1) {to=6}
  %s1: i32[1,1,1,1] = Mul(%i1, %weight)
  %c0: f32[1,1,1,1] = Conv(%xf, %lo) {kernel_shape=[1,1]}
  %i0: i32[1,1,1,1] = Cast(%c0) {to=6}
  %y: i32[1,1,1,1] = Add(%s1, %i0)
  return %y
}'''
    feeds = {"x": np.full((1, 300, 1, 1), 255, np.uint8), "w": np.full((1, 300, 1, 1), 255, np.uint8)}
    assert_pass(P, before, expected, feeds=feeds, convinteger=1, digit_convs=2)
    graph, _ = run_pass(P, before)
    assert int(run_graph(graph, feeds)["y"].item()) == 300 * 255 * 255  # 19 507 500 > 2^24


def test_must_not_change() -> None:
    plain = '''graph "g" (%a: f32[2,3], %b: f32[3,2]) {
  %y: f32[2,2] = MatMul(%a, %b)
  %z: f32[2,2] = Relu(%y)
  return %z
}'''
    ctx = assert_pass(P, plain, plain)
    assert ctx.rewrites == 0 and ctx.remarks == []
    per_axis_opset10 = '''model ir_version=8 opset_import={"": 10}
graph "g" (%x: u8[1,2,3,3]) {
  const %sx = dense<f32[]> [0.5]
  const %zx = dense<u8[]> [128]
  const %w = splat<u8[3,2,1,1]> 130
  const %sw = dense<f32[3]> [0.25, 0.5, 0.125]
  const %zw = dense<u8[3]> [128, 128, 128]
  const %sy = dense<f32[]> [1.0]
  const %zy = dense<u8[]> [100]
  %y: u8[1,3,3,3] = QLinearConv(%x, %sx, %zx, %w, %sw, %zw, %sy, %zy) name="conv"
  return %y
}'''
    ctx = assert_pass(P, per_axis_opset10, per_axis_opset10)
    assert ctx.remarks == ["qlinearconv at 'conv': not applied, per-axis quantization needs the axis attribute of "
                           "DequantizeLinear (opset 13), the model imports ai.onnx opset 10"]
    float8 = '''model ir_version=9 opset_import={"": 21}
graph "g" (%a: f8e4m3fn[2,2], %b: f8e4m3fn[2,2]) {
  const %s = dense<f32[]> [1.0]
  const %z = dense<f8e4m3fn[]> [0.0]
  %y: f8e4m3fn[2,2] = QLinearMatMul(%a, %s, %z, %b, %s, %z, %s, %z)
  return %y
}'''
    ctx = assert_pass(P, float8, float8, numeric=False)  # onnxruntime has no float8 QLinearMatMul
    assert ctx.remarks == ["qlinearmatmul at '<QLinearMatMul>': not applied, a %a is f8e4m3fn, not int8/uint8"]
    unknown_weight_shape = '''graph "g" (%x: u8[1,2,3,3], %w: u8[?,2,1,1]) {
  %y: i32[1,?,3,3] = ConvInteger(%x, %w)
  return %y
}'''
    _, ctx = run_pass(P, unknown_weight_shape)
    assert ctx.rewrites == 0 and ctx.remarks == [
        "convinteger at '<ConvInteger>': not applied, the shape of w %w is not known, so the exactness of float32 "
        "cannot be bounded"]
    scale_shape = '''graph "g" (%a: u8[2,4], %b: u8[4,3], %sa: f32[2,1]) {
  const %s = dense<f32[]> [0.5]
  const %z = dense<u8[]> [3]
  %y: u8[2,3] = QLinearMatMul(%a, %sa, %z, %b, %s, %z, %s, %z)
  return %y
}'''
    _, ctx = run_pass(P, scale_shape)  # per row with a scalar zero point that is a constant: fine
    assert ctx.rewrites == 1
    bad = scale_shape.replace("%sa: f32[2,1]", "%sa: f32[2,4]")
    _, ctx = run_pass(P, bad)
    assert ctx.rewrites == 0 and ctx.remarks == [
        "qlinearmatmul at '<QLinearMatMul>': not applied, a scale %sa has shape [2, 4], neither one element nor "
        "along axis 0"]


def test_rewrite_budget_and_subgraphs() -> None:
    before = '''graph "g" (%a: u8[2,3], %b: u8[3,2], %c: bool[]) {
  %y: i32[2,2] = MatMulInteger(%a, %b)
  %z: i32[2,2] = If(%c) {then_branch=graph "then" () {
    %t: i32[2,2] = MatMulInteger(%a, %b)
    return %t
  }, else_branch=graph "else" () {
    %e: i32[2,2] = Add(%y, %y)
    return %e
  }}
  return %y, %z
}'''
    graph, ctx = run_pass(P, before, max_rewrites=1)
    assert ctx.rewrites == 1 and [n.op_type for n in graph.all_nodes()].count("MatMulInteger") == 1
    graph, ctx = run_pass(P, before)
    assert ctx.stats["matmulinteger"] == 2
    for flag in (True, False):
        feeds = {"a": np.arange(6, dtype=np.uint8).reshape(2, 3), "b": np.arange(6, dtype=np.uint8).reshape(3, 2) * 40,
                 "c": np.array(flag)}
        assert_numerically_equivalent(before, graph, Numerics.EXACT, feeds=feeds)


# ===================================================================== against onnxruntime
def _model(op: str, inputs: Sequence[tuple[str, np.ndarray | None]], constants: Sequence[str], out_type: int,
           opset: int = 17, **attributes: Any) -> onnx.ModelProto:
    """One-node model; inputs named in `constants` become initializers, None ones are omitted."""
    names = [name if array is not None else "" for name, array in inputs]
    while names and names[-1] == "":
        names.pop()
    node = helper.make_node(op, names, ["y"], **attributes)
    graph_inputs = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
                    for n, a in inputs if a is not None and n not in constants]
    initializers = [numpy_helper.from_array(a, n) for n, a in inputs if a is not None and n in constants]
    graph = helper.make_graph([node], "g", graph_inputs, [helper.make_tensor_value_info("y", out_type, None)],
                              initializer=initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def _ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> np.ndarray:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return np.asarray(session.run(["y"], feeds)[0])


def _legalize(model: onnx.ModelProto) -> tuple[Graph, PassContext]:
    graph, ctx = run_pass(P, import_onnx(model))
    assert ctx.rewrites == 1, ctx.remarks
    assert not any(n.op_type in OPS for n in graph.all_nodes())
    assert all(n.domain in ("", "ai.onnx") for n in graph.all_nodes())
    return graph, ctx


def _run_typed(graph: Graph, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """Run the legalized graph exposing every node output: each declared type must be what runs."""
    names = [v.name for n in graph for v in n.outputs if v is not None]
    got = run_graph(graph, feeds, outputs=names)
    for node in graph:
        for value in node.outputs:
            assert value is not None and isinstance(value.type, TensorType), f"{node.op_type} output is untyped"
            array = np.asarray(got[value.name])
            assert value.type.dtype.numpy == array.dtype, f"{node.op_type} %{value.name}: {value.type} vs {array.dtype}"
            assert value.type.shape == array.shape, f"{node.op_type} %{value.name}: {value.type} vs {array.shape}"
    return np.asarray(got[graph.outputs[0].name])


def _compare(model: onnx.ModelProto, feeds: dict[str, np.ndarray], tolerance: int,
             expected: np.ndarray | None = None) -> PassContext:
    """The legalized model against onnxruntime on the original (or `expected`), within `tolerance` units."""
    if expected is None:
        expected = _ort(model, feeds)
    graph, ctx = _legalize(model)
    got = _run_typed(graph, feeds)
    assert got.dtype == expected.dtype and got.shape == expected.shape, (got.dtype, got.shape, expected.shape)
    diff = np.abs(got.astype(np.int64) - expected.astype(np.int64))
    worst = np.unravel_index(diff.argmax(), diff.shape)
    assert int(diff.max(initial=0)) <= tolerance, f"max diff {diff.max()} at {worst}"
    if tolerance:
        assert np.count_nonzero(diff) <= max(2, diff.size // 50), f"{np.count_nonzero(diff)} of {diff.size} off by one"
    return ctx


_TYPES = {"u8": np.uint8, "i8": np.int8}


def _ints(rng: np.random.Generator, dtype: Any, shape: Sequence[int]) -> np.ndarray:
    info = np.iinfo(dtype)
    return rng.integers(int(info.min), int(info.max) + 1, size=tuple(shape)).astype(dtype)


def _zero(rng: np.random.Generator, dtype: Any, shape: Sequence[int] = ()) -> np.ndarray:
    lo, hi = (100, 156) if dtype == np.uint8 else (-28, 28)
    return rng.integers(lo, hi, size=tuple(shape)).astype(dtype)


QLINEAR_MATMUL = [
    # a type, b type, a shape, b shape, per-column b, constants
    ("u8", "u8", (5, 7), (7, 6), False, ("sa", "za", "sb", "zb", "sy", "zy")),
    ("u8", "i8", (2, 5, 7), (7, 6), True, ("b", "sb", "zb")),
    ("i8", "i8", (2, 5, 7), (2, 7, 6), False, ()),
    ("u8", "u8", (3, 16), (16, 4), True, ("sa", "za", "b", "sb", "zb", "sy", "zy")),
    ("i8", "i8", (1, 33), (33, 5), True, ("sy", "zy")),
]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("case", QLINEAR_MATMUL, ids=[f"qmm{i}" for i in range(len(QLINEAR_MATMUL))])
def test_qlinearmatmul_matches_onnxruntime(case: tuple[Any, ...], seed: int) -> None:
    a_t, b_t, a_shape, b_shape, per_column, constants = case
    rng = np.random.default_rng(seed)
    ta, tb = _TYPES[a_t], _TYPES[b_t]
    k, n = b_shape[-2], b_shape[-1]
    sa, sb = rng.uniform(0.01, 0.05), rng.uniform(0.01, 0.05)
    sy = sa * sb * 5000.0 * np.sqrt(k) / 40.0  # outputs spread over the quantized range
    b_scale = rng.uniform(0.01, 0.05, n).astype(np.float32) if per_column else np.array(sb, np.float32)
    inputs = [("a", _ints(rng, ta, a_shape)), ("sa", np.array(sa, np.float32)), ("za", _zero(rng, ta)),
              ("b", _ints(rng, tb, b_shape)), ("sb", b_scale), ("zb", _zero(rng, tb, (n,) if per_column else ())),
              ("sy", np.array(sy, np.float32)), ("zy", _zero(rng, ta))]
    model = _model("QLinearMatMul", inputs, constants, helper.np_dtype_to_tensor_dtype(np.dtype(ta)))
    _compare(model, {k: v for k, v in inputs if k not in constants and v is not None}, tolerance=1)


QLINEAR_CONV: list[tuple[str, str, tuple[int, ...], tuple[int, ...], bool, bool, dict[str, Any]]] = [
    # x type, w type, x shape, w shape, per-channel w, bias, attributes
    ("u8", "u8", (1, 3, 6, 6), (4, 3, 3, 3), False, False, {}),
    ("u8", "i8", (2, 4, 7, 7), (6, 4, 3, 3), True, True, {"pads": [1, 1, 1, 1], "strides": [2, 2]}),
    ("i8", "i8", (1, 4, 8, 8), (4, 2, 3, 3), True, True, {"group": 2, "dilations": [2, 2]}),
    ("u8", "u8", (1, 2, 5, 5), (3, 2, 2, 2), True, False, {"auto_pad": "SAME_UPPER"}),
    ("u8", "i8", (1, 3, 9), (2, 3, 3), False, True, {"pads": [2, 0]}),  # 1-D convolution
]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("case", QLINEAR_CONV, ids=[f"qconv{i}" for i in range(len(QLINEAR_CONV))])
def test_qlinearconv_matches_onnxruntime(case: tuple[Any, ...], seed: int) -> None:
    x_t, w_t, x_shape, w_shape, per_channel, bias, attributes = case
    rng = np.random.default_rng(seed)
    tx, tw = _TYPES[x_t], _TYPES[w_t]
    m, terms = w_shape[0], int(np.prod(w_shape[1:]))
    sx, sw = rng.uniform(0.01, 0.05), rng.uniform(0.01, 0.05)
    sy = sx * sw * 5000.0 * np.sqrt(terms) / 40.0
    w_scale = rng.uniform(0.01, 0.05, m).astype(np.float32) if per_channel else np.array(sw, np.float32)
    w_zero = _zero(rng, tw, (m,)) if per_channel else _zero(rng, tw)
    inputs = [("x", _ints(rng, tx, x_shape)), ("sx", np.array(sx, np.float32)), ("zx", _zero(rng, tx)),
              ("w", _ints(rng, tw, w_shape)), ("sw", w_scale), ("zw", w_zero),
              ("sy", np.array(sy, np.float32)), ("zy", _zero(rng, tx)),
              ("B", rng.integers(-5000, 5000, m).astype(np.int32) if bias else None)]
    constants = ("w", "sw", "zw", "B") if seed != 1 else ()  # seed 1: every parameter is a graph input
    model = _model("QLinearConv", inputs, constants, helper.np_dtype_to_tensor_dtype(np.dtype(tx)), **attributes)
    _compare(model, {k: v for k, v in inputs if k not in constants and v is not None}, tolerance=1)


MATMUL_INTEGER = [
    # a type, b type, a shape, b shape, zero points ("none", "scalar", "column"), constants
    ("u8", "u8", (4, 3), (3, 2), "scalar", ()),
    ("u8", "i8", (2, 5, 9), (9, 4), "column", ("b", "zb")),
    ("i8", "u8", (5, 9), (9, 4), "none", ()),
    ("i8", "i8", (2, 3, 40), (2, 40, 7), "scalar", ("za", "zb")),
]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("case", MATMUL_INTEGER, ids=[f"mmi{i}" for i in range(len(MATMUL_INTEGER))])
def test_matmulinteger_is_bit_exact(case: tuple[Any, ...], seed: int) -> None:
    a_t, b_t, a_shape, b_shape, zeros, constants = case
    rng = np.random.default_rng(seed)
    ta, tb = _TYPES[a_t], _TYPES[b_t]
    za = None if zeros == "none" else _zero(rng, ta)
    zb = None if zeros == "none" else _zero(rng, tb, (b_shape[-1],) if zeros == "column" else ())
    inputs = [("a", _ints(rng, ta, a_shape)), ("b", _ints(rng, tb, b_shape)), ("za", za), ("zb", zb)]
    model = _model("MatMulInteger", inputs, constants, onnx.TensorProto.INT32)
    _compare(model, {k: v for k, v in inputs if k not in constants and v is not None}, tolerance=0)


def test_matmulinteger_per_row_zero_point() -> None:
    """A 1-D a_zero_point is per row (onnxruntime has no kernel for it): against numpy."""
    rng = np.random.default_rng(0)
    a, b = _ints(rng, np.uint8, (3, 5)), _ints(rng, np.int8, (5, 4))
    za, zb = np.array([1, 128, 255], np.uint8), np.array([-1, 0, 3, 7], np.int8)
    exact = ((a.astype(np.int64) - za.astype(np.int64)[:, None]) @ (b.astype(np.int64) - zb)).astype(np.int32)
    for constants in (("za", "zb"), ()):
        inputs = [("a", a), ("b", b), ("za", za), ("zb", zb)]
        model = _model("MatMulInteger", inputs, constants, onnx.TensorProto.INT32)
        _compare(model, {k: v for k, v in inputs if k not in constants}, tolerance=0, expected=exact)


def test_qlinearmatmul_per_row_a() -> None:
    """Per-row scale and zero point of a (axis 0 of a 2-D a; no onnxruntime kernel): against numpy."""
    rng = np.random.default_rng(3)
    a, b = _ints(rng, np.uint8, (3, 6)), _ints(rng, np.uint8, (6, 2))
    sa, za = np.array([0.01, 0.02, 0.04], np.float32), np.array([120, 128, 136], np.uint8)
    sb, zb, sy, zy = np.float32(0.03), np.uint8(128), np.float32(0.05), np.uint8(128)
    real = ((a.astype(np.float64) - za[:, None]) * sa[:, None]) @ ((b.astype(np.float64) - zb) * sb)
    exact = np.clip(np.rint(real / sy) + zy, 0, 255).astype(np.uint8)
    inputs = [("a", a), ("sa", sa), ("za", za), ("b", b), ("sb", np.array(sb)), ("zb", np.array(zb)),
              ("sy", np.array(sy)), ("zy", np.array(zy))]
    _compare(_model("QLinearMatMul", inputs, ("sa", "za"), onnx.TensorProto.UINT8), {"a": a, "b": b, "sb": np.array(sb),
             "zb": np.array(zb), "sy": np.array(sy), "zy": np.array(zy)}, tolerance=1, expected=exact)


CONV_INTEGER: list[tuple[str, str, tuple[int, ...], tuple[int, ...], bool, tuple[str, ...], dict[str, Any], int]] = [
    # x type, w type, x shape, w shape, zero points, constants, attributes, expected digit convolutions
    ("u8", "u8", (1, 3, 6, 6), (4, 3, 3, 3), True, ("zx",), {}, 1),
    ("u8", "i8", (2, 4, 7, 7), (5, 4, 3, 3), True, ("w", "zw"), {"pads": [1, 1, 1, 1], "strides": [2, 2]}, 1),
    ("i8", "i8", (1, 4, 8, 8), (4, 2, 3, 3), False, (), {"group": 2, "dilations": [2, 2]}, 1),
    ("i8", "u8", (1, 3, 9), (2, 3, 3), True, ("zx",), {"auto_pad": "SAME_LOWER"}, 1),
    # 576 products · 155 · 255 > 2^24: w split into two digits
    ("u8", "u8", (1, 64, 4, 4), (3, 64, 3, 3), True, ("zx",), {"pads": [1, 1, 1, 1]}, 2),
    ("u8", "i8", (1, 200, 3, 3), (2, 200, 3, 3), True, ("w", "zw"), {}, 2),  # constant w: its own bound
    ("i8", "u8", (1, 520, 3, 3), (2, 520, 3, 3), True, (), {}, 4),  # 4 680 products: x split too
]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("case", CONV_INTEGER, ids=[f"convi{i}" for i in range(len(CONV_INTEGER))])
def test_convinteger_is_bit_exact(case: tuple[Any, ...], seed: int) -> None:
    x_t, w_t, x_shape, w_shape, zeros, constants, attributes, digit_convs = case
    rng = np.random.default_rng(seed)
    tx, tw = _TYPES[x_t], _TYPES[w_t]
    x, w = _ints(rng, tx, x_shape), _ints(rng, tw, w_shape)
    if seed == 1:  # the extremes: the largest |x - zx| and |w - zw| everywhere
        x = np.full(x_shape, np.iinfo(tx).max, tx)
        w = np.full(w_shape, np.iinfo(tw).min, tw)
    inputs = [("x", x), ("w", w), ("zx", _zero(rng, tx) if zeros else None), ("zw", _zero(rng, tw) if zeros else None)]
    model = _model("ConvInteger", inputs, constants, onnx.TensorProto.INT32, **attributes)
    ctx = _compare(model, {k: v for k, v in inputs if k not in constants and v is not None}, tolerance=0)
    assert ctx.stats["digit_convs"] == digit_convs


def test_convinteger_per_channel_weight_zero_point() -> None:
    """onnxruntime has no kernel for a per-channel w_zero_point: the onnx reference evaluator runs the original."""
    rng = np.random.default_rng(5)
    x, w = _ints(rng, np.uint8, (1, 3, 5, 5)), _ints(rng, np.uint8, (4, 3, 2, 2))
    zw = np.array([0, 100, 128, 255], np.uint8)
    for constants in (("w", "zw"), ()):
        inputs = [("x", x), ("w", w), ("zx", np.array(3, np.uint8)), ("zw", zw)]
        model = _model("ConvInteger", inputs, constants, onnx.TensorProto.INT32, pads=[0, 1, 1, 0])
        feeds = {k: v for k, v in inputs if k not in constants}
        expected = run_graph(import_onnx(model), feeds, engine=REFERENCE)["y"]
        _compare(model, feeds, tolerance=0, expected=expected)


def test_exported_model_passes_the_onnx_checker() -> None:
    inputs: list[tuple[str, np.ndarray | None]] = [
        ("x", np.zeros((1, 2, 4, 4), np.uint8)), ("sx", np.array(0.5, np.float32)), ("zx", np.array(1, np.uint8)),
        ("w", np.ones((2, 2, 1, 1), np.int8)), ("sw", np.array([0.5, 0.25], np.float32)), ("zw", np.zeros(2, np.int8)),
        ("sy", np.array(1.0, np.float32)), ("zy", np.array(1, np.uint8)), ("B", np.ones(2, np.int32))]
    graph, _ = _legalize(_model("QLinearConv", inputs, ("w", "sw", "zw", "B"), onnx.TensorProto.UINT8))
    onnx.checker.check_model(export_onnx(graph), full_check=True)


# ===================================================================== ONNX node test cases
# Official cases the pass leaves alone, with the remark it gives: none (every case is rewritten).
_KEPT: dict[str, str] = {}
_PREFIXES = ("test_qlinearmatmul", "test_qlinearconv", "test_matmulinteger", "test_convinteger")


@functools.cache
def _official_cases() -> dict[str, Any]:
    """The ONNX node test cases of the four ops, with inputs and expected outputs in memory
    (importing just their case modules builds them; `collect_testcases()` would build every op's)."""
    import onnx.backend.test.case.node as node_cases

    for module in ("qlinearmatmul", "qlinearconv", "matmulinteger", "convinteger"):
        importlib.import_module(f"onnx.backend.test.case.node.{module}")
    collected = getattr(node_cases, "_NodeTestCases", None)
    if collected is None:
        collected = node_cases.collect_testcases()
    return {c.name: c for c in collected if c.name.startswith(_PREFIXES)}


OFFICIAL = sorted(_official_cases())


def test_official_cases_are_there() -> None:
    assert len(OFFICIAL) >= 12 and set(_KEPT) <= set(OFFICIAL)
    assert {name.split("_")[1] for name in OFFICIAL} == {"qlinearmatmul", "qlinearconv", "matmulinteger",
                                                         "convinteger"}


@pytest.mark.parametrize("name", OFFICIAL)
def test_onnx_node_test_case(name: str) -> None:
    case = _official_cases()[name]
    graph, ctx = run_pass(P, import_onnx(case.model))
    if name in _KEPT:
        assert ctx.rewrites == 0 and ctx.remarks == [_KEPT[name]]
        return
    assert ctx.rewrites == 1, ctx.remarks
    assert not any(n.op_type in OPS for n in graph.all_nodes())
    tolerance = 1 if name.startswith("test_qlinear") else 0
    for inputs, outputs in case.data_sets:
        feeds = {v.name: np.asarray(a) for v, a in zip(case.model.graph.input, inputs, strict=True)}
        got = _run_typed(graph, feeds)
        expected = np.asarray(outputs[0])
        assert got.dtype == expected.dtype and got.shape == expected.shape
        assert int(np.max(np.abs(got.astype(np.int64) - expected.astype(np.int64)))) <= tolerance


def test_textual_graph_round_trip() -> None:
    """The rewritten graph prints and parses back to itself (typed values, no dangling constants)."""
    from mlc.ir.equality import assert_graph_equal
    from mlc.ir.parser import parse_ir
    from mlc.ir.printer import print_ir

    graph, _ = run_pass(P, import_onnx(_official_cases()["test_qlinearconv"].model))
    assert_graph_equal(parse_ir(print_ir(graph, max_elements=None)), as_graph(graph))
