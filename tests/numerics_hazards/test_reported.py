"""NaN/Inf weights are reported where a user looks: `mlc inspect` (text and JSON) and the
verification of `mlc compile` (its printed summary, its JSON report and the artifact's manifest)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper

from mlc.cli import main
from tests.numerics_hazards.models import save


def nan_conv(path: Path) -> Path:
    w = np.ones((4, 3, 3, 3), np.float32)
    w[1, 2, 0, 1] = np.nan
    w[3, 0, 0, 0] = np.inf
    return save([helper.make_node("Conv", ["x", "conv1.weight"], ["y"], name="conv1")], {"conv1.weight": w},
                {"x": (TensorProto.FLOAT, [1, 3, 8, 8])}, {"y": (TensorProto.FLOAT, [1, 4, 6, 6])}, path)


def test_inspect_names_nan_and_inf_weights(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = nan_conv(tmp_path / "m.onnx")
    assert main(["inspect", str(model)]) == 0
    out = capsys.readouterr().out
    assert "weights: 1 NaN in conv1.weight (first at [1, 2, 0, 1])" in out
    assert "weights: 1 Inf in conv1.weight (first at [3, 0, 0, 0]: +inf)" in out
    assert main(["inspect", str(model), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert [(h["kind"], h["tensor"], h["first_index"]) for h in payload["numeric_hazards"]] == [
        ("nan", "conv1.weight", [1, 2, 0, 1]), ("inf", "conv1.weight", [3, 0, 0, 0])]


def test_inspect_of_a_clean_model_lists_no_hazards(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = save([helper.make_node("Relu", ["x"], ["y"])], {}, {"x": (TensorProto.FLOAT, [2])},
                 {"y": (TensorProto.FLOAT, [2])}, tmp_path / "m.onnx")
    assert main(["inspect", str(model), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["numeric_hazards"] == []


def test_compile_verification_reports_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = nan_conv(tmp_path / "m.onnx")
    report = tmp_path / "report.json"
    assert main(["compile", str(model), "-o", str(tmp_path / "m.ort"), "--report", str(report)]) == 0
    out = capsys.readouterr().out
    assert "numbers inconclusive" in out
    assert "  weights: 1 NaN in conv1.weight (first at [1, 2, 0, 1])" in out
    assert "the check cannot judge them" in out
    kinds = {(h["kind"], h["tensor"]) for h in json.loads(report.read_text())["numeric_hazards"]}
    assert kinds == {("nan", "conv1.weight"), ("inf", "conv1.weight")}
    manifest = json.loads((tmp_path / "m.ort" / "manifest.json").read_text())
    assert {h["kind"] for h in manifest["verification"]["numeric_hazards"]} == {"nan", "inf"}


def test_compile_without_verification_scans_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = nan_conv(tmp_path / "m.onnx")
    assert main(["compile", str(model), "-o", str(tmp_path / "m.ort"), "--verify", "none"]) == 0
    assert "weights:" not in capsys.readouterr().out
    assert "numeric_hazards" not in json.loads((tmp_path / "m.ort" / "manifest.json").read_text())["verification"]
