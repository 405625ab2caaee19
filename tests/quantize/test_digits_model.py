"""The committed digits CNN and its data splits: the model quantization is judged on must be what
models/make_digits_cnn.py reported (fp32 top-1 on the test split), in the layout the benchmark and
the quantization tests read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "digits_cnn.onnx"
DATA = ROOT / "models" / "digits_cnn.data.npz"
REPORTED_ACCURACY = 0.9817  # `python models/make_digits_cnn.py` printed this (torch and onnxruntime agree)


def _pixels(levels: np.ndarray) -> np.ndarray:
    """Stored grey levels 0..16 -> the model's float32 input in [0,1] (as make_digits_cnn.load_pixels)."""
    return levels.astype(np.float32) / np.float32(16.0)


def test_data_layout() -> None:
    data = np.load(DATA)
    assert data["calibration"].shape == (200, 1, 8, 8)
    assert data["calibration"].dtype == np.uint8 and data["test"].dtype == np.uint8
    test, labels = data["test"], data["test_labels"]
    assert test.shape[1:] == (1, 8, 8) and labels.shape == (test.shape[0],)
    assert test.shape[0] + data["calibration"].shape[0] + int(data["train_size"]) == 1797  # all of load_digits
    assert int(max(data["calibration"].max(), test.max())) <= 16
    assert set(np.unique(labels).tolist()) == set(range(10))
    counts = np.bincount(labels, minlength=10)
    assert counts.min() >= 55 and counts.max() <= 62  # stratified: about 60 of each digit


def test_model_shape_of_graph() -> None:
    model = onnx.load(str(MODEL))
    assert model.ir_version == 8 and [(o.domain, o.version) for o in model.opset_import] == [("", 17)]
    assert model.producer_name == "models/make_digits_cnn.py"
    ops = {n.op_type for n in model.graph.node}
    assert {"Conv", "Relu", "MaxPool", "Add", "Flatten", "Gemm"} <= ops
    batch = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param and not batch.HasField("dim_value")  # dynamic batch
    props = {p.key: p.value for p in model.metadata_props}
    assert float(props["test_accuracy"]) == REPORTED_ACCURACY


def test_fp32_accuracy_under_onnxruntime() -> None:
    data = np.load(DATA)
    session = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"image": _pixels(data["test"])})
    accuracy = float(np.mean(logits.argmax(axis=1) == data["test_labels"]))
    assert abs(accuracy - REPORTED_ACCURACY) <= 0.005, accuracy
    # batch 1 gives the same answers as the whole split at once (dynamic batch really works)
    one = np.concatenate([session.run(None, {"image": _pixels(data["test"][i:i + 1])})[0] for i in range(8)])
    np.testing.assert_allclose(one, logits[:8], rtol=1e-5, atol=1e-5)
