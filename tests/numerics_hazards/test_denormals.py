"""Subnormal (denormal) numbers are kept, never flushed (mlc.numerics.denormals): a model whose
weights are subnormal compiles without a spurious mismatch, and its artifacts compute the
numbers IEEE arithmetic gives, also where the model amplifies the subnormals into normal
outputs (where flushing them would be a big, silent difference)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper

from mlc import api
from mlc.numerics.compare import FAIL, OK, compare_array
from mlc.numerics.denormals import REFERENCE_SESSION_CONFIG, flush_to_zero_active
from mlc.numerics.hazards import SUBNORMAL, scan_constants
from mlc.numerics.reference import run_model
from mlc.onnx_io.importer import import_onnx
from mlc.pass_api import Numerics
from tests.numerics_hazards.models import reference_outputs, save, save_feeds, subnormal_feeds, subnormal_matmul

F16, F32 = TensorProto.FLOAT16, TensorProto.FLOAT


def exact_outputs(model: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """IEEE arithmetic in float64, the subnormal weights kept, rounded once to the model's type."""
    w = import_onnx(str(model)).initializers["w"].const.numpy().astype(np.float64)
    y = (feeds["x"].astype(np.float64) @ w) * feeds["s"].astype(np.float64)
    return y.astype(feeds["x"].dtype)


def test_this_process_does_not_flush_subnormals() -> None:
    """Everything below assumes the calling thread keeps subnormals (no library set FTZ/DAZ)."""
    assert not flush_to_zero_active()
    assert REFERENCE_SESSION_CONFIG == {"session.set_denormal_as_zero": "0"}


@pytest.mark.parametrize("dtype", [F32, F16])
@pytest.mark.parametrize("amplify", [True, False], ids=["amplified", "subnormal-outputs"])
def test_onnxruntime_compile_keeps_subnormal_weights(tmp_path: Path, dtype: int, amplify: bool) -> None:
    model = subnormal_matmul(tmp_path / "m.onnx", dtype)
    scan = scan_constants(import_onnx(str(model)))
    assert [(h.kind, h.tensor, h.count) for h in scan.hazards] == [(SUBNORMAL, "w", 16)]
    feeds = subnormal_feeds(dtype, amplify=amplify)
    folder = api.compile(model, "onnxruntime", tmp_path / "m.ort", inputs=save_feeds(feeds, tmp_path / "in.npz"))
    got = api.run(folder, feeds)["y"]
    exact = exact_outputs(model, feeds)
    assert np.all(got != 0), "a flushed subnormal gives 0"
    check = compare_array("y", exact, got, Numerics.TOLERANCE)
    assert check.verdict == OK, check.describe()
    if amplify:  # normal outputs: a flush would be a difference of the outputs' own size
        assert np.abs(got.astype(np.float64)).min() > 0.1


def test_llvm_compile_keeps_subnormal_weights(tmp_path: Path) -> None:
    pytest.importorskip("tvm", reason="apache-tvm is not installed (pip install 'mlc[tvm]')")
    model = subnormal_matmul(tmp_path / "m.onnx", F32)
    feeds = subnormal_feeds(F32, amplify=True)
    folder = api.compile(model, "llvm", tmp_path / "m.llvm", inputs=save_feeds(feeds, tmp_path / "in.npz"))
    got = api.run(folder, feeds)["y"]
    check = compare_array("y", exact_outputs(model, feeds), got, Numerics.TOLERANCE)
    assert check.verdict == OK and np.abs(got).min() > 0.1, check.describe()


def test_flushed_results_below_the_smallest_normal_are_no_mismatch() -> None:
    """An engine that flushes subnormal results differs by less than the smallest normal."""
    expected = np.array([3e-6, 1e-5, 0.0], np.float16)  # float16 subnormals
    check = compare_array("y", expected, np.zeros(3, np.float16), Numerics.TOLERANCE)
    assert check.verdict == OK and "flush-to-zero of subnormal results: accepted" in check.note
    expected32 = np.array([1e-39, 2e-39], np.float32)
    assert compare_array("y", expected32, np.zeros(2, np.float32), Numerics.EXACT).verdict == OK


def test_flushed_operands_that_move_normal_outputs_are_a_mismatch(tmp_path: Path) -> None:
    """onnxruntime asked to flush (`session.set_denormal_as_zero` = 1) does so on its pool
    threads only: part of the output becomes 0. The check catches it; mlc never asks for it."""
    import onnxruntime as ort

    n = 256
    w = np.full((n, n), 1e-39, np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Mul", ["m", "k"], ["y"])]
    path = save(nodes, {"w": w, "k": np.array(1e38, np.float32)}, {"x": (F32, [n, n])}, {"y": (F32, [n, n])},
                tmp_path / "m.onnx")
    feeds = {"x": np.ones((n, n), np.float32)}
    expected = reference_outputs(path, feeds)["y"]
    assert np.all(expected > 0.02)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.add_session_config_entry("session.set_denormal_as_zero", "1")
    flushed = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    zeros = int((flushed == 0).sum())
    if zeros == 0:
        pytest.skip("this onnxruntime build did not flush on its pool thread (one core?): nothing to catch")
    check = compare_array("y", expected, flushed, Numerics.TOLERANCE)
    assert check.verdict == FAIL and f"{zeros} of {n * n} elements off" in check.note
    # mlc's own reference session (set_denormal_as_zero pinned to 0) keeps them on every thread
    import onnx

    kept = run_model(onnx.load(str(path)), feeds)["y"]
    assert np.all(kept > 0.02)
