"""convert-fp16: float16 compute behind a float32 interface, with normalizations, softmax,
reductions, range amplifiers, large-range constants and activations kept in float32.

BEFORE / EXPECTED in textual IR for the rule's cases; numbers measured against the float32
original on onnxruntime CPU and with per-op float16 rounding (onnx.reference; see `errors` for why
both), as cosine and max error relative to the output's scale, bounds asserted; real exports from
the model zoo when cached; `--precision fp16` through the pipeline builder, `mlc compile`
(onnxruntime, llvm) and the manifest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mlc.errors import BadInputError
from mlc.ir.core import Graph
from mlc.ir.dtypes import DType
from mlc.ir.printer import format_type
from mlc.ir.types import TensorType
from mlc.numerics.inputs import InputSpec, make_inputs
from mlc.numerics.reference import ORT, REFERENCE, run_graph
from mlc.onnx_io.importer import import_onnx
from mlc.pass_api import PassContext
from mlc.passes._fp16_rules import constant_problem
from mlc.testing import as_graph, assert_pass, run_pass
from tests.cli.helpers import ROOT
from tests.cli.helpers import mlc as run_mlc

ZOO = Path.home() / ".cache" / "mlc-zoo"
CNN = ROOT / "models" / "digits_cnn.onnx"
MLP = ROOT / "models" / "digits_mlp.onnx"


# ----------------------------------------------------------------- helpers
def errors(before: Graph | str, after: Graph, feeds_list: list[dict[str, np.ndarray]] | None = None,
           engine: str = ORT) -> tuple[float, float]:
    """(least cosine, largest max|error| / max|reference|) over the float outputs: the fp16 graph
    under `engine` vs the float32 original under onnxruntime CPU (optimizer off), on seeded inputs
    or `feeds_list`.

    onnxruntime's CPU kernels are mostly float32: its InsertCastTransformer (on even with the
    optimizer off) runs a float16 op without a CPU kernel in float32 and drops the f32 -> f16 -> f32
    cast pairs between such ops, so on CPU it measures mostly the weights' rounding. onnx.reference
    rounds every op's result to float16 (numpy's float16), as a GPU does: `engine=REFERENCE` is the
    stricter measure, used beside onnxruntime's below."""
    original = as_graph(before)
    feeds_list = feeds_list or [make_inputs(original, InputSpec(seed=s)) for s in (0, 1)]
    cosine, relative = 1.0, 0.0
    for feeds in feeds_list:
        expected, got = run_graph(original, feeds), run_graph(after, feeds, engine=engine)
        for name, want in expected.items():
            have = got[name]
            assert have.dtype == want.dtype, f"{name}: {have.dtype}, the interface says {want.dtype}"
            if want.dtype.kind != "f":
                continue
            e64, a64 = want.astype(np.float64).ravel(), have.astype(np.float64).ravel()
            assert np.isfinite(a64).all(), f"{name}: non-finite values"
            assert np.abs(e64).max() > 0, f"{name}: the reference is all zeros, which measures nothing"
            cosine = min(cosine, float(e64 @ a64 / (np.linalg.norm(e64) * np.linalg.norm(a64))))
            relative = max(relative, float(np.abs(e64 - a64).max() / np.abs(e64).max()))
    return cosine, relative


def assert_fp16_close(before: Graph | str, after: Graph, feeds_list: list[dict[str, np.ndarray]] | None = None,
                      bound: float = 2e-3) -> None:
    """Cosine above 0.99999 and max error within `bound` of the output's scale, under onnxruntime
    CPU and under per-op float16 rounding (onnx.reference)."""
    for engine in (ORT, REFERENCE):
        cosine, relative = errors(before, after, feeds_list, engine)
        assert cosine > 0.99999 and relative < bound, (engine, cosine, relative)


def dtypes(graph: Graph) -> dict[str, str]:
    """Node name -> the element type of its first output (the model's nodes, not the pass's Casts)."""
    return {n.name: n.outputs[0].type.dtype.short_name for n in graph  # type: ignore[union-attr]
            if n.name and not n.created_by and isinstance(n.outputs[0].type, TensorType)}  # type: ignore[union-attr]


def interface(graph: Graph) -> list[tuple[str, str]]:
    return [(v.name, format_type(v.type)) for v in (*graph.inputs, *graph.outputs)]


def kept(ctx: PassContext) -> dict[str, str]:
    """Kept node label -> why, from the remarks."""
    found = {}
    for remark in ctx.remarks:
        head, sep, why = remark.partition(": kept float32, ")
        if sep:
            found[head] = why
    return found


def no_cancelling_casts(graph: Graph) -> None:
    """No float Cast keeps its input's type, and no Cast(f16 -> f32) feeds a Cast back to f16."""
    for node in graph:
        source = node.inputs[0] if node.op_type == "Cast" and node.inputs else None
        if source is None or not isinstance(source.type, TensorType):
            continue
        float_cast = node.attr("to") in (DType.FLOAT, DType.FLOAT16)
        assert not float_cast or source.type.dtype != node.attr("to"), f"{node.name} casts to its input's own type"
        before = source.producer
        if before is not None and before.op_type == "Cast" and isinstance(before.inputs[0].type, TensorType):  # type: ignore[union-attr]
            assert not (before.inputs[0].type.dtype == DType.FLOAT16 and node.attr("to") == DType.FLOAT16), \
                f"{before.name} -> {node.name} cancel"  # type: ignore[union-attr]


# ----------------------------------------------------------------- BEFORE / EXPECTED
LAYERNORM = '''graph "g" (%x: f32[2,3,4]) {
  const %w = dense<f32[4,4]> [1.0, 0.5, -1.0, 2.0, 0.25, 0.5, 0.75, 1.0, -1.0, 0.5, -1.0, 2.0, 0.25, -0.5, 0.75, 1.5]
  const %gamma = dense<f32[4]> [1.0, 0.5, -1.0, 2.0]
  const %beta = dense<f32[4]> [0.25, 0.5, 0.75, 1.0]
  %h: f32[2,3,4] = MatMul(%x, %w) name="mm"
  %n: f32[2,3,4] = LayerNormalization(%h, %gamma, %beta) {axis=-1, epsilon=1e-05} name="ln"
  %r: f32[2,3,4] = Relu(%n) name="relu"
  %s: f32[2,3,4] = Softmax(%r) {axis=-1} name="sm"
  %y: f32[2,3,4] = Mul(%s, %r) name="mul"
  return %y
}'''
LAYERNORM_FP16 = '''graph "g" (%x: f32[2,3,4]) {
  const %w = dense<f16[4,4]> [1.0, 0.5, -1.0, 2.0, 0.25, 0.5, 0.75, 1.0, -1.0, 0.5, -1.0, 2.0, 0.25, -0.5, 0.75, 1.5]
  const %gamma = dense<f32[4]> [1.0, 0.5, -1.0, 2.0]
  const %beta = dense<f32[4]> [0.25, 0.5, 0.75, 1.0]
  %x16: f16[2,3,4] = Cast(%x) {to=10}
  %h: f16[2,3,4] = MatMul(%x16, %w)
  %h32: f32[2,3,4] = Cast(%h) {to=1}
  %n: f32[2,3,4] = LayerNormalization(%h32, %gamma, %beta) {axis=-1, epsilon=1e-05}
  %n16: f16[2,3,4] = Cast(%n) {to=10}
  %r: f16[2,3,4] = Relu(%n16)
  %r32: f32[2,3,4] = Cast(%r) {to=1}
  %s: f32[2,3,4] = Softmax(%r32) {axis=-1}
  %s16: f16[2,3,4] = Cast(%s) {to=10}
  %y16: f16[2,3,4] = Mul(%s16, %r)
  %y: f32[2,3,4] = Cast(%y16) {to=1}
  return %y
}'''


def test_layernorm_and_softmax_stay_float32_between_casts() -> None:
    """The weights become float16 initializers (no Cast on a weight); one Cast per value and
    direction where a float16 region meets a float32 one; the output keeps its name and type."""
    ctx = assert_pass("convert-fp16", LAYERNORM, LAYERNORM_FP16, nodes_converted=3, nodes_kept=2, kept_op=2,
                      casts_inserted=6, constants_converted=1)
    assert set(kept(ctx)) == {"LayerNormalization 'ln'", "Softmax 'sm'"}
    assert kept(ctx)["Softmax 'sm'"] == "softmax: a sum of exponentials over an axis"
    graph, _ = run_pass("convert-fp16", LAYERNORM)
    assert interface(graph) == interface(as_graph(LAYERNORM)) == [("x", "f32[2,3,4]"), ("y", "f32[2,3,4]")]
    assert dtypes(graph) == {"mm": "f16", "ln": "f32", "relu": "f16", "sm": "f32", "mul": "f16"}
    cast = next(n for n in graph if n.op_type == "Cast")
    assert cast.created_by == "convert-fp16/cast"
    assert_fp16_close(LAYERNORM, graph)
    assert_pass("convert-fp16{keep_ops=MatMul+Relu+Mul}", LAYERNORM, LAYERNORM)  # nothing left to convert


DECOMPOSED = '''graph "g" (%x: f32[2,3,4]) {
  const %two = dense<f32[]> [2.0]
  const %eps = dense<f32[]> [1e-05]
  const %gamma = dense<f32[4]> [1.0, 0.5, -1.0, 2.0]
  const %beta = dense<f32[4]> [0.25, 0.5, 0.75, 1.0]
  %h: f32[2,3,4] = Relu(%x) name="relu"
  %mean: f32[2,3,1] = ReduceMean(%h) {axes=[-1], keepdims=1} name="/ln/ReduceMean"
  %d: f32[2,3,4] = Sub(%h, %mean) name="/ln/Sub"
  %sq: f32[2,3,4] = Pow(%d, %two) name="/ln/Pow"
  %var: f32[2,3,1] = ReduceMean(%sq) {axes=[-1], keepdims=1} name="/ln/ReduceMean_1"
  %ve: f32[2,3,1] = Add(%var, %eps) name="/ln/Add"
  %std: f32[2,3,1] = Sqrt(%ve) name="/ln/Sqrt"
  %n: f32[2,3,4] = Div(%d, %std) name="/ln/Div"
  %g: f32[2,3,4] = Mul(%n, %gamma) name="/ln/Mul"
  %y: f32[2,3,4] = Add(%g, %beta) name="/ln/Add_1"
  return %y
}'''
DECOMPOSED_FP16 = '''graph "g" (%x: f32[2,3,4]) {
  const %two = dense<f32[]> [2.0]
  const %eps = dense<f32[]> [1e-05]
  const %gamma = dense<f16[4]> [1.0, 0.5, -1.0, 2.0]
  const %beta = dense<f16[4]> [0.25, 0.5, 0.75, 1.0]
  %x16: f16[2,3,4] = Cast(%x) {to=10}
  %h: f16[2,3,4] = Relu(%x16)
  %h32: f32[2,3,4] = Cast(%h) {to=1}
  %mean: f32[2,3,1] = ReduceMean(%h32) {axes=[-1], keepdims=1}
  %d: f32[2,3,4] = Sub(%h32, %mean)
  %sq: f32[2,3,4] = Pow(%d, %two)
  %var: f32[2,3,1] = ReduceMean(%sq) {axes=[-1], keepdims=1}
  %ve: f32[2,3,1] = Add(%var, %eps)
  %std: f32[2,3,1] = Sqrt(%ve)
  %n: f32[2,3,4] = Div(%d, %std)
  %n16: f16[2,3,4] = Cast(%n) {to=10}
  %g: f16[2,3,4] = Mul(%n16, %gamma)
  %y16: f16[2,3,4] = Add(%g, %beta)
  %y: f32[2,3,4] = Cast(%y16) {to=1}
  return %y
}'''


def test_decomposed_layernorm_keeps_its_statistics_in_float32() -> None:
    """ReduceMean -> Sub -> Pow -> ReduceMean -> Add -> Sqrt -> Div in float32, the affine part in float16."""
    ctx = assert_pass("convert-fp16", DECOMPOSED, DECOMPOSED_FP16, nodes_converted=3, kept_normalization=7)
    why = kept(ctx)
    assert why["Sub '/ln/Sub'"] == why["Pow '/ln/Pow'"] == why["Div '/ln/Div'"] == \
        "statistics of the decomposed layer norm at ReduceMean '/ln/ReduceMean_1'"
    graph, _ = run_pass("convert-fp16", DECOMPOSED)
    assert_fp16_close(DECOMPOSED, graph)


RMSNORM = '''graph "g" (%x: f32[2,3,4]) {
  const %two = dense<f32[]> [2.0]
  const %eps = dense<f32[]> [1e-06]
  const %gamma = dense<f32[4]> [1.0, 0.5, -1.0, 2.0]
  %sq: f32[2,3,4] = Mul(%x, %x) name="square"
  %ms: f32[2,3,1] = ReduceMean(%sq) {axes=[-1], keepdims=1} name="mean"
  %ve: f32[2,3,1] = Add(%ms, %eps) name="add_eps"
  %std: f32[2,3,1] = Sqrt(%ve) name="sqrt"
  %inv: f32[2,3,1] = Reciprocal(%std) name="inv"
  %n: f32[2,3,4] = Mul(%x, %inv) name="normalize"
  %y: f32[2,3,4] = Mul(%n, %gamma) name="scale"
  return %y
}'''


def test_rms_norm_statistics_stay_float32() -> None:
    graph, ctx = run_pass("convert-fp16", RMSNORM)
    assert dtypes(graph) == {"square": "f32", "mean": "f32", "add_eps": "f32", "sqrt": "f32", "inv": "f32",
                             "normalize": "f32", "scale": "f16"}
    assert all(why == "statistics of the decomposed RMS norm at ReduceMean 'mean'" for why in kept(ctx).values())
    assert ctx.stats["kept_normalization"] == 6
    assert_fp16_close(RMSNORM, graph)


CONSTANTS = '''graph "g" (%x: f32[2,4]) {
  const %w = dense<f32[4,4]> [1.0, 0.5, -1.0, 2.0, 0.25, 0.5, 0.75, 1.0, -1.0, 0.5, -1.0, 2.0, 0.25, -0.5, 0.75, 1.5]
  const %big = dense<f32[4]> [100000.0, -2.0, 1.0, 3.0]
  const %tiny = dense<f32[4]> [1e-06, -2e-06, 3e-07, 0.5]
  %h: f32[2,4] = MatMul(%x, %w) name="mm"
  %a: f32[2,4] = Add(%h, %big) name="add_big"
  %b: f32[2,4] = Mul(%h, %tiny) name="mul_tiny"
  %c: f32[2,4] = Sub(%a, %b) name="sub"
  %y: f32[2,4] = MatMul(%h, %w) name="mm2"
  return %c, %y
}'''
CONSTANTS_FP16 = '''graph "g" (%x: f32[2,4]) {
  const %w = dense<f16[4,4]> [1.0, 0.5, -1.0, 2.0, 0.25, 0.5, 0.75, 1.0, -1.0, 0.5, -1.0, 2.0, 0.25, -0.5, 0.75, 1.5]
  const %big = dense<f32[4]> [100000.0, -2.0, 1.0, 3.0]
  const %tiny = dense<f32[4]> [1e-06, -2e-06, 3e-07, 0.5]
  %x16: f16[2,4] = Cast(%x) {to=10}
  %h: f16[2,4] = MatMul(%x16, %w)
  %h32: f32[2,4] = Cast(%h) {to=1}
  %a: f32[2,4] = Add(%h32, %big)
  %b: f32[2,4] = Mul(%h32, %tiny)
  %c: f32[2,4] = Sub(%a, %b)
  %y16: f16[2,4] = MatMul(%h, %w)
  %y: f32[2,4] = Cast(%y16) {to=1}
  return %c, %y
}'''


def test_large_range_and_flushing_constants_stay_float32() -> None:
    """A constant past float16's range, or most of whose nonzero values are below its smallest
    normal, keeps its reader in float32; the Sub reading the large sum stays float32 too. The
    weight, read by float16 nodes only, becomes a float16 initializer in place."""
    ctx = assert_pass("convert-fp16", CONSTANTS, CONSTANTS_FP16, kept_constant=2, kept_range=1,
                      constants_converted=1)
    why = kept(ctx)
    assert why["Add 'add_big'"] == "reads the constant %big: max |x| 1e+05 exceeds float16's largest 65504"
    assert why["Mul 'mul_tiny'"] == ("reads the constant %tiny: 3 of its 4 nonzero values lie below float16's "
                                     "smallest normal 6.1e-05 (subnormal or 0 in float16)")
    assert why["Sub 'sub'"].startswith("reads %a, observed max |x| 1e+05 > range limit 16384")
    graph, _ = run_pass("convert-fp16", CONSTANTS)
    assert dtypes(graph) == {"mm": "f16", "add_big": "f32", "mul_tiny": "f32", "sub": "f32", "mm2": "f16"}
    assert interface(graph) == interface(as_graph(CONSTANTS))
    assert_fp16_close(CONSTANTS, graph)


def test_constant_problem() -> None:
    assert constant_problem(np.array([1.0, -16384.0], np.float32), 16384.0) is None
    assert constant_problem(np.array([1.0, 16385.0], np.float32), 16384.0) == \
        "max |x| 1.638e+04 exceeds the range limit 16384"
    assert constant_problem(np.array([-np.inf, np.nan, 0.0, 2.0], np.float32), 16384.0) is None  # exact in f16
    assert constant_problem(np.array([np.finfo(np.float32).min, 0.0], np.float32), 16384.0) == \
        "max |x| 3.403e+38 exceeds float16's largest 65504"
    assert constant_problem(np.array([1e-5, 1e-5, 1.0, 0.0, 0.0], np.float32), 16384.0) is not None
    assert constant_problem(np.array([1e-5, 1.0, 1.0, 0.0, 0.0], np.float32), 16384.0) is None  # a minority


SHARED = '''graph "g" (%x: f32[2,4]) {
  const %w = dense<f32[4,4]> [1.0, 0.5, -1.0, 2.0, 0.25, 0.5, 0.75, 1.0, -1.0, 0.5, -1.0, 2.0, 0.25, -0.5, 0.75, 1.5]
  %h: f32[2,4] = MatMul(%x, %w) name="mm"
  %s: f32[4,4] = Softmax(%w) {axis=-1} name="sm"
  %y: f32[2,4] = MatMul(%h, %s) name="mm2"
  return %y
}'''
SHARED_FP16 = '''graph "g" (%x: f32[2,4]) {
  const %w = dense<f32[4,4]> [1.0, 0.5, -1.0, 2.0, 0.25, 0.5, 0.75, 1.0, -1.0, 0.5, -1.0, 2.0, 0.25, -0.5, 0.75, 1.5]
  const %w16 = dense<f16[4,4]> [1.0, 0.5, -1.0, 2.0, 0.25, 0.5, 0.75, 1.0, -1.0, 0.5, -1.0, 2.0, 0.25, -0.5, 0.75, 1.5]
  %x16: f16[2,4] = Cast(%x) {to=10}
  %h: f16[2,4] = MatMul(%x16, %w16)
  %s: f32[4,4] = Softmax(%w) {axis=-1}
  %s16: f16[4,4] = Cast(%s) {to=10}
  %y16: f16[2,4] = MatMul(%h, %s16)
  %y: f32[2,4] = Cast(%y16) {to=1}
  return %y
}'''


def test_a_constant_read_by_both_precisions_gets_a_float16_copy() -> None:
    assert_pass("convert-fp16", SHARED, SHARED_FP16, constants_converted=1, casts_inserted=3)


ACTIVATION = '''graph "g" (%x: f32[2,4]) {
  const %k = dense<f32[]> [200.0]
  const %small = dense<f32[]> [0.0001]
  %a: f32[2,4] = Mul(%x, %k) name="a"
  %b: f32[2,4] = Mul(%x, %k) name="b"
  %p: f32[2,4] = Mul(%a, %b) name="p"
  %q: f32[2,4] = Neg(%p) name="q"
  %r: f32[2,4] = Mul(%q, %small) name="r"
  %y: f32[2,4] = Tanh(%r) name="tanh"
  return %y
}'''
ACTIVATION_FP16 = '''graph "g" (%x: f32[2,4]) {
  const %k = dense<f16[]> [200.0]
  const %small = dense<f32[]> [0.0001]
  %x16: f16[2,4] = Cast(%x) {to=10}
  %a: f16[2,4] = Mul(%x16, %k)
  %a32: f32[2,4] = Cast(%a) {to=1}
  %b: f16[2,4] = Mul(%x16, %k)
  %b32: f32[2,4] = Cast(%b) {to=1}
  %p: f32[2,4] = Mul(%a32, %b32)
  %q: f32[2,4] = Neg(%p)
  %r: f32[2,4] = Mul(%q, %small)
  %r16: f16[2,4] = Cast(%r) {to=10}
  %t: f16[2,4] = Tanh(%r16)
  %y: f32[2,4] = Cast(%t) {to=1}
  return %y
}'''


def test_a_large_activation_keeps_its_producer_and_readers_in_float32(tmp_path) -> None:
    """x in [-1, 1]: p = (200 x)^2 reaches about 3.7e4 on the generated samples, past 2^14; its
    producer and both readers stay float32 (the Cast a float16 reader needs would overflow alike)."""
    ctx = assert_pass("convert-fp16", ACTIVATION, ACTIVATION_FP16, kept_range=3, tensors_observed=7)
    why = kept(ctx)
    assert why["Mul 'p'"].startswith("writes %p, observed max |x| 3.") and why["Mul 'p'"].endswith(
        "> range limit 16384")
    assert why["Neg 'q'"].startswith("reads %p") and why["Mul 'r'"].startswith("reads %q")
    # an input 1.5x the samples: (200 * 1.5)^2 = 9e4 is past 65504, so only the kept float32 p holds it
    feeds = {"x": np.full((2, 4), 1.5, np.float32)}
    guarded, _ = run_pass("convert-fp16", ACTIVATION)
    assert run_graph(guarded, feeds, outputs=["p"])["p"].dtype == np.float32
    blind, ctx = run_pass("convert-fp16{samples=0}", ACTIVATION)
    assert ctx.stats["kept_range"] == 0 and "activation ranges not observed" in ctx.remarks[0]
    p = run_graph(blind, feeds, outputs=["p"])["p"]
    assert p.dtype == np.float16 and np.isinf(p).all()
    # data= observes the given samples; a lower range_limit keeps more
    np.savez(tmp_path / "s.npz", x=np.full((3, 2, 4), 0.25, np.float32))
    _, ctx = run_pass(f"convert-fp16{{data={tmp_path / 's.npz'}}}", ACTIVATION)
    assert ctx.stats["kept_range"] == 0, "(200 * 0.25)^2 = 2500 is within the limit"
    assert "s.npz" in ctx.remarks[0]
    _, ctx = run_pass(f"convert-fp16{{data={tmp_path / 's.npz'},range_limit=1000}}", ACTIVATION)
    assert ctx.stats["kept_range"] == 3
    with pytest.raises(BadInputError, match="range_limit"):
        run_pass("convert-fp16{range_limit=1e6}", ACTIVATION)


SHAPES = '''graph "g" (%x: f32[?,8], %i: i64[?]) {
  const %scale = dense<f32[2]> [2.0, 0.5]
  const %table = dense<i64[3]> [4, 5, 6]
  %s: i64[2] = Shape(%x) name="shape"
  %sf: f32[2] = Cast(%s) {to=1} name="to_float"
  %sh: f32[2] = Mul(%sf, %scale) name="scale_dims"
  %si: i64[2] = Cast(%sh) {to=7} name="to_int"
  %r: f32[?,?] = Reshape(%x, %si) name="reshape"
  %y: f32[?,?] = Relu(%r) name="relu"
  %g: i64[?] = Gather(%table, %i) name="gather_ints"
  return %y, %g
}'''
SHAPES_FP16 = '''graph "g" (%x: f32[?,8], %i: i64[?]) {
  const %scale = dense<f32[2]> [2.0, 0.5]
  const %table = dense<i64[3]> [4, 5, 6]
  %s: i64[2] = Shape(%x)
  %sf: f32[2] = Cast(%s) {to=1}
  %sh: f32[2] = Mul(%sf, %scale)
  %si: i64[2] = Cast(%sh) {to=7}
  %x16: f16[?,8] = Cast(%x) {to=10}
  %r: f16[?,?] = Reshape(%x16, %si)
  %y16: f16[?,?] = Relu(%r)
  %y: f32[?,?] = Cast(%y16) {to=1}
  %g: i64[?] = Gather(%table, %i)
  return %y, %g
}'''


def test_shape_arithmetic_and_integer_tensors_are_untouched() -> None:
    feeds = {"x": np.linspace(-1, 1, 32, dtype=np.float32).reshape(4, 8), "i": np.array([0, 2], np.int64)}
    ctx = assert_pass("convert-fp16", SHAPES, SHAPES_FP16, feeds=feeds, kept_shape=2, nodes_converted=2)
    assert kept(ctx)["Mul 'scale_dims'"].startswith("shape arithmetic")
    assert "Shape 'shape'" not in kept(ctx) and "Gather 'gather_ints'" not in kept(ctx)


IF_MODEL = '''graph "g" (%x: f32[2,3], %c: bool[]) {
  const %w = dense<f32[3,3]> [1.0, 0.5, -1.0, 2.0, 0.25, 0.5, 0.75, 1.0, -1.0]
  %h: f32[2,3] = MatMul(%x, %w) name="mm"
  %y: f32[2,3] = If(%c) {
    else_branch = graph "e" () {
      %n: f32[2,3] = Neg(%h)
      return %n
    },
    then_branch = graph "t" () {
      %m: f32[2,3] = Relu(%h)
      return %m
    }
  } name="if"
  %z: f32[2,3] = Mul(%y, %h) name="mul"
  return %z
}'''


def test_if_bodies_stay_float32_and_read_outer_values_in_float32() -> None:
    graph, ctx = run_pass("convert-fp16", IF_MODEL)
    assert kept(ctx) == {"If 'if'": "its sub-graphs are not converted (If/Loop/Scan bodies stay float32)"}
    assert dtypes(graph)["mm"] == "f16" and dtypes(graph)["mul"] == "f16" and dtypes(graph)["if"] == "f32"
    if_node = next(n for n in graph if n.op_type == "If")
    for body in if_node.subgraphs():
        read = body.nodes[0].inputs[0]
        assert read is not None and read.type.dtype == DType.FLOAT and read.producer.op_type == "Cast"  # type: ignore
    x = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    for c in (True, False):
        assert_fp16_close(IF_MODEL, graph, [{"x": x, "c": np.array(c)}])


def test_keep_nodes_unknown_ops_and_identity_casts() -> None:
    text = '''graph "g" (%x: f32[2,4], %m: i64[2,4]) {
  %mf: f32[2,4] = Cast(%m) {to=1} name="mask"
  %a: f32[2,4] = Add(%x, %mf) name="add"
  %e: f32[2,4] = Erf(%a) name="erf"
  %c: f32[2,4] = Cast(%e) {to=1} name="same"
  %u: f32[2,4] = com.microsoft::FastGelu(%c) name="contrib"
  return %u
}'''
    graph, ctx = run_pass("convert-fp16{keep_nodes=erf}", text)
    assert kept(ctx) == {"Erf 'erf'": "named in keep_nodes",
                         "FastGelu 'contrib'": "no float16 rule for com.microsoft::FastGelu (ops without one stay "
                                               "float32)"}
    assert dtypes(graph)["mask"] == dtypes(graph)["add"] == "f16"
    graph, ctx = run_pass("convert-fp16", text)
    assert "same" not in dtypes(graph), "a Cast that became float16 -> float16 is removed"
    no_cancelling_casts(graph)


def test_rewrite_budget_leaves_a_valid_graph() -> None:
    for budget in range(4):
        graph, ctx = run_pass("convert-fp16", LAYERNORM, max_rewrites=budget)
        assert ctx.stats["nodes_converted"] == min(budget, 3) and ctx.stats["kept_budget"] == 3 - min(budget, 3)
        assert interface(graph) == interface(as_graph(LAYERNORM))
        assert errors(LAYERNORM, graph)[0] > 0.99999


# ----------------------------------------------------------------- bundled and real models
@pytest.mark.parametrize(("model", "softmax"), [(CNN, 0), (MLP, 1)], ids=["digits_cnn", "digits_mlp"])
def test_bundled_models(model: Path, softmax: int) -> None:
    """The CNN converts whole (a Cast in, a Cast out); the MLP's final Softmax stays float32 and
    writes the float32 output itself (a Cast in, a Cast before the Softmax)."""
    original = import_onnx(model)
    graph, ctx = run_pass("convert-fp16", import_onnx(model))
    assert interface(graph) == interface(original)
    assert ctx.stats["nodes_converted"] == sum(1 for n in original if n.op_type != "Constant") - softmax
    assert ctx.stats["kept_op"] == softmax and ctx.stats["casts_inserted"] == 2
    feeds = [make_inputs(original, InputSpec(seed=s, shapes={original.inputs[0].name: (8, *(
        d for d in original.inputs[0].type.shape[1:]))})) for s in range(3)]  # type: ignore[union-attr]
    assert_fp16_close(original, graph, feeds)


def _zoo(name: str) -> Path:
    path = ZOO / f"{name}.onnx"
    if not path.exists():
        pytest.skip(f"{path} is not cached (python -m models.zoo.build)")
    return path


def _precisions(graph: Graph) -> dict[str, set[str]]:
    """Op type -> the element types its nodes write (the model's nodes)."""
    found: dict[str, set[str]] = {}
    types = dtypes(graph)
    for node in graph:
        if node.name in types:
            found.setdefault(node.op_type, set()).add(types[node.name])
    return found


@pytest.mark.parametrize("name", ["bert-ts", "bert-dynamo", "tv_resnet18-ts"])
def test_real_exports(name: str) -> None:
    """A transformers BERT (both exporters) and torchvision's ResNet-18 after -O2, on the zoo's
    realistic inputs (right-padded masks, images): layer norms and softmax stay float32, the
    mask constant finfo(float32).min keeps its Where (and the Add reading its output) in float32,
    the rest is float16."""
    from mlc.pass_manager import PassManager
    from mlc.pipelines import build_pipeline

    path = _zoo(name)
    family = name.rsplit("-", 1)[0]
    original = import_onnx(path)
    PassManager(build_pipeline("O2")).run(original)
    graph, ctx = run_pass("convert-fp16", original.clone())
    feeds = dict(np.load(ZOO / f"{family}.inputs.npz"))
    # measured: onnxruntime CPU 2.5e-4 (BERT) / 8.6e-4 (ResNet-18), per-op float16 1.0e-3 / 1.0e-3
    assert errors(original, graph, [feeds])[1] < 1e-3
    assert_fp16_close(original, graph, [feeds], bound=2e-3)
    torch = dict(np.load(ZOO / f"{family}.torch.npz"))
    got = run_graph(graph, feeds, engine=REFERENCE)
    for key, want in torch.items():
        assert np.abs(got[key] - want).max() < 2e-3 * np.abs(want).max(), key
    assert interface(graph) == interface(original)
    no_cancelling_casts(graph)
    ops = _precisions(graph)
    if family == "bert":
        assert ops["LayerNormalization"] == ops["Softmax"] == {"f32"} and ops["MatMul"] == {"f16"}
        assert any("max |x| 3.403e+38 exceeds float16's largest 65504" in why for why in kept(ctx).values())
        assert ctx.stats["nodes_converted"] > 4 * ctx.stats["nodes_kept"]
    else:
        assert ops["Conv"] == {"f16"} and ctx.stats["nodes_kept"] == 0 and ctx.stats["casts_inserted"] == 2


def test_real_gpt2_export() -> None:
    """transformers GPT-2 (tests/passes/real_exports.py, when cached), as imported (decomposed GELU
    with Pow, causal mask built from shapes, finfo(float32).min): per-op float16 within 2e-3."""
    import os

    cache = Path(os.environ.get("MLC_SIMPLIFY_CACHE", Path.home() / ".cache" / "mlc-simplify"))
    if not (cache / "gpt2-ts.onnx").exists():
        pytest.skip(f"{cache / 'gpt2-ts.onnx'} is not cached (benchmarks/bench_real_exports.py)")
    original = import_onnx(cache / "gpt2-ts.onnx")
    graph, ctx = run_pass("convert-fp16", original.clone())
    feeds = [make_inputs(original, InputSpec(seed=s, shapes={"input_ids": (b, t)}, ranges={"input_ids": (0, 99)}))
             for s, (b, t) in enumerate(((1, 5), (3, 11)))]
    assert_fp16_close(original, graph, feeds)
    ops = _precisions(graph)
    assert ops["LayerNormalization"] == ops["Softmax"] == ops["Pow"] == {"f32"} and ops["MatMul"] == {"f16"}
    assert ctx.stats["kept_shape"] >= 1 and ctx.stats["kept_constant"] >= 1
    no_cancelling_casts(graph)


# ----------------------------------------------------------------- pipeline, CLI, manifest
def test_pipeline_places_convert_fp16_and_refuses_int8() -> None:
    from mlc.driver import PipelineRequest
    from mlc.pipelines import PruneOptions, QuantizeOptions, build_pipeline

    specs = [p.spec() for p in build_pipeline("O1", target="onnxruntime", precision="fp16",
                                              prune=PruneOptions.parse(["magnitude:0.5"]))]
    plain = [p.spec() for p in build_pipeline("O1", target="onnxruntime")]
    assert specs.index("convert-fp16") == specs.index("prune-magnitude") + 1
    assert specs[specs.index("convert-fp16") + 1:] == plain[len(build_pipeline("O1")):], "before the legalizations"
    assert [p.name for p in build_pipeline(passes="cse,convert-fp16", precision="fp16")] == ["cse", "convert-fp16"]
    assert "convert-fp16" not in [p.name for p in build_pipeline("O2", precision="fp32")]
    with pytest.raises(BadInputError, match=r"--precision fp16 with --quantize int8: .*give one of the two"):
        build_pipeline("O1", quantize="int8", calibration=QuantizeOptions(data="random", cache="t.json"),
                       precision="fp16")
    with pytest.raises(BadInputError, match="--precision fp8: expected fp32 or fp16"):
        PipelineRequest(precision="fp8").validate()
    assert PipelineRequest(precision="fp16").debug_args()[-2:] == ["--precision", "fp16"]


def test_compile_fp16_onnxruntime_end_to_end(capfd, tmp_path) -> None:
    """`mlc compile models/digits_cnn.onnx --target onnxruntime --precision fp16`: the artifact is fed
    and read in float32, its manifest records the precision and each output's measured error."""
    import mlc

    out = tmp_path / "cnn.ort"
    code, stdout, err = run_mlc(capfd, "compile", CNN, "--target", "onnxruntime", "--precision", "fp16", "-o", out)
    assert code == 0, err
    assert "fp16: output cosine 1.0000" in stdout and "max abs error" in stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["options"]["precision"] == "fp16" and "convert-fp16" in manifest["options"]["pipeline"]
    assert [i["type"] for i in manifest["inputs"] + manifest["outputs"]] == ["f32[batch,1,8,8]", "f32[batch,10]"]
    record = manifest["verification"]["precision"]
    assert record["gate"] == "cosine >= 0.99" and manifest["verification"]["artifact"] == "ok"
    for figures in (record["graph"]["logits"], record["artifact"]["logits"]):
        assert figures["cosine"] > 0.99999 and 0 < figures["max_abs"] < 0.05, figures
    original = import_onnx(CNN)
    feeds = make_inputs(original, InputSpec(seed=5, shapes={"image": (4, 1, 8, 8)}))
    got = mlc.load(out).run(feeds)["logits"]
    want = run_graph(original, feeds)["logits"]
    assert got.dtype == np.float32 and np.abs(got - want).max() < 2e-3 * np.abs(want).max()
    plain = tmp_path / "plain.ort"
    assert run_mlc(capfd, "compile", CNN, "--target", "onnxruntime", "-o", plain)[0] == 0
    manifest = json.loads((plain / "manifest.json").read_text())
    assert manifest["options"]["precision"] == "fp32" and "precision" not in manifest["verification"]


def test_api_optimize_fp16(tmp_path) -> None:
    """`mlc.optimize(..., precision="fp16")`: float16 initializers behind the float32 interface."""
    import onnx

    import mlc

    written = mlc.optimize(CNN, tmp_path / "cnn16.onnx", precision="fp16")
    model = onnx.load(written)
    assert {t.data_type for t in model.graph.initializer} == {onnx.TensorProto.FLOAT16}
    assert [v.type.tensor_type.elem_type for v in (*model.graph.input, *model.graph.output)] == \
        [onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT]
    with pytest.raises(BadInputError, match="--precision fp16 with --quantize int8-dynamic"):
        mlc.optimize(CNN, tmp_path / "no.onnx", precision="fp16", quantize="int8-dynamic")


def test_compile_fp16_llvm(capfd, tmp_path) -> None:
    pytest.importorskip("tvm", reason="apache-tvm is not installed (pip install 'mlc[tvm]')")
    out = tmp_path / "mlp.llvm"
    code, stdout, err = run_mlc(capfd, "compile", MLP, "--target", "llvm", "--precision", "fp16", "-o", out)
    assert code == 0, err
    record = json.loads((out / "manifest.json").read_text())["verification"]["precision"]
    assert record["artifact"]["probabilities"]["cosine"] > 0.99999, record


OVERFLOW = '''graph "g" (%x: f32[2,4]) {
  const %k = dense<f32[]> [1000.0]
  const %small = dense<f32[]> [0.0001]
  %a: f32[2,4] = Mul(%x, %k) name="a"
  %p: f32[2,4] = Mul(%a, %a) name="p"
  %y: f32[2,4] = Mul(%p, %small) name="y"
  return %y
}'''


def test_an_overflowing_fp16_build_is_refused(capfd, tmp_path) -> None:
    """Without observation (samples=0) p = (1000 x)^2 overflows float16 on the check inputs. Per-op
    float16 (onnx.reference, TVM) gives Inf where float32 does not: the llvm artifact check refuses
    the build (exit 1, nothing written); with the observation p stays float32 and it passes.
    (onnxruntime CPU runs those Muls in float32, see `errors`, so it cannot see this overflow.)"""
    from mlc.onnx_io.exporter import save_onnx

    feeds = {"x": np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)}
    blind, _ = run_pass("convert-fp16{samples=0}", OVERFLOW)
    assert np.isinf(run_graph(blind, feeds, engine=REFERENCE)["y"]).sum() == 6
    guarded, ctx = run_pass("convert-fp16", OVERFLOW)
    assert set(kept(ctx)) == {"Mul 'p'", "Mul 'y'"}
    assert errors(OVERFLOW, guarded, [feeds], engine=REFERENCE)[1] < 2e-3
    pytest.importorskip("tvm", reason="apache-tvm is not installed (pip install 'mlc[tvm]')")
    model = tmp_path / "overflow.onnx"
    save_onnx(as_graph(OVERFLOW), model)
    code, _, err = run_mlc(capfd, "compile", model, "--target", "llvm", "--precision", "fp16", "--pass-option",
                           "convert-fp16.samples=0", "-o", tmp_path / "o")
    assert code == 1 and "the llvm artifact computes different numbers" in err and "NaN/Inf" in err, err
    assert not (tmp_path / "o").exists()
    code, _, err = run_mlc(capfd, "compile", model, "--target", "llvm", "--precision", "fp16", "-o", tmp_path / "ok")
    assert code == 0, err


def test_min_cosine_is_the_fp16_gate_on_the_command_line(capfd, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`--min-cosine` sets the lossy gate of `--precision fp16` (not only of int8 and pruning), and
    the replay command of a refusal carries the very gate, unrounded."""
    model = ROOT / "models" / "digits_cnn.onnx"
    code, _, err = run_mlc(capfd, "optimize", model, "--precision", "fp16", "--min-cosine", "0.999999999",
                           "-o", tmp_path / "strict.onnx")
    assert code == 1 and "convert-fp16 the outputs fail the lossy gate" in err
    assert "--precision fp16 --min-cosine 0.999999999" in err and not (tmp_path / "strict.onnx").exists()
    code, _, err = run_mlc(capfd, "optimize", model, "--precision", "fp16", "--min-cosine", "0.999",
                           "-o", tmp_path / "ok.onnx")
    assert code == 0, err
    code, _, err = run_mlc(capfd, "optimize", model, "--min-cosine", "0.999", "-o", tmp_path / "fp32.onnx")
    assert code == 2 and "--min-cosine needs --quantize int8 or --prune or --precision fp16" in err
