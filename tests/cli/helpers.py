"""Running `mlc` in-process the way a user runs it, with file-descriptor-level capture (so that
whatever native code writes to stdout or stderr counts too)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from mlc.cli import main

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "models" / "digits_mlp.onnx"
SAMPLE = ROOT / "models" / "digits_mlp.sample.npz"


def mlc(capfd: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `mlc ARGS`."""
    code = main([str(a) for a in args])
    out, err = capfd.readouterr()
    return code, out, err


def bundled(folder: Path) -> Path:
    """A copy of the bundled model and its sample under `folder/models/` (tests never write
    into the checkout; examples written as `models/digits_mlp.onnx` run from `folder`)."""
    models = folder / "models"
    models.mkdir(parents=True, exist_ok=True)
    for source in (DIGITS, SAMPLE):
        shutil.copy(source, models / source.name)
    return models / DIGITS.name


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` (links not followed) with its sha256, and every folder."""
    state: dict[str, str] = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        if path.is_symlink():
            state[key] = "link:" + str(path.readlink())
        elif path.is_file():
            state[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            state[key] = "dir"
    return state


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("mlc: error: "), err
    assert "Traceback" not in err
    return lines[0]


def exit_of(capfd: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `mlc ARGS`, argparse's own refusals (SystemExit) included."""
    try:
        return mlc(capfd, *(str(a) for a in args))
    except SystemExit as stop:
        out, err = capfd.readouterr()
        return int(stop.code or 0), out, err


def digits_splits(folder: Path) -> dict[str, Path]:
    """The digits CNN's calibration images and test split (with labels) as .npz files in `folder`."""
    import numpy as np

    data = np.load(ROOT / "models" / "digits_cnn.data.npz")
    np.savez(folder / "cal.npz", image=data["calibration"].astype(np.float32) / 16)
    np.savez(folder / "eval.npz", image=data["test"].astype(np.float32) / 16,
             labels=data["test_labels"].astype(np.int64))
    return {"cal": folder / "cal.npz", "eval": folder / "eval.npz"}
