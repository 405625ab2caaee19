"""Folds into float16 constants refuse to lose values (mlc.numerics.narrowing): fuse-batchnorm,
fuse-conv-affine and fold-residual-bias leave the graph as it is, with a remark, when a folded
value would overflow float16 (Inf) or a channel's folded weights would all fall below its
smallest normal; the same models in float32 still fold. No numpy warning is written."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from mlc.ir.core import Graph
from mlc.numerics.compare import FAIL, compare_outputs
from mlc.numerics.reference import run_graph
from mlc.onnx_io.importer import import_onnx
from mlc.pass_api import Numerics, PassContext
from mlc.testing import run_pass
from tests.numerics_hazards.models import conv_bn_fp16, fp16_feeds, reference_outputs, save

F16, F32 = TensorProto.FLOAT16, TensorProto.FLOAT


@pytest.fixture(autouse=True)
def no_numpy_warnings() -> Iterator[None]:
    """`overflow encountered in cast` used to reach stderr from the folds: now any warning fails."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def ops(graph: Graph) -> list[str]:
    return [node.op_type for node in graph]


def same_numbers(before: Graph, after: Graph, feeds: dict[str, np.ndarray]) -> None:
    expected, got = run_graph(before, feeds), run_graph(after, feeds)
    names = [v.name for v in before.outputs]
    renamed = dict(zip(names, [got[v.name] for v in after.outputs], strict=True))
    assert all(np.isfinite(v).all() for v in expected.values()), "the model itself must be finite"
    result = compare_outputs(expected, renamed, Numerics.TOLERANCE, "onnxruntime")
    assert result.verdict != FAIL, [o.describe() for o in result.outputs]


def fold(pass_name: str, path: Path) -> tuple[Graph, Graph, PassContext]:
    before = import_onnx(str(path))
    after, ctx = run_pass(pass_name, import_onnx(str(path)))
    return before, after, ctx


# ===================================================================== fuse-batchnorm
def test_conv_batchnorm_whose_folded_weights_overflow_float16_is_left_unfused(tmp_path: Path) -> None:
    before, after, ctx = fold("fuse-batchnorm", conv_bn_fp16(tmp_path / "m.onnx"))
    assert ops(after) == ["Mul", "Conv", "BatchNormalization"]
    assert ctx.stats["fused"] == 0
    (remark,) = [r for r in ctx.remarks if "overflow" in r]
    assert remark.startswith("batchnorm at 'bn': not applied, Conv 'conv' before it: ")
    assert "folded weights overflow float16 (largest |value| " in remark and "> 65504" in remark
    same_numbers(before, after, fp16_feeds())


def test_onnxruntime_on_the_original_is_finite_where_a_naive_fold_is_not(tmp_path: Path) -> None:
    """The premise of the case: the unfused model is finite, W * s in float16 is not."""
    path = conv_bn_fp16(tmp_path / "m.onnx")
    (y,) = reference_outputs(path, fp16_feeds()).values()
    assert np.isfinite(y).all() and 10 < np.abs(y).max() < 65504
    graph = import_onnx(str(path))
    w = graph.initializers["w"].const.numpy().astype(np.float64)
    scale = 0.3 / np.sqrt(np.float64(np.float16(1e-8)) + 1e-5)
    assert np.abs(w * scale).max() > 65504


def test_the_same_model_in_float32_still_folds(tmp_path: Path) -> None:
    model = onnx.load(str(conv_bn_fp16(tmp_path / "m.onnx")))  # its float32 twin: every tensor widened
    for tensor in model.graph.initializer:
        array = onnx.numpy_helper.to_array(tensor).astype(np.float32)
        tensor.CopyFrom(onnx.numpy_helper.from_array(array, tensor.name))
    for value in [*model.graph.input, *model.graph.output]:
        value.type.tensor_type.elem_type = F32
    onnx.save(model, str(tmp_path / "m32.onnx"))
    before, after, ctx = fold("fuse-batchnorm", tmp_path / "m32.onnx")
    assert ops(after) == ["Mul", "Conv"] and ctx.stats["fused"] == 1
    same_numbers(before, after, {"x": fp16_feeds()["x"].astype(np.float32)})


def conv_bn_scaled(path: Path, weights: np.ndarray, gamma: np.ndarray) -> Path:
    channels = weights.shape[0]
    inits = {"w": weights.astype(np.float16), "gamma": gamma.astype(np.float16),
             "beta": np.zeros(channels, np.float16), "mean": np.zeros(channels, np.float16),
             "var": np.ones(channels, np.float16)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("BatchNormalization", ["c", "gamma", "beta", "mean", "var"], ["y"], name="bn")]
    return save(nodes, inits, {"x": (F16, [1, 2, 4, 4])}, {"y": (F16, [1, channels, 4, 4])}, path)


def test_a_channel_whose_folded_weights_all_underflow_is_left_unfused(tmp_path: Path) -> None:
    weights = np.random.default_rng(0).uniform(0.5, 1.0, (3, 2, 1, 1)) * 1e-2
    gamma = np.array([1.0, 1e-4, 1.0])  # channel 1: W * s ~ 1e-6, below float16's 6.1e-05
    _, after, ctx = fold("fuse-batchnorm", conv_bn_scaled(tmp_path / "m.onnx", weights, gamma))
    assert ops(after) == ["Conv", "BatchNormalization"]
    (remark,) = [r for r in ctx.remarks if "underflow" in r]
    assert "the folded weights of 1 of 3 channels underflow float16" in remark


def test_a_few_tiny_weights_in_a_normal_channel_still_fold(tmp_path: Path) -> None:
    weights = np.random.default_rng(0).uniform(0.5, 1.0, (3, 2, 1, 1))
    weights[1, 0, 0, 0] = 1e-4  # times 0.1: 1e-5 is subnormal, but its channel's largest is 0.1
    before, after, ctx = fold("fuse-batchnorm", conv_bn_scaled(tmp_path / "m.onnx", weights, np.full(3, 0.1)))
    assert ops(after) == ["Conv"] and ctx.stats["fused"] == 1
    same_numbers(before, after, {"x": np.random.default_rng(1).uniform(-1, 1, (1, 2, 4, 4)).astype(np.float16)})


def test_matmul_batchnorm_overflow_is_left_unfused(tmp_path: Path) -> None:
    inits = {"w": np.full((4, 3), 1e3, np.float16), "gamma": np.full(3, 100.0, np.float16),
             "beta": np.zeros(3, np.float16), "mean": np.zeros(3, np.float16), "var": np.ones(3, np.float16)}
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"], name="mm"),
             helper.make_node("BatchNormalization", ["m", "gamma", "beta", "mean", "var"], ["y"], name="bn")]
    path = save(nodes, inits, {"x": (F16, [2, 4])}, {"y": (F16, [2, 3])}, tmp_path / "m.onnx")
    _, after, ctx = fold("fuse-batchnorm", path)
    assert ops(after) == ["MatMul", "BatchNormalization"]
    assert any(r.startswith("batchnorm at 'bn': not applied, MatMul 'mm' before it: 12 of 12 folded weights "
                            "overflow float16") for r in ctx.remarks), ctx.remarks


# ===================================================================== fuse-conv-affine
def test_conv_mul_overflow_is_left_unfused(tmp_path: Path) -> None:
    inits = {"w": np.full((4, 3, 1, 1), 1e3, np.float16), "k": np.full((1, 4, 1, 1), 300.0, np.float16)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"), helper.make_node("Mul", ["c", "k"], ["y"])]
    path = save(nodes, inits, {"x": (F16, [1, 3, 2, 2])}, {"y": (F16, [1, 4, 2, 2])}, tmp_path / "m.onnx")
    before, after, ctx = fold("fuse-conv-affine", path)
    assert ops(after) == ["Conv", "Mul"]
    assert any("folded weights overflow float16" in r for r in ctx.remarks), ctx.remarks
    same_numbers(before, after, {"x": np.full((1, 3, 2, 2), 1e-3, np.float16)})


def test_conv_add_whose_folded_bias_overflows_is_left_unfused(tmp_path: Path) -> None:
    """(conv - 20250 + 60000) + 10000 stays finite; a folded bias 60000 + 10000 is Inf."""
    inits = {"w": np.full((2, 3, 3, 3), -1e3, np.float16), "b": np.full(2, 6e4, np.float16),
             "k": np.full((1, 2, 1, 1), 1e4, np.float16)}
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv"), helper.make_node("Add", ["c", "k"], ["y"])]
    path = save(nodes, inits, {"x": (F16, [1, 3, 3, 3])}, {"y": (F16, [1, 2, 1, 1])}, tmp_path / "m.onnx")
    before, after, ctx = fold("fuse-conv-affine", path)
    assert ops(after) == ["Conv", "Add"]
    assert any("folded biases overflow float16" in r for r in ctx.remarks), ctx.remarks
    same_numbers(before, after, {"x": np.full((1, 3, 3, 3), 0.75, np.float16)})


def test_gemm_mul_overflow_is_left_unfused_and_a_safe_one_folds(tmp_path: Path) -> None:
    def gemm_mul(path: Path, factor: float) -> Path:
        inits = {"w": np.full((4, 3), 1e3, np.float16), "k": np.full(3, factor, np.float16)}
        nodes = [helper.make_node("Gemm", ["x", "w"], ["g"], name="gemm"), helper.make_node("Mul", ["g", "k"], ["y"])]
        return save(nodes, inits, {"x": (F16, [2, 4])}, {"y": (F16, [2, 3])}, path)

    _, after, ctx = fold("fuse-conv-affine", gemm_mul(tmp_path / "big.onnx", 100.0))
    assert ops(after) == ["Gemm", "Mul"] and any("overflow float16" in r for r in ctx.remarks)
    _, after, ctx = fold("fuse-conv-affine", gemm_mul(tmp_path / "ok.onnx", 10.0))
    assert ops(after) == ["Gemm"] and ctx.stats["fused"] == 1


# ===================================================================== fold-residual-bias
def residual_model(path: Path, dtype: int) -> Path:
    """LayerNorm r read by a residual Add(Add(h, b), r) and by MatMul(r, W) + c: folding moves b
    into beta and c becomes c - b @ W = 30000 + 40000, over float16's 65504."""
    np_dtype = np.float16 if dtype == F16 else np.float32
    inits = {"gamma": np.ones(4, np_dtype), "beta": np.zeros(4, np_dtype), "b": np.full(4, -1e4, np_dtype),
             "w": np.ones((4, 4), np_dtype), "c": np.full(4, 3e4, np_dtype)}
    nodes = [helper.make_node("LayerNormalization", ["z", "gamma", "beta"], ["r"], axis=-1, name="ln"),
             helper.make_node("Add", ["h", "b"], ["hb"]), helper.make_node("Add", ["hb", "r"], ["s"]),
             helper.make_node("MatMul", ["r", "w"], ["p"], name="mm"), helper.make_node("Add", ["p", "c"], ["q"])]
    return save(nodes, inits, {"z": (dtype, [1, 2, 4]), "h": (dtype, [1, 2, 4])},
                {"s": (dtype, [1, 2, 4]), "q": (dtype, [1, 2, 4])}, path)


def test_residual_bias_whose_shifted_bias_overflows_is_kept(tmp_path: Path) -> None:
    before, after, ctx = fold("fold-residual-bias", residual_model(tmp_path / "m.onnx", F16))
    assert ops(after) == ops(before) and ctx.stats["folded"] == 0
    assert any(r.startswith("fold-residual-bias at 'ln': not applied, ") and "overflow float16" in r
               for r in ctx.remarks), ctx.remarks
    feeds = {name: np.random.default_rng(i).uniform(-1, 1, (1, 2, 4)).astype(np.float16)
             for i, name in enumerate(("z", "h"))}
    same_numbers(before, after, feeds)


def test_residual_bias_in_float32_still_folds(tmp_path: Path) -> None:
    _, after, ctx = fold("fold-residual-bias", residual_model(tmp_path / "m.onnx", F32))
    assert ctx.stats["folded"] == 1 and ops(after).count("Add") == 2


def test_onnxruntime_reference_of_the_residual_model_is_finite(tmp_path: Path) -> None:
    path = residual_model(tmp_path / "m.onnx", F16)
    feeds = {name: np.random.default_rng(i).uniform(-1, 1, (1, 2, 4)).astype(np.float16)
             for i, name in enumerate(("z", "h"))}
    assert all(np.isfinite(v).all() for v in reference_outputs(path, feeds).values())


# ===================================================================== fold-constants
def add_twice(path: Path, dtype: int) -> Path:
    """y = x * (a + a), a = [6e4, 1]: a + a is Inf in float16 by onnx's rounding, but onnxruntime
    runs float16 Add (no float16 kernel) in float32 and keeps 1.2e5 until the Mul."""
    np_dtype = np.float16 if dtype == F16 else np.float32
    nodes = [helper.make_node("Add", ["a", "a"], ["aa"], name="twice"), helper.make_node("Mul", ["x", "aa"], ["y"])]
    return save(nodes, {"a": np.array([6e4, 1.0], np_dtype)}, {"x": (dtype, [2])}, {"y": (dtype, [2])}, path)


def test_a_constant_fold_that_overflows_float16_is_left_to_run_time(tmp_path: Path) -> None:
    path = add_twice(tmp_path / "m.onnx", F16)
    before, after, ctx = fold("fold-constants", path)
    assert ops(after) == ["Add", "Mul"]
    overflow = "fold-Add at 'twice': not applied, 1 elements of its result overflow to Inf"
    assert any(r.startswith(overflow) for r in ctx.remarks)
    feeds = {"x": np.array([0.25, -0.5], np.float16)}
    assert np.isfinite(reference_outputs(path, feeds)["y"]).all(), "the premise: onnxruntime keeps it finite"
    same_numbers(before, after, feeds)
    _, after32, _ = fold("fold-constants", add_twice(tmp_path / "m32.onnx", F32))
    assert ops(after32) == ["Mul"], "in float32 nothing overflows: it folds"
