"""No result depends on the working folder: the same compile run from three folders (one of them
holding a file named like the reference's in-memory weights) writes the same artifact bytes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from mlc.numerics.reference import SHARED_LOCATION
from tests.cli.helpers import bundled, mlc


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_three_working_folders_give_the_same_artifact(capfd, tmp_path, monkeypatch) -> None:
    model = bundled(tmp_path / "src")
    artifacts = []
    for name in ("a", "b", "c"):
        cwd = tmp_path / name
        cwd.mkdir()
        if name == "b":  # a file the reference must never read
            (cwd / SHARED_LOCATION).write_bytes(b"\0" * 64)
        monkeypatch.chdir(cwd)
        code, out, err = mlc(capfd, "compile", model, "-o", tmp_path / "out" / name, "--verify", "each")
        assert code == 0, err
        artifacts.append(_digest(tmp_path / "out" / name))
    assert artifacts[0] == artifacts[1] == artifacts[2]
    assert set(artifacts[0]) == {"manifest.json", "model.onnx"}


def test_a_relative_model_path_gives_the_same_artifact(capfd, tmp_path, monkeypatch) -> None:
    model = bundled(tmp_path / "src")
    monkeypatch.chdir(tmp_path / "src")
    code, out, err = mlc(capfd, "compile", "models/digits_mlp.onnx", "-o", tmp_path / "rel")
    assert code == 0, err
    monkeypatch.chdir(tmp_path)
    code, out, err = mlc(capfd, "compile", model, "-o", tmp_path / "abs")
    assert code == 0, err
    if _digest(tmp_path / "rel") != _digest(tmp_path / "abs"):
        pytest.fail("the artifact depends on how the model path was written")
