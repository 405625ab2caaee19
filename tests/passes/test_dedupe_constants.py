"""dedupe-constants: bitwise-equal constants are shared; near-equal or overridable ones are not."""

from __future__ import annotations

from mlc.testing import assert_pass


def test_equal_constants_are_shared() -> None:
    before = '''graph "g" (%x: f32[3]) {
  const %a = dense<f32[3]> [1.0, 2.0, 3.0]
  const %b = dense<f32[3]> [1.0, 2.0, 3.0]
  %p: f32[3] = Add(%x, %a)
  %q: f32[3] = Mul(%p, %b)
  return %q
}'''
    expected = '''graph "g" (%x: f32[3]) {
  const %a = dense<f32[3]> [1.0, 2.0, 3.0]
  %p: f32[3] = Add(%x, %a)
  %q: f32[3] = Mul(%p, %a)
  return %q
}'''
    assert_pass("dedupe-constants", before, expected, merged=1, bytes_saved=12)


def test_must_not_merge() -> None:
    signed_zero = '''graph "g" (%x: f32[1]) {
  const %a = dense<f32[1]> [0.0]
  const %b = dense<f32[1]> [-0.0]
  %p: f32[1] = Div(%x, %a)
  %q: f32[1] = Div(%x, %b)
  %y: f32[1] = Sub(%p, %q)
  return %y
}'''
    assert_pass("dedupe-constants", signed_zero, signed_zero)  # 1/0 and 1/-0 differ: bitwise only
    overridable = '''graph "g" (%x: f32[2], %w: f32[2] = dense<f32[2]> [1.0, 1.0]) {
  const %c = dense<f32[2]> [1.0, 1.0]
  %p: f32[2] = Add(%x, %w)
  %y: f32[2] = Mul(%p, %c)
  return %y
}'''
    assert_pass("dedupe-constants", overridable, overridable)
