"""ElementwiseRule (backends/tvm_sched_generic.py), the fallback rule: it schedules spatial kernels
(elementwise chains, transposes) and window reductions (max-pool), parallel only when the work is
large, vectorized where the innermost extent allows; it declines functions with other reductions;
numbers equal TVM's plain loops at two symbolic sizes and onnxruntime's through `mlc compile`; the
same schedule twice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import mlc

tvm = pytest.importorskip("tvm", reason="apache-tvm is not installed (pip install 'mlc[tvm]')")

import tvm_ffi  # noqa: E402 - only once tvm is known to import
from tvm import relax  # noqa: E402

from mlc.backends.tvm_sched_generic import ElementwiseRule, vector_factor  # noqa: E402
from tests.backends.test_tvm_sched_matmul import (  # noqa: E402
    AVX512,
    RNG,
    X86,
    build,
    fused_functions,
    relax_module,
    run,
)


def scheduled(module: Any, name_part: str) -> Any:
    """ElementwiseRule's schedule for the one fused function whose name holds `name_part`."""
    target = tvm.target.Target(AVX512)
    functions = [f for name, f in fused_functions(module, target).items() if name_part in name]
    assert len(functions) == 1, list(fused_functions(module, target))
    return ElementwiseRule().apply(functions[0], target, False)


def add_relu(*shape: int | str) -> Any:
    return relax_module([shape], lambda p: relax.op.nn.relu(relax.op.add(p[0], p[0])))


def max_pool(*shape: int | str) -> Any:
    return relax_module([shape], lambda p: relax.op.nn.max_pool2d(p[0], (3, 3), (2, 2), (1, 1, 1, 1)))


@pytest.mark.parametrize(("extent", "lanes", "width"), [
    (64, 16, 16), (56, 16, 8), (28, 16, 4), (7, 16, 7), (1000, 16, 8), (12, 8, 4), (113, 16, 0), (None, 16, 0),
    (1, 16, 0),
])
def test_vector_factor(extent: int | None, lanes: int, width: int) -> None:
    assert vector_factor(extent, lanes) == width


@X86
def test_large_elementwise_chain_is_parallel_and_vectorized() -> None:
    text = scheduled(add_relu(1, 64, 112, 112), "add").mod.script()
    assert "T.parallel" in text
    assert "T.vectorized(T.int64(16))" in text  # AVX-512's 16 lanes divide 112
    text = scheduled(add_relu(1, 64, 56, 56), "add").mod.script()
    assert "T.parallel" not in text  # 200k elements: below PARALLEL_MIN_ELEMENTS
    assert "T.vectorized(T.int64(8))" in text  # 56 = 7 x 8: the widest power of two dividing it
    assert text.count("T.sblock(") == 1 + 1  # root + the add and relu inlined into one block


def test_small_kernel_stays_on_one_core() -> None:
    text = scheduled(add_relu(8, 64), "add").mod.script()
    assert "T.parallel" not in text and "T.vectorized" in text


def test_symbolic_innermost_extent_is_left_scalar() -> None:
    module = relax_module([("b", "s", 4, 16)], lambda p: relax.op.permute_dims(p[0], [0, 2, 3, 1]))
    text = scheduled(module, "transpose").mod.script()
    assert "T.vectorized" not in text  # the output [b, 4, 16, s]: innermost is the symbolic s
    module = relax_module([("b", 4, "s", 16)], lambda p: relax.op.permute_dims(p[0], [0, 2, 1, 3]))
    assert "T.vectorized(T.int64(16))" in scheduled(module, "transpose").mod.script()


def test_max_pool_is_taken_as_a_window_reduction() -> None:
    text = scheduled(max_pool(1, 64, 112, 112), "max_pool").mod.script()
    assert "T.parallel" in text
    assert "pad_temp" in text  # the padding stays its own loop nest


@pytest.mark.parametrize(("what", "module", "name_part"), [
    ("softmax", relax_module([(8, 64)], lambda p: relax.op.nn.softmax(p[0])), "softmax"),
    ("sum", relax_module([(8, 64)], lambda p: relax.op.sum(p[0], axis=[1])), "sum"),
    ("matmul", relax_module([(8, 64), (64, 32)], lambda p: relax.op.matmul(p[0], p[1])), "matmul"),
    ("a long window (global pool)", relax_module([(1, 8, 32, 32)], lambda p: relax.op.max(p[0], axis=[2, 3])),
     "max"),
])
def test_declines_reductions(what: str, module: Any, name_part: str) -> None:
    assert scheduled(module, name_part) is None, what


def test_same_schedule_twice() -> None:
    module = add_relu("b", 64, "h", 56)
    first, second = scheduled(module, "add"), scheduled(module, "add")
    assert first.mod.script() == second.mod.script()
    assert tvm_ffi.structural_equal(first.mod, second.mod)


def test_symbolic_shapes_run_at_two_sizes_like_tvms_own_loops() -> None:
    for module, sizes in ((add_relu("b", 64, "h", "w"), ((1, 64, 5, 9), (2, 64, 56, 56))),
                          (max_pool("b", 16, "h", "w"), ((1, 16, 9, 7), (2, 16, 112, 112)))):
        mine, plain = build(module, [ElementwiseRule()]), build(module, None)
        for shape in sizes:
            x = RNG.standard_normal(shape).astype("float32")
            np.testing.assert_array_equal(run(mine, x), run(plain, x))


def _cnn_tail() -> onnx.ModelProto:
    """relu(x) -> MaxPool 3x3/2 -> x * sigmoid(x) -> Transpose: the CNN kernels no conv or matmul
    rule takes, on a dynamic batch."""
    f = TensorProto.FLOAT
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("Sigmoid", ["p"], ["s"]), helper.make_node("Mul", ["p", "s"], ["m"]),
             helper.make_node("Transpose", ["m"], ["y"], perm=[0, 2, 3, 1])]
    graph = helper.make_graph(nodes, "tail", [helper.make_tensor_value_info("x", f, ["batch", 16, 40, 40])],
                              [helper.make_tensor_value_info("y", f, ["batch", 20, 20, 16])])
    return helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", 17)])


def test_onnx_cnn_tail_through_mlc_compile_equals_onnxruntime(tmp_path: Path) -> None:
    model = _cnn_tail()
    path = tmp_path / "tail.onnx"
    onnx.save(model, str(path))
    from tvm.relax.frontend.onnx import from_onnx

    target = tvm.target.Target(AVX512)
    functions = fused_functions(from_onnx(model, opset=17, keep_params_in_input=False), target)
    taken = [name for name, func in functions.items() if ElementwiseRule().apply(func, target, False) is not None]
    assert taken and len(taken) == len(functions), (taken, list(functions))
    folder = mlc.compile(path, "llvm", tmp_path / "tail.llvm")  # fails if numbers differ from onnxruntime's
    artifact = mlc.load(folder)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 3):
        feeds = {"x": RNG.standard_normal((batch, 16, 40, 40)).astype(np.float32)}
        np.testing.assert_allclose(artifact.run(feeds)["y"], session.run(None, feeds)[0], rtol=1e-5, atol=1e-6)
