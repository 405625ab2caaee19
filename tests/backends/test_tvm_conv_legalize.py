"""tvm_conv_legalize: channels-last convolutions with a symbolic width computed over whole column
tiles (clamped extra columns, a crop), TOPI's legalization everywhere else; numbers as onnxruntime's
for strides, dilations, asymmetric pads and depthwise multipliers at widths below, at and past the
tile, and the rule's tile on it free of bounds tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

tvm = pytest.importorskip("tvm", reason="apache-tvm is not installed (pip install 'mlc[tvm]')")

from tvm import relax  # noqa: E402

from mlc.backends.tvm_conv_legalize import CROP_BLOCK, conv2d_whole_tiles  # noqa: E402
from mlc.backends.tvm_sched_conv_nhwc import Conv2dNHWCRule  # noqa: E402
from mlc.backends.tvm_schedules import _channels_last, fusion_passes, relax_pipeline  # noqa: E402
from tests.backends.conv_helpers import conv_module  # noqa: E402

TARGET = tvm.target.Target({"kind": "llvm", "mcpu": "znver4"})  # AVX-512: 8-column tiles; only scheduled


def legalized_conv(module: Any, columns: int = 8) -> Any:
    with TARGET:
        legalize = relax.transform.LegalizeOps(customize_legalize_map={"relax.nn.conv2d": conv2d_whole_tiles(columns)})
        lowered = tvm.transform.Sequential([_channels_last(), legalize, relax.transform.AnnotateTIROpPattern(),
                                            relax.transform.FuseOps(), relax.transform.FuseTIR()])(module)
    (func,) = [f for gv, f in lowered.functions.items()
               if isinstance(f, tvm.tirx.PrimFunc) and "conv2d" in gv.name_hint]
    return func


def test_symbolic_width_is_rounded_up_to_tiles_and_cropped() -> None:
    """BEFORE: conv2d(x: 1x16xHxW) + bias + relu, legalized by TOPI: pad, conv over W columns.
    EXPECTED: pad, conv over ceil(W / 8) * 8 columns reading column min(x, W - 1), then the crop
    (the first epilogue block), bias, relu; one fused kernel."""
    text = legalized_conv(conv_module((1, 16, "h", "w"), 32, 3, 1, 1, 1)).script()
    blocks = [line.split('"')[1] for line in text.splitlines() if "T.sblock(" in line and "root" not in line]
    assert blocks[:3] == ["pad_temp", "conv2d_nhwc", CROP_BLOCK], blocks
    assert "(w + T.int64(7)) // T.int64(8) * T.int64(8)" in text
    assert "T.min(v_xx, w - T.int64(1))" in text


@pytest.mark.parametrize("shape", [(1, 16, 12, 12), (1, 16, "h", 12)], ids=["static", "symbolic-height-only"])
def test_static_width_keeps_topis_convolution(shape: tuple[Any, ...]) -> None:
    text = legalized_conv(conv_module(shape, 32, 3, 1, 1, 1)).script()
    assert CROP_BLOCK not in text and "T.min(" not in text


def test_grouped_convolution_keeps_topis_convolution() -> None:
    """4 input channels per group: the NHWC rule declines it, so it is not rounded up either."""
    assert CROP_BLOCK not in legalized_conv(conv_module((1, 16, "h", "w"), 16, 3, 1, 1, 4)).script()


@pytest.mark.parametrize("columns", [8, 6])
def test_rule_tiles_the_rounded_width_without_bounds_test(columns: int) -> None:
    func = legalized_conv(conv_module((1, 64, "h", "w"), 64, 3, 1, 1, 1), columns)
    target = TARGET if columns == 8 else tvm.target.Target({"kind": "llvm", "mcpu": "znver3"})  # AVX2: 6
    sch = Conv2dNHWCRule().apply(func, target, False)
    assert sch is not None
    text = sch.mod.script()
    assert f"for xx_1 in T.unroll(T.int64({columns})):" in text
    update = text.split('T.sblock("conv2d_nhwc_update")')[1].split("T.sblock(")[0]
    assert "T.where" not in update  # the accumulators stay in registers
    assert "T.where" in text.split(f'T.sblock("{CROP_BLOCK}")')[-1] or "T.where" in text.split("compute")[-1]


def conv_model(path: Path, channels: int, out_channels: int, kernel: int, stride: int, pads: list[int],
               dilation: int, group: int) -> Path:
    """X(1 x channels x H x W, H and W symbolic) -> Conv (+bias) -> Relu -> Y."""
    rng = np.random.default_rng(4)
    weight = (rng.standard_normal((out_channels, channels // group, kernel, kernel)) * 0.3).astype(np.float32)
    bias = rng.standard_normal(out_channels).astype(np.float32)
    nodes = [helper.make_node("Conv", ["X", "w", "b"], ["c"], pads=pads, strides=[stride, stride],
                              dilations=[dilation, dilation], group=group),
             helper.make_node("Relu", ["c"], ["Y"])]
    graph = helper.make_graph(nodes, "conv", [helper.make_tensor_value_info("X", TensorProto.FLOAT,
                                                                            [1, channels, "h", "w"])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, out_channels, None, None])],
                              [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")])
    model = helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


CONFIGS = {  # channels, out channels, kernel, stride, pads (top, left, bottom, right), dilation, group
    "3x3": (16, 32, 3, 1, [1, 1, 1, 1], 1, 1),
    "3x3-stride2-asymmetric": (8, 16, 3, 2, [0, 1, 1, 0], 1, 1),
    "3x3-dilation2": (8, 16, 3, 1, [2, 2, 2, 2], 2, 1),
    "1x1": (24, 16, 1, 1, [0, 0, 0, 0], 1, 1),
    "depthwise-multiplier2": (8, 16, 3, 1, [1, 1, 1, 1], 1, 8),
    "depthwise-5x5-stride2": (16, 16, 5, 2, [2, 2, 2, 2], 1, 16),
}


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_numbers_match_onnxruntime_at_many_widths(tmp_path: Path, config: str) -> None:
    """Built with mlc's whole llvm pipeline; widths from 1 column (less than a tile) to past two
    tiles, so every tail length occurs."""
    import onnxruntime as ort
    from tvm.relax.frontend.onnx import from_onnx

    from mlc.backends.tvm import host_cpu

    path = conv_model(tmp_path / "conv.onnx", *CONFIGS[config])
    module = relax.transform.DecomposeOpsForInference()(from_onnx(onnx.load(path), opset=17,
                                                                  keep_params_in_input=False))
    host = tvm.target.Target({"kind": "llvm", "mcpu": host_cpu()})
    with host:
        lowered = tvm.transform.Sequential(fusion_passes(host))(module)
    assert any(CROP_BLOCK in f.script() for f in lowered.functions.values() if isinstance(f, tvm.tirx.PrimFunc))
    with host, tvm.transform.PassContext(opt_level=3):
        executable = tvm.compile(module, target=host, relax_pipeline=relax_pipeline(host))
    vm = relax.VirtualMachine(executable, tvm.cpu())
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(5)
    channels = CONFIGS[config][0]
    for width in (5, 8, 9, 13, 16, 23, 31):
        x = rng.standard_normal((1, channels, 6, width)).astype(np.float32)
        got = vm["main"](tvm.runtime.tensor(x)).numpy()
        np.testing.assert_allclose(got, session.run(None, {"X": x})[0], rtol=1e-4, atol=1e-4, err_msg=f"width {width}")
