"""freeze-inputs: a graph input with a default (initializer) becomes a constant that folds."""

from __future__ import annotations

from mlc.testing import assert_pass, run_pass

BEFORE = '''graph "g" (%x: f32[3], %w: f32[3] = dense<f32[3]> [1.0, 2.0, 3.0]) {
  %y: f32[3] = Mul(%x, %w)
  return %y
}'''

EXPECTED = '''graph "g" (%x: f32[3]) {
  const %w = dense<f32[3]> [1.0, 2.0, 3.0]
  %y: f32[3] = Mul(%x, %w)
  return %y
}'''


def test_a_default_becomes_a_constant() -> None:
    assert_pass("freeze-inputs", BEFORE, EXPECTED, frozen=1)


def test_inputs_without_defaults_are_unchanged() -> None:
    assert_pass("freeze-inputs", EXPECTED, EXPECTED)


def test_frozen_weights_fold_afterwards() -> None:
    text = '''graph "g" (%x: f32[3], %a: f32[3] = dense<f32[3]> [1.0, 2.0, 3.0]) {
  const %b = dense<f32[3]> [0.5, 0.5, 0.5]
  %w: f32[3] = Mul(%a, %b)
  %y: f32[3] = Add(%x, %w)
  return %y
}'''
    graph, ctx = run_pass("fold-constants", text)
    assert ctx.rewrites == 0, "a default may be overridden: nothing reading it folds"
    graph, _ = run_pass("freeze-inputs", text)
    _, ctx = run_pass("fold-constants", graph)
    assert ctx.rewrites == 1
