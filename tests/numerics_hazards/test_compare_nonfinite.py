"""Verification judges NaN and Inf instead of skipping them (mlc.numerics.compare): a non-finite
output where the reference is finite, or a non-NaN one where it is NaN, fails with a count in
one line naming the output; a reference that is itself NaN/Inf on the check inputs is said."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper

from mlc import api
from mlc.ir.tensor import Tensor
from mlc.numerics.compare import FAIL, INCONCLUSIVE, OK, compare_array, compare_outputs
from mlc.onnx_io.importer import import_onnx
from mlc.pass_api import Numerics
from mlc.runner import Reference
from tests.numerics_hazards.models import save

NAN, INF = np.nan, np.inf


@pytest.mark.parametrize(("expected", "got", "verdict", "phrase"), [
    ([1.0, 2.0, 3.0], [1.0, INF, NAN], FAIL,
     "2 of 3 elements are NaN/Inf where the reference is finite (1 NaN, 1 Inf)"),
    ([1.0, NAN, 3.0], [1.0, 2.0, 3.0], FAIL, "1 elements are not NaN where the reference is NaN"),
    ([1.0, NAN, 3.0], [1.0, INF, 3.0], FAIL, "1 elements are not NaN where the reference is NaN"),
    ([1.0, INF, 3.0], [1.0, -INF, 3.0], FAIL, "1 elements are NaN or the opposite Inf where the reference is Inf"),
    ([1.0, INF, 3.0], [1.0, NAN, 3.0], FAIL, "1 elements are NaN or the opposite Inf where the reference is Inf"),
    ([1.0, INF, 3.0], [1.0, 6e4, 3.0], INCONCLUSIVE, "1 elements are finite where the reference overflowed to Inf"),
    ([1.0, NAN, 3.0], [1.0, NAN, 3.0], INCONCLUSIVE, "the reference itself holds 1 NaN and 0 Inf of 3 elements"),
    ([1.0, -INF, 3.0], [1.0, -INF, 3.0], OK, "the reference itself holds 0 NaN and 1 Inf of 3 elements"),
])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_non_finite_elements_are_judged(expected: list[float], got: list[float], verdict: str, phrase: str,
                                        dtype: type) -> None:
    check = compare_array("y", np.array(expected, dtype), np.array(got, dtype), Numerics.TOLERANCE)
    assert check.verdict == verdict, check.describe()
    assert phrase in check.note
    line = check.describe()
    assert line.startswith(f"y: {verdict}") and "\n" not in line
    json.dumps(check.to_json(), allow_nan=False)  # the report stays strict JSON


def test_the_failure_line_names_the_output_count_and_first_element() -> None:
    expected = np.full((2, 3), 12.0, np.float16)
    got = expected.copy()
    got[0, 2], got[1, 1] = np.nan, np.inf
    check = compare_array("logits", expected, got, Numerics.TOLERANCE)
    assert check.got_nonfinite == 2 and check.worst_index == (0, 2)
    assert check.describe() == ("logits: fail: 2 of 6 elements are NaN/Inf where the reference is finite "
                                "(1 NaN, 1 Inf) (first at [0, 2]: expected 12, got nan)")


def test_a_lossy_check_fails_on_nan_disagreement_too() -> None:
    expected, got = np.array([1.0, NAN, 3.0], np.float32), np.array([1.0, 2.0, 3.0], np.float32)
    assert compare_array("y", expected, got, Numerics.LOSSY).verdict == FAIL
    assert compare_array("y", np.array([1.0, 2.0]), np.array([1.0, NAN]), Numerics.LOSSY).verdict == FAIL


def test_the_result_note_names_outputs_whose_reference_is_non_finite() -> None:
    expected = {"a": np.array([1.0, NAN], np.float32), "b": np.array([1.0, 2.0], np.float32)}
    result = compare_outputs(expected, {k: v.copy() for k, v in expected.items()}, Numerics.TOLERANCE, "onnxruntime")
    assert result.verdict == INCONCLUSIVE
    assert result.note == "the reference is NaN/Inf on the check inputs in a (1 NaN, 0 Inf)"


def test_the_pipeline_reference_fails_a_graph_that_overflows(tmp_path: Path) -> None:
    """Reference.check, through which every comparison with the original goes (the artifact's
    included): a graph whose weight became Inf fails, with the count of the damage."""
    path = save([helper.make_node("MatMul", ["x", "w"], ["y"])], {"w": np.eye(4, dtype=np.float16)},
                {"x": (TensorProto.FLOAT16, [2, 4])}, {"y": (TensorProto.FLOAT16, [2, 4])}, tmp_path / "m.onnx")
    original = import_onnx(str(path))
    feeds = {"x": np.linspace(-1, 1, 8).reshape(2, 4).astype(np.float16)}
    reference = Reference(original, [feeds])
    broken = original.clone()
    weight = np.eye(4, dtype=np.float16)
    weight[0, 0] = np.inf
    broken.initializers["w"].const = Tensor.from_array(weight)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy warning may reach stderr on the way
        result = reference.check(broken, Numerics.TOLERANCE)
    assert result.verdict == FAIL
    (output,) = [o for o in result.outputs if o.verdict == FAIL]
    assert output.describe().startswith("y: fail: 2 of 8 elements are NaN/Inf where the reference is finite")


def test_a_model_with_nan_weights_compiles_inconclusive_and_says_why(tmp_path: Path) -> None:
    w = np.ones((4, 3, 3, 3), np.float32)
    w[0, 2, 1, 1] = np.nan
    path = save([helper.make_node("Conv", ["x", "w"], ["y"])], {"w": w}, {"x": (TensorProto.FLOAT, [1, 3, 8, 8])},
                {"y": (TensorProto.FLOAT, [1, 4, 6, 6])}, tmp_path / "m.onnx")
    folder = api.compile(path, "onnxruntime", tmp_path / "m.ort")
    verification = json.loads((folder / "manifest.json").read_text())["verification"]
    assert verification["verdict"] == INCONCLUSIVE, "a NaN reference vouches for nothing: not 'ok'"
    assert verification["artifact"] == INCONCLUSIVE
