"""drop-zero-states: zero initial states of LSTM/GRU/RNN are omitted (the ops' default)."""

from __future__ import annotations

import numpy as np
import pytest

from mlc.testing import assert_pass, run_pass
from tests.passes.real_exports import assert_export_numbers, imported, op_count


def _weights(gates: int, hidden: int, inputs: int, directions: int = 1) -> str:
    rng = np.random.default_rng(gates)
    w = rng.standard_normal((directions, gates * hidden, inputs)).round(3)
    r = rng.standard_normal((directions, gates * hidden, hidden)).round(3)

    def dense(a: np.ndarray) -> str:
        return f"dense<f32[{','.join(map(str, a.shape))}]> [{', '.join(repr(float(v)) for v in a.reshape(-1))}]"

    return f"  const %w = {dense(w)}\n  const %r = {dense(r)}\n"


# TorchScript's form: ConstantOfShape([1, batch, hidden]) for both LSTM states.
LSTM = '''graph "g" (%x: f32[S,B,2]) {
''' + _weights(4, 3, 2) + '''  const %i1 = dense<i64[]> [1]
  const %ax = dense<i64[1]> [0]
  const %one = dense<i64[1]> [1]
  const %hid = dense<i64[1]> [3]
  %s: i64[3] = Shape(%x)
  %b: i64[] = Gather(%s, %i1) {axis = 0}
  %b1: i64[1] = Unsqueeze(%b, %ax)
  %t: i64[3] = Concat(%one, %b1, %hid) {axis = 0}
  %z: f32[1,B,3] = ConstantOfShape(%t)
  %y: f32[S,1,B,3] = LSTM(%x, %w, %r, none, none, %z, %z) {hidden_size = 3}
  return %y
}'''


def _x(seq: int, batch: int) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(seq).standard_normal((seq, batch, 2)).astype(np.float32)}


def test_torchscript_constant_of_shape_states_go() -> None:
    expected = LSTM.replace("LSTM(%x, %w, %r, none, none, %z, %z)", "LSTM(%x, %w, %r, none, none, none, none)")
    assert_pass("drop-zero-states", LSTM, expected, feeds=_x(4, 3), states_dropped=2)


def test_dynamo_expand_and_sliced_states_go() -> None:
    """The dynamo exporter: Expand(0.0, [2, B, 3]) sliced per layer, into two GRUs."""
    before = '''graph "g" (%x: f32[S,B,2]) {
''' + _weights(3, 3, 2) + '''  const %zero = dense<f32[]> [0.0]
  const %two = dense<i64[1]> [2]
  const %hid = dense<i64[1]> [3]
  const %c0 = dense<i64[1]> [0]
  const %c1 = dense<i64[1]> [1]
  const %c2 = dense<i64[1]> [2]
  %b: i64[1] = Shape(%x) {start = 1, end = 2}
  %t: i64[3] = Concat(%two, %b, %hid) {axis = 0}
  %z: f32[2,B,3] = Expand(%zero, %t)
  %h0: f32[1,B,3] = Slice(%z, %c0, %c1, %c0)
  %y: f32[S,1,B,3] = GRU(%x, %w, %r, none, none, %h0) {hidden_size = 3}
  %h1: f32[1,B,3] = Slice(%z, %c1, %c2, %c0)
  %y2: f32[S,B,3] = Squeeze(%y, %c1)
  %w2: f32[1,9,3] = Concat(%r) {axis = 0}
  %o: f32[S,1,B,3] = GRU(%y2, %w2, %r, none, none, %h1) {hidden_size = 3}
  return %o
}'''
    expected = before.replace(", %h0)", ", none)").replace(", %h1)", ", none)")
    assert_pass("drop-zero-states", before, expected, feeds=_x(5, 2), states_dropped=2)


def test_must_not_change() -> None:
    # -0.0 is not the default state, nor is a state read from an input or a non-zero fill
    negative = LSTM.replace("ConstantOfShape(%t)", "ConstantOfShape(%t) {value = dense<f32[1]> [-0.0]}")
    assert_pass("drop-zero-states", negative, negative, feeds=_x(3, 2))
    ones = LSTM.replace("ConstantOfShape(%t)", "ConstantOfShape(%t) {value = dense<f32[1]> [1.0]}")
    assert_pass("drop-zero-states", ones, ones, feeds=_x(3, 2))
    given = LSTM.replace('graph "g" (%x: f32[S,B,2])', 'graph "g" (%x: f32[S,B,2], %h: f32[1,B,3])').replace(
        "%z, %z)", "%h, %z)")
    graph, ctx = run_pass("drop-zero-states", given)
    assert ctx.stats["states_dropped"] == 1  # c0 only
    lstm = next(n for n in graph if n.op_type == "LSTM")
    assert lstm.inputs[5] is not None and lstm.inputs[6] is None


@pytest.mark.parametrize("name", ["lstm-ts", "lstm-dynamo", "bilstm-ts", "bilstm-dynamo", "gru-ts", "gru-dynamo"])
def test_real_exports(name: str) -> None:
    graph = imported(name, ("fold-constants", "drop-zero-states", "dce"))
    assert op_count(graph, "ConstantOfShape") == op_count(graph, "Expand") == 0
    assert_export_numbers(name, graph)
