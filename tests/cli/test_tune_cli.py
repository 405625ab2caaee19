"""`mlc tune` and `mlc compile --tuning-db` on the command line: progress on stderr, the JSON
payload, one-line refusals with exit 2, and the manifest's record of the database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("tvm", reason="apache-tvm is not installed (pip install 'mlc[tvm]')")

from tests.backends.test_tvm_tune import tiny_model
from tests.cli.helpers import exit_of, mlc, one_error_line

FAST = ("--strategy", "replay-trace", "--cost-model", "random")


def test_tune_then_compile_with_the_database(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    model = tiny_model(tmp_path / "tiny.onnx")
    db = tmp_path / "db"
    code, out, err = mlc(capfd, "tune", model, "--target", "llvm", "--trials", "2", "--tuning-db", db, *FAST)
    assert code == 0, err
    progress = [line for line in err.splitlines() if line.startswith("mlc tune: ")]
    assert any("[1/1] fused_matmul_relu" in line and "default" in line for line in progress), err
    assert "estimated model latency" in progress[-1] and "untuned" in progress[-1]
    assert f"{db}: 1/1 kernel(s)" in out

    code, out, err = mlc(capfd, "--json", "tune", model, "--trials", "2", "--tuning-db", db, *FAST)
    assert code == 0, err
    payload = json.loads(out)
    assert [t["status"] for t in payload["tasks"]] == ["recorded"]
    assert payload["estimated_ms"]["untuned"] > 0

    code, out, err = mlc(capfd, "compile", model, "--target", "llvm", "--tuning-db", db, "-o", tmp_path / "a")
    assert code == 0, err
    recorded = json.loads((tmp_path / "a" / "manifest.json").read_text())["backend_options"]["tuning_db"]
    assert recorded["tuned"] + recorded["defaulted"] + recorded["missing"] == 1
    assert len(recorded["hash"]) == 64


@pytest.mark.parametrize(("args", "needle"), [
    (("--trials", "0"), "--trials 0"),
    (("--time-budget", "soon"), "--time-budget soon"),
    (("--rpc-key", "k"), "go together"),
])
def test_tune_flag_errors_exit_2(capfd: pytest.CaptureFixture[str], tmp_path: Path, args: tuple[str, ...],
                                 needle: str) -> None:
    model = tiny_model(tmp_path / "tiny.onnx")
    code, _, err = exit_of(capfd, "tune", model, "--tuning-db", tmp_path / "db", *args)
    assert code == 2
    assert needle in one_error_line(err)


def test_a_foreign_folder_is_refused_and_left_alone(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    model = tiny_model(tmp_path / "tiny.onnx")
    foreign = tmp_path / "results"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("not mlc's")
    code, _, err = exit_of(capfd, "tune", model, "--tuning-db", foreign, "--trials", "1", *FAST)
    assert code == 2
    assert "not an mlc tuning database" in one_error_line(err)
    assert [p.name for p in foreign.iterdir()] == ["keep.txt"]
    code, _, err = exit_of(capfd, "compile", model, "--target", "llvm", "--tuning-db", foreign, "-o", tmp_path / "a")
    assert code == 2
    assert "not an mlc tuning database" in one_error_line(err)
    code, _, err = exit_of(capfd, "compile", model, "--target", "onnxruntime", "--tuning-db", tmp_path / "db",
                           "-o", tmp_path / "b")
    assert code == 2
