"""mlc.numerics.hazards: NaN, Inf, narrowing overflow and subnormal constants are found wherever
they live (initializers, Constant nodes, attributes, sub-graphs, functions, sparse tensors),
named with their count and first index, summarized one line per kind, and listed for JSON."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from mlc.numerics import hazards
from mlc.numerics.hazards import INF, NAN, OVERFLOW, SUBNORMAL, scan_array, scan_constants
from mlc.onnx_io.importer import import_onnx
from tests.numerics_hazards.models import OPSET, save


def hazardous_model(path: Path) -> Path:
    """One hazard of each kind, spread over every place a constant can live."""
    w = np.ones((4, 3, 3, 3), np.float32)
    for index in [(0, 2, 1, 1), (1, 0, 0, 0), (3, 2, 2, 2)]:
        w[index] = np.nan
    big = np.array([1.0, 7e4, -1e5], np.float32)  # cast to float16 below: 2 overflow
    sub = np.array([0.5, 1e-40, 2e-40], np.float32)
    then = helper.make_graph(
        [helper.make_node("Constant", [], ["t"], value=helper.make_tensor("k", TensorProto.FLOAT, [2], [1.0, np.inf]),
                          name="kinf")], "then", [], [helper.make_tensor_value_info("t", TensorProto.FLOAT, [2])])
    other = helper.make_graph([helper.make_node("Constant", [], ["e"], value_floats=[2.0, -np.inf])], "else", [],
                              [helper.make_tensor_value_info("e", TensorProto.FLOAT, [2])])
    nodes = [helper.make_node("Conv", ["x", "conv1.weight"], ["c"], name="conv1"),
             helper.make_node("Cast", ["big"], ["big16"], to=TensorProto.FLOAT16, name="to_half"),
             helper.make_node("Mul", ["sub", "sub"], ["s2"]),
             helper.make_node("If", ["cond"], ["r"], then_branch=then, else_branch=other, name="branch")]
    return save(nodes, {"conv1.weight": w, "big": big, "sub": sub},
                {"x": (TensorProto.FLOAT, [1, 3, 8, 8]), "cond": (TensorProto.BOOL, [])},
                {"c": (TensorProto.FLOAT, [1, 4, 6, 6]), "big16": (TensorProto.FLOAT16, [3]),
                 "s2": (TensorProto.FLOAT, [3]), "r": (TensorProto.FLOAT, [2])}, path)


def test_every_kind_is_found_with_tensor_count_and_first_index(tmp_path: Path) -> None:
    scan = scan_constants(import_onnx(hazardous_model(tmp_path / "m.onnx")))
    by = {(h.kind, h.tensor): h for h in scan.hazards}
    nan = by[(NAN, "conv1.weight")]
    assert (nan.count, nan.first_index, nan.size, nan.where) == (3, (0, 2, 1, 1), 108, "initializer")
    over = by[(OVERFLOW, "big")]
    assert (over.count, over.first_index, over.first_value, over.target) == (2, (1,), 7e4, "float16")
    assert over.cast_by == "Cast 'to_half'"
    sub = by[(SUBNORMAL, "sub")]
    assert (sub.count, sub.first_index) == (2, (1,))
    inf_then = by[(INF, "t")]
    assert (inf_then.count, inf_then.first_index, inf_then.first_value) == (1, (1,), np.inf)
    assert inf_then.where == "Constant node 'kinf' in the then_branch of If 'branch'"
    inf_else = by[(INF, "e")]
    assert inf_else.first_value == -np.inf and "else_branch of If 'branch'" in inf_else.where
    assert len(scan.hazards) == 5, [h.describe() for h in scan.hazards]
    assert scan.has_non_finite


def test_inspect_lines_one_per_kind_and_json_list(tmp_path: Path) -> None:
    scan = scan_constants(import_onnx(hazardous_model(tmp_path / "m.onnx")))
    lines = scan.lines()
    assert lines[0] == "weights: 3 NaN in conv1.weight (first at [0, 2, 1, 1])"
    assert lines[1].startswith("weights: 1 Inf in ")
    assert "1 Inf in t (Constant node 'kinf' in the then_branch of If 'branch'; first at [1]: +inf)" in lines[1]
    assert "1 Inf in e (Constant node in the else_branch of If 'branch'; first at [1]: -inf)" in lines[1]
    assert lines[2] == "weights: 2 float32 values of big overflow float16 at Cast 'to_half' (first at [1]: 70000)"
    assert lines[3] == "weights: 2 subnormal float32 values in sub (first at [1]: 1e-40)"
    assert len(lines) == 4
    payload = scan.to_json()
    text = json.dumps(payload, allow_nan=False)  # strict JSON: NaN and Inf values become strings
    assert {item["kind"] for item in json.loads(text)} == {NAN, INF, OVERFLOW, SUBNORMAL}
    nan = next(item for item in payload if item["kind"] == NAN)
    assert nan == {"kind": "nan", "tensor": "conv1.weight", "where": "initializer", "dtype": "float32", "count": 3,
                   "size": 108, "first_index": [0, 2, 1, 1], "first_value": "nan", "target": None, "cast_by": None}


def test_many_tensors_of_one_kind_stay_on_one_line(tmp_path: Path) -> None:
    inits = {f"w{i}": np.array([1.0, np.nan], np.float32) for i in range(5)}
    nodes = [helper.make_node("Add", [f"w{i}", "x"], [f"y{i}"]) for i in range(5)]
    path = save(nodes, inits, {"x": (TensorProto.FLOAT, [2])}, {f"y{i}": (TensorProto.FLOAT, [2]) for i in range(5)},
                tmp_path / "m.onnx")
    lines = scan_constants(import_onnx(path)).lines(limit=3)
    assert lines == ["weights: 1 NaN in w0 (first at [1]); 1 NaN in w1 (first at [1]); 1 NaN in w2 (first at [1]); "
                     "2 more in 2 other tensors"]


def test_a_clean_model_has_no_findings(tmp_path: Path) -> None:
    w = np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float16)
    path = save([helper.make_node("Conv", ["x", "w"], ["y"])], {"w": w}, {"x": (TensorProto.FLOAT16, [1, 3, 8, 8])},
                {"y": (TensorProto.FLOAT16, [1, 4, 6, 6])}, tmp_path / "m.onnx")
    scan = scan_constants(import_onnx(path))
    assert scan.hazards == [] and scan.lines() == [] and scan.scanned == 1 and not scan.has_non_finite


def test_float16_subnormal_weights_and_sparse_and_function_constants(tmp_path: Path) -> None:
    w = np.full((2, 2), 0.5, np.float16)
    w[1, 0] = np.float16(3e-6)  # float16's smallest normal is 6.1e-05
    sparse = helper.make_sparse_tensor(numpy_helper.from_array(np.array([2.0, np.nan], np.float32), "sp"),
                                       numpy_helper.from_array(np.array([[0, 1], [2, 3]], np.int64), "sp_i"), [3, 4])
    body = [helper.make_node("Constant", [], ["k"], value=numpy_helper.from_array(np.array([np.inf], np.float32))),
            helper.make_node("Add", ["a", "k"], ["o"])]
    function = helper.make_function("local", "AddInf", ["a"], ["o"], body, [helper.make_opsetid("", OPSET)])
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"]), helper.make_node("Add", ["z", "sp"], ["zz"]),
         helper.make_node("AddInf", ["q"], ["qq"], domain="local")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [2, 2]),
         helper.make_tensor_value_info("z", TensorProto.FLOAT, [3, 4]),
         helper.make_tensor_value_info("q", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info(n, t, s) for n, t, s in
         [("y", TensorProto.FLOAT16, [2, 2]), ("zz", TensorProto.FLOAT, [3, 4]), ("qq", TensorProto.FLOAT, [1])]],
        [numpy_helper.from_array(w, "w")], sparse_initializer=[sparse])
    model = helper.make_model(graph, ir_version=8, functions=[function],
                              opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("local", 1)])
    onnx.save(model, str(tmp_path / "m.onnx"))
    scan = scan_constants(import_onnx(str(tmp_path / "m.onnx")))
    by = {(h.kind, h.tensor): h for h in scan.hazards}
    assert (by[(SUBNORMAL, "w")].count, by[(SUBNORMAL, "w")].first_index, by[(SUBNORMAL, "w")].dtype) == \
        (1, (1, 0), "float16")
    assert by[(NAN, "sp")].first_index == (2, 3), "a sparse value's index is its dense index"
    assert by[(NAN, "sp")].size == 12
    inf = by[(INF, "k")]
    assert inf.where == "Constant node in function local::AddInf"


def test_large_tensors_are_read_in_chunks_with_the_right_first_index(monkeypatch) -> None:
    monkeypatch.setattr(hazards, "_CHUNK", 1000)
    array = np.zeros((7, 1000), np.float32)
    array[5, 17] = np.nan
    array[6, 999] = np.nan
    array[2, 3] = 1e-41
    found = scan_array(array)
    assert found[NAN] == (2, 5017, found[NAN][2]) and np.isnan(found[NAN][2])
    assert found[SUBNORMAL][:2] == (1, 2003)


def test_splat_constants_are_judged_by_their_one_value(tmp_path: Path) -> None:
    # ConstantOfShape's value attribute holds one element: a NaN fill is one finding, not a scan
    nodes = [helper.make_node("ConstantOfShape", ["shape"], ["y"],
                              value=numpy_helper.from_array(np.array([np.nan], np.float32)), name="fill")]
    path = save(nodes, {"shape": np.array([1000, 1000], np.int64)}, {}, {"y": (TensorProto.FLOAT, [1000, 1000])},
                tmp_path / "m.onnx")
    scan = scan_constants(import_onnx(path))
    assert [(h.kind, h.where) for h in scan.hazards] == [(NAN, "attribute value of ConstantOfShape 'fill'")]


def test_the_scan_writes_no_numpy_warnings(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scan = scan_constants(import_onnx(hazardous_model(tmp_path / "m.onnx")))
    assert scan.hazards
