"""fuse-gelu: the erf and tanh GELU forms become Gelu (opset 20) or onnxruntime's Gelu / FastGelu."""

from __future__ import annotations

import pytest

from mlc.testing import assert_pass, run_pass
from tests.passes.test_fuse_layernorm import assert_model_numbers, fused_model, op_counts, remarks


def _model(text: str, opset: int, contrib: bool = False) -> str:
    imports = f'{{"": {opset}, "com.microsoft": 1}}' if contrib else f'{{"": {opset}}}'
    return f"model ir_version=8 opset_import={imports}\n{text}"


CONSTS = '''  const %sqrt2 = dense<f32[]> [1.4142135]
  const %one = dense<f32[]> [1.0]
  const %half = dense<f32[]> [0.5]
'''
# torch's exact gelu as the exporter writes it (BERT): (x * (1 + erf(x / sqrt 2))) * 0.5
ERF = '''graph "g" (%x: f32[2,8]) {
%CONSTS  %a: f32[2,8] = Div(%x, %sqrt2) name="/act/Div"
  %e: f32[2,8] = Erf(%a) name="/act/Erf"
  %p: f32[2,8] = Add(%e, %one) name="/act/Add"
  %m: f32[2,8] = Mul(%x, %p) name="/act/Mul"
  %y: f32[2,8] = Mul(%m, %half) name="/act/Mul_1"
  return %y
}'''.replace("%CONSTS", CONSTS)
ERF_FUSED = '''graph "g" (%x: f32[2,8]) {
%CONSTS  %y: f32[2,8] = %OP(%x) name="/act/%NAME"
  return %y
}'''.replace("%CONSTS", CONSTS)

TANH_CONSTS = '''  const %three = dense<f32[]> [3.0]
  const %cubic = dense<f32[]> [0.044715]
  const %k = dense<f32[]> [0.7978846]
  const %one = dense<f32[]> [1.0]
  const %half = dense<f32[]> [0.5]
'''
# GPT-2's gelu_new: 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))
TANH = '''graph "g" (%x: f32[2,8]) {
%CONSTS  %h: f32[2,8] = Mul(%x, %half) name="/mlp/act/Mul"
  %cube: f32[2,8] = Pow(%x, %three) name="/mlp/act/Pow"
  %t1: f32[2,8] = Mul(%cube, %cubic) name="/mlp/act/Mul_1"
  %inner: f32[2,8] = Add(%x, %t1) name="/mlp/act/Add"
  %s: f32[2,8] = Mul(%inner, %k) name="/mlp/act/Mul_2"
  %t: f32[2,8] = Tanh(%s) name="/mlp/act/Tanh"
  %p: f32[2,8] = Add(%t, %one) name="/mlp/act/Add_1"
  %y: f32[2,8] = Mul(%h, %p) name="/mlp/act/Mul_3"
  return %y
}'''.replace("%CONSTS", TANH_CONSTS)
TANH_FUSED = '''graph "g" (%x: f32[2,8]) {
%CONSTS  %y: f32[2,8] = %OP name="/mlp/act/%NAME"
  return %y
}'''.replace("%CONSTS", TANH_CONSTS)


def _edit(text: str, edit: dict[str, str]) -> str:
    for old, new in edit.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


def test_erf_form_becomes_gelu_at_opset_20() -> None:
    expected = ERF_FUSED.replace("%OP", "Gelu").replace("%NAME", "Gelu")
    ctx = assert_pass("fuse-gelu", _model(ERF, 20), _model(expected, 20), fused=1)
    assert dict(ctx.rules) == {"gelu-erf": 1} and ctx.remarks == []
    graph, _ = run_pass("fuse-gelu", _model(ERF, 20))
    (node,) = graph.nodes
    assert node.source == ("/act/Div", "/act/Erf", "/act/Add", "/act/Mul", "/act/Mul_1")


@pytest.mark.parametrize("edit", [
    # Mul(Mul(x, 0.5), 1 + erf)
    {'%m: f32[2,8] = Mul(%x, %p) name="/act/Mul"': '%m: f32[2,8] = Mul(%x, %half) name="/act/Mul"',
     '%y: f32[2,8] = Mul(%m, %half)': '%y: f32[2,8] = Mul(%m, %p)'},
    # Mul(x, Mul(0.5, 1 + erf)), 1 + erf written 1 first
    {'%m: f32[2,8] = Mul(%x, %p)': '%m: f32[2,8] = Mul(%half, %p)', '%y: f32[2,8] = Mul(%m, %half)':
     '%y: f32[2,8] = Mul(%x, %m)', 'Add(%e, %one)': 'Add(%one, %e)'},
    # x * 0.70710678 for x / sqrt 2; halving as a Div by 2; one-element constants
    {'const %sqrt2 = dense<f32[]> [1.4142135]': 'const %sqrt2 = dense<f32[1]> [0.70710677]',
     'Div(%x, %sqrt2)': 'Mul(%sqrt2, %x)', 'const %half = dense<f32[]> [0.5]': 'const %half = dense<f32[1]> [2.0]',
     'Mul(%m, %half)': 'Div(%m, %half)'},
    # the 5-digit constant 1.41421
    {'const %sqrt2 = dense<f32[]> [1.4142135]': 'const %sqrt2 = dense<f32[]> [1.41421]'},
], ids=["half-x-first", "half-p-first", "mul-rsqrt2-div2", "rounded-sqrt2"])
def test_erf_variants(edit: dict[str, str]) -> None:
    expected = ERF_FUSED.replace("%OP", "Gelu").replace("%NAME", "Gelu")
    expected = _edit(expected, {k: v for k, v in edit.items() if k.startswith("const")})
    assert_pass("fuse-gelu", _model(_edit(ERF, edit), 20), _model(expected, 20), fused=1)


@pytest.mark.parametrize("edit", [
    {},
    # x * x * x for the cube, 0.5 * (x ...) the other way round, constants first
    {'%cube: f32[2,8] = Pow(%x, %three)': '%xx: f32[2,8] = Mul(%x, %x)\n  %cube: f32[2,8] = Mul(%xx, %x)',
     'Mul(%x, %half)': 'Mul(%half, %x)', 'Mul(%cube, %cubic)': 'Mul(%cubic, %cube)', 'Add(%x, %t1)': 'Add(%t1, %x)',
     'Mul(%inner, %k)': 'Mul(%k, %inner)', 'Mul(%h, %p)': 'Mul(%p, %h)'},
], ids=["gpt2", "cube-as-muls-swapped"])
def test_tanh_form(edit: dict[str, str]) -> None:
    expected = TANH_FUSED.replace("%OP", 'Gelu(%x) {approximate="tanh"}').replace("%NAME", "Gelu")
    ctx = assert_pass("fuse-gelu", _model(_edit(TANH, edit), 20), _model(expected, 20), fused=1)
    assert dict(ctx.rules) == {"gelu-tanh": 1}


def test_contrib_ops_at_any_opset() -> None:
    expected = ERF_FUSED.replace("%OP", "com.microsoft::Gelu").replace("%NAME", "Gelu")
    ctx = assert_pass("fuse-gelu{contrib=true}", _model(ERF, 17), _model(expected, 17, contrib=True), fused=1)
    assert dict(ctx.rules) == {"gelu-erf-contrib": 1}
    expected = TANH_FUSED.replace("%OP", "com.microsoft::FastGelu(%x)").replace("%NAME", "FastGelu")
    assert_pass("fuse-gelu{contrib=true}", _model(TANH, 20), _model(expected, 20, contrib=True), fused=1)


@pytest.mark.parametrize(("text", "opset", "why"), [
    (_edit(ERF, {'const %half = dense<f32[]> [0.5]': 'const %half = dense<f32[]> [0.6]'}), 20,
     "gelu-erf at '/act/Erf': not applied, x * (1 + f(x)) is not halved"),
    (_edit(TANH, {'const %cubic = dense<f32[]> [0.044715]': 'const %cubic = dense<f32[]> [0.6]'}), 20,
     "gelu-tanh at '/mlp/act/Tanh': not applied, its input is not 0.7978846 * (x + 0.044715 * x^3)"),
    (_edit(ERF, {"return %y": "return %y, %e"}), 20,
     "gelu-erf at '/act/Erf': not applied, its output %e is also read outside the GELU"),
    (_edit(TANH, {"return %y": "return %y, %cube"}), 20,
     "gelu-tanh at '/mlp/act/Tanh': not applied, %cube is also read outside the GELU"),
    (_edit(TANH, {"return %y": "return %y, %h"}), 20,
     "gelu-tanh at '/mlp/act/Tanh': not applied, x * 0.5 is also read elsewhere"),
    (ERF, 17, "gelu-erf at '/act/Erf': not applied, ai.onnx opset 17 has no Gelu (it needs 20); the option "
              "fuse-gelu{contrib=true} emits onnxruntime's com.microsoft::Gelu/FastGelu instead"),
    ('''graph "g" (%x: f32[2,8]) {
  %y: f32[2,8] = Tanh(%x) name="/pooler/Tanh"
  return %y
}''', 20, "gelu-tanh at '/pooler/Tanh': not applied, its input is not 0.7978846 * (x + 0.044715 * x^3)"),
], ids=["half-is-0.6", "cubic-is-0.6", "erf-read", "cube-read", "half-x-read", "opset-17", "plain-tanh"])
def test_must_not_change(text: str, opset: int, why: str) -> None:
    ctx = assert_pass("fuse-gelu", _model(text, opset), _model(text, opset))
    (remark,) = ctx.remarks
    assert remark.startswith(why), remark


def test_contrib_needs_float32_or_float16() -> None:
    text = ERF.replace("f32", "f64")
    ctx = assert_pass("fuse-gelu{contrib=true}", _model(text, 17), _model(text, 17), numeric=False)
    assert ctx.remarks == ["gelu-erf at '/act/Erf': not applied, x is not float32/float16 (onnxruntime's Gelu/FastGelu "
                           "kernels)"]


# ----------------------------------------------------------------- the transformer models
def test_bert_erf_gelu_becomes_contrib_gelu() -> None:
    graph, contexts, _ = fused_model("bert", ["fuse-layernorm", "fuse-gelu", "fuse-gelu{contrib=true}", "dce"])
    counts = op_counts(graph)
    assert counts["com.microsoft::Gelu"] == 2 and "Erf" not in counts, counts
    assert graph.model is not None and graph.model.opset_imports == {"": 17, "com.microsoft": 1}
    # without the option, opset 17 keeps both; the pooler's Tanh is an activation, not a GELU
    assert len(remarks(contexts["fuse-gelu"], "gelu-erf at '/encoder/layer.")) == 2
    assert remarks(contexts["fuse-gelu{contrib=true}"], "gelu") == [
        "gelu-tanh at '/pooler/activation/Tanh': not applied, its input is not 0.7978846 * (x + 0.044715 * x^3)"]
    assert_model_numbers("bert", graph)


def test_gpt_tanh_gelu_becomes_fast_gelu() -> None:
    graph, contexts, folded = fused_model("gpt", ["fuse-gelu{contrib=true}", "dce"])
    counts = op_counts(graph)
    assert counts["com.microsoft::FastGelu"] == 2 and "Tanh" not in counts and "Pow" in counts, counts
    assert folded - len(graph) == 2 * 7  # Mul, Pow, Mul, Add, Mul, Tanh, Add, Mul -> FastGelu
    assert contexts["fuse-gelu{contrib=true}"].remarks == []
    assert_model_numbers("gpt", graph)
