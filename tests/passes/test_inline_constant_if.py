"""inline-constant-if: the taken branch replaces the If; a runtime condition keeps it."""

from __future__ import annotations

from mlc.testing import assert_pass

BEFORE = '''graph "g" (%x: f32[3]) {
  const %c = dense<bool[]> [true]
  %y: f32[3] = If(%c) {
    else_branch = graph "e" () {
      %n: f32[3] = Neg(%x)
      return %n
    },
    then_branch = graph "t" () {
      const %two = dense<f32[]> [2.0]
      %m: f32[3] = Mul(%x, %two)
      return %m
    }
  }
  %z: f32[3] = Relu(%y)
  return %z
}'''

EXPECTED = '''graph "g" (%x: f32[3]) {
  const %two = dense<f32[]> [2.0]
  %m: f32[3] = Mul(%x, %two)
  %z: f32[3] = Relu(%m)
  return %z
}'''


def test_constant_true_takes_the_then_branch() -> None:
    assert_pass("inline-constant-if", BEFORE, EXPECTED, inlined=1)


def test_constant_false_takes_the_else_branch_and_output_names_stay() -> None:
    before = BEFORE.replace("[true]", "[false]").replace("  %z: f32[3] = Relu(%y)\n  return %z", "  return %y")
    expected = '''graph "g" (%x: f32[3]) {
  %y: f32[3] = Neg(%x)
  return %y
}'''
    assert_pass("inline-constant-if", before, expected)


def test_runtime_condition_is_kept() -> None:
    kept = BEFORE.replace('graph "g" (%x: f32[3]) {\n  const %c = dense<bool[]> [true]',
                          'graph "g" (%x: f32[3], %c: bool[]) {')
    assert_pass("inline-constant-if", kept, kept)
