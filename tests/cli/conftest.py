"""Fixtures of the CLI tests that quantize or prune the digits CNN."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.helpers import digits_splits


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Default calibration tables go to a temporary XDG cache, never the user's."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg"


@pytest.fixture
def digits(tmp_path: Path) -> dict[str, Path]:
    """The digits CNN's calibration images and labelled test split as .npz files."""
    return digits_splits(tmp_path)
