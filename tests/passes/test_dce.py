"""dce: dead nodes and unused constants go; the interface and side-effect-unknown ops stay."""

from __future__ import annotations

from mlc.testing import assert_pass

BEFORE = '''graph "g" (%x: f32[2,3], %unused_input: f32[1]) {
  const %w = dense<f32[3]> [1.0, 2.0, 3.0]
  const %dead_w = dense<f32[3]> [4.0, 5.0, 6.0]
  %a: f32[2,3] = Add(%x, %w)
  %dead1: f32[2,3] = Mul(%x, %dead_w)
  %dead2: f32[2,3] = Relu(%dead1)
  %y: f32[2,3] = Relu(%a)
  return %y
}'''

EXPECTED = '''graph "g" (%x: f32[2,3], %unused_input: f32[1]) {
  const %w = dense<f32[3]> [1.0, 2.0, 3.0]
  %a: f32[2,3] = Add(%x, %w)
  %y: f32[2,3] = Relu(%a)
  return %y
}'''


def test_removes_dead_chain_and_constant() -> None:
    assert_pass("dce", BEFORE, EXPECTED, nodes_removed=2, constants_removed=1)


def test_nothing_dead_is_unchanged() -> None:
    assert_pass("dce", EXPECTED, EXPECTED)


def test_unknown_domain_ops_are_kept() -> None:
    text = '''graph "g" (%x: f32[2]) {
  %log = com.vendor::Print(%x)
  %y: f32[2] = Relu(%x)
  return %y
}'''
    assert_pass("dce", text, text, numeric=False)  # onnxruntime has no com.vendor::Print


def test_dead_values_inside_subgraphs() -> None:
    before = '''graph "g" (%c: bool[], %x: f32[2]) {
  %y: f32[2] = If(%c) {then_branch=graph "then" () {
    %unused: f32[2] = Neg(%x)
    %t: f32[2] = Relu(%x)
    return %t
  }, else_branch=graph "else" () {
    %e: f32[2] = Neg(%x)
    return %e
  }}
  return %y
}'''
    expected = before.replace("    %unused: f32[2] = Neg(%x)\n", "")
    assert_pass("dce", before, expected, nodes_removed=1)


def test_unused_optional_outputs_are_omitted() -> None:
    before = '''graph "g" (%x: f32[1,1,4,4]) {
  %p: f32[1,1,2,2], %idx: i64[1,1,2,2] = MaxPool(%x) {kernel_shape = [2, 2], strides = [2, 2]}
  %d: f32[1,1,2,2], %mask: bool[1,1,2,2] = Dropout(%p)
  return %d
}'''
    expected = '''graph "g" (%x: f32[1,1,4,4]) {
  %p: f32[1,1,2,2] = MaxPool(%x) {kernel_shape = [2, 2], strides = [2, 2]}
  %d: f32[1,1,2,2] = Dropout(%p)
  return %d
}'''
    assert_pass("dce", before, expected, outputs_dropped=2)
    used = '''graph "g" (%x: f32[1,1,4,4]) {
  %p: f32[1,1,2,2], %idx: i64[1,1,2,2] = MaxPool(%x) {kernel_shape = [2, 2], strides = [2, 2]}
  return %p, %idx
}'''
    assert_pass("dce", used, used)


def test_prune_inputs_is_opt_in() -> None:
    pruned = '''graph "g" (%x: f32[2,3]) {
  const %w = dense<f32[3]> [1.0, 2.0, 3.0]
  %a: f32[2,3] = Add(%x, %w)
  %y: f32[2,3] = Relu(%a)
  return %y
}'''
    assert_pass("dce{prune_inputs=true}", EXPECTED, pruned, inputs_removed=1, numeric=False)
