"""scalarize-range: one-element Range bounds become scalars; scalar ones stay."""

from __future__ import annotations

from mlc.testing import assert_pass


def test_one_element_limit_becomes_a_scalar() -> None:
    before = '''graph "g" (%n: i64[1]) {
  const %zero = dense<i64[]> [0]
  const %one = dense<i64[]> [1]
  %r: i64[?] = Range(%zero, %n, %one)
  return %r
}'''
    expected = '''graph "g" (%n: i64[1]) {
  const %zero = dense<i64[]> [0]
  const %one = dense<i64[]> [1]
  const %shape = dense<i64[0]> []
  %s: i64[] = Reshape(%n, %shape)
  %r: i64[?] = Range(%zero, %s, %one)
  return %r
}'''
    import numpy as np

    from mlc.numerics.inputs import InputSpec  # noqa: F401 - the numeric check feeds %n within range

    assert_pass("scalarize-range", before, expected, reshaped=1, feeds={"n": np.array([5], np.int64)})


def test_scalar_bounds_are_kept() -> None:
    kept = '''graph "g" (%n: i64[]) {
  const %zero = dense<i64[]> [0]
  const %one = dense<i64[]> [1]
  %r: i64[?] = Range(%zero, %n, %one)
  return %r
}'''
    assert_pass("scalarize-range", kept, kept, numeric=False)
