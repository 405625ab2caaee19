"""The checks run a dynamic model at two shape sets with dims well above 1, skip sets the
original cannot run, and say which shapes they used; a pass that bakes one shape in is caught."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
from onnx import TensorProto, helper

from mlc.debugger import load_plugin
from tests.cli.helpers import mlc, one_error_line

TESTS = Path(__file__).resolve().parents[1]


def _save(path: Path, nodes: list, inputs: list, outputs: list, initializers: list = ()) -> Path:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    onnx.save(helper.make_model(graph, ir_version=10, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def _encoder(path: Path) -> Path:
    """ids i64[batch,sequence], mask i64[batch,sequence], image f32[N,3,height,width] -> sums."""
    table = helper.make_tensor("table", TensorProto.FLOAT, [50, 4], [0.01 * i for i in range(200)])
    return _save(path, [
        helper.make_node("Gather", ["table", "ids"], ["e"]),
        helper.make_node("Cast", ["mask"], ["m"], to=TensorProto.FLOAT),
        helper.make_node("ReduceSum", ["e"], ["s"], keepdims=0, axes=None),
        helper.make_node("ReduceMean", ["image"], ["p"], keepdims=0),
        helper.make_node("Relu", ["m"], ["mo"])],
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", "sequence"]),
         helper.make_tensor_value_info("mask", TensorProto.INT64, ["batch", "sequence"]),
         helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "height", "width"])],
        [helper.make_tensor_value_info("s", TensorProto.FLOAT, []),
         helper.make_tensor_value_info("p", TensorProto.FLOAT, []),
         helper.make_tensor_value_info("mo", TensorProto.FLOAT, ["batch", "sequence"])], [table])


def test_two_shape_sets_with_dims_above_one(capfd, tmp_path) -> None:
    code, out, err = mlc(capfd, "debug", _encoder(tmp_path / "m.onnx"), "--json")
    assert code == 0, err
    sets = [{k: v["shape"] for k, v in one.items()} for one in json.loads(out)["input_sets"]]
    assert sets == [{"ids": [2, 16], "mask": [2, 16], "image": [2, 3, 64, 64]},
                    {"ids": [3, 7], "mask": [3, 7], "image": [3, 3, 32, 32]}]
    code, out, err = mlc(capfd, "compile", tmp_path / "m.onnx", "-o", tmp_path / "a")
    assert code == 0, err
    assert "ids int64[2, 16]" in out and "ids int64[3, 7]" in out  # the summary names the shapes checked


def test_sets_the_original_cannot_run_are_skipped(capfd, tmp_path) -> None:
    """x: f32[batch, 4] reshaped to [-1, 8]: runs at even batches only (2, then 4)."""
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 8])
    model = _save(tmp_path / "even.onnx", [helper.make_node("Reshape", ["x", "shape"], ["y"])],
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [shape])
    code, out, err = mlc(capfd, "debug", model, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert [one["x"]["shape"] for one in report["input_sets"]] == [[2, 4], [4, 4]]
    assert any("cannot run at x [3, 4]" in note for note in report["notes"])


def test_a_model_that_runs_at_no_shape_tried_names_the_dims(capfd, tmp_path) -> None:
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [5, 5])
    model = _save(tmp_path / "odd.onnx", [helper.make_node("Reshape", ["x", "shape"], ["y"])],
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "sequence"])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [5, 5])], [shape])
    code, out, err = mlc(capfd, "compile", model, "-o", tmp_path / "a")
    assert code == 2
    line = one_error_line(err)
    assert "batch (x[0])" in line and "sequence (x[1])" in line and "--input-shape" in line
    code, out, err = mlc(capfd, "compile", model, "-o", tmp_path / "a", "--input-shape", "x:5,5")
    assert code == 0, err


def test_a_pass_that_bakes_one_shape_in_is_caught(capfd, tmp_path) -> None:
    load_plugin(str(TESTS / "bake_shape_pass.py"))
    model = _save(tmp_path / "m.onnx", [helper.make_node("Shape", ["x"], ["s"]),
                                         helper.make_node("Reshape", ["x", "s"], ["y"]),
                                         helper.make_node("Relu", ["y"], ["z"])],
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
                  [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", 4])])
    code, out, err = mlc(capfd, "compile", model, "-o", tmp_path / "a", "--passes", "bake-shape,dce")
    assert code in (1, 70), err  # wrong at batch 3: wrong numbers or a graph that cannot run there
    assert "pass #0 bake-shape" in one_error_line(err)
    assert not (tmp_path / "a").exists()
