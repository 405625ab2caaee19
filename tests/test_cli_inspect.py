"""`mlc inspect` on the bundled model, in-process and as the installed command."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlc.cli import main

MODEL = Path(__file__).resolve().parents[1] / "models" / "digits_mlp.onnx"


def test_inspect_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(MODEL)]) == 0
    out = capsys.readouterr().out
    for expected in ("pixels", "f32[N,64]", "probabilities", "label", "i64[N]", "Gemm", "6,571", "ai.onnx 17"):
        assert expected in out


def test_inspect_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(MODEL), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["ops"] == {"Gemm": 3, "Relu": 2, "Div": 1, "Softmax": 1, "ArgMax": 1}
    assert summary["parameters"] == 64 * 64 + 64 + 64 * 32 + 32 + 32 * 10 + 10 + 1
    assert summary["inputs"] == [{"name": "pixels", "type": "f32[N,64]", "default": False}]


def test_inspect_text_is_parseable(capsys: pytest.CaptureFixture[str]) -> None:
    import mlc

    assert main(["inspect", str(MODEL), "--text", "--full-constants"]) == 0
    out = capsys.readouterr().out
    text = out[out.index("model ir_version"):]
    parsed = mlc.parse_ir(text)
    mlc.assert_graph_equal(mlc.import_onnx(MODEL), parsed)


def test_installed_command_runs() -> None:
    exe = shutil.which("mlc") or None
    cmd = [exe] if exe else [sys.executable, "-m", "mlc.cli"]
    result = subprocess.run([*cmd, "inspect", str(MODEL)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Softmax" in result.stdout


def test_bad_usage_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["inspect"])
    assert info.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1
