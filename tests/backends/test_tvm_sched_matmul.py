"""MatmulRule (backends/tvm_sched_matmul.py): which fused matmul kernels it schedules (dense with a
gelu epilogue, batched P.V, a transposed consumer), which it leaves alone (symbolic N, a K-contiguous
matrix-vector product, non-matmul reductions, spatial-only kernels), the vector width per target,
numbers equal to TVM's plain loops and to onnxruntime (through `mlc compile`, which checks them),
symbolic M at two sizes, and the same schedule twice."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import mlc

tvm = pytest.importorskip("tvm", reason="apache-tvm is not installed (pip install 'mlc[tvm]')")

import tvm_ffi  # noqa: E402 - only once tvm is known to import
from tvm import relax  # noqa: E402

from mlc.backends.tvm import host_cpu, llvm_triple  # noqa: E402
from mlc.backends.tvm_sched_matmul import MatmulRule  # noqa: E402
from mlc.backends.tvm_schedules import fusion_passes, relax_pipeline  # noqa: E402

X86 = pytest.mark.skipif(not llvm_triple().startswith("x86_64"), reason="x86-64 CPU names; LLVM targets another here")
AVX512 = {"kind": "llvm", "mcpu": "skylake-avx512"}
AVX2 = {"kind": "llvm", "mcpu": "haswell"}
RNG = np.random.default_rng(0)


def host() -> Any:
    return tvm.target.Target({"kind": "llvm", "mcpu": host_cpu()})


def dim(value: int | str) -> Any:
    """A static extent, or a symbolic one named `value`."""
    return tvm.tirx.Var(value, "int64") if isinstance(value, str) else value


def relax_module(shapes: list[tuple[int | str, ...]], body: Callable[[list[Any]], Any]) -> Any:
    """main(*params) = body(params), the params float32 tensors of `shapes` (str = symbolic)."""
    builder = relax.BlockBuilder()
    symbols: dict[str, Any] = {}
    params = [relax.Var(f"p{i}", relax.TensorType([symbols.setdefault(d, dim(d)) if isinstance(d, str) else d
                                                  for d in shape], "float32"))
              for i, shape in enumerate(shapes)]
    with builder.function("main", params):
        with builder.dataflow():
            out = builder.emit_output(body(params))
        builder.emit_func_output(out)
    return builder.get()


def constant(*shape: int) -> Any:
    return relax.const(RNG.standard_normal(shape).astype("float32"))


def fused_functions(module: Any, target: Any) -> dict[str, Any]:
    """The PrimFuncs TVM's CPU pipeline hands to the schedule rules (after legalize and fusion)."""
    with target, tvm.transform.PassContext(opt_level=3):
        lowered = tvm.transform.Sequential(fusion_passes(target))(module)
    return {gv.name_hint: func for gv, func in lowered.functions.items() if isinstance(func, tvm.tirx.PrimFunc)}


def scheduled(module: Any, target_spec: dict[str, str], name_part: str) -> Any:
    """MatmulRule's schedule for the one fused function whose name holds `name_part` (None if declined)."""
    target = tvm.target.Target(target_spec)
    functions = [f for name, f in fused_functions(module, target).items() if name_part in name]
    assert len(functions) == 1, list(fused_functions(module, target))
    return MatmulRule().apply(functions[0], target, False)


def build(module: Any, rules: list[Any] | None) -> Any:
    """A VM for `module` on the host CPU: with `rules` (mlc's pipeline) or TVM's default (None)."""
    target = host()
    pipeline = "default" if rules is None else relax_pipeline(target, rules)
    with target, tvm.transform.PassContext(opt_level=3):
        executable = tvm.compile(module, target=target, relax_pipeline=pipeline)
    return relax.VirtualMachine(executable, tvm.cpu())


def run(vm: Any, *arrays: np.ndarray) -> np.ndarray:
    return vm["main"](*[tvm.runtime.tensor(a) for a in arrays]).numpy()


def dense_gelu(m: int | str, k: int, n: int) -> Any:
    """gelu(x @ W + b): the feed-forward kernel of a transformer, W and b constants."""
    weight, bias = constant(k, n), constant(n)
    return relax_module([(m, k)], lambda p: relax.op.nn.gelu(relax.op.add(relax.op.matmul(p[0], weight), bias)))


def attention_pv(seq: int | str, heads: int = 4, head_dim: int = 16) -> Any:
    """P.V: [b, h, s, s] x [b, h, s, d], K = the sequence."""
    return relax_module([(1, heads, seq, seq), (1, heads, seq, head_dim)], lambda p: relax.op.matmul(p[0], p[1]))


# ---------------------------------------------------------------- which kernels it takes
@X86
def test_dense_with_gelu_epilogue_is_register_tiled_vectorized_and_parallel() -> None:
    text = scheduled(dense_gelu(64, 64, 128), AVX512, "matmul").mod.script()
    assert "T.vectorized(T.int64(16))" in text  # AVX-512: 16 float32 lanes
    assert "T.unroll" in text and "T.parallel" in text
    assert "matmul_init" in text and "matmul_update" in text  # the accumulator tile is zeroed per tile
    assert "T.erf" in text  # the epilogue stays in the same function, computed at the tile


@X86
def test_vector_width_follows_the_target() -> None:
    text = scheduled(dense_gelu(64, 64, 128), AVX2, "matmul").mod.script()
    assert "T.vectorized(T.int64(8))" in text  # the register tile's vectors: 8 float32 lanes with AVX2
    wide = scheduled(dense_gelu(64, 64, 128), AVX512, "matmul").mod.script()
    assert "T.vectorized(T.int64(8))" not in wide


def test_batched_matmul_with_symbolic_sequence_is_scheduled() -> None:
    assert scheduled(attention_pv("s"), AVX512, "matmul") is not None


def test_transposed_consumer_is_carried_by_the_tile() -> None:
    module = relax_module([(1, 4, 32, 32), (1, 4, 32, 16)],
                          lambda p: relax.op.permute_dims(relax.op.matmul(p[0], p[1]), [0, 2, 1, 3]))
    assert scheduled(module, AVX512, "matmul") is not None


@pytest.mark.parametrize(("what", "module", "name_part"), [
    ("symbolic N (Q.K^T)", relax_module([(1, 4, "s", 16), (1, 4, 16, "s")], lambda p: relax.op.matmul(p[0], p[1])),
     "matmul"),
    ("spatial only", relax_module([(8, 64)], lambda p: relax.op.nn.relu(relax.op.add(p[0], p[0]))), "add"),
    ("a reduction that is no matmul", relax_module([(8, 64)], lambda p: relax.op.sum(p[0], axis=[1])), "sum"),
    ("softmax", relax_module([(8, 64)], lambda p: relax.op.nn.softmax(p[0])), "softmax"),
])
def test_declines(what: str, module: Any, name_part: str) -> None:
    assert scheduled(module, AVX512, name_part) is None, what


def test_single_row_product_is_scheduled() -> None:
    """M = 1 with the weight N-contiguous in the kernel (the transpose is a kernel of its own, or folded
    into a constant): normalize_prim_func drops the unit row, and the rule still tiles it (MobileNetV3's
    576 -> 1024 classifier at batch 1: 1.6 ms with TVM's loops, 0.09 ms tiled)."""
    module = relax_module([(1, 64), (128, 64)], lambda p: relax.op.matmul(p[0], relax.op.permute_dims(p[1])))
    sch = scheduled(module, AVX512, "matmul")
    assert sch is not None
    text = sch.mod.script()
    assert "T.vectorized(" in text and "matmul_init" in text
    vm = build(module, [MatmulRule()])
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((1, 64)).astype("float32"), rng.standard_normal((128, 64)).astype("float32")
    got = vm["main"](tvm.runtime.tensor(a), tvm.runtime.tensor(b)).numpy()
    np.testing.assert_allclose(got, a @ b.T, rtol=1e-5, atol=1e-5)


def test_same_schedule_twice() -> None:
    module = dense_gelu("m", 64, 96)
    first, second = scheduled(module, AVX512, "matmul"), scheduled(module, AVX512, "matmul")
    assert first.mod.script() == second.mod.script()
    assert tvm_ffi.structural_equal(first.mod, second.mod)


# ---------------------------------------------------------------- numbers
def test_symbolic_m_runs_at_two_sizes_like_tvms_own_loops() -> None:
    module = dense_gelu("m", 48, 80)  # 80 columns: one 16-lane vector wide tiles, M not a multiple of 8
    mine, plain = build(module, [MatmulRule()]), build(module, None)
    for rows in (5, 70):
        x = RNG.standard_normal((rows, 48)).astype("float32")
        np.testing.assert_allclose(run(mine, x), run(plain, x), rtol=1e-5, atol=1e-6)


def test_batched_pv_runs_at_two_sizes_like_numpy() -> None:
    vm = build(attention_pv("s"), [MatmulRule()])
    for seq in (7, 33):
        p = RNG.standard_normal((1, 4, seq, seq)).astype("float32")
        v = RNG.standard_normal((1, 4, seq, 16)).astype("float32")
        np.testing.assert_allclose(run(vm, p, v), p @ v, rtol=1e-5, atol=1e-5)


def _encoder_block() -> onnx.ModelProto:
    """y = x + gelu(x @ W1 + b1) @ W2 + b2, and attention's P.V on x's heads: the matmul kernels
    of a BERT layer, with dynamic batch and sequence."""
    f = TensorProto.FLOAT
    hidden, inner = 32, 64
    inits = [numpy_helper.from_array(RNG.standard_normal(shape).astype(np.float32) * 0.2, name)
             for name, shape in (("w1", (hidden, inner)), ("b1", (inner,)), ("w2", (inner, hidden)),
                                 ("b2", (hidden,)))]
    inits += [numpy_helper.from_array(np.array(v, np.float32), n) for n, v in (("sqrt2", 2 ** 0.5), ("one", 1.0),
                                                                                ("half", 0.5))]
    inits.append(numpy_helper.from_array(np.array([0, 0, 4, 8], np.int64), "heads"))
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h0"]), helper.make_node("Add", ["h0", "b1"], ["h1"]),
        helper.make_node("Div", ["h1", "sqrt2"], ["h2"]), helper.make_node("Erf", ["h2"], ["h3"]),
        helper.make_node("Add", ["h3", "one"], ["h4"]), helper.make_node("Mul", ["h1", "h4"], ["h5"]),
        helper.make_node("Mul", ["h5", "half"], ["gelu"]), helper.make_node("MatMul", ["gelu", "w2"], ["o0"]),
        helper.make_node("Add", ["o0", "b2"], ["o1"]), helper.make_node("Add", ["o1", "x"], ["ffn"]),
        helper.make_node("Reshape", ["ffn", "heads"], ["split"]),
        helper.make_node("Transpose", ["split"], ["v"], perm=[0, 2, 1, 3]),
        helper.make_node("MatMul", ["scores", "v"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "encoder",
        [helper.make_tensor_value_info("x", f, ["batch", "seq", hidden]),
         helper.make_tensor_value_info("scores", f, ["batch", 4, "seq", "seq"])],
        [helper.make_tensor_value_info("y", f, ["batch", 4, "seq", 8])], initializer=inits)
    return helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", 17)])


def test_onnx_encoder_through_mlc_compile_equals_onnxruntime(tmp_path: Path) -> None:
    model = _encoder_block()
    path = tmp_path / "encoder.onnx"
    onnx.save(model, str(path))
    from tvm.relax.frontend.onnx import from_onnx

    target = tvm.target.Target(AVX512)
    functions = fused_functions(from_onnx(model, opset=17, keep_params_in_input=False), target)
    taken = sorted(name for name, func in functions.items() if MatmulRule().apply(func, target, False) is not None)
    assert len(taken) == 3, taken  # the two dense layers with their epilogues and P.V
    folder = mlc.compile(path, "llvm", tmp_path / "encoder.llvm")  # fails if numbers differ from onnxruntime's
    artifact = mlc.load(folder)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch, seq in ((1, 5), (2, 19)):
        feeds = {"x": RNG.standard_normal((batch, seq, 32)).astype(np.float32),
                 "scores": RNG.standard_normal((batch, 4, seq, seq)).astype(np.float32)}
        got = artifact.run(feeds)["y"]
        np.testing.assert_allclose(got, session.run(None, feeds)[0], rtol=1e-4, atol=1e-5)
