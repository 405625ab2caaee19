"""Issue 16's "wrong numbers, exit 0": a float16 Conv + BatchNormalization whose folded weights
overflow float16. mlc's pipeline no longer folds it, and the onnxruntime artifact's session does
not refold it (backends/onnxruntime.py turns ConvBNFusion and the other affine folds off), so
`mlc optimize`, the onnxruntime and the llvm artifacts compute finite numbers that match
onnxruntime on the original; were a session to refold it, the artifact check would stop the
compile with exit 1 and one line (never exit 0 with Inf); no numpy warning reaches stderr."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mlc import api
from mlc.backends.onnxruntime import CPU, session_settings
from mlc.errors import NumericMismatchError
from mlc.numerics.compare import OK, compare_array
from mlc.pass_api import Numerics
from tests.numerics_hazards.models import conv_bn_fp16, fp16_feeds, reference_outputs, save_feeds

ORT_REFOLDS = "ConvBNFusion" not in session_settings(CPU)["disabled_optimizers"]


def matches_original(model: Path, outputs: dict[str, np.ndarray], feeds: dict[str, np.ndarray]) -> None:
    expected = reference_outputs(model, feeds)["y"]
    assert np.isfinite(expected).all()
    assert np.isfinite(outputs["y"]).all(), f"{int((~np.isfinite(outputs['y'])).sum())} non-finite outputs"
    check = compare_array("y", expected, outputs["y"], Numerics.TOLERANCE)
    assert check.verdict == OK, check.describe()


def test_optimize_keeps_the_batchnorm_and_the_numbers(tmp_path: Path) -> None:
    model = conv_bn_fp16(tmp_path / "m.onnx")
    optimized = api.optimize(model, tmp_path / "opt.onnx", level=2)
    feeds = fp16_feeds(seed=7)
    outputs = reference_outputs(optimized, feeds)
    matches_original(model, outputs, feeds)
    import onnx

    assert "BatchNormalization" in [n.op_type for n in onnx.load(str(optimized)).graph.node]


def test_onnxruntime_artifact_is_finite_and_matches_the_original(tmp_path: Path) -> None:
    model = conv_bn_fp16(tmp_path / "m.onnx")
    folder = api.compile(model, "onnxruntime", tmp_path / "m.ort")
    feeds = fp16_feeds(seed=7)
    matches_original(model, api.run(folder, feeds), feeds)


def test_the_onnxruntime_session_does_not_refold() -> None:
    assert not ORT_REFOLDS


def test_onnxruntime_compile_never_ships_inf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Were the session to refold the pair, the artifact check stands between it and exit 0."""
    import mlc.backends.onnxruntime as ort_backend

    monkeypatch.setattr(ort_backend, "_DISABLED_REFOLDS", [])
    model = conv_bn_fp16(tmp_path / "m.onnx")
    with pytest.raises(NumericMismatchError) as caught:
        api.compile(model, "onnxruntime", tmp_path / "m.ort")
    message = str(caught.value)
    assert "y: fail: 256 of 256 elements are NaN/Inf where the reference is finite" in message
    assert not (tmp_path / "m.ort").exists(), "no artifact is written"


def test_the_cli_compiles_it_without_a_numpy_warning(tmp_path: Path) -> None:
    model = conv_bn_fp16(tmp_path / "m.onnx")
    run = subprocess.run([sys.executable, "-m", "mlc.cli", "compile", str(model), "--target", "onnxruntime",
                          "-o", str(tmp_path / "m.ort")], capture_output=True, text=True, timeout=300)
    assert "Warning" not in run.stderr and "overflow encountered" not in run.stderr, run.stderr
    assert run.returncode == 0, run.stderr


def test_llvm_artifact_is_finite_and_matches_the_original(tmp_path: Path) -> None:
    pytest.importorskip("tvm", reason="apache-tvm is not installed (pip install 'mlc[tvm]')")
    model = conv_bn_fp16(tmp_path / "m.onnx")
    feeds = fp16_feeds(seed=7)
    folder = api.compile(model, "llvm", tmp_path / "m.llvm", inputs=save_feeds(feeds, tmp_path / "in.npz"))
    matches_original(model, api.run(folder, feeds), feeds)
    matches_original(model, api.run(folder, fp16_feeds(seed=8)), fp16_feeds(seed=8))


ORT_FOLDS = ["ConvBNFusion", "ConvMulFusion", "ConvAddFusion", "MatMul_BatchNormalization_Fusion"]


def test_these_onnxruntime_rules_are_the_ones_that_refold(tmp_path: Path) -> None:
    """Evidence for the backend fix: with its graph optimizer on, onnxruntime folds Conv+BN,
    Conv+Mul and MatMul+BN into float16 weights itself (Inf); with the rules named in
    ORT_FOLDS disabled (the names onnxruntime 1.31 knows them by) it computes what the
    unoptimized session computes."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from tests.numerics_hazards.models import save

    f16 = TensorProto.FLOAT16
    matmul_bn = save([helper.make_node("MatMul", ["x", "w"], ["m"]),
                      helper.make_node("BatchNormalization", ["m", "g", "b", "mu", "v"], ["y"])],
                     {"w": np.full((4, 3), 1e3, np.float16), "g": np.full(3, 100.0, np.float16),
                      "b": np.zeros(3, np.float16), "mu": np.zeros(3, np.float16), "v": np.ones(3, np.float16)},
                     {"x": (f16, [2, 4])}, {"y": (f16, [2, 3])}, tmp_path / "mmbn.onnx")
    conv_mul = save([helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("Mul", ["c", "k"], ["y"])],
                    {"w": np.full((4, 3, 1, 1), 1e3, np.float16), "k": np.full((4, 1, 1), 300.0, np.float16)},
                    {"x": (f16, [1, 3, 2, 2])}, {"y": (f16, [1, 4, 2, 2])}, tmp_path / "convmul.onnx")
    cases = [(conv_bn_fp16(tmp_path / "convbn.onnx"), fp16_feeds()),
             (matmul_bn, {"x": np.full((2, 4), 1e-3, np.float16)}),
             (conv_mul, {"x": np.full((1, 3, 2, 2), 1e-3, np.float16)})]
    for model, feeds in cases:
        options = ort.SessionOptions()
        options.log_severity_level = 4
        refolded = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        assert not np.isfinite(refolded.run(None, feeds)[0]).all(), f"{model.name}: onnxruntime no longer refolds"
        kept = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"],
                                    disabled_optimizers=ORT_FOLDS)
        matches_original(model, {"y": kept.run(None, feeds)[0]}, feeds)
