"""Conv2dNHWCRule (backends/tvm_sched_conv_nhwc.py) and the channels-last conversion in front of it
(tvm_schedules.fusion_passes): which kernels it takes and with which tile, that the layout change
leaves transposes only at the model's edges with the weights folded, that what it builds computes
onnxruntime's numbers (dense, depthwise, strided, 1x1, prime widths, symbolic widths, epilogues),
and that it is deterministic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

tvm = pytest.importorskip("tvm", reason="apache-tvm is not installed (pip install 'mlc[tvm]')")

from tvm import relax  # noqa: E402

from mlc.backends.tvm_sched_conv_nhwc import Conv2dNHWCRule  # noqa: E402
from mlc.backends.tvm_schedules import fusion_passes, relax_pipeline  # noqa: E402
from tests.backends.conv_helpers import assert_compile_matches, conv_module, ort_run  # noqa: E402

TARGET = {"kind": "llvm", "mcpu": "znver4"}  # AVX-512: 16 lanes; only scheduled here, never run


def target() -> Any:
    return tvm.target.Target(TARGET)


def fused(module: Any) -> Any:
    with target():
        return tvm.transform.Sequential(fusion_passes(target()))(module)


def the_conv(module: Any) -> Any:
    (func,) = [f for gv, f in fused(module).functions.items()
               if isinstance(f, tvm.tirx.PrimFunc) and "conv2d" in gv.name_hint]
    return func


CASES = {  # input shape, out channels, kernel, stride, pad, groups
    "dense3x3": ((1, 16, 14, 14), 32, 3, 1, 1, 1),
    "stem7x7s2": ((1, 3, 32, 32), 16, 7, 2, 3, 1),
    "pointwise": ((1, 16, 14, 14), 24, 1, 1, 0, 1),
    "depthwise": ((1, 32, 12, 12), 32, 3, 1, 1, 32),
    "prime_width": ((1, 64, 7, 7), 64, 3, 1, 1, 1),
    "symbolic_long": (("n", 64, "h", "w"), 64, 3, 1, 1, 1),
    "symbolic_short": (("n", 16, "h", "w"), 48, 1, 1, 0, 1),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_rule_schedules_conv_kernels(case: str) -> None:
    shape, out_channels, kernel, stride, pad, groups = CASES[case]
    func = the_conv(conv_module(shape, out_channels, kernel, stride, pad, groups))
    text = func.script()
    assert "conv2d_nhwc" in text  # fusion_passes converted it to channels-last
    sch = Conv2dNHWCRule().apply(func, target(), False)
    assert sch is not None
    text = sch.mod.script()
    assert "T.parallel(" in text and "T.vectorized(" in text
    assert "conv2d_nhwc_init" in text  # the initialization split off the reduction
    unrolled = [line for line in text.splitlines() if "T.unroll(" in line]
    columns = [line for line in unrolled if "xx_1" in line and "init" not in line]
    assert len(columns) == 1
    width = shape[3]
    if case == "prime_width":
        assert "T.unroll(T.int64(7))" in columns[0]  # the whole 7-column row in one tile, no tail
    if isinstance(width, str):
        # symbolic width, rounded up to whole tiles (tvm_conv_legalize): the full 8-column tile
        assert "T.unroll(T.int64(8))" in columns[0]
    # never a bounds test on the accumulators (only the crop's stores of a symbolic width carry one)
    assert "T.where" not in text.split("conv2d_nhwc_update")[1].split("compute")[0].split("crop")[0]


def test_rule_keeps_a_bounds_test_on_a_width_not_rounded_to_tiles() -> None:
    """A symbolic-width conv legalized by TOPI (not `tvm_conv_legalize`) still gets a schedule:
    6 columns with a tail test when the reduction is long, 1 column (no test) when it is short."""
    cases = (((1, 64, "h", "w"), 64, 3, 1, 6), ((1, 16, "h", "w"), 48, 1, 0, 1))
    for shape, out_channels, kernel, pad, columns in cases:
        module = conv_module(shape, out_channels, kernel, 1, pad, 1)
        with target():
            from mlc.backends.tvm_schedules import _channels_last
            lowered = tvm.transform.Sequential([_channels_last(), relax.transform.LegalizeOps(),
                                                relax.transform.AnnotateTIROpPattern(), relax.transform.FuseOps(),
                                                relax.transform.FuseTIR()])(module)
        (func,) = [f for gv, f in lowered.functions.items()
                   if isinstance(f, tvm.tirx.PrimFunc) and "conv2d" in gv.name_hint]
        assert "crop" not in func.script()
        sch = Conv2dNHWCRule().apply(func, target(), False)
        assert sch is not None
        text = sch.mod.script()
        assert ("T.where" in text) == (columns > 1)
        assert any(f"T.unroll(T.int64({columns}))" in line and "xx_1" in line for line in text.splitlines())


def test_grouped_symbolic_channels_and_other_kernels_are_declined() -> None:
    grouped = the_conv(conv_module((1, 16, 12, 12), 16, 3, 1, 1, 4))
    assert Conv2dNHWCRule().apply(grouped, target(), False) is None  # 4 channels per group: not depthwise
    builder = relax.BlockBuilder()
    a = relax.Var("a", relax.TensorType((1, 8, 16, 16), "float32"))
    m = relax.Var("m", relax.TensorType((32, 64), "float32"))
    with builder.function("main", [a, m]):
        with builder.dataflow():
            pooled = builder.emit(relax.op.nn.max_pool2d(a, pool_size=(2, 2), strides=(2, 2)))
            product = builder.emit(relax.op.matmul(m, relax.op.permute_dims(m)))
            out = builder.emit_output(relax.Tuple([pooled, product]))
        builder.emit_func_output(out)
    for gv, func in fused(builder.get()).functions.items():
        if isinstance(func, tvm.tirx.PrimFunc):
            assert Conv2dNHWCRule().apply(func, target(), False) is None, gv.name_hint
    dense = the_conv(conv_module((1, 8, 8, 8), 16, 3, 1, 1, 1))
    assert Conv2dNHWCRule().apply(dense, tvm.target.Target({"kind": "cuda", "arch": "sm_80"}), False) is None


def test_layout_change_sits_at_the_edges_with_folded_weights() -> None:
    """Two convolutions with a relu between: one transpose in, one out, weights as constants (no
    per-call transpose of a weight)."""
    rng = np.random.default_rng(0)
    builder = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, 8, 10, 10), "float32"))
    with builder.function("main", [x]):
        with builder.dataflow():
            w1 = relax.const(rng.standard_normal((16, 8, 3, 3)).astype("float32"))
            w2 = relax.const(rng.standard_normal((16, 16, 3, 3)).astype("float32"))
            y = builder.emit(relax.op.nn.relu(relax.op.nn.conv2d(x, w1, padding=1)))
            out = builder.emit_output(relax.op.nn.conv2d(y, w2, padding=1))
        builder.emit_func_output(out)
    main = fused(builder.get())["main"].script()
    calls = [line for line in main.splitlines() if "R.call_tir(" in line]
    transposes = [line for line in calls if "transpose" in line]
    assert len(transposes) == 2, calls  # the input into NHWC, the output back to NCHW
    assert not any("metadata" in line for line in transposes)  # no weight is transposed at run time


def test_schedule_is_deterministic() -> None:
    for case in ("dense3x3", "symbolic_long", "depthwise"):
        shape, out_channels, kernel, stride, pad, groups = CASES[case]
        func = the_conv(conv_module(shape, out_channels, kernel, stride, pad, groups))
        first = Conv2dNHWCRule().apply(func, target(), False)
        second = Conv2dNHWCRule().apply(func, target(), False)
        assert first is not None and second is not None
        assert first.mod.script() == second.mod.script()


# --- numbers: an ONNX model with every kind of conv, built with mlc's pipeline, against onnxruntime


def conv_zoo_model(path: Path, height: Any, width: Any) -> Path:
    """X(1x8xHxW) -> Conv3x3+bias -> Relu -> depthwise Conv3x3 s2 + bias -> Clip(0,6)
    -> Conv3x3 + residual Add -> HardSwish -> MaxPool -> Conv1x1 + bias -> Y; dims are ints or names."""
    rng = np.random.default_rng(1)

    def init(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(np.float32), name)

    nodes = [
        helper.make_node("Conv", ["X", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2], group=16),
        helper.make_node("Clip", ["c2", "lo", "hi"], ["r2"]),
        helper.make_node("Conv", ["r2", "w3"], ["c3"], pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c3", "r2"], ["s3"]),
        helper.make_node("HardSwish", ["s3"], ["h3"]),
        helper.make_node("MaxPool", ["h3"], ["p3"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p3", "w4", "b4"], ["Y"]),
    ]
    inits = [init("w1", 16, 8, 3, 3), init("b1", 16), init("w2", 16, 1, 3, 3), init("b2", 16),
             init("w3", 16, 16, 3, 3), init("w4", 24, 16, 1, 1), init("b4", 24),
             numpy_helper.from_array(np.array(0.0, np.float32), "lo"),
             numpy_helper.from_array(np.array(6.0, np.float32), "hi")]
    graph = helper.make_graph(nodes, "convs", [helper.make_tensor_value_info("X", TensorProto.FLOAT,
                                                                             [1, 8, height, width])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 24, None, None])], inits)
    model = helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


@pytest.mark.parametrize(("height", "width"), [(18, 28), (14, 14), ("h", "w")],
                         ids=["28-columns", "7-columns", "symbolic"])
def test_pipeline_matches_onnxruntime(tmp_path: Path, height: Any, width: Any) -> None:
    """Every conv of the model NHWC-scheduled (the depthwise one included), numbers as onnxruntime's;
    the symbolic model at sizes whose widths leave a tail of 1 to 5 columns."""
    from tvm.relax.frontend.onnx import from_onnx

    from mlc.backends.tvm import host_cpu

    path = conv_zoo_model(tmp_path / "convs.onnx", height, width)
    module = relax.transform.DecomposeOpsForInference()(from_onnx(onnx.load(path), opset=17,
                                                                  keep_params_in_input=False))
    host = tvm.target.Target({"kind": "llvm", "mcpu": host_cpu()})
    rule = Conv2dNHWCRule()
    with host:
        lowered = tvm.transform.Sequential(fusion_passes(host))(module)
    convs = {gv.name_hint: f for gv, f in lowered.functions.items()
             if isinstance(f, tvm.tirx.PrimFunc) and "conv2d" in gv.name_hint}
    assert len(convs) == 4 and all(rule.apply(f, host, False) is not None for f in convs.values()), sorted(convs)
    with host, tvm.transform.PassContext(opt_level=3):
        executable = tvm.compile(module, target=host, relax_pipeline=relax_pipeline(host))
    vm = relax.VirtualMachine(executable, tvm.cpu())
    rng = np.random.default_rng(2)
    sizes = [(1, 8, height, width)] if isinstance(height, int) else [(1, 8, 18, 34), (1, 8, 7, 12), (1, 8, 9, 45)]
    for shape in sizes:
        x = rng.standard_normal(shape).astype(np.float32)
        got = vm["main"](tvm.runtime.tensor(x)).numpy()
        np.testing.assert_allclose(got, ort_run(path, x), rtol=1e-4, atol=1e-4)


def test_compile_llvm_matches_onnxruntime(tmp_path: Path) -> None:
    """Through mlc.compile, with all of mlc's rules."""
    assert_compile_matches(conv_zoo_model(tmp_path / "convs.onnx", 16, 16), tmp_path / "a", (1, 8, 16, 16))
