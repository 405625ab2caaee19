"""fuse-layernorm: the exporters' decomposed layer norm becomes LayerNormalization (opset >= 17).

Also the helpers the transformer-fusion tests share (`transformer`, `fused_model`, `op_counts`,
`assert_model_numbers`): BERT and GPT-2 built by models/make_transformers.py, run through
fold-constants and the fusion passes, and compared with onnxruntime on the original model."""

from __future__ import annotations

import functools
import importlib.util
from collections import Counter
from pathlib import Path
from typing import Any

import onnxruntime as ort
import pytest

from mlc.ir.core import Graph
from mlc.numerics.compare import FAIL, compare_outputs
from mlc.numerics.inputs import InputSpec, make_inputs
from mlc.numerics.reference import run_graph
from mlc.onnx_io.importer import import_onnx
from mlc.pass_api import Numerics, PassContext
from mlc.testing import assert_pass, run_pass

ROOT = Path(__file__).resolve().parents[2]
SMALL = {"layers": 2, "hidden": 64, "heads": 4, "vocab": 100, "max_positions": 32, "seed": 3}


# ----------------------------------------------------------------- helpers shared by the transformer fusion tests
@functools.cache
def _make_transformers() -> Any:
    spec = importlib.util.spec_from_file_location("make_transformers", ROOT / "models" / "make_transformers.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def transformer(name: str, linear: str = "gemm") -> bytes:
    """The serialized BERT ("bert") or GPT-2 ("gpt") test model at the SMALL size."""
    mt = _make_transformers()
    model = mt.build_bert(**SMALL) if name == "bert" else mt.build_gpt(**SMALL, linear=linear)
    return bytes(model.SerializeToString())


def fused_model(name: str, passes: list[str], linear: str = "gemm") -> tuple[Graph, dict[str, PassContext], int]:
    """(graph, context per pass, node count after fold-constants): the model imported, its Constant
    nodes folded into initializers, then `passes` run in order."""
    graph = import_onnx(transformer(name, linear))
    run_pass("fold-constants", graph)
    folded = len(graph)
    contexts = {}
    for spec in passes:
        _, contexts[spec] = run_pass(spec, graph)
    return graph, contexts, folded


def op_counts(graph: Graph) -> Counter[str]:
    return Counter(f"{n.domain}::{n.op_type}" if n.domain else n.op_type for n in graph)


def assert_model_numbers(name: str, graph: Graph, linear: str = "gemm") -> None:
    """The fused graph computes what onnxruntime computes on the original model, for two batch and
    sequence sizes (padding in the BERT mask)."""
    session = ort.InferenceSession(transformer(name, linear), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    for batch, seq in ((1, 5), (3, 11)):
        spec = InputSpec(seed=batch, shapes={v.name: (batch, seq) for v in graph.inputs},
                         ranges={"input_ids": (0, SMALL["vocab"] - 1), "attention_mask": (0, 1),
                                 "token_type_ids": (0, 1)})
        feeds = make_inputs(graph, spec)
        expected = dict(zip(names, session.run(None, feeds), strict=True))
        got = run_graph(graph, feeds)
        result = compare_outputs(expected, {k: got[k] for k in names}, Numerics.TOLERANCE, "onnxruntime")
        assert result.verdict != FAIL, f"{name} batch={batch} seq={seq}: " + "; ".join(
            o.describe() for o in result.outputs if o.verdict != "ok")


def remarks(ctx: PassContext, prefix: str) -> list[str]:
    return [r for r in ctx.remarks if r.startswith(prefix)]


# ----------------------------------------------------------------- BEFORE / EXPECTED
HEAD = 'model ir_version=8 opset_import={"": %OPSET}\n'
LAYERNORM = '''graph "g" (%x: f32[2,3,4]) {
  const %two = dense<f32[]> [2.0]
  const %eps = dense<f32[]> [1e-05]
  const %gamma = dense<f32[4]> [1.0, 0.5, -1.0, 2.0]
  const %beta = dense<f32[4]> [0.1, 0.2, 0.3, 0.4]
  %mean: f32[2,3,1] = ReduceMean(%x) {axes=[-1], keepdims=1} name="/ln/ReduceMean"
  %d: f32[2,3,4] = Sub(%x, %mean) name="/ln/Sub"
  %sq: f32[2,3,4] = Pow(%d, %two) name="/ln/Pow"
  %var: f32[2,3,1] = ReduceMean(%sq) {axes=[-1], keepdims=1} name="/ln/ReduceMean_1"
  %ve: f32[2,3,1] = Add(%var, %eps) name="/ln/Add"
  %std: f32[2,3,1] = Sqrt(%ve) name="/ln/Sqrt"
  %n: f32[2,3,4] = Div(%d, %std) name="/ln/Div"
  %g: f32[2,3,4] = Mul(%n, %gamma) name="/ln/Mul"
  %y: f32[2,3,4] = Add(%g, %beta) name="/ln/Add_1"
  return %y
}'''
FUSED = '''graph "g" (%x: f32[2,3,4]) {
  const %two = dense<f32[]> [2.0]
  const %eps = dense<f32[]> [1e-05]
  const %gamma = dense<f32[4]> [1.0, 0.5, -1.0, 2.0]
  const %beta = dense<f32[4]> [0.1, 0.2, 0.3, 0.4]
  %y: f32[2,3,4] = LayerNormalization(%x, %gamma, %beta) {axis=-1, epsilon=1e-05} name="/ln/LayerNormalization"
  return %y
}'''


def _model(text: str, opset: int = 17) -> str:
    return HEAD.replace("%OPSET", str(opset)) + text


def test_exporter_form_becomes_layernormalization() -> None:
    ctx = assert_pass("fuse-layernorm", _model(LAYERNORM), _model(FUSED), fused=1)
    assert dict(ctx.rules) == {"layernorm": 1} and ctx.remarks == []
    graph, _ = run_pass("fuse-layernorm", _model(LAYERNORM))
    (node,) = graph.nodes
    assert node.source == ("/ln/ReduceMean", "/ln/Sub", "/ln/Pow", "/ln/ReduceMean_1", "/ln/Add", "/ln/Sqrt",
                           "/ln/Div", "/ln/Mul", "/ln/Add_1")
    assert node.created_by == "fuse-layernorm/layernorm" and [v.name for v in graph.outputs] == ["y"]


@pytest.mark.parametrize("edit", [
    # Mul(d, d) for the square; operands of the commutative ops the other way round
    {'Pow(%d, %two)': 'Mul(%d, %d)', 'Mul(%n, %gamma)': 'Mul(%gamma, %n)', 'Add(%g, %beta)': 'Add(%beta, %g)',
     'Add(%var, %eps)': 'Add(%eps, %var)'},
    # Reciprocal + Mul for the Div, Pow(., 0.5) for the Sqrt
    {'%n: f32[2,3,4] = Div(%d, %std) name="/ln/Div"':
     '%r: f32[2,3,1] = Reciprocal(%std)\n  %n: f32[2,3,4] = Mul(%d, %r)',
     'Sqrt(%ve)': 'Pow(%ve, %half)', 'const %two': 'const %half = dense<f32[]> [0.5]\n  const %two'},
    # epsilon and the exponent as one-element tensors; positive axes
    {'const %eps = dense<f32[]> [1e-05]': 'const %eps = dense<f32[1]> [1e-05]',
     'const %two = dense<f32[]> [2.0]': 'const %two = dense<f32[1,1]> [2.0]', 'axes=[-1]': 'axes=[2]'},
], ids=["mul-square-swapped", "reciprocal-pow-half", "one-element-constants"])
def test_variants(edit: dict[str, str]) -> None:
    before, expected = LAYERNORM, FUSED
    for old, new in edit.items():
        assert old in before
        before = before.replace(old, new)
        if old.startswith("const"):
            expected = expected.replace(old, new)
    assert_pass("fuse-layernorm", _model(before), _model(expected), fused=1)


def test_opset_18_axes_input() -> None:
    before = LAYERNORM.replace('ReduceMean(%x) {axes=[-1], keepdims=1}', 'ReduceMean(%x, %axes) {keepdims=1}') \
        .replace('ReduceMean(%sq) {axes=[-1], keepdims=1}', 'ReduceMean(%sq, %axes)') \
        .replace('  const %two', '  const %axes = dense<i64[1]> [-1]\n  const %two')
    expected = FUSED.replace('  const %two', '  const %axes = dense<i64[1]> [-1]\n  const %two')
    assert_pass("fuse-layernorm", _model(before, 18), _model(expected, 18), fused=1)


def test_without_affine_part_gets_a_ones_gamma() -> None:
    before = LAYERNORM.replace('  %g: f32[2,3,4] = Mul(%n, %gamma) name="/ln/Mul"\n', '') \
        .replace('  %y: f32[2,3,4] = Add(%g, %beta) name="/ln/Add_1"\n', '').replace("return %y", "return %n")
    expected = FUSED.replace("LayerNormalization(%x, %gamma, %beta)", "LayerNormalization(%x, %ones)") \
        .replace("%y", "%n").replace('  const %two', '  const %ones = dense<f32[4]> [1.0, 1.0, 1.0, 1.0]\n  const %two')
    ctx = assert_pass("fuse-layernorm", _model(before), _model(expected), fused=1)
    assert dict(ctx.rules) == {"layernorm-no-affine": 1}
    # gamma alone: LayerNormalization without B
    only_gamma = LAYERNORM.replace('  %y: f32[2,3,4] = Add(%g, %beta) name="/ln/Add_1"\n', '') \
        .replace("return %y", "return %g")
    expected = FUSED.replace("LayerNormalization(%x, %gamma, %beta)", "LayerNormalization(%x, %gamma)") \
        .replace("%y", "%g")
    assert_pass("fuse-layernorm", _model(only_gamma), _model(expected), fused=1)


def test_last_two_axes_and_a_broadcast_gamma() -> None:
    before = LAYERNORM.replace("axes=[-1]", "axes=[-2, -1]").replace("f32[2,3,1]", "f32[2,1,1]") \
        .replace("const %gamma = dense<f32[4]> [1.0, 0.5, -1.0, 2.0]", "const %gamma = dense<f32[1,1,4]> [1.0, 0.5, "
                 "-1.0, 2.0]")
    expected = FUSED.replace("LayerNormalization(%x, %gamma, %beta) {axis=-1,",
                             "LayerNormalization(%x, %g34, %b34) {axis=-2,") \
        .replace("const %gamma = dense<f32[4]> [1.0, 0.5, -1.0, 2.0]",
                 "const %gamma = dense<f32[1,1,4]> [1.0, 0.5, -1.0, 2.0]\n"
                 "  const %g34 = dense<f32[3,4]> [" + ", ".join(["1.0, 0.5, -1.0, 2.0"] * 3) + "]\n"
                 "  const %b34 = dense<f32[3,4]> [" + ", ".join(["0.1, 0.2, 0.3, 0.4"] * 3) + "]")
    # the original gamma and beta stay for dce: only their broadcast [3, 4] copies are read
    assert_pass("fuse-layernorm", _model(before), _model(expected), fused=1)


@pytest.mark.parametrize(("edit", "why"), [
    ({"return %y": "return %y, %mean"}, "the mean is also read elsewhere"),
    ({"return %y": "return %y, %var"}, "is also read outside the layer norm"),
    ({'%std: f32[2,3,1] = Sqrt(%ve) name="/ln/Sqrt"':
      '%std: f32[2,3,1] = Sqrt(%ve) name="/ln/Sqrt"\n  %dd: f32[2,3,4] = Neg(%d)', "return %y": "return %y, %dd"},
     "the centered value is also read outside the layer norm"),
    ({'const %gamma = dense<f32[4]> [1.0, 0.5, -1.0, 2.0]\n': '', '(%x: f32[2,3,4])': '(%x: f32[2,3,4], %gamma: '
      'f32[4])'}, "the normalized value is multiplied by the non-constant %gamma"),
    ({'const %eps = dense<f32[]> [1e-05]\n': '', '(%x: f32[2,3,4])': '(%x: f32[2,3,4], %eps: f32[])'},
     "epsilon is not a constant scalar"),
    ({'const %two = dense<f32[]> [2.0]': 'const %two = dense<f32[]> [3.0]'}, "the centered value is not squared"),
    ({"axes=[-1]": "axes=[1]", "f32[2,3,1]": "f32[2,1,4]"}, "it reduces axes [-2], not the last ones"),
], ids=["mean-read", "variance-output", "centered-read", "gamma-input", "eps-input", "cube", "middle-axis"])
def test_must_not_change(edit: dict[str, str], why: str) -> None:
    text = LAYERNORM
    for old, new in edit.items():
        assert old in text, old
        text = text.replace(old, new)
    ctx = assert_pass("fuse-layernorm", _model(text), _model(text), numeric=False)
    (remark,) = ctx.remarks
    assert remark.startswith("layernorm at '/ln/ReduceMean': not applied, ") and why in remark, remark


def test_opset_16_keeps_the_pattern() -> None:
    ctx = assert_pass("fuse-layernorm", _model(LAYERNORM, 16), _model(LAYERNORM, 16))
    assert ctx.remarks == ["layernorm at '/ln/ReduceMean': not applied, ai.onnx opset 16 has no LayerNormalization "
                           "(it needs 17)"]


def test_other_reduce_means_are_no_candidates() -> None:
    pooling = '''graph "g" (%x: f32[2,3,4]) {
  %m: f32[2,3,1] = ReduceMean(%x) {axes=[-1], keepdims=1}
  %y: f32[2,3,4] = Add(%x, %m)
  return %y
}'''
    ctx = assert_pass("fuse-layernorm", pooling, pooling)
    assert ctx.remarks == []


def test_max_rewrites_stops_between_layer_norms() -> None:
    body = LAYERNORM.splitlines()[5:14]  # the nine nodes
    second = [line.replace("%x", "%y").replace("/ln/", "/ln2/") for line in body]
    for name in ("mean", "d", "sq", "var", "ve", "std", "n", "g"):
        second = [line.replace(f"%{name}:", f"%{name}2:").replace(f"%{name})", f"%{name}2)")
                  .replace(f"%{name},", f"%{name}2,") for line in second]
    second[-1] = second[-1].replace("%y:", "%z:")
    text = LAYERNORM.replace("  return %y", "\n".join(second) + "\n  return %z")
    graph, ctx = run_pass("fuse-layernorm", _model(text), max_rewrites=1)
    assert ctx.rewrites == 1 and [n.op_type for n in graph].count("LayerNormalization") == 1
    graph, ctx = run_pass("fuse-layernorm", _model(text))
    assert [n.op_type for n in graph] == ["LayerNormalization", "LayerNormalization"]


# ----------------------------------------------------------------- the transformer models
@pytest.mark.parametrize("name", ["bert", "gpt"])
def test_transformer_models(name: str) -> None:
    graph, contexts, folded = fused_model(name, ["fuse-layernorm", "dce"])
    counts = op_counts(graph)
    assert counts["LayerNormalization"] == 5, counts  # (BERT) 1 embedding + 2 per layer; (GPT) 2 per layer + ln_f
    assert "ReduceMean" not in counts and "Sqrt" not in counts
    assert remarks(contexts["fuse-layernorm"], "layernorm") == []
    assert folded - len(graph) == 5 * 8, (folded, len(graph))
    assert_model_numbers(name, graph)
