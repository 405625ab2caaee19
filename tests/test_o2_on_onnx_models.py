"""-O2, with the numbers checked after every pass, holds on the onnx wheel's real models: the 9
light models and every pytorch-converted / pytorch-operator model (issue 6's acceptance); so does
-O3 for the onnxruntime target (its contrib composites and legalization on top)."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from mlc.pipelines import build_pipeline
from mlc.runner import CheckOptions, run_pipeline

DATA = Path(onnx.__file__).resolve().parent / "backend" / "test" / "data"
MODELS = sorted(DATA.glob("light/light_*.onnx")) + sorted(DATA.glob("pytorch-*/*/model.onnx"))


def _id(path: Path) -> str:
    return path.stem if path.name != "model.onnx" else f"{path.parent.parent.name}/{path.parent.name}"


def test_the_model_set_is_complete() -> None:
    assert len([p for p in MODELS if "light" in p.parts]) == 9
    assert len(MODELS) == 9 + 82 + 35


@pytest.mark.parametrize("path", MODELS, ids=_id)
def test_o2_checked_after_every_pass(path: Path) -> None:
    result = run_pipeline(path, build_pipeline("O2"), CheckOptions(verify="each"))
    checks = {r.name: (r.to_json()["check"] or {}).get("verdict") for r in result.records if r.changed}
    assert result.verdict == "ok", (result.verdict, checks)
    assert all(verdict == "ok" for verdict in checks.values()), checks  # every changing pass was checked


@pytest.mark.parametrize("path", MODELS, ids=_id)
def test_o3_for_onnxruntime_checked_after_every_pass(path: Path) -> None:
    result = run_pipeline(path, build_pipeline("O3", target="onnxruntime"), CheckOptions(verify="each"))
    checks = {r.name: (r.to_json()["check"] or {}).get("verdict") for r in result.records if r.changed}
    assert result.verdict == "ok", (result.verdict, checks)
    assert all(verdict == "ok" for verdict in checks.values()), checks
