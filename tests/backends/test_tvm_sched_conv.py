"""Conv2dRule (backends/tvm_sched_conv.py): which kernels it takes, that what it builds computes
onnxruntime's numbers (dense, depthwise, grouped, strided, 1x1, with bias/relu/clip/residual/
hardswish epilogues; static and symbolic widths), and that it is deterministic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

tvm = pytest.importorskip("tvm", reason="apache-tvm is not installed (pip install 'mlc[tvm]')")

from tvm import relax  # noqa: E402
from tvm.relax.backend.cpu_generic import pipeline as cpu  # noqa: E402

from mlc.backends.tvm_sched_conv import Conv2dRule, vector_lanes  # noqa: E402
from mlc.backends.tvm_schedules import relax_pipeline  # noqa: E402
from tests.backends.conv_helpers import assert_compile_matches, conv_module, ort_run  # noqa: E402

TARGET = {"kind": "llvm", "mcpu": "znver4"}  # AVX-512 lanes; only scheduled here, never run


def target(spec: dict[str, Any] | None = None) -> Any:
    return tvm.target.Target(spec or TARGET)


def prim_funcs(module: Any) -> dict[str, Any]:
    """The module's PrimFuncs after legalization and fusion, as ApplyDefaultSchedule sees them."""
    with target():
        passes = [*cpu.library_dispatch_passes(target()), *cpu.legalize_passes(target())]
        lowered = tvm.transform.Sequential(passes)(module)
    return {gv.name_hint: f for gv, f in lowered.functions.items() if isinstance(f, tvm.tirx.PrimFunc)}


def the_conv(module: Any) -> Any:
    (func,) = [f for name, f in prim_funcs(module).items() if "conv2d" in name]
    return func


CASES = {  # input shape, out channels, kernel, stride, pad, groups
    "dense3x3": ((1, 16, 14, 14), 32, 3, 1, 1, 1),
    "stem7x7s2": ((1, 3, 32, 32), 16, 7, 2, 3, 1),
    "pointwise_s2": ((1, 16, 14, 14), 24, 1, 2, 0, 1),
    "grouped": ((1, 16, 12, 12), 16, 3, 1, 1, 4),
    "dense_symbolic": (("n", 16, "h", "w"), 32, 3, 1, 1, 1),
    "odd_width": ((1, 8, 9, 17), 16, 3, 1, 1, 1),  # 17 columns: vectors of 1 column, or over channels
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_rule_schedules_conv_kernels(case: str) -> None:
    shape, out_channels, kernel, stride, pad, groups = CASES[case]
    func = the_conv(conv_module(shape, out_channels, kernel, stride, pad, groups))
    for rule in (Conv2dRule(), Conv2dRule(min_columns=4)):
        sch = rule.apply(func, target(), False)
        assert sch is not None
        text = sch.mod.script()
        assert "T.parallel(" in text and "T.unroll(" in text
        assert "conv2d_nchw_init" in text  # the initialization split off the reduction
        # Vectors over channels (weights repacked) for symbolic widths, and for 17 columns (no
        # divisor of at least 4) when min_columns asks for 4; else vectors over columns.
        channel_tile = case == "dense_symbolic" or (case == "odd_width" and rule.min_columns == 4)
        assert ("param_0_global" in text) == channel_tile
        if case != "odd_width" or channel_tile:
            assert "T.vectorized(" in text


@pytest.mark.parametrize("shape", [(1, 24, 16, 16), ("n", 24, "h", "w")], ids=["static", "symbolic"])
def test_depthwise_is_left_to_tvm(shape: tuple[Any, ...]) -> None:
    func = the_conv(conv_module(shape, 24, 3, 1, 1, 24))
    assert Conv2dRule().apply(func, target(), False) is None


def test_rule_returns_none_for_other_kernels() -> None:
    builder = relax.BlockBuilder()
    a = relax.Var("a", relax.TensorType((1, 8, 16, 16), "float32"))
    m = relax.Var("m", relax.TensorType((32, 64), "float32"))
    with builder.function("main", [a, m]):
        with builder.dataflow():
            pooled = builder.emit(relax.op.nn.max_pool2d(a, pool_size=(2, 2), strides=(2, 2)))
            added = builder.emit(relax.op.add(pooled, pooled))
            product = builder.emit(relax.op.matmul(m, relax.op.permute_dims(m)))
            summed = builder.emit(relax.op.sum(a, axis=[2, 3]))
            out = builder.emit_output(relax.Tuple([added, product, summed]))
        builder.emit_func_output(out)
    funcs = prim_funcs(builder.get())
    assert len(funcs) >= 3
    for name, func in funcs.items():
        assert Conv2dRule().apply(func, target(), False) is None, name
    conv = the_conv(conv_module((1, 8, 8, 8), 8, 3, 1, 1, 1))
    assert Conv2dRule().apply(conv, tvm.target.Target({"kind": "cuda", "arch": "sm_80"}), False) is None


@pytest.mark.parametrize("case", ["dense3x3", "dense_symbolic", "grouped"])
def test_schedule_is_deterministic(case: str) -> None:
    shape, out_channels, kernel, stride, pad, groups = CASES[case]
    func = the_conv(conv_module(shape, out_channels, kernel, stride, pad, groups))
    first = Conv2dRule().apply(func, target(), False)
    second = Conv2dRule().apply(func, target(), False)
    assert first is not None and second is not None
    assert first.mod.script() == second.mod.script()


def test_vector_lanes_follow_the_target() -> None:
    assert vector_lanes(target({"kind": "llvm", "mcpu": "znver4"})) == 16
    assert vector_lanes(target({"kind": "llvm", "mcpu": "haswell"})) == 8
    assert vector_lanes(target({"kind": "llvm", "mcpu": "haswell", "mattr": ["+avx512f"]})) == 16
    assert vector_lanes(target({"kind": "llvm", "mcpu": "znver4", "mattr": ["-avx512f"]})) == 8
    assert vector_lanes(target({"kind": "llvm"})) == 8


# --- numbers: an ONNX model with every kind of conv, built with this rule alone, against onnxruntime


def conv_zoo_model(path: Path, height: Any, width: Any) -> Path:
    """X(1x8xHxW) -> Conv3x3+bias -> Relu -> depthwise Conv3x3 s2 + bias -> Clip(0,6)
    -> grouped Conv3x3 (4 groups) + residual Add -> HardSwish -> Conv1x1 + bias -> Y.
    `height`/`width` are ints or dim names (symbolic)."""
    rng = np.random.default_rng(1)

    def init(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(np.float32), name)

    nodes = [
        helper.make_node("Conv", ["X", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2], group=16),
        helper.make_node("Clip", ["c2", "lo", "hi"], ["r2"]),
        helper.make_node("Conv", ["r2", "w3"], ["c3"], pads=[1, 1, 1, 1], group=4),
        helper.make_node("Add", ["c3", "r2"], ["s3"]),
        helper.make_node("HardSwish", ["s3"], ["h3"]),
        helper.make_node("Conv", ["h3", "w4", "b4"], ["Y"]),
    ]
    inits = [init("w1", 16, 8, 3, 3), init("b1", 16), init("w2", 16, 1, 3, 3), init("b2", 16),
             init("w3", 16, 4, 3, 3), init("w4", 24, 16, 1, 1), init("b4", 24),
             numpy_helper.from_array(np.array(0.0, np.float32), "lo"),
             numpy_helper.from_array(np.array(6.0, np.float32), "hi")]
    graph = helper.make_graph(nodes, "convs", [helper.make_tensor_value_info("X", TensorProto.FLOAT,
                                                                             [1, 8, height, width])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 24, None, None])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def host_target() -> Any:
    from mlc.backends.tvm import host_cpu

    return tvm.target.Target({"kind": "llvm", "mcpu": host_cpu()})


@pytest.mark.parametrize(("height", "width", "min_columns"), [(18, 28, 1), (10, 34, 1), (10, 34, 4), ("h", "w", 1)],
                         ids=["column-vectors", "narrow-columns", "channel-vectors", "symbolic"])
def test_rule_alone_matches_onnxruntime(tmp_path: Path, height: Any, width: Any, min_columns: int) -> None:
    """28 columns (14 after the stride) take the column-vector tile; 34 (2 x 17) and 17 vectors
    of 2 and 1 columns, or the channel-vector tile with min_columns=4, as does the symbolic model,
    run at two sizes. The depthwise conv stays TVM's in all of them."""
    from tvm.relax.frontend.onnx import from_onnx

    path = conv_zoo_model(tmp_path / "convs.onnx", height, width)
    module = relax.transform.DecomposeOpsForInference()(from_onnx(onnx.load(path), opset=17,
                                                                  keep_params_in_input=False))
    host = host_target()
    rule = Conv2dRule(min_columns=min_columns)
    scheduled = [name for name, func in prim_funcs(module).items() if rule.apply(func, host, False) is not None]
    assert len(scheduled) == 3, scheduled  # all but the depthwise conv
    with host, tvm.transform.PassContext(opt_level=3):
        executable = tvm.compile(module, target=host, relax_pipeline=relax_pipeline(host, [rule], conv_layout="NCHW"))
    vm = relax.VirtualMachine(executable, tvm.cpu())
    rng = np.random.default_rng(2)
    for shape in ([(1, 8, height, width)] if isinstance(height, int) else [(1, 8, 18, 34), (1, 8, 7, 12)]):
        x = rng.standard_normal(shape).astype(np.float32)
        got = vm["main"](tvm.runtime.tensor(x)).numpy()
        np.testing.assert_allclose(got, ort_run(path, x), rtol=1e-4, atol=1e-4)


def test_compile_llvm_matches_onnxruntime(tmp_path: Path) -> None:
    """Through mlc.compile, with all of mlc's rules."""
    assert_compile_matches(conv_zoo_model(tmp_path / "convs.onnx", 16, 16), tmp_path / "a", (1, 8, 16, 16))
