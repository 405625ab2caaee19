"""Shared by the conv rule tests: a one-convolution Relax module and onnxruntime as the reference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

tvm = pytest.importorskip("tvm", reason="apache-tvm is not installed (pip install 'mlc[tvm]')")

from tvm import relax  # noqa: E402


def conv_module(shape: tuple[Any, ...], out_channels: int, kernel: int, stride: int, pad: int, groups: int,
                epilogue: str = "bias_relu") -> Any:
    """A Relax module: conv2d (NCHW/OIHW) with the given epilogue; symbolic dims are names."""
    rng = np.random.default_rng(0)
    dims = [tvm.tirx.Var(d, "int64") if isinstance(d, str) else d for d in shape]
    builder = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(dims, "float32"))
    channels = int(shape[1])
    with builder.function("main", [x]):
        with builder.dataflow():
            weight = rng.standard_normal((out_channels, channels // groups, kernel, kernel)).astype("float32")
            y = builder.emit(relax.op.nn.conv2d(x, relax.const(weight), strides=stride, padding=pad, groups=groups))
            if "bias" in epilogue:
                bias = rng.standard_normal((1, out_channels, 1, 1)).astype("float32")
                y = builder.emit(relax.op.add(y, relax.const(bias)))
            if "relu" in epilogue:
                y = builder.emit(relax.op.nn.relu(y))
            out = builder.emit_output(y)
        builder.emit_func_output(out)
    return builder.get()


def ort_run(path: Path, x: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"X": x})[0]


def assert_compile_matches(path: Path, folder: Path, shape: tuple[int, ...]) -> None:
    """`mlc.compile(path, "llvm")` (checked against onnxruntime at compile time too), then run on a
    random input of `shape` and compared with onnxruntime again."""
    import mlc

    artifact = mlc.compile(path, "llvm", folder)
    x = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    (got,) = mlc.load(artifact).run({"X": x}).values()
    np.testing.assert_allclose(got, ort_run(path, x), rtol=1e-4, atol=1e-4)
