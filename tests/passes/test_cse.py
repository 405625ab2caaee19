"""cse: equal expressions merge; different attributes, random ops and graph outputs do not."""

from __future__ import annotations

from mlc.testing import assert_pass


def test_equal_expressions_merge() -> None:
    before = '''graph "g" (%x: f32[2,3]) {
  %a: f32[2,3] = Relu(%x)
  %b: f32[2,3] = Relu(%x)
  %c: f32[3,2] = Transpose(%a) {perm=[1, 0]}
  %d: f32[3,2] = Transpose(%b) {perm=[1, 0]}
  %y: f32[3,2] = Add(%c, %d)
  return %y
}'''
    expected = '''graph "g" (%x: f32[2,3]) {
  %a: f32[2,3] = Relu(%x)
  %c: f32[3,2] = Transpose(%a) {perm=[1, 0]}
  %y: f32[3,2] = Add(%c, %c)
  return %y
}'''
    assert_pass("cse", before, expected, merged=2)


def test_must_not_merge() -> None:
    different_attrs = '''graph "g" (%x: f32[2,3]) {
  %a: f32[2,3] = Softmax(%x) {axis=0}
  %b: f32[2,3] = Softmax(%x) {axis=1}
  %y: f32[2,3] = Add(%a, %b)
  return %y
}'''
    assert_pass("cse", different_attrs, different_attrs)
    random = '''graph "g" (%x: f32[2,3]) {
  %a: f32[2,3] = RandomUniformLike(%x) {seed=1.0}
  %b: f32[2,3] = RandomUniformLike(%x) {seed=1.0}
  %y: f32[2,3] = Add(%a, %b)
  return %y
}'''
    assert_pass("cse", random, random, numeric=False)
    outputs = '''graph "g" (%x: f32[2]) {
  %a: f32[2] = Relu(%x)
  %b: f32[2] = Relu(%x)
  return %a, %b
}'''
    assert_pass("cse", outputs, outputs)
