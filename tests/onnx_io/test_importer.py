"""ONNX import: features the onnx wheel's test data does not exercise, each checked by an
onnxruntime run of the original against the round-tripped model and a structural round trip."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import mlc
from mlc.ir import DType, SparseTensorType, TensorType
from tests.onnx_io.helpers import assert_bitwise, make_model, run_ort


def round_trip(model: onnx.ModelProto, feeds: dict[str, np.ndarray], **import_kwargs: object) -> mlc.Graph:
    graph = mlc.import_onnx(model, **import_kwargs)
    mlc.verify(graph)
    exported = mlc.export_onnx(graph)
    onnx.checker.check_model(exported)
    assert_bitwise(run_ort(model, feeds), run_ort(exported, feeds))
    mlc.assert_graph_equal(graph, mlc.import_onnx(exported, **import_kwargs))
    text = mlc.print_ir(graph)
    assert mlc.print_ir(mlc.parse_ir(text)) == text
    return graph


def x_info(name: str = "x", shape: list[object] | None = None) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape or ["N", 4])


def test_model_local_function_round_trips() -> None:
    fn = helper.make_function(
        "local", "ScaledRelu", ["a"], ["b"],
        [helper.make_node("Relu", ["a"], ["r"]),
         helper.make_node("Constant", [], ["k"], value_float=2.0),
         helper.make_node("Mul", ["r", "k"], ["b"])],
        [helper.make_opsetid("", 17)], doc_string="relu times two",
    )
    model = make_model([helper.make_node("ScaledRelu", ["x"], ["y"], domain="local")], [x_info()], [x_info("y")],
                       opsets={"": 17, "local": 1}, functions=[fn])
    feeds = {"x": np.linspace(-2, 2, 8, dtype=np.float32).reshape(2, 4)}
    graph = round_trip(model, feeds)
    assert graph.model is not None
    [function] = graph.model.functions
    assert (function.domain, function.name, function.doc_string) == ("local", "ScaledRelu", "relu times two")
    assert [n.op_type for n in function.body] == ["Relu", "Constant", "Mul"]


def test_if_branches_read_outer_values_and_keep_symbolic_dims() -> None:
    then_graph = helper.make_graph([helper.make_node("Add", ["x", "x"], ["t"])], "then", [], [x_info("t")])
    else_graph = helper.make_graph([helper.make_node("Neg", ["x"], ["t"])], "else", [], [x_info("t")])
    model = make_model(
        [helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
         helper.make_node("Constant", [], ["zero"], value=numpy_helper.from_array(np.float32(0))),
         helper.make_node("Greater", ["s", "zero"], ["c"]),
         helper.make_node("If", ["c"], ["y"], then_branch=then_graph, else_branch=else_graph)],
        [x_info()], [x_info("y")])
    for sign in (1, -1):
        graph = round_trip(model, {"x": sign * np.ones((3, 4), np.float32)})
    if_node = graph.nodes[-1]
    then_add = if_node.attributes["then_branch"].value.nodes[0]
    assert then_add.inputs[0] is graph.inputs[0]
    assert graph.inputs[0].type == TensorType(DType.FLOAT, ("N", 4))
    assert graph.nodes[0].outputs[0].type == TensorType(DType.FLOAT, ()), "shape inference filled types"


def test_sparse_initializer_and_attribute_kinds() -> None:
    sparse = helper.make_sparse_tensor(
        numpy_helper.from_array(np.array([5.0, 7.0], np.float32), "sp"),
        numpy_helper.from_array(np.array([1, 6], np.int64), "sp_idx"), [2, 4])
    model = make_model(
        [helper.make_node("Constant", [], ["dense"], sparse_value=sparse),
         helper.make_node("Add", ["x", "dense"], ["y"])],
        [x_info("x", [2, 4])], [x_info("y", [2, 4])])
    graph = round_trip(model, {"x": np.zeros((2, 4), np.float32)})
    attr = graph.nodes[0].attributes["sparse_value"]
    assert attr.value.dims == (2, 4)
    init_model = make_model([helper.make_node("Identity", ["x"], ["y"])], [x_info("x", [2, 4])],
                            [x_info("y", [2, 4])], sparse_initializer=[sparse])
    g2 = mlc.import_onnx(init_model)
    assert g2.sparse_initializers["sp"].type == SparseTensorType(DType.FLOAT, (2, 4))
    mlc.assert_graph_equal(g2, mlc.import_onnx(mlc.export_onnx(g2)))


def test_unsorted_nodes_are_sorted() -> None:
    nodes = [helper.make_node("Neg", ["a"], ["y"], name="last"),
             helper.make_node("Relu", ["x"], ["a"], name="first")]
    model = make_model(nodes, [x_info()], [x_info("y")])
    graph = round_trip(model, {"x": np.ones((1, 4), np.float32)})
    assert [n.name for n in graph] == ["first", "last"]


def _weight_as_input_model(ir_version: int) -> onnx.ModelProto:
    w = numpy_helper.from_array(np.full((1, 4), 3.0, np.float32), "w")
    return make_model([helper.make_node("Mul", ["x", "w"], ["y"])],
                      [x_info(), helper.make_tensor_value_info("w", TensorProto.FLOAT, [1, 4])],
                      [x_info("y")], [w], ir_version=ir_version)


def test_ir3_initializer_inputs_are_constants_and_stay_listed_on_export() -> None:
    model = _weight_as_input_model(3)
    graph = round_trip(model, {"x": np.ones((2, 4), np.float32)})
    assert [v.name for v in graph.inputs] == ["x"]
    assert graph.initializers["w"].is_constant
    exported = mlc.export_onnx(graph)
    assert exported.ir_version == 3
    assert [i.name for i in exported.graph.input] == ["x", "w"], "IR 3 requires weights listed as inputs"


def test_ir4_initializer_inputs_stay_overridable_unless_frozen() -> None:
    model = _weight_as_input_model(8)
    feeds = {"x": np.ones((2, 4), np.float32)}
    graph = round_trip(model, feeds)
    w = graph.inputs[1]
    assert w.name == "w" and w.const is not None and not w.is_constant
    override = {**feeds, "w": np.full((1, 4), -1.0, np.float32)}
    assert_bitwise(run_ort(model, override), run_ort(mlc.export_onnx(graph), override))
    frozen = mlc.import_onnx(model, freeze_inputs=True)
    assert [v.name for v in frozen.inputs] == ["x"] and frozen.initializers["w"].is_constant


def test_non_utf8_string_attribute_keeps_its_bytes() -> None:
    node = helper.make_node("Identity", ["x"], ["y"])
    node.attribute.append(helper.make_attribute("blob", b"\xff\xfe\x00"))
    model = make_model([node], [x_info()], [x_info("y")])
    graph = mlc.import_onnx(model)
    assert graph.nodes[0].attr("blob") == b"\xff\xfe\x00"
    exported = mlc.export_onnx(graph)
    assert exported.graph.node[0].attribute[0].s == b"\xff\xfe\x00"


def test_unknown_ops_of_unknown_domains_pass_through() -> None:
    node = helper.make_node("FancyOp", ["x"], ["y", ""], domain="com.vendor", alpha=0.5, mode="fast",
                            sizes=[1, 2], name="vendor_op")
    model = make_model([node], [x_info()], [x_info("y")], opsets={"": 17, "com.vendor": 3})
    graph = mlc.import_onnx(model)
    [imported] = graph.nodes
    assert (imported.domain, imported.op_type, imported.attr("mode"), imported.outputs[1]) == (
        "com.vendor", "FancyOp", "fast", None)
    exported = mlc.export_onnx(graph)
    assert exported.graph.node[0] == model.graph.node[0]


@pytest.mark.parametrize("opset", [7, 11, 13, 17, 21, 23])
def test_opsets_across_the_range(opset: int) -> None:
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], [x_info()], [x_info("y")],
                       opsets={"": opset}, ir_version=3 if opset < 8 else 8 if opset < 19 else 10)
    graph = round_trip(model, {"x": np.linspace(-1, 1, 4, dtype=np.float32).reshape(1, 4)})
    assert graph.opset_version("") == opset


def test_shape_inference_runs_without_the_weights_and_leaves_the_callers_model_alone() -> None:
    """Inference sees a copy without the large initializers (each declared as an input of its
    type): the types downstream of a weight are still inferred, a Reshape target held by a small
    initializer still shapes its output, and the caller's proto gains no value infos."""
    weight = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 512)).astype(np.float32), "w")
    target = numpy_helper.from_array(np.array([0, 16, 32], np.int64), "target")
    assert weight.ByteSize() > 4096 >= target.ByteSize()
    model = make_model([helper.make_node("MatMul", ["x", "w"], ["h"]),
                        helper.make_node("Reshape", ["h", "target"], ["r"]),
                        helper.make_node("Relu", ["r"], ["y"])],
                       [x_info()], [x_info("y", ["N", 16, 32])],
                       [weight, target])
    before = model.SerializeToString()
    graph = round_trip(model, {"x": np.ones((3, 4), np.float32)})
    assert model.SerializeToString() == before
    types = {n.outputs[0].name: n.outputs[0].type for n in graph}
    assert types["h"] == TensorType(DType.FLOAT, ("N", 512))
    assert types["r"] == TensorType(DType.FLOAT, ("N", 16, 32)) and types["y"] == types["r"]
    assert [v.name for v in graph.inputs] == ["x"] and graph.initializers["w"].const is not None


def test_the_standard_domain_spelled_ai_onnx_imports_as_the_empty_domain() -> None:
    """ONNX allows "ai.onnx" for the default domain (in nodes and opset imports); the IR has one
    spelling, so passes that match `domain == ""` see these nodes too (fuse-* and cleanups)."""
    nodes = [helper.make_node("Relu", ["x"], ["r"], domain="ai.onnx"),
             helper.make_node("Neg", ["r"], ["y"], domain="ai.onnx")]
    model = make_model(nodes, [x_info()], [x_info("y")], opsets={"ai.onnx": 17})
    graph = mlc.import_onnx(model)
    feeds = {"x": np.array([[-1, 2, -3, 4]], np.float32)}
    assert_bitwise(run_ort(model, feeds), run_ort(mlc.export_onnx(graph), feeds))
    assert [n.domain for n in graph] == ["", ""]
    assert graph.opset_version("ai.onnx") == graph.opset_version("")
