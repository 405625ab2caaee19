"""fuse-bias-gelu: a 1-D bias Add before a GELU folds into com.microsoft::BiasGelu / FastGelu(x, bias)."""

from __future__ import annotations

import pytest

from mlc.testing import assert_pass, run_pass
from tests.passes.test_fuse_layernorm import assert_model_numbers, fused_model, op_counts, remarks

MS = 'model ir_version=8 opset_import={"": 17, "com.microsoft": 1}\n'
BIAS = "  const %bias = dense<f32[8]> [0.5, -0.5, 0.25, -0.25, 1.0, -1.0, 0.125, 0.0]\n"
BEFORE = MS + '''graph "g" (%x: f32[2,3,8]) {
%BIAS  %h: f32[2,3,8] = Add(%bias, %x) name="/ff/Add"
  %y: f32[2,3,8] = com.microsoft::Gelu(%h) name="/ff/Gelu"
  return %y
}'''.replace("%BIAS", BIAS)
EXPECTED = MS + '''graph "g" (%x: f32[2,3,8]) {
%BIAS  %y: f32[2,3,8] = com.microsoft::%OP(%x, %bias) name="/ff/%OP"
  return %y
}'''.replace("%BIAS", BIAS)


def test_contrib_gelu_takes_the_bias() -> None:
    ctx = assert_pass("fuse-bias-gelu", BEFORE, EXPECTED.replace("%OP", "BiasGelu"), fused=1)
    assert dict(ctx.rules) == {"bias-gelu": 1} and ctx.remarks == []
    graph, _ = run_pass("fuse-bias-gelu", BEFORE)
    assert graph.nodes[0].source == ("/ff/Add", "/ff/Gelu")


@pytest.mark.parametrize(("gelu", "opset", "op"), [
    ("Gelu(%h)", 20, "BiasGelu"),
    ('Gelu(%h) {approximate="none"}', 20, "BiasGelu"),
    ('Gelu(%h) {approximate="tanh"}', 20, "FastGelu"),
    ("com.microsoft::FastGelu(%h)", 17, "FastGelu"),
])
def test_other_gelus(gelu: str, opset: int, op: str) -> None:
    before = BEFORE.replace("com.microsoft::Gelu(%h)", gelu).replace("Add(%bias, %x)", "Add(%x, %bias)")
    if opset == 20:  # ai.onnx Gelu: the com.microsoft import is the pass's doing
        before = before.replace(', "com.microsoft": 1', "").replace('{"": 17', '{"": 20')
    expected = EXPECTED.replace("%OP", op).replace('{"": 17', f'{{"": {opset}')
    ctx = assert_pass("fuse-bias-gelu", before, expected, fused=1)
    assert dict(ctx.rules) == {("bias-gelu" if op == "BiasGelu" else "bias-fastgelu"): 1}


@pytest.mark.parametrize(("edit", "why"), [
    ({"return %y": "return %y, %h"}, "the Add's output is also read elsewhere"),
    ({"dense<f32[8]>": "dense<f32[1,8]>"}, "the Add has no 1-D constant operand (a bias)"),
    ({BIAS: "", "(%x: f32[2,3,8])": "(%x: f32[2,3,8], %bias: f32[8])"},
     "the Add has no 1-D constant operand (a bias)"),
    ({"(%x: f32[2,3,8])": "(%x: f32[2,3,1])"}, "x's last dim (1) is not known to be the bias length 8"),
    ({"(%x: f32[2,3,8])": "(%x: f32[2,3,?])"}, "x's last dim (?) is not known to be the bias length 8"),
    ({'%h: f32[2,3,8] = Add(%bias, %x) name="/ff/Add"': '%h: f32[2,3,8] = Mul(%bias, %x) name="/ff/Add"'},
     "its input is not an Add"),
], ids=["sum-read", "2-d-bias", "bias-input", "broadcast-x", "unknown-last-dim", "mul"])
def test_must_not_change(edit: dict[str, str], why: str) -> None:
    text = BEFORE
    for old, new in edit.items():
        assert old in text, old
        text = text.replace(old, new)
    ctx = assert_pass("fuse-bias-gelu", text, text)
    assert ctx.remarks == [f"bias-gelu at '/ff/Gelu': not applied, {why}"]


def test_no_candidates() -> None:
    # a FastGelu that has its bias already, a float64 Gelu is refused with a remark
    text = BEFORE.replace("com.microsoft::Gelu(%h)", "com.microsoft::FastGelu(%x, %bias)")
    ctx = assert_pass("fuse-bias-gelu", text, text)
    assert ctx.remarks == []
    text = BEFORE.replace("f32", "f64")
    ctx = assert_pass("fuse-bias-gelu", text, text, numeric=False)
    assert ctx.remarks == ["bias-gelu at '/ff/Gelu': not applied, x is not float32/float16 (onnxruntime's "
                           "BiasGelu/FastGelu kernels)"]


# ----------------------------------------------------------------- the transformer models
O3_ORT = ["fuse-layernorm", "fuse-gelu{contrib=true}", "fuse-skip-layernorm", "fuse-bias-gelu", "dce"]


def test_bert() -> None:
    graph, contexts, _ = fused_model("bert", O3_ORT)
    counts = op_counts(graph)
    assert counts["com.microsoft::BiasGelu"] == 2 and "com.microsoft::Gelu" not in counts, counts
    assert remarks(contexts["fuse-bias-gelu"], "BiasGelu") == []
    assert_model_numbers("bert", graph)


@pytest.mark.parametrize("linear", ["gemm", "matmul"])
def test_gpt(linear: str) -> None:
    graph, contexts, _ = fused_model("gpt", O3_ORT, linear)
    fast = [n for n in graph if n.op_type == "FastGelu"]
    assert len(fast) == 2
    if linear == "matmul":  # MatMul + Add(bias): the bias moves into FastGelu
        assert all(len(n.inputs) == 2 for n in fast) and contexts["fuse-bias-gelu"].rules == {"bias-fastgelu": 2}
    else:  # Reshape(Gemm(..., bias)): the bias is inside the Gemm
        assert all(len(n.inputs) == 1 for n in fast)
        assert remarks(contexts["fuse-bias-gelu"], "bias-fastgelu") == [
            f"bias-fastgelu at '/transformer/h.{i}/mlp/act/FastGelu': not applied, its input is not an Add"
            for i in (0, 1)]
    assert_model_numbers("gpt", graph, linear)
