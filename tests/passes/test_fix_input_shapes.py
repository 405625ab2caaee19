"""fix-input-shapes: symbolic dims become the sizes given; the types downstream follow, so the
shape chains of a dynamic export fold."""

from __future__ import annotations

import numpy as np
import pytest

from mlc.errors import BadInputError
from mlc.testing import assert_pass, run_pass

BEFORE = '''graph "g" (%x: f32[batch,seq]) {
  %s: i64[2] = Shape(%x)
  %y: f32[batch,seq] = Reshape(%x, %s)
  %z: f32[batch,seq] = Relu(%y)
  return %z
}'''

EXPECTED = '''graph "g" (%x: f32[2,5]) {
  %s: i64[2] = Shape(%x)
  %y: f32[2,5] = Reshape(%x, %s)
  %z: f32[2,5] = Relu(%y)
  return %z
}'''


def test_fixes_dims_and_infers_the_types_that_follow() -> None:
    x = np.random.default_rng(0).standard_normal((2, 5)).astype(np.float32)
    ctx = assert_pass("fix-input-shapes{shapes=x:2x5}", BEFORE, EXPECTED, feeds={"x": x})
    assert ctx.stats["inputs_fixed"] == 1 and ctx.stats["types_refined"] >= 2


def test_shape_chains_fold_once_the_dims_are_fixed() -> None:
    _, ctx = run_pass("fold-constants", BEFORE)
    assert ctx.rewrites == 0
    graph, _ = run_pass("fix-input-shapes{shapes=x:2x5}", BEFORE)
    _, ctx = run_pass("fold-constants", graph)
    assert ctx.rewrites == 1  # Shape(x) is a constant now


def test_already_static_inputs_are_unchanged() -> None:
    assert_pass("fix-input-shapes{shapes=x:2x5}", EXPECTED, EXPECTED, numeric=False)


def test_contradictions_are_refused_in_one_line() -> None:
    with pytest.raises(BadInputError, match=r"is declared \[batch,seq\]|is declared"):
        run_pass("fix-input-shapes{shapes=x:2}", BEFORE)
    with pytest.raises(BadInputError, match="no such input"):
        run_pass("fix-input-shapes{shapes=y:2x5}", BEFORE)
    with pytest.raises(BadInputError, match="expected NAME:DxD"):
        run_pass("fix-input-shapes{shapes=x:2xa}", BEFORE)
