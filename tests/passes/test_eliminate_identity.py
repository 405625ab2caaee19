"""eliminate-identity: Identity and inference Dropout disappear; graph output names survive."""

from __future__ import annotations

from mlc.testing import assert_pass


def test_identity_and_dropout_are_removed() -> None:
    before = '''graph "g" (%x: f32[2,3]) {
  %i: f32[2,3] = Identity(%x)
  %d: f32[2,3] = Dropout(%i)
  %y: f32[2,3] = Relu(%d)
  return %y
}'''
    expected = '''graph "g" (%x: f32[2,3]) {
  %y: f32[2,3] = Relu(%x)
  return %y
}'''
    assert_pass("eliminate-identity", before, expected, removed=2)


def test_identity_producing_a_graph_output_hands_over_the_name() -> None:
    before = '''graph "g" (%x: f32[2]) {
  %r: f32[2] = Relu(%x)
  %out: f32[2] = Identity(%r)
  return %out
}'''
    expected = '''graph "g" (%x: f32[2]) {
  %out: f32[2] = Relu(%x)
  return %out
}'''
    assert_pass("eliminate-identity", before, expected)
    from mlc.testing import run_pass

    graph, _ = run_pass("eliminate-identity", before)
    assert [v.name for v in graph.outputs] == ["out"], "the model's output keeps its name"


def test_must_not_change() -> None:
    kept = '''graph "g" (%x: f32[2]) {
  %y: f32[2] = Identity(%x)
  return %y
}'''
    assert_pass("eliminate-identity", kept, kept)  # input straight to output: the interface needs both names
    training = '''graph "g" (%x: f32[2], %train: bool[]) {
  %y: f32[2] = Dropout(%x, none, %train)
  %z: f32[2] = Relu(%y)
  return %z
}'''
    assert_pass("eliminate-identity", training, training, numeric=False)  # training mode is an input: keep
    mask = '''graph "g" (%x: f32[2]) {
  %y: f32[2], %m: bool[2] = Dropout(%x)
  %z: f32[2] = Relu(%y)
  return %z, %m
}'''
    assert_pass("eliminate-identity", mask, mask)
