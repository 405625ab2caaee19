"""explicit-squeeze-axes: a Squeeze without axes gets those its static input shape implies; one with
a symbolic dim (which may be 1 at run time) or explicit axes is left alone."""

from __future__ import annotations

import numpy as np

from mlc.testing import assert_pass


def test_axes_input_from_a_static_shape_at_opset_13() -> None:
    before = '''model ir_version=8 opset_import={"": 17}
graph "g" (%x: f32[1,3,1]) {
  %y: f32[3] = Squeeze(%x) name="sq"
  return %y
}'''
    expected = '''model ir_version=8 opset_import={"": 17}
graph "g" (%x: f32[1,3,1]) {
  const %sq_axes = dense<i64[2]> [0, 2]
  %y: f32[3] = Squeeze(%x, %sq_axes) name="sq"
  return %y
}'''
    assert_pass("explicit-squeeze-axes", before, expected, explicit=1)


def test_axes_attribute_below_opset_13() -> None:
    before = '''model ir_version=7 opset_import={"": 11}
graph "g" (%x: f32[1,4]) {
  %y: f32[4] = Squeeze(%x) name="sq"
  return %y
}'''
    expected = '''model ir_version=7 opset_import={"": 11}
graph "g" (%x: f32[1,4]) {
  %y: f32[4] = Squeeze(%x) {axes=[0]} name="sq"
  return %y
}'''
    assert_pass("explicit-squeeze-axes", before, expected, explicit=1)


def test_a_dynamo_sym_size_scalar() -> None:
    """What torch's dynamo exporter writes for x.size(1): Shape, Slice to [1], Squeeze to a scalar."""
    before = '''model ir_version=8 opset_import={"": 18}
graph "g" (%x: f32[2,N]) {
  const %start = dense<i64[1]> [1]
  const %end = dense<i64[1]> [2]
  %s: i64[2] = Shape(%x)
  %d: i64[1] = Slice(%s, %start, %end)
  %n: i64[] = Squeeze(%d) name="node_sym_size_int_1"
  return %n
}'''
    expected = '''model ir_version=8 opset_import={"": 18}
graph "g" (%x: f32[2,N]) {
  const %start = dense<i64[1]> [1]
  const %end = dense<i64[1]> [2]
  const %node_sym_size_int_1_axes = dense<i64[1]> [0]
  %s: i64[2] = Shape(%x)
  %d: i64[1] = Slice(%s, %start, %end)
  %n: i64[] = Squeeze(%d, %node_sym_size_int_1_axes) name="node_sym_size_int_1"
  return %n
}'''
    assert_pass("explicit-squeeze-axes", before, expected, explicit=1,
                feeds={"x": np.ones((2, 7), np.float32)})


def test_symbolic_dims_and_given_axes_are_kept() -> None:
    kept = '''model ir_version=8 opset_import={"": 17}
graph "g" (%x: f32[1,N], %z: f32[1,3]) {
  const %axes = dense<i64[1]> [0]
  %y: f32[?] = Squeeze(%x)
  %w: f32[3] = Squeeze(%z, %axes)
  return %y, %w
}'''
    assert_pass("explicit-squeeze-axes", kept, kept, numeric=False)
