"""`mlc.feeds`: the feeds of an artifact run are checked against the manifest's types before a backend
sees them, generated from those types when the user gives none, and the outputs are summarized
and compared with a reference; a backend's refusal becomes one line with exit code 2.

The manifest inputs used here are what `mlc.driver` writes (`format_type` text); the backend test
runs a real onnxruntime session on a tiny model, fed a shape it refuses.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from mlc.errors import BadInputError, MlcError, NumericMismatchError
from mlc.feeds import (
    BackendRunError,
    check_feeds,
    compare_outputs_to,
    generate_feeds,
    output_stats,
    parse_manifest_type,
    read_reference_npz,
    run_backend,
)
from mlc.ir.dtypes import DType
from mlc.ir.types import SequenceType, TensorType

INPUTS = [
    {"name": "x", "type": "f32[N,32]", "default": False},
    {"name": "ids", "type": "i64[batch,seq]", "default": False},
    {"name": "mask", "type": "i64[batch,seq]", "default": False},
    {"name": "flag", "type": "bool[]", "default": False},
    {"name": "w", "type": "f32[32,4]", "default": True},
]


def _feeds(n: int = 5, batch: int = 2, seq: int = 7) -> dict[str, Any]:
    return {"x": np.zeros((n, 32), np.float32), "ids": np.ones((batch, seq), np.int64),
            "mask": np.ones((batch, seq), np.int64), "flag": np.bool_(True)}


def _refused(feeds: Mapping[str, Any], inputs: list[dict[str, Any]] = INPUTS) -> str:
    with pytest.raises(BadInputError) as info:
        check_feeds(inputs, feeds)
    message = str(info.value)
    assert "\n" not in message
    assert info.value.exit_code == 2
    return message


# ===================================================================== parse_manifest_type
def test_parse_manifest_type_reads_what_format_type_prints() -> None:
    assert parse_manifest_type("f32[N,32]") == TensorType(DType.FLOAT, ("N", 32))
    assert parse_manifest_type("i64[?,3]") == TensorType(DType.INT64, (None, 3))
    assert parse_manifest_type("bool[]") == TensorType(DType.BOOL, ())
    assert parse_manifest_type("f16[*]") == TensorType(DType.FLOAT16, None)
    assert parse_manifest_type('f32["batch size",3]') == TensorType(DType.FLOAT, ("batch size", 3))
    assert parse_manifest_type("seq<f32[2]>") == SequenceType(TensorType(DType.FLOAT, (2,)))
    assert parse_manifest_type("?") is None


@pytest.mark.parametrize("text", ["f32[N,32", "float[3]", "f32[3] junk", ""])
def test_parse_manifest_type_refuses_damaged_text(text: str) -> None:
    with pytest.raises(BadInputError, match="manifest type"):
        parse_manifest_type(text)


# ===================================================================== check_feeds
def test_check_feeds_accepts_matching_feeds_and_keeps_them_uncast() -> None:
    feeds = _feeds()
    checked, unused = check_feeds(INPUTS, feeds)
    assert unused == []
    assert list(checked) == ["x", "ids", "mask", "flag"]  # the default input `w` may be absent
    assert checked["x"] is feeds["x"]
    assert checked["flag"].shape == () and checked["flag"].dtype == np.bool_  # numpy scalar → 0-d array


def test_check_feeds_lets_a_default_input_be_overridden() -> None:
    feeds = {**_feeds(), "w": np.ones((32, 4), np.float32)}
    checked, unused = check_feeds(INPUTS, feeds)
    assert "w" in checked and unused == []
    assert "w: expected f32[32,4], got float32[4,32]" in _refused({**_feeds(), "w": np.ones((4, 32), np.float32)})


def test_check_feeds_message_is_exactly_the_type_syntax() -> None:
    feeds = {**_feeds(), "x": np.zeros((5, 31), np.float64)}
    assert _refused(feeds) == "x: expected f32[N,32], got float64[5,31]"


def test_wrong_dtype_is_refused_not_cast() -> None:
    assert _refused({**_feeds(), "x": np.zeros((5, 32), np.float64)}) == "x: expected f32[N,32], got float64[5,32]"
    assert _refused({**_feeds(), "ids": np.ones((2, 7), np.int32)}) == "ids: expected i64[batch,seq], got int32[2,7]"
    # a Python float is float64: refused for a f32 scalar rather than silently narrowed
    scalar = [{"name": "t", "type": "f32[]", "default": False}]
    assert _refused({"t": 0.5}, scalar) == "t: expected f32[], got float64[]"
    checked, _ = check_feeds(scalar, {"t": np.float32(0.5)})
    assert checked["t"].dtype == np.float32 and checked["t"].shape == ()


def test_wrong_rank_is_refused() -> None:
    assert _refused({**_feeds(), "x": np.zeros((5, 32, 1), np.float32)}) == "x: expected f32[N,32], got float32[5,32,1]"
    assert _refused({**_feeds(), "flag": np.array([True])}) == "flag: expected bool[], got bool[1]"


def test_wrong_fixed_dim_is_refused() -> None:
    assert _refused({**_feeds(), "x": np.zeros((5, 16), np.float32)}) == "x: expected f32[N,32], got float32[5,16]"


def test_symbol_bound_differently_across_inputs_names_both() -> None:
    feeds = {**_feeds(), "ids": np.ones((5, 7), np.int64), "mask": np.ones((4, 7), np.int64)}
    assert _refused(feeds) == "mask: expected i64[batch,seq] with batch=5 (from ids), got int64[4,7]"
    feeds = {**_feeds(), "mask": np.ones((2, 8), np.int64)}
    assert _refused(feeds) == "mask: expected i64[batch,seq] with seq=7 (from ids), got int64[2,8]"


def test_symbol_repeated_within_one_input() -> None:
    square = [{"name": "a", "type": "f32[N,N]", "default": False}]
    check_feeds(square, {"a": np.zeros((3, 3), np.float32)})
    message = _refused({"a": np.zeros((3, 4), np.float32)}, square)
    assert message == "a: expected f32[N,N] with N=3 (from a), got float32[3,4]"


def test_unknown_dims_and_rank_accept_any_size() -> None:
    loose = [{"name": "a", "type": "f32[?,3]", "default": False}, {"name": "b", "type": "f32[*]", "default": False},
             {"name": "s", "type": "seq<f32[2]>", "default": False}]
    seq = [np.zeros(2, np.float32)]
    checked, _ = check_feeds(loose, {"a": np.zeros((9, 3), np.float32), "b": np.zeros((1, 2, 3), np.float32), "s": seq})
    assert checked["s"] is seq  # a non-tensor input passes through untouched
    assert _refused({"a": np.zeros((9, 3), np.float64), "b": np.zeros(1, np.float32), "s": seq},
                    loose) == "a: expected f32[?,3], got float64[9,3]"


def test_missing_input_names_the_missing_and_lists_the_inputs() -> None:
    feeds = _feeds()
    del feeds["ids"], feeds["flag"]
    with pytest.raises(BadInputError) as info:
        check_feeds(INPUTS, feeds, source="in.npz")
    assert str(info.value) == "in.npz: missing input ids, flag (inputs: x, ids, mask, flag, w)"


def test_unused_keys_are_returned_sorted_not_fed() -> None:
    feeds = {**_feeds(), "zeta": np.zeros(1), "alpha": np.zeros(1)}
    checked, unused = check_feeds(INPUTS, feeds)
    assert unused == ["alpha", "zeta"]
    assert "alpha" not in checked and "zeta" not in checked


def test_string_inputs_accept_numpy_strings() -> None:
    words = [{"name": "t", "type": "str[2]", "default": False}]
    check_feeds(words, {"t": np.array(["a", "b"])})
    check_feeds(words, {"t": np.array(["a", "b"], dtype=object)})
    assert _refused({"t": np.zeros(2, np.int64)}, words) == "t: expected str[2], got int64[2]"


# ===================================================================== generate_feeds
def test_generate_feeds_is_seeded_and_reports_bindings() -> None:
    feeds, bindings = generate_feeds(INPUTS, seed=3)
    again, _ = generate_feeds(INPUTS, seed=3)
    other, _ = generate_feeds(INPUTS, seed=4)
    assert bindings == {"N": 1, "batch": 1, "seq": 1}
    assert set(feeds) == {"x", "ids", "mask", "flag"}  # `w` has a default
    for name in feeds:
        np.testing.assert_array_equal(feeds[name], again[name])
    assert not np.array_equal(feeds["x"], other["x"])
    # what is generated passes the same check as user feeds
    assert check_feeds(INPUTS, feeds)[1] == []


def test_generate_feeds_value_ranges_and_dtypes() -> None:
    feeds, bindings = generate_feeds(INPUTS, seed=0, default_dim=64)
    assert bindings == {"N": 64, "batch": 64, "seq": 64}
    x, ids = feeds["x"], feeds["ids"]
    assert x.dtype == np.float32 and x.shape == (64, 32)
    assert x.min() >= -1.0 and x.max() < 1.0 and x.min() < -0.5 < 0.5 < x.max()
    assert ids.dtype == np.int64 and ids.shape == (64, 64)
    assert ids.min() == 0 and ids.max() == 10
    assert feeds["flag"].dtype == np.bool_ and feeds["flag"].shape == ()


def test_generate_feeds_shape_binds_symbols_for_other_inputs() -> None:
    feeds, bindings = generate_feeds(INPUTS, shapes={"mask": (3, 11)})
    assert bindings == {"batch": 3, "seq": 11, "N": 1}
    assert feeds["ids"].shape == (3, 11) and feeds["mask"].shape == (3, 11) and feeds["x"].shape == (1, 32)
    loose = [{"name": "a", "type": "f32[?,2]", "default": False}, {"name": "b", "type": "i8[*]", "default": False}]
    feeds, bindings = generate_feeds(loose, shapes={"b": (2, 2, 2)}, default_dim=4)
    assert feeds["a"].shape == (4, 2) and feeds["b"].shape == (2, 2, 2) and bindings == {}


def test_generate_feeds_refuses_bad_shapes() -> None:
    with pytest.raises(BadInputError, match=r"^a shape is given for nope, which is not an input \(inputs: x, ids"):
        generate_feeds(INPUTS, shapes={"nope": (1,)})
    with pytest.raises(BadInputError, match=r"^x: expected f32\[N,32\], got shape \[2,31\]$"):
        generate_feeds(INPUTS, shapes={"x": (2, 31)})
    with pytest.raises(BadInputError, match=r"^mask: expected i64\[batch,seq\] with batch=2 \(from ids\), got shape"):
        generate_feeds(INPUTS, shapes={"ids": (2, 3), "mask": (4, 3)})
    with pytest.raises(BadInputError, match="w, which has a default"):
        generate_feeds(INPUTS, shapes={"w": (32, 4)})
    with pytest.raises(BadInputError, match="negative dim"):
        generate_feeds(INPUTS, shapes={"x": (-1, 32)})
    with pytest.raises(BadInputError, match="unknown rank"):
        generate_feeds([{"name": "b", "type": "f32[*]", "default": False}])


def test_generate_feeds_for_exotic_dtypes_stays_in_range() -> None:
    inputs = [{"name": "q", "type": "i4[16]", "default": False}, {"name": "h", "type": "bf16[8]", "default": False},
              {"name": "u", "type": "u8[16]", "default": False}]
    feeds, _ = generate_feeds(inputs, seed=1)
    assert feeds["q"].dtype == ml_dtypes.int4 and feeds["q"].astype(np.int8).max() <= 7
    assert feeds["h"].dtype == ml_dtypes.bfloat16
    assert feeds["u"].max() <= 10
    check_feeds(inputs, feeds)


# ===================================================================== output_stats
def test_output_stats_per_kind_and_json() -> None:
    outputs = {
        "f": np.array([[1.0, np.nan], [np.inf, -3.0]], np.float32),
        "i": np.arange(10, dtype=np.int64),
        "b": np.array([True, False, True, True]),
        "e": np.zeros((0, 4), np.float32),
        "s": np.array(["a", "bc"], dtype=object),
    }
    stats = {s["name"]: s for s in output_stats(outputs, first=3)}
    json.loads(json.dumps(list(stats.values()), allow_nan=False))  # strict JSON
    f = stats["f"]
    assert f["dtype"] == "float32" and f["shape"] == [2, 2]
    assert (f["min"], f["max"], f["mean"], f["nan"], f["inf"]) == (-3.0, 1.0, -1.0, 1, 1)
    assert f["first"] == [1.0, "nan", "inf"]
    i = stats["i"]
    assert (i["min"], i["max"], i["mean"], i["nan"], i["inf"]) == (0, 9, 4.5, None, None)
    assert i["first"] == [0, 1, 2] and all(type(v) is int for v in i["first"])
    b = stats["b"]
    assert (b["min"], b["max"], b["mean"]) == (0, 1, 0.75) and b["first"] == [True, False, True]
    e = stats["e"]
    assert e["shape"] == [0, 4] and (e["min"], e["max"], e["mean"]) == (None, None, None) and e["first"] == []
    s = stats["s"]
    assert (s["min"], s["mean"]) == (None, None) and s["first"] == ["a", "bc"]


def test_output_stats_all_nan_has_no_range() -> None:
    (stat,) = output_stats({"y": np.full(3, np.nan, np.float64)})
    assert (stat["min"], stat["max"], stat["mean"], stat["nan"]) == (None, None, None, 3)
    json.dumps(stat, allow_nan=False)


# ===================================================================== compare_outputs_to
def test_compare_ok_within_tolerance_and_nan_equal_to_nan() -> None:
    got = {"y": np.array([1.0, 2.0005, np.nan, np.inf], np.float32)}
    ref = {"y": np.array([1.0, 2.0, np.nan, np.inf], np.float32)}
    (entry,) = compare_outputs_to(got, ref, atol=1e-3, rtol=0.0)
    assert entry["ok"] is True and entry["mismatched"] == 0
    assert entry["max_abs"] == pytest.approx(5e-4, rel=1e-2) and entry["worst_index"] == [1]
    json.dumps(entry, allow_nan=False)


def test_compare_mismatch_reports_worst_element() -> None:
    got = {"y": np.array([[1.0, 2.0], [3.0, 4.5]])}
    ref = {"y": np.array([[1.0, 2.1], [3.0, 4.0]])}
    (entry,) = compare_outputs_to(got, ref, atol=1e-3, rtol=1e-3)
    assert entry["ok"] is False and entry["mismatched"] == 2
    assert entry["worst_index"] == [1, 1] and (entry["expected"], entry["got"]) == (4.0, 4.5)
    assert entry["max_abs"] == pytest.approx(0.5) and entry["max_rel"] == pytest.approx(0.125)
    # the rtol side of allclose: |a-b| <= atol + rtol*|b|
    (entry,) = compare_outputs_to(got, ref, atol=0.0, rtol=0.13)
    assert entry["ok"] is True


def test_compare_nan_against_number_fails() -> None:
    (entry,) = compare_outputs_to({"y": np.array([1.0, np.nan])}, {"y": np.array([1.0, 2.0])}, atol=1.0, rtol=1.0)
    assert entry["ok"] is False and entry["worst_index"] == [1] and entry["got"] == "nan"


def test_compare_explains_shape_dtype_and_missing_outputs() -> None:
    got = {"a": np.zeros((2, 3), np.float32), "b": np.zeros(3, np.float32), "extra": np.zeros(1)}
    ref = {"a": np.zeros((3, 2), np.float32), "b": np.zeros(3, np.float64), "gone": np.zeros(1)}
    entries = {e["name"]: e for e in compare_outputs_to(got, ref, atol=1e-5, rtol=1e-5)}
    assert list(entries) == ["a", "b", "extra", "gone"]
    assert not any(e["ok"] for e in entries.values())
    assert entries["a"]["note"] == "shape [2,3], reference [3,2]"
    assert entries["b"]["note"] == "dtype float32, reference float64" and entries["b"]["mismatched"] == 0
    assert entries["extra"]["note"] == "not in the reference"
    assert entries["gone"]["note"] == "in the reference but not an output of the run"
    json.dumps(list(entries.values()), allow_nan=False)


def test_compare_integers_and_strings_exactly() -> None:
    big = np.array([2**62 + 1], np.int64)
    (entry,) = compare_outputs_to({"i": big}, {"i": big - 1}, atol=0.0, rtol=0.0)
    assert entry["ok"] is False and entry["mismatched"] == 1  # float64 could not tell them apart
    assert entry["max_abs"] == 1.0 and entry["worst_index"] == [0]
    (entry,) = compare_outputs_to({"i": big}, {"i": big - 1}, atol=1.0, rtol=0.0)
    assert entry["ok"] is True
    (entry,) = compare_outputs_to({"s": np.array(["a", "b"])}, {"s": np.array(["a", "c"])}, atol=1.0, rtol=1.0)
    assert entry["ok"] is False and entry["worst_index"] == [1] and (entry["expected"], entry["got"]) == ("c", "b")


def test_read_reference_npz(tmp_path: Path) -> None:
    path = tmp_path / "ref.npz"
    np.savez(path, y=np.arange(3.0))
    np.testing.assert_array_equal(read_reference_npz(path)["y"], np.arange(3.0))
    with pytest.raises(BadInputError, match="no such file"):
        read_reference_npz(tmp_path / "missing.npz")


# ===================================================================== run_backend
def _relu_session() -> ort.InferenceSession:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu", [x], [y])
    model = helper.make_model(graph, ir_version=10, opset_imports=[helper.make_opsetid("", 17)])
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _ort_run(session: ort.InferenceSession):  # type: ignore[no-untyped-def]
    return lambda feeds: dict(zip(["y"], session.run(None, feeds), strict=True))


def test_run_backend_passes_a_good_run_through() -> None:
    out = run_backend(_ort_run(_relu_session()), {"x": np.full((2, 3), -1.0, np.float32)}, target="onnxruntime")
    np.testing.assert_array_equal(out["y"], np.zeros((2, 3), np.float32))


def test_run_backend_turns_onnxruntime_refusal_into_one_line() -> None:
    session = _relu_session()
    feeds = {"x": np.zeros((4, 3), np.float32)}
    with pytest.raises(Exception) as raw:  # what onnxruntime raises by itself: multi-line
        session.run(None, feeds)
    native = str(raw.value)
    assert "\n" in native and not isinstance(raw.value, MlcError)
    with pytest.raises(BackendRunError) as info:
        run_backend(_ort_run(session), feeds, target="onnxruntime")
    error = info.value
    assert isinstance(error, MlcError) and error.exit_code == 2
    message = str(error)
    assert "\n" not in message
    assert message.startswith("the onnxruntime runtime refused the run: [ONNXRuntimeError]")
    assert "Got invalid dimensions for input: x" in message and " | " in message
    assert message.endswith(" | ".join(line.strip() for line in native.splitlines() if line.strip()))
    assert error.__cause__ is not None and type(error.__cause__) is type(raw.value)


def test_run_backend_keeps_mlc_errors_and_interrupts() -> None:
    def raises(error: BaseException):  # type: ignore[no-untyped-def]
        def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            raise error
        return run

    with pytest.raises(NumericMismatchError):
        run_backend(raises(NumericMismatchError("numbers")), {}, target="tvm-cpu")
    for passthrough in (KeyboardInterrupt(), SystemExit(3), MemoryError()):
        with pytest.raises(type(passthrough)):
            run_backend(raises(passthrough), {}, target="tvm-cpu")
    with pytest.raises(BackendRunError) as info:
        run_backend(raises(RuntimeError("Check failed: a == b\n  at foo.cc:12\n")), {}, target="tvm-cpu")
    assert str(info.value) == "the tvm-cpu runtime refused the run: Check failed: a == b | at foo.cc:12"
    with pytest.raises(BackendRunError) as info:
        run_backend(raises(ValueError()), {}, target="tvm-cpu")
    assert str(info.value) == "the tvm-cpu runtime refused the run: ValueError"


def test_role_dims_size_dynamic_dims_like_the_checks() -> None:
    from mlc.feeds import role_dims

    inputs = [{"name": "ids", "type": "i64[batch,sequence]", "default": False},
              {"name": "image", "type": "f32[N,3,height,width]", "default": False},
              {"name": "extra", "type": "f32[?,s7]", "default": False}]
    dims = role_dims(inputs)
    assert dims == {"batch": 2, "sequence": 16, "N": 2, "height": 64, "width": 64, "extra:0": 2, "s7": 16}
    feeds, bindings = generate_feeds(inputs, dims=dims)
    assert feeds["ids"].shape == (2, 16) and feeds["image"].shape == (2, 3, 64, 64) and feeds["extra"].shape == (2, 16)
