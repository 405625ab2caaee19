"""Per-target op support (mlc.op_support) and `mlc targets --support MODEL`.

The onnxruntime verdicts are checked against onnxruntime itself (a session is created for each
case); TVM's against its frontend's convert map; TensorRT's against the data of its operator
matrix (no TensorRT here)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from mlc.errors import BadInputError
from mlc.ir.core import Graph
from mlc.ir.dtypes import DType
from mlc.ir.parser import parse_ir
from mlc.onnx_io.importer import import_onnx
from mlc.op_support import Status, require_supported, support_report, support_table, tensorrt_ops
from tests.cli.helpers import DIGITS, exit_of, mlc, one_error_line

TARGETS = ("onnxruntime", "onnxruntime-cuda", "llvm", "cuda", "tensorrt")


def _model(body: str, opsets: str = '"": 17') -> Graph:
    return parse_ir(f"model ir_version=10 opset_import={{{opsets}}}\n{body}")


def _only(graph: Graph, target: str) -> tuple[Status, str]:
    (node,) = support_report(graph, target).nodes
    return node.status, node.reason


# ===================================================================== onnxruntime
def test_onnxruntime_builds_conv_and_gemm_at_opset_13_from_its_kernel_registry() -> None:
    table = support_table("onnxruntime")
    for op in ("Conv", "Gemm"):
        assert table.check("", op, 13).status is Status.SUPPORTED
    assert table.ops[("", "Gemm")][0].since == 7  # the CPU registry has no Gemm kernel before opset 7
    assert "f32" in table.ops[("", "Conv")][-1].note


def test_onnxruntime_refuses_an_op_or_domain_it_does_not_know() -> None:
    table = support_table("onnxruntime")
    made_up = table.check("", "Frobnicate", 17)
    assert made_up.status is Status.UNSUPPORTED and "no such op" in made_up.reason
    assert table.check("com.example", "Foo", 1).reason == "onnxruntime knows no domain com.example"


def _single_node_model(tmp_path: Path, node: onnx.NodeProto, inputs: dict[str, int], output_type: int,
                       opset: int) -> Path:
    vi = helper.make_tensor_value_info
    graph = helper.make_graph([node], "g", [vi(n, t, [2, 2] if node.op_type != "Conv" else [1, 1, 4, 4])
                                            for n, t in inputs.items()],
                              [vi(node.output[0], output_type, None)],
                              initializer=[helper.make_tensor("w", output_type, [1, 1, 1, 1], [1.0])]
                              if node.op_type == "Conv" else [])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    path = tmp_path / f"{node.op_type}_{opset}.onnx"
    onnx.save(model, path)
    return path


F32, F64, I32, F16 = TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.INT32, TensorProto.FLOAT16


@pytest.mark.parametrize(("node", "inputs", "out", "opset", "why"), [
    (helper.make_node("Conv", ["x", "w"], ["y"]), {"x": F32}, F32, 13, None),
    (helper.make_node("Conv", ["x", "w"], ["y"]), {"x": F64}, F64, 13, "no kernel for T=f64 (kernels take f32)"),
    (helper.make_node("Gemm", ["a", "b", "c"], ["y"]), {"a": F32, "b": F32, "c": F32}, F32, 6,
     "no CPU kernel for version 6"),
    (helper.make_node("Gemm", ["a", "b"], ["y"]), {"a": I32, "b": I32}, I32, 13, "no kernel for T=i32"),
    (helper.make_node("Relu", ["a"], ["y"]), {"a": F32}, F32, 27, "ai.onnx opset 27 above 26"),
    (helper.make_node("Relu", ["a"], ["y"]), {"a": F32}, F32, 26, None),
    (helper.make_node("Constant", [], ["y"], value=helper.make_tensor("v", F32, [2], [1.0, 2.0])), {}, F32, 17, None),
    # no float16 Erf kernel on the CPU: onnxruntime inserts casts to float32 and runs it (conditional)
    (helper.make_node("Erf", ["a"], ["y"]), {"a": F16}, F16, 17, None),
], ids=["conv-f32", "conv-f64", "gemm-opset6", "gemm-i32", "opset27", "opset26", "constant-no-kernel", "erf-f16"])
def test_onnxruntime_verdicts_agree_with_a_real_session(tmp_path: Path, node: onnx.NodeProto, inputs: dict[str, int],
                                                        out: int, opset: int, why: str | None) -> None:
    path = _single_node_model(tmp_path, node, inputs, out, opset)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        loads = True
    except Exception:  # noqa: BLE001 - onnxruntime's refusal is what is compared
        loads = False
    report = support_report(import_onnx(path), "onnxruntime")
    assert loads == report.ok == (why is None)
    if why is not None:
        assert why in report.unsupported[0].reason


def test_onnxruntime_cuda_on_a_cpu_build_says_unknown_rather_than_guessing() -> None:
    table = support_table("onnxruntime-cuda")
    if not getattr(table, "gpu_unknown", False):
        pytest.skip("this onnxruntime lists CUDA kernels")
    report = support_report(import_onnx(DIGITS), "onnxruntime-cuda")
    assert {n.status for n in report.nodes} == {Status.UNKNOWN} and report.ok
    assert "onnxruntime-gpu" in report.nodes[0].reason and "a CPU kernel exists" in report.nodes[0].reason


# ===================================================================== TVM (llvm, cuda)
def test_tvm_table_comes_from_the_convert_map_and_refuses_what_it_lacks() -> None:
    pytest.importorskip("tvm", reason="pip install 'mlc[tvm]'")
    from tvm.relax.frontend.onnx import onnx_frontend

    from mlc.op_support.tvm import converter_versions

    convert = onnx_frontend._get_convert_map()
    assert "Loop" not in convert and "Det" not in convert and converter_versions(convert["Conv"]) == [11]
    table = support_table("llvm")
    assert table.check("", "Conv", 13).status is Status.SUPPORTED
    for op in ("Loop", "Det"):
        assert table.check("", op, 17).reason == "no converter in TVM's ONNX frontend"
    relu = table.check("", "Relu", 11)  # Relu's only converter is _impl_v13; TVM applies it below
    assert relu.status is Status.CONDITIONAL and "opset 13" in relu.reason
    assert "tvm_rnn" in table.check("", "LSTM", 14).reason  # mlc's own converter
    assert table.check("", "QLinearConv", 13).status is Status.CONDITIONAL  # legalize-qlinear
    assert table.check("com.microsoft", "FastGelu", 1).status is Status.UNSUPPORTED


def test_tvm_names_a_loop_and_the_nodes_of_its_body() -> None:
    pytest.importorskip("tvm", reason="pip install 'mlc[tvm]'")
    graph = _model('''graph "main" (%m: i64[], %c: bool[], %v: f32[4]) {
  %out: f32[4] = Loop(%m, %c, %v) {body=graph "body" (%i: i64[], %ci: bool[], %vi: f32[4]) {
    %co = Identity(%ci) name="/loop/keep"
    %vo = Det(%vi) name="/loop/det"
    return %co, %vo
  }} name="/loop"
  return %out
}''')
    report = support_report(graph, "cuda")
    assert [(n.name, n.op_type) for n in report.unsupported] == [("/loop", "Loop"), ("/loop[body]/loop/det", "Det")]
    assert "/loop[body]/loop/keep" in [n.name for n in report.nodes]


# ===================================================================== TensorRT
def test_tensorrt_matrix_data_is_consistent() -> None:
    assert not set(tensorrt_ops.SUPPORTED) & set(tensorrt_ops.UNSUPPORTED)
    assert not set(tensorrt_ops.ADDED_SINCE) & (set(tensorrt_ops.SUPPORTED) | set(tensorrt_ops.UNSUPPORTED))
    for op, (types, _) in tensorrt_ops.SUPPORTED.items():
        for name in types.split():
            assert DType.from_short_name(name), op
    from onnxruntime.capi import _pybind_state as ort_c

    ai_onnx = {s.name for s in ort_c.get_all_operator_schema() if s.domain == ""}
    listed = set(tensorrt_ops.SUPPORTED) | set(tensorrt_ops.UNSUPPORTED) | set(tensorrt_ops.ADDED_SINCE)
    assert listed <= ai_onnx, f"not ai.onnx ops (misspelt?): {sorted(listed - ai_onnx)}"
    assert tensorrt_ops.SOURCE["repository"] == "onnx/onnx-tensorrt"


def test_tensorrt_builds_conv_and_refuses_what_the_matrix_marks_unsupported() -> None:
    table = support_table("tensorrt")
    assert table.check("", "Conv", 17).status is Status.SUPPORTED
    for op in ("Unique", "QLinearConv", "ConvInteger"):
        assert table.check("", op, 17).reason == "not supported by the TensorRT parser"
    assert table.check("", "Conv", 8).reason == "ai.onnx opset 8 below 9"
    assert table.check("com.microsoft", "Foo", 1).reason.startswith("no parser support")
    assert table.check("", "BitCast", 17).reason == "not in the TensorRT parser's operator matrix"


def test_tensorrt_checks_element_types_and_zero_points_on_the_node() -> None:
    graph = _model('''graph "main" (%x: f32[4], %i: i64[4], %h: f16[4]) {
  const %s = dense<f32[]> [0.5]
  const %z0 = dense<i8[]> [0]
  const %z128 = dense<u8[]> [128]
  %q0: i8[4] = QuantizeLinear(%x, %s, %z0) name="/q/symmetric"
  %q1: u8[4] = QuantizeLinear(%x, %s, %z128) name="/q/asymmetric"
  %n0: i64[1,?] = NonZero(%h) name="/nz/f16"
  %n1: i64[1,?] = NonZero(%i) name="/nz/i64"
  return %q0, %q1, %n0, %n1
}''')
    found = {n.name: (n.status, n.reason) for n in support_report(graph, "tensorrt").nodes}
    assert found["/q/symmetric"] == (Status.SUPPORTED, "")  # the restriction is verified, not a condition
    assert found["/q/asymmetric"] == (Status.UNSUPPORTED, "y_zero_point is not 0 (TensorRT quantizes symmetrically)")
    assert found["/nz/f16"][0] is Status.SUPPORTED
    assert found["/nz/i64"] == (Status.UNSUPPORTED, "element type i64 unsupported (the matrix lists f32, f16)")


# ===================================================================== the report
SUBGRAPHS = '''function com.example::Scale(%x) opset_import={"": 8} {
  %y = Relu(%x) name="/fn/relu"
  return %y
}
graph "main" (%x: f32[4], %c: bool[]) {
  %y: f32[4] = com.example::Scale(%x) name="/scale"
  %z: f32[4] = If(%c) {then_branch=graph "then" () {
    %t = Unique(%y) name="/b/uniq"
    return %t
  }, else_branch=graph "else" () {
    %e = Neg(%y) name="/b/neg"
    return %e
  }} name="/if"
  return %z
}'''


def test_sub_graph_and_function_body_nodes_are_named_and_checked_at_their_own_opset() -> None:
    graph = _model(SUBGRAPHS, '"": 17, "com.example": 1')
    report = support_report(graph, "tensorrt")
    assert [n.name for n in report.nodes] == ["/scale", "function com.example.Scale/fn/relu", "/if",
                                             "/if[then_branch]/b/uniq", "/if[else_branch]/b/neg"]
    assert [(n.name, n.reason) for n in report.unsupported] == [
        ("function com.example.Scale/fn/relu", "ai.onnx opset 8 below 9"),  # the function imports opset 8
        ("/if[then_branch]/b/uniq", "not supported by the TensorRT parser")]
    assert support_report(graph, "onnxruntime").ok  # onnxruntime inlines the function and has Unique


def test_one_line_stays_readable_for_500_unsupported_nodes() -> None:
    lines = "\n".join(f'  %u{i} = Unique(%x) name="/block{i}/Unique"' for i in range(500))
    graph = _model(f'graph "main" (%x: f32[4]) {{\n{lines}\n  %y = Neg(%x) name="/neg"\n  return %y\n}}')
    line = support_report(graph, "tensorrt").one_line("big.onnx")
    assert line.startswith("tensorrt cannot build 500 nodes (1 op type: Unique ×500): /block0/Unique (Unique, ")
    assert line.endswith(", and 497 more (see mlc targets --support big.onnx)")
    assert "/block3/" not in line and len(line) < 300 and "\n" not in line


def test_require_supported_raises_the_one_line_with_exit_code_2() -> None:
    graph = _model(SUBGRAPHS, '"": 17, "com.example": 1')
    with pytest.raises(BadInputError) as caught:
        require_supported(graph, "tensorrt", "m.onnx")
    assert caught.value.exit_code == 2
    assert str(caught.value).startswith("tensorrt cannot build 2 nodes: function com.example.Scale/fn/relu")
    assert require_supported(import_onnx(DIGITS), "onnxruntime").ok


# ===================================================================== mlc targets --support
def test_cli_support_prints_every_target_and_exits_0(capfd: pytest.CaptureFixture[str]) -> None:
    code, out, err = mlc(capfd, "targets", "--support", str(DIGITS))
    assert code == 0, err
    for target in TARGETS:
        assert f"\n{target}  " in "\n" + out
    assert "ok: onnxruntime can build all 8 nodes" in out
    assert "Gemm" in out and "ArgMax" in out


def test_cli_support_json_parses_and_carries_the_facts(capfd: pytest.CaptureFixture[str]) -> None:
    code, out, err = mlc(capfd, "--json", "targets", "--support", str(DIGITS), "--target", "tensorrt")
    assert code == 0, err
    payload = json.loads(out)
    (target,) = payload["targets"]
    assert payload["nodes"] == 8 and target["target"] == "tensorrt" and target["ok"] is True
    ops = {o["op_type"]: o for o in target["ops"]}
    assert ops["Gemm"]["count"] == 3 and ops["Gemm"]["opset"] == 17 and ops["Gemm"]["status"] == "supported"
    assert set(ops) == {"Gemm", "Relu", "Div", "Softmax", "ArgMax"}


def test_cli_support_refuses_a_missing_model_and_an_unknown_target(tmp_path: Path,
                                                                   capfd: pytest.CaptureFixture[str]) -> None:
    code, _, err = exit_of(capfd, "targets", "--support", str(tmp_path / "missing.onnx"))
    assert code == 2 and "missing.onnx" in one_error_line(err)
    code, _, err = exit_of(capfd, "targets", "--support", str(DIGITS), "--target", "tensorrtt")
    assert code == 2 and "did you mean tensorrt?" in one_error_line(err)


def test_cli_plain_targets_still_lists_availability(capfd: pytest.CaptureFixture[str]) -> None:
    code, out, _ = mlc(capfd, "--json", "targets")
    assert code == 0
    assert [t["target"] for t in json.loads(out)["targets"]] == list(TARGETS)
    assert np.all([isinstance(t["available"], bool) for t in json.loads(out)["targets"]])
