"""The oracle's comparison: tolerances by dtype and by the model's least precise float type."""

from __future__ import annotations

import numpy as np

from mlc.fuzzing.generator import generate
from mlc.fuzzing.oracle import Verdict, compare, model_precision, normalize_message


def test_float32_within_and_beyond_tolerance() -> None:
    want = {"y": np.array([1.0, 2.0, -3.0], np.float32)}
    assert compare(want, {"y": want["y"] * (1 + 5e-5)}) is None
    problem = compare(want, {"y": np.array([1.0, 2.01, -3.0], np.float32)})
    assert problem is not None and problem.startswith("y: max abs error") and "[1]" in problem


def test_shape_dtype_missing_and_integers_exact() -> None:
    want = {"y": np.zeros((2, 3), np.float32), "i": np.array([1, 2], np.int64)}
    assert "shape [3, 2]" in (compare(want, {"y": np.zeros((3, 2), np.float32), "i": want["i"]}) or "")
    assert "dtype float64" in (compare(want, {"y": np.zeros((2, 3)), "i": want["i"]}) or "")
    assert "missing" in (compare(want, {"y": want["y"]}) or "")
    assert "1 of 2 elements differ" in (compare(want, {"y": want["y"], "i": np.array([1, 3], np.int64)}) or "")


def test_nan_positions_must_match() -> None:
    want = {"y": np.array([np.nan, 1.0], np.float32)}
    assert compare(want, {"y": np.array([np.nan, 1.0], np.float32)}) is None
    assert compare(want, {"y": np.array([0.0, 1.0], np.float32)}) is not None


def test_float64_output_of_float32_computation_gets_float32_tolerance() -> None:
    """Fuzz seed 961: a float32 value cast to float64 differed by one float32 ulp."""
    want = {"y": np.array([-1.13036132], np.float64)}
    got = {"y": np.array([-1.13036156], np.float64)}
    assert compare(want, got) is not None
    assert compare(want, got, "float32") is None


def test_model_precision_reads_inputs_constants_and_casts() -> None:
    kinds = {model_precision(generate(seed).model) for seed in range(40)}
    assert {"float32", "float64", "float16"} <= kinds


def test_signature_blanks_names_and_numbers() -> None:
    a = Verdict("crash", "llvm", "internal error in pass 'cse': node relu_12 [3, 4] failed 2 times")
    b = Verdict("crash", "llvm", "internal error in pass 'cse': node relu_99 [5] failed 7 times")
    assert a.signature == b.signature
    assert Verdict("mismatch", "llvm", "x").signature == "mismatch"
    assert normalize_message("abc 12.5e-3") == "abc #"


def test_a_pass_failure_is_a_crash_not_a_refusal(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Exit 70 is mlc's fault whatever the error's class: a pass that raised (PassFailedError) was
    counted as a refusal (seed 600259); a bad-input error stays a refusal."""
    import mlc
    from mlc.errors import BadInputError
    from mlc.fuzzing import check_case
    from mlc.pass_manager import PassFailedError

    case = generate(0)
    monkeypatch.setattr(mlc, "compile", lambda *a, **k: (_ for _ in ()).throw(PassFailedError("pass #6 x raised")))
    verdict = check_case(case, "onnxruntime")
    assert (verdict.kind, verdict.exit_code) == ("crash", 70)
    monkeypatch.setattr(mlc, "compile", lambda *a, **k: (_ for _ in ()).throw(BadInputError("m.onnx: no")))
    assert check_case(case, "onnxruntime").kind == "refusal"
