"""ONNX export: IR version clamp, splats, atomic save, external data, unique names."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper

import mlc
from mlc.ir import DType, Graph, ModelInfo, Node, Tensor, TensorType, Value
from mlc.onnx_io import exporter
from tests.onnx_io.helpers import assert_bitwise, make_model, run_ort


def _identity_model(ir_version: int) -> bytes:
    model = make_model([helper.make_node("Identity", ["x"], ["y"])],
                       [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                       [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
                       ir_version=ir_version)
    return model.SerializeToString()


def test_ort_max_ir_version_matches_onnxruntime() -> None:
    """Guards the constant: onnxruntime opens it and refuses the next one."""
    ort.InferenceSession(_identity_model(exporter.ORT_MAX_IR_VERSION), providers=["CPUExecutionProvider"])
    with pytest.raises(Exception, match="IR version"):
        ort.InferenceSession(_identity_model(exporter.ORT_MAX_IR_VERSION + 1), providers=["CPUExecutionProvider"])


def test_ir_version_is_clamped_and_kept_otherwise() -> None:
    graph = mlc.import_onnx(onnx.load_from_string(_identity_model(8)))
    assert mlc.export_onnx(graph).ir_version == 8
    assert graph.model is not None
    graph.model.ir_version = 14
    assert mlc.export_onnx(graph).ir_version == exporter.ORT_MAX_IR_VERSION
    graph.model.ir_version = None
    assert 7 <= mlc.export_onnx(graph).ir_version <= exporter.ORT_MAX_IR_VERSION


def _graph_with_constant(tensor: Tensor) -> Graph:
    g = Graph("g", ModelInfo(ir_version=8, opset_imports={"": 17}))
    x = g.add_input(Value("x", TensorType(tensor.dtype, tensor.shape)))
    c = g.make_constant(tensor, "c")
    add = Node("Add", [x, c], ["y"])
    g.append(add)
    add.outputs[0].type = TensorType(tensor.dtype, tensor.shape)
    g.outputs.append(add.outputs[0])
    return g


def test_large_splat_exports_as_constant_of_shape() -> None:
    g = _graph_with_constant(Tensor.splat_of(1.5, DType.FLOAT, (64, 64)))
    model = mlc.export_onnx(g)
    assert [n.op_type for n in model.graph.node] == ["ConstantOfShape", "Add"]
    assert model.ByteSize() < 1000
    x = np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32)
    np.testing.assert_array_equal(run_ort(model, {"x": x})[0], x + np.float32(1.5))
    small = mlc.export_onnx(_graph_with_constant(Tensor.splat_of(2.0, DType.FLOAT, (2, 2))))
    assert [n.op_type for n in small.graph.node] == ["Add"]
    assert numpy_values(small.graph.initializer[0]).tolist() == [[2.0, 2.0], [2.0, 2.0]]


def numpy_values(proto: onnx.TensorProto) -> np.ndarray:
    return onnx.numpy_helper.to_array(proto)


def test_export_does_not_modify_the_graph_and_renames_duplicates() -> None:
    g = Graph("g", ModelInfo(ir_version=8, opset_imports={"": 17}))
    x = g.add_input(Value("x", TensorType(DType.FLOAT, (2,))))
    a = Node("Relu", [x], ["t"])
    b = Node("Neg", [a.outputs[0]], ["t"])  # a pass left two values named "t"
    g.append(a, b)
    for node in (a, b):
        node.outputs[0].type = TensorType(DType.FLOAT, (2,))
    g.outputs.append(b.outputs[0])
    before = mlc.print_ir(g)
    model = mlc.export_onnx(g)
    assert mlc.print_ir(g) == before
    onnx.checker.check_model(model)
    names = [o for n in model.graph.node for o in n.output]
    assert len(set(names)) == 2
    assert run_ort(model, {"x": np.array([-1.0, 2.0], np.float32)})[0].tolist() == [-0.0, -2.0]


def test_save_with_external_data_round_trips(tmp_path) -> None:
    rng = np.random.default_rng(1)
    weight = rng.standard_normal((256, 256)).astype(np.float32)
    g = _graph_with_constant(Tensor.from_array(weight))
    path = mlc.save_onnx(g, tmp_path / "m.onnx", external_data=True)
    assert (tmp_path / "m.onnx.data").stat().st_size >= weight.nbytes
    assert not list(tmp_path.glob(".*.tmp")), "no temporary file left behind"
    again = mlc.import_onnx(path)
    np.testing.assert_array_equal(again.initializers["c" if "c" in again.initializers else
                                                      next(iter(again.initializers))].const.numpy(), weight)
    x = rng.standard_normal((256, 256)).astype(np.float32)
    assert_bitwise(run_ort(str(path), {"x": x}), run_ort(mlc.export_onnx(g), {"x": x}))


def test_save_decides_external_data_by_size(tmp_path, monkeypatch) -> None:
    g = _graph_with_constant(Tensor.from_array(np.ones((64, 64), np.float32)))
    mlc.save_onnx(g, tmp_path / "small.onnx")
    assert not (tmp_path / "small.onnx.data").exists()
    monkeypatch.setattr(exporter, "EXTERNAL_THRESHOLD", 1000)  # stands in for 2 GB
    mlc.save_onnx(g, tmp_path / "big.onnx")
    assert (tmp_path / "big.onnx.data").exists()


def test_failed_save_leaves_no_file(tmp_path) -> None:
    g = _graph_with_constant(Tensor(DType.FLOAT, (4,), digest="00", preview=()))
    with pytest.raises(mlc.BadInputError, match="digest"):
        mlc.save_onnx(g, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []
