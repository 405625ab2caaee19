"""`mlc optimize` of a model past protobuf's 2 GB: the weights go to `OUT.data` beside `OUT`, and
the model names that file (it was written under a temporary name first, so the name must be the
final one). Exercised with the threshold lowered so that a small model takes that path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import mlc
import mlc.onnx_io.exporter as exporter
from mlc.errors import BadInputError


def _model(path: Path) -> Path:
    w = numpy_helper.from_array(np.arange(64 * 64, dtype=np.float32).reshape(64, 64) / 4096, "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 64])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, str(path))
    return path


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def test_large_optimized_model_names_its_final_data_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exporter, "EXTERNAL_THRESHOLD", 1024)
    model = _model(tmp_path / "m.onnx")
    out = tmp_path / "out" / "opt.onnx"
    mlc.optimize(model, out)
    proto = onnx.load(str(out), load_external_data=False)
    locations = {e.value for t in proto.graph.initializer for e in t.external_data if e.key == "location"}
    assert locations == {"opt.onnx.data"}
    assert sorted(p.name for p in out.parent.iterdir()) == ["opt.onnx", "opt.onnx.data"]  # no temporary litter
    x = np.random.default_rng(0).standard_normal((2, 64)).astype(np.float32)
    np.testing.assert_allclose(_run(out, x), _run(model, x), rtol=1e-5, atol=1e-5)
    mlc.optimize(model, out)  # its own earlier output and data file may be replaced
    np.testing.assert_allclose(_run(out, x), _run(model, x), rtol=1e-5, atol=1e-5)


def test_a_users_file_where_the_data_goes_is_not_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exporter, "EXTERNAL_THRESHOLD", 1024)
    model = _model(tmp_path / "m.onnx")
    users = tmp_path / "opt.onnx.data"
    users.write_bytes(b"the user's")
    with pytest.raises(BadInputError, match=r"opt\.onnx\.data.*mlc did not write"):
        mlc.optimize(model, tmp_path / "opt.onnx")
    assert users.read_bytes() == b"the user's"
    assert not (tmp_path / "opt.onnx").exists()
