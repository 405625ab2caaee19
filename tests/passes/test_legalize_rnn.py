"""legalize-rnn: LSTM / GRU / RNN unrolled into primitive ops.

The numbers are checked against onnxruntime running the ORIGINAL op (onnxruntime has no layout=1
kernel: those cases run the equivalent layout-0 model with transposed inputs and outputs), and
against the expected outputs of the official ONNX node test cases.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from mlc.ir.core import Graph
from mlc.numerics.reference import REFERENCE, run_graph
from mlc.onnx_io.importer import import_onnx
from mlc.pass_api import Numerics, PassContext
from mlc.testing import as_graph, assert_numerically_equivalent, assert_pass, run_pass

P = "legalize-rnn"
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
OUTPUTS = {"LSTM": ("Y", "Y_h", "Y_c"), "GRU": ("Y", "Y_h"), "RNN": ("Y", "Y_h")}
RTOL, ATOL = 1e-4, 1e-5


# ===================================================================== structure
def test_tiny_lstm_unrolls() -> None:
    """seq 2, batch 1, input 2, hidden 2, no bias or initial state, only Y_h read: W and R become
    transposed constants, one MatMul projects both steps, step 0 has no recurrent terms."""
    before = '''graph "g" (%x: f32[2,1,2]) {
  const %w = dense<f32[1,8,2]> [0.1, -0.2, 0.3, -0.4, 0.5, -0.6, 0.7, -0.8, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]
  const %r = dense<f32[1,8,2]> [0.5, 0.25, -0.5, 0.25, 0.5, -0.25, -0.5, -0.25,
                                0.125, 0.75, -0.125, 0.75, 0.125, -0.75, -0.125, -0.75]
  none, %h: f32[1,1,2] = LSTM(%x, %w, %r) {hidden_size=2} name="lstm"
  return %h
}'''
    expected = '''graph "g" (%x: f32[2,1,2]) {
  const %w = dense<f32[1,8,2]> [0.1, -0.2, 0.3, -0.4, 0.5, -0.6, 0.7, -0.8, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]
  const %r = dense<f32[1,8,2]> [0.5, 0.25, -0.5, 0.25, 0.5, -0.25, -0.5, -0.25,
                                0.125, 0.75, -0.125, 0.75, 0.125, -0.75, -0.125, -0.75]
  const %wt = dense<f32[2,8]> [0.1, 0.3, 0.5, 0.7, 0.8, 0.6, 0.4, 0.2, -0.2, -0.4, -0.6, -0.8, 0.7, 0.5, 0.3, 0.1]
  const %t0 = dense<i64[]> [0]
  const %sizes = dense<i64[4]> [2, 2, 2, 2]
  const %t1 = dense<i64[]> [1]
  const %rt = dense<f32[2,8]> [0.5, -0.5, 0.5, -0.5, 0.125, -0.125, 0.125, -0.125,
                               0.25, 0.25, -0.25, -0.25, 0.75, 0.75, -0.75, -0.75]
  const %shape = dense<i64[3]> [1, 1, 2]
  %xw: f32[2,1,8] = MatMul(%x, %wt)
  %x0: f32[1,8] = Gather(%xw, %t0) {axis=0}
  %i0: f32[1,2], %o0: f32[1,2], %f0: f32[1,2], %c0: f32[1,2] = Split(%x0, %sizes) {axis=1}
  %ig0: f32[1,2] = Sigmoid(%i0)
  %cg0: f32[1,2] = Tanh(%c0)
  %cell0: f32[1,2] = Mul(%ig0, %cg0)
  %og0: f32[1,2] = Sigmoid(%o0)
  %tc0: f32[1,2] = Tanh(%cell0)
  %h0: f32[1,2] = Mul(%og0, %tc0)
  %x1: f32[1,8] = Gather(%xw, %t1) {axis=0}
  %rec1: f32[1,8] = MatMul(%h0, %rt)
  %g1: f32[1,8] = Add(%x1, %rec1)
  %i1: f32[1,2], %o1: f32[1,2], %f1: f32[1,2], %c1: f32[1,2] = Split(%g1, %sizes) {axis=1}
  %ig1: f32[1,2] = Sigmoid(%i1)
  %cg1: f32[1,2] = Tanh(%c1)
  %ic1: f32[1,2] = Mul(%ig1, %cg1)
  %fg1: f32[1,2] = Sigmoid(%f1)
  %fc1: f32[1,2] = Mul(%fg1, %cell0)
  %cell1: f32[1,2] = Add(%fc1, %ic1)
  %og1: f32[1,2] = Sigmoid(%o1)
  %tc1: f32[1,2] = Tanh(%cell1)
  %h1: f32[1,2] = Mul(%og1, %tc1)
  %h: f32[1,1,2] = Reshape(%h1, %shape)
  return %h
}'''
    ctx = assert_pass(P, before, expected, lstm=1, steps=2)
    graph, _ = run_pass(P, before)
    assert [v.name for v in graph.outputs] == ["h"], "the model's output keeps its name"
    assert ctx.rules == {"lstm": 1}


def test_created_nodes_carry_provenance() -> None:
    before = '''graph "g" (%x: f32[3,2,2]) {
  const %w = dense<f32[1,2,2]> [0.1, -0.2, 0.3, -0.4]
  const %r = dense<f32[1,2,2]> [0.5, 0.25, -0.5, 0.25]
  %y: f32[3,1,2,2], none = RNN(%x, %w, %r) {hidden_size=2} name="rnn0"
  return %y
}'''
    graph, ctx = run_pass(P, before)
    assert ctx.stats["rnn"] == 1 and ctx.stats["steps"] == 3
    assert all(n.source == ("rnn0",) and n.created_by == "legalize-rnn/rnn" for n in graph)
    assert {n.op_type for n in graph} == {"MatMul", "Gather", "Tanh", "Add", "Concat", "Reshape"}


def test_must_not_change() -> None:
    dynamic_seq = '''graph "g" (%x: f32[S,1,2]) {
  const %w = dense<f32[1,8,2]> [0.1, -0.2, 0.3, -0.4, 0.5, -0.6, 0.7, -0.8, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]
  const %r = dense<f32[1,8,2]> [0.5, 0.25, -0.5, 0.25, 0.5, -0.25, -0.5, -0.25,
                                0.1, 0.7, -0.1, 0.7, 0.1, -0.7, -0.1, -0.7]
  none, %h: f32[1,1,2] = LSTM(%x, %w, %r) {hidden_size=2}
  return %h
}'''
    ctx = assert_pass(P, dynamic_seq, dynamic_seq)
    assert ctx.remarks == ["lstm at '<LSTM>': not applied, the sequence length is not static (X is f32[S,1,2])"]
    seq_lens_input = '''graph "g" (%x: f32[2,3,2], %lens: i32[3]) {
  const %w = dense<f32[1,6,2]> [0.1, -0.2, 0.3, -0.4, 0.5, -0.6, 0.7, -0.8, 0.8, 0.7, 0.6, 0.5]
  const %r = dense<f32[1,6,2]> [0.5, 0.25, -0.5, 0.25, 0.5, -0.25, -0.5, -0.25, 0.1, 0.7, -0.1, 0.7]
  %y: f32[2,1,3,2], %h: f32[1,3,2] = GRU(%x, %w, %r, none, %lens) {hidden_size=2} name="gru"
  return %y, %h
}'''
    feeds = {"x": np.ones((2, 3, 2), np.float32), "lens": np.array([2, 1, 2], np.int32)}
    ctx = assert_pass(P, seq_lens_input, seq_lens_input, feeds=feeds)
    assert ctx.remarks == ["gru at 'gru': not applied, sequence_lens %lens is not a constant (padded batches are "
                           "not unrolled)"]
    short = seq_lens_input.replace('(%x: f32[2,3,2], %lens: i32[3]) {', '''(%x: f32[2,3,2]) {
  const %lens = dense<i32[3]> [2, 1, 2]''')
    ctx = assert_pass(P, short, short)
    assert ctx.remarks == ["gru at 'gru': not applied, sequence_lens [2, 1, 2] is not the full length 2 for every "
                           "batch item"]
    affine_without_alpha = '''graph "g" (%x: f32[2,1,2]) {
  const %w = splat<f32[1,8,2]> 0.25
  const %r = splat<f32[1,8,2]> -0.5
  %y: f32[2,1,1,2], none, none = LSTM(%x, %w, %r) {hidden_size=2, activations=["Sigmoid", "Tanh", "Affine"]}
  return %y
}'''
    ctx = assert_pass(P, affine_without_alpha, affine_without_alpha)
    assert ctx.remarks == ["lstm at '<LSTM>': not applied, activation 'Affine' has no activation_alpha/activation_beta "
                           "value and runtimes disagree on its default"]
    unknown = '''graph "g" (%x: f32[2,1,2]) {
  const %w = dense<f32[1,2,2]> [0.1, -0.2, 0.3, -0.4]
  const %r = dense<f32[1,2,2]> [0.5, 0.25, -0.5, 0.25]
  %y: f32[2,1,1,2] = RNN(%x, %w, %r) {hidden_size=2, activations=["Gelu"]}
  return %y
}'''
    ctx = assert_pass(P, unknown, unknown, numeric=False)  # onnxruntime refuses the activation too
    assert ctx.remarks == ["rnn at '<RNN>': not applied, activation 'Gelu' is not supported"]


def test_full_length_sequence_lens_from_a_constant_node_and_symbolic_batch() -> None:
    before = '''graph "g" (%x: f32[3,N,2], %h0: f32[2,N,2]) {
  const %w = dense<f32[2,6,2]> [0.1, -0.2, 0.3, -0.4, 0.5, -0.6, 0.7, -0.8, 0.8, 0.7, 0.6, 0.5,
                                0.4, 0.3, 0.2, 0.1, 0.1, -0.2, 0.3, -0.4, 0.5, -0.6, 0.7, -0.8]
  const %r = dense<f32[2,6,2]> [0.5, 0.25, -0.5, 0.25, 0.5, -0.25, -0.5, -0.25, 0.125, 0.75, -0.125, 0.75,
                                0.125, -0.75, -0.125, -0.75, 0.5, 0.25, -0.5, 0.25, 0.5, -0.25, -0.5, -0.25]
  %lens: i32[4] = Constant() {value=dense<i32[4]> [3, 3, 3, 3]}
  %y: f32[3,2,N,2], %h: f32[2,N,2] = GRU(%x, %w, %r, none, %lens, %h0)
      {hidden_size=2, direction="bidirectional", linear_before_reset=1}
  return %y, %h
}'''
    graph, ctx = run_pass(P, before)
    assert ctx.rewrites == 1, ctx.remarks
    assert [str(v.type.shape) for v in graph.outputs] == ["(3, 2, 'N', 2)", "(2, 'N', 2)"]  # type: ignore[union-attr]
    rng = np.random.default_rng(0)
    feeds = {"x": rng.uniform(-1, 1, (3, 4, 2)).astype(np.float32),
             "h0": rng.uniform(-1, 1, (2, 4, 2)).astype(np.float32)}
    assert_numerically_equivalent(before, graph, Numerics.TOLERANCE, feeds=feeds)


def test_inside_a_subgraph() -> None:
    before = '''graph "g" (%x: f32[2,1,2], %c: bool[]) {
  const %w = dense<f32[1,2,2]> [0.1, -0.2, 0.3, -0.4]
  const %r = dense<f32[1,2,2]> [0.5, 0.25, -0.5, 0.25]
  %z: f32[1,1,2] = If(%c) {then_branch=graph "then" () {
    none, %t: f32[1,1,2] = RNN(%x, %w, %r) {hidden_size=2}
    return %t
  }, else_branch=graph "else" () {
    none, %e: f32[1,1,2] = RNN(%x, %w, %r) {hidden_size=2, direction="reverse", activations=["Relu"]}
    return %e
  }}
  return %z
}'''
    graph, ctx = run_pass(P, before)
    assert ctx.stats["rnn"] == 2
    for flag in (True, False):
        feeds = {"x": np.random.default_rng(0).uniform(-1, 1, (2, 1, 2)).astype(np.float32), "c": np.array(flag)}
        assert_numerically_equivalent(before, graph, Numerics.TOLERANCE, feeds=feeds)


def test_rewrite_budget_is_respected() -> None:
    before = '''graph "g" (%x: f32[2,1,2]) {
  const %w = dense<f32[1,2,2]> [0.1, -0.2, 0.3, -0.4]
  const %r = dense<f32[1,2,2]> [0.5, 0.25, -0.5, 0.25]
  none, %a: f32[1,1,2] = RNN(%x, %w, %r) {hidden_size=2}
  none, %b: f32[1,1,2] = RNN(%x, %w, %r) {hidden_size=2, direction="reverse"}
  return %a, %b
}'''
    graph, ctx = run_pass(P, before, max_rewrites=1)
    assert ctx.rewrites == 1 and [n.op_type for n in graph].count("RNN") == 1
    assert_numerically_equivalent(before, graph, Numerics.TOLERANCE)


def test_float64_against_the_onnx_reference() -> None:
    """onnxruntime has no f64 kernels for these ops: the reference evaluator runs the original."""
    before = '''graph "g" (%x: f64[3,2,2], %w: f64[1,8,2], %r: f64[1,8,2], %b: f64[1,16]) {
  %y: f64[3,1,2,2], %h: f64[1,2,2], %c: f64[1,2,2] = LSTM(%x, %w, %r, %b) {hidden_size=2}
  return %y, %h, %c
}'''
    graph, ctx = run_pass(P, before)
    assert ctx.rewrites == 1
    rng = np.random.default_rng(1)
    feeds = {"x": rng.uniform(-1, 1, (3, 2, 2)), "w": rng.uniform(-1, 1, (1, 8, 2)),
             "r": rng.uniform(-1, 1, (1, 8, 2)), "b": rng.uniform(-1, 1, (1, 16))}
    expected = run_graph(as_graph(before), feeds, engine=REFERENCE)
    got = run_graph(graph, feeds)
    for name in ("y", "h", "c"):
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-9, atol=1e-10)


# ===================================================================== against onnxruntime
def _model(op: str, arrays: dict[str, np.ndarray], inputs: Sequence[str], outputs: Sequence[str],
           attributes: dict[str, Any], x_shape: tuple[int, ...], constant_weights: bool, opset: int) -> onnx.ModelProto:
    names = [o if o in outputs else "" for o in OUTPUTS[op]]
    node = helper.make_node(op, list(inputs), names, **attributes)
    initializers = [numpy_helper.from_array(v, k) for k, v in arrays.items()] if constant_weights else []
    graph_inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, x_shape)]
    if not constant_weights:
        graph_inputs += [helper.make_tensor_value_info(k, TensorProto.FLOAT, v.shape) for k, v in arrays.items()]
    graph = helper.make_graph([node], "g", graph_inputs,
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
                              initializer=initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def _ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray], outputs: Sequence[str]) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return list(session.run(list(outputs), feeds))


def _legalized(model: onnx.ModelProto,
               feeds: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], Graph, PassContext]:
    graph, ctx = run_pass(P, import_onnx(model))
    assert ctx.rewrites == 1, ctx.remarks
    assert not any(n.op_type in GATES for n in graph.all_nodes())
    dead = [n for n in graph if not any(v is not None and (v.uses or v.is_graph_output) for v in n.outputs)]
    assert not dead, f"the rewrite left dead nodes: {dead}"
    return run_graph(graph, feeds), graph, ctx


def check_against_onnxruntime(op: str, *, direction: str = "forward", layout: int = 0, bias: bool = True,
                              initial: bool = True, peepholes: bool = False, constant_weights: bool = True,
                              outputs: Sequence[str] | None = None, opset: int = 17, seq: int = 3, batch: int = 2,
                              input_size: int = 3, hidden: int = 4, seed: int = 0, **attributes: Any) -> None:
    """Random weights and inputs; the unrolled graph must match onnxruntime on the original op."""
    rng = np.random.default_rng(seed)
    dirs = 2 if direction == "bidirectional" else 1
    width = GATES[op] * hidden
    arrays = {"W": rng.uniform(-1, 1, (dirs, width, input_size)), "R": rng.uniform(-1, 1, (dirs, width, hidden))}
    inputs = ["X", "W", "R", "", "", "", "", ""]
    if bias:
        arrays["B"], inputs[3] = rng.uniform(-1, 1, (dirs, 2 * width)), "B"
    if initial:
        arrays["initial_h"], inputs[5] = rng.uniform(-1, 1, (dirs, batch, hidden)), "initial_h"
        if op == "LSTM":
            arrays["initial_c"], inputs[6] = rng.uniform(-2, 2, (dirs, batch, hidden)), "initial_c"
    if peepholes:
        arrays["P"], inputs[7] = rng.uniform(-1, 1, (dirs, 3 * hidden)), "P"
    arrays = {k: v.astype(np.float32) for k, v in arrays.items()}
    while inputs[-1] == "":
        inputs.pop()
    wanted = list(outputs or OUTPUTS[op])
    attributes = {"hidden_size": hidden, "direction": direction, **attributes}
    x = rng.uniform(-2, 2, (seq, batch, input_size)).astype(np.float32)
    reference = _model(op, arrays, inputs, wanted, attributes, x.shape, constant_weights, opset)
    expected = _ort(reference, {"X": x, **({} if constant_weights else arrays)}, wanted)
    if layout == 1:  # batch-major: onnxruntime has no kernel, so transpose around the layout-0 reference
        states = {k: v.transpose(1, 0, 2) if k.startswith("initial") else v for k, v in arrays.items()}
        model = _model(op, states, inputs, wanted, {**attributes, "layout": 1}, (batch, seq, input_size),
                       constant_weights, opset)
        feeds: dict[str, np.ndarray] = {"X": x.transpose(1, 0, 2), **({} if constant_weights else states)}
        expected = [e.transpose(2, 0, 1, 3) if name == "Y" else e.transpose(1, 0, 2)
                    for name, e in zip(wanted, expected, strict=True)]
    else:
        model, feeds = reference, {"X": x, **({} if constant_weights else arrays)}
    got, graph, _ = _legalized(model, feeds)
    assert [v.name for v in graph.outputs] == wanted
    for name, value in zip(wanted, expected, strict=True):
        np.testing.assert_allclose(got[name], value, rtol=RTOL, atol=ATOL, err_msg=f"{op} output {name}")
    for value in graph.outputs:
        assert value.type.shape == got[value.name].shape, value.name  # type: ignore[union-attr]


CASES: list[tuple[str, dict[str, Any]]] = [
    *[(op, {"direction": d, "layout": layout, "peepholes": op == "LSTM"})
      for op in ("LSTM", "RNN") for d in ("forward", "reverse", "bidirectional") for layout in (0, 1)],
    *[("GRU", {"direction": d, "layout": layout, "linear_before_reset": lbr})
      for d in ("forward", "reverse", "bidirectional") for layout in (0, 1) for lbr in (0, 1)],
    ("LSTM", {"bias": False, "initial": False}),
    ("LSTM", {"direction": "bidirectional", "peepholes": True, "clip": 0.5}),
    ("LSTM", {"direction": "reverse", "input_forget": 1, "peepholes": True}),
    ("LSTM", {"direction": "bidirectional", "layout": 1, "constant_weights": False, "peepholes": True}),
    ("LSTM", {"outputs": ["Y_c"]}),
    ("LSTM", {"outputs": ["Y_h", "Y_c"], "direction": "bidirectional", "layout": 1}),
    ("LSTM", {"outputs": ["Y"], "seq": 1}),
    ("GRU", {"bias": False, "initial": False, "linear_before_reset": 1}),
    ("GRU", {"clip": 0.5, "direction": "bidirectional", "linear_before_reset": 1}),
    ("GRU", {"constant_weights": False, "direction": "bidirectional", "linear_before_reset": 0}),
    ("GRU", {"constant_weights": False, "layout": 1, "linear_before_reset": 1, "outputs": ["Y_h"]}),
    ("RNN", {"clip": 0.5, "activations": ["Relu", "Sigmoid"], "direction": "bidirectional"}),
    ("RNN", {"constant_weights": False, "initial": False, "outputs": ["Y"]}),
]


@pytest.mark.parametrize(("op", "options"), CASES, ids=[f"{op}-{i}" for i, (op, _) in enumerate(CASES)])
def test_matches_onnxruntime(op: str, options: dict[str, Any]) -> None:
    check_against_onnxruntime(op, **options)


ACTIVATIONS = [
    ["HardSigmoid", "LeakyRelu", "ScaledTanh"],
    ["Affine", "Elu", "Softsign"],
    ["Sigmoid", "ThresholdedRelu", "Softplus"],
    ["sigmoid", "relu", "tanh"],  # onnxruntime's LSTM and GRU accept any case
]


@pytest.mark.parametrize("opset", [9, 11, 18])  # Split and Clip take attributes before 13 and 11
@pytest.mark.parametrize("activations", ACTIVATIONS, ids=["-".join(a) for a in ACTIVATIONS])
@pytest.mark.parametrize("op", ["LSTM", "GRU"])
def test_activations_alpha_beta_and_opsets(op: str, activations: list[str], opset: int) -> None:
    """alpha/beta are consumed in list order across both directions, as onnxruntime does."""
    count = 3 if op == "LSTM" else 2
    check_against_onnxruntime(op, direction="bidirectional", opset=opset, clip=1.5,
                              activations=activations[:count] * 2,
                              activation_alpha=[0.3, 0.05, 1.5, 0.2, 0.9, 1.1, 0.4, 0.6],
                              activation_beta=[0.4, 0.7, 0.8, 0.1, 0.3, 0.2])


def test_default_alpha_of_leaky_relu_hard_sigmoid_and_elu() -> None:
    check_against_onnxruntime("LSTM", activations=["HardSigmoid", "LeakyRelu", "Elu"])


# ===================================================================== ONNX node test cases
_KEPT = {
    # sequence_lens is a graph input (the padded-batch case): the loop length depends on data.
    "test_lstm_with_peepholes": "lstm at '<LSTM>': not applied, sequence_lens %sequence_lens is not a "
                                "constant (padded batches are not unrolled)",
}


@functools.cache
def _official_cases() -> dict[str, Any]:
    """The ONNX node test cases of LSTM, GRU and RNN, with inputs and expected outputs in memory.

    `collect_testcases()` builds every op's cases (~6 s); importing just these three case modules
    builds theirs (their Base subclasses export on definition) and they land in the same list."""
    import onnx.backend.test.case.node as node_cases

    for module in ("lstm", "gru", "rnn"):
        importlib.import_module(f"onnx.backend.test.case.node.{module}")
    collected = getattr(node_cases, "_NodeTestCases", None)
    if collected is None:
        collected = node_cases.collect_testcases()
    prefixes = ("test_lstm", "test_gru", "test_rnn", "test_simple_rnn")
    return {c.name: c for c in collected if c.name.startswith(prefixes)}


OFFICIAL = sorted(_official_cases())


def test_official_cases_are_there() -> None:
    assert len(OFFICIAL) >= 18 and set(_KEPT) <= set(OFFICIAL)


def _official_feeds(case: Any, inputs: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    return {v.name: a for v, a in zip(case.model.graph.input, inputs, strict=False)}


@pytest.mark.parametrize("name", OFFICIAL)
def test_onnx_node_test_case(name: str) -> None:
    case = _official_cases()[name]
    graph, ctx = run_pass(P, import_onnx(case.model))
    if name in _KEPT:
        assert ctx.rewrites == 0 and ctx.remarks == [_KEPT[name]]
        return
    assert ctx.rewrites == 1, ctx.remarks
    for inputs, outputs in case.data_sets:
        got = run_graph(graph, _official_feeds(case, inputs))
        for proto, expected in zip(case.model.graph.output, outputs, strict=True):
            np.testing.assert_allclose(got[proto.name], expected, rtol=RTOL, atol=ATOL, err_msg=f"{name} {proto.name}")


def test_official_peepholes_with_sequence_lens_as_a_constant() -> None:
    """The kept case with its (full-length) sequence_lens data frozen into an initializer unrolls."""
    case = _official_cases()["test_lstm_with_peepholes"]
    inputs, outputs = case.data_sets[0]
    model = onnx.ModelProto()
    model.CopyFrom(case.model)
    position = [v.name for v in model.graph.input].index("sequence_lens")
    model.graph.initializer.append(numpy_helper.from_array(inputs[position], "sequence_lens"))
    del model.graph.input[position]
    feeds = {k: v for k, v in _official_feeds(case, inputs).items() if k != "sequence_lens"}
    got, _, _ = _legalized(model, feeds)
    np.testing.assert_allclose(got["Y_h"], outputs[0], rtol=RTOL, atol=ATOL)
