"""bind-inputs: inputs named in an .npz become constants; the shapes that follow become static."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlc.errors import BadInputError
from mlc.testing import as_graph, assert_numerically_equivalent, assert_pass, run_pass

BEFORE = '''graph "g" (%x: f32[2,3], %shape: i64[2]) {
  %y: f32[?,?] = Reshape(%x, %shape)
  %z: f32[?,?] = Relu(%y)
  return %z
}'''

EXPECTED = '''graph "g" (%x: f32[2,3]) {
  const %shape = dense<i64[2]> [3, 2]
  %y: f32[3,2] = Reshape(%x, %shape)
  %z: f32[3,2] = Relu(%y)
  return %z
}'''


def _npz(tmp_path: Path, **arrays: np.ndarray) -> str:
    path = tmp_path / "bound.npz"
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return str(path)


def test_binds_and_infers_the_static_shapes(tmp_path) -> None:
    spec = "bind-inputs{file=" + _npz(tmp_path, shape=np.array([3, 2], np.int32)) + "}"  # int32 fits i64
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    ctx = assert_pass(spec, BEFORE, EXPECTED, feeds={"x": x, "shape": np.array([3, 2], np.int64)})
    assert ctx.stats["bound"] == 1 and ctx.stats["types_refined"] == 2


def test_an_empty_npz_changes_nothing(tmp_path) -> None:
    np.savez(tmp_path / "empty.npz")
    assert_pass("bind-inputs{file=" + str(tmp_path / "empty.npz") + "}", BEFORE, BEFORE, numeric=False)


def test_what_does_not_fit_is_refused_in_one_line(tmp_path) -> None:
    with pytest.raises(BadInputError, match="values of type float64 do not fit"):
        run_pass("bind-inputs{file=" + _npz(tmp_path, shape=np.array([1.5, 4.0])) + "}", BEFORE)
    with pytest.raises(BadInputError, match=r"shape \[3\] does not match the declared \[2\]"):
        run_pass("bind-inputs{file=" + _npz(tmp_path, shape=np.array([3, 2, 1])) + "}", BEFORE)
    with pytest.raises(BadInputError, match="no such input"):
        run_pass("bind-inputs{file=" + _npz(tmp_path, axes=np.array([0])) + "}", BEFORE)


def test_numbers_hold_on_random_values(tmp_path) -> None:
    spec = "bind-inputs{file=" + _npz(tmp_path, shape=np.array([6, 1], np.int64)) + "}"
    after, _ = run_pass(spec, BEFORE)
    for seed in range(3):
        x = np.random.default_rng(seed).standard_normal((2, 3)).astype(np.float32)
        assert_numerically_equivalent(as_graph(BEFORE), after, feeds={"x": x, "shape": np.array([6, 1], np.int64)})
