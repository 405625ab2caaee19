"""The oracle: compile a case with mlc for a target, run the artifact on the case's feeds, and
judge its outputs against plain onnxruntime on the original model.

Verdicts:

* `ok`: every output has the reference's dtype and shape and its values within tolerance;
* `mismatch`: some output differs (values beyond tolerance, shape, dtype, a missing output), or
  mlc's own compile-time check failed (NumericMismatchError, exit 1);
* `crash`: mlc's own fault: InternalError (exit 70), any exception that is not an MlcError, or
  an artifact that fails to run on valid feeds;
* `refusal`: a clean MlcError at compile time (exit 2 or 3): counted apart, and looked at, since a
  valid model onnxruntime runs should compile;
* `invalid`: the case itself is not a valid model (see `generator.validate`): not mlc's business.

Tolerances (|got - expected| <= atol * scale + rtol * |expected|, scale = max(1, max |expected|)):
float64 1e-7/1e-8, float32 1e-4/1e-5, float16 1e-2/5e-3, mlc's `tolerance` contract for
float32 (its fusions and TVM's kernels round differently); integers and booleans exactly. A float
output is judged by the least precise float type the model computes in (a float32 value cast to
float64 carries float32's rounding). A
mismatch is triaged: onnxruntime with its own optimizer on, and onnx's reference evaluator,
say whether they side with the reference or with mlc.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlc.fuzzing.case import Case
from mlc.fuzzing.generator import reference_run, validate

OK, MISMATCH, CRASH, REFUSAL, INVALID = "ok", "mismatch", "crash", "refusal", "invalid"
TOLERANCES = {"float64": (1e-7, 1e-8), "float32": (1e-4, 1e-5), "float16": (1e-2, 5e-3)}


@dataclass
class Verdict:
    kind: str
    target: str
    detail: str = ""
    exit_code: int | None = None
    seconds: float = 0.0
    triage: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_json(data: dict[str, Any]) -> Verdict:
        return Verdict(**data)

    @property
    def signature(self) -> str:
        """What must stay the same while a failure is minimized: the kind, and for a crash or a
        refusal its message without the names that minimization changes."""
        if self.kind in (CRASH, REFUSAL):
            return f"{self.kind}:{normalize_message(self.detail)}"
        return self.kind


def normalize_message(text: str) -> str:
    """A message with value, node and file names, numbers and shapes blanked (for grouping)."""
    import re

    text = re.sub(r"'[^']*'|\"[^\"]*\"", "'_'", text)
    text = re.sub(r"\b[a-z_]+_\d+\b", "_", text)
    text = re.sub(r"\[[^\]]*\]", "[_]", text)
    text = re.sub(r"-?\d+(\.\d+)?(e-?\d+)?", "#", text)
    return text[:160]


_PRECISION = {1: "float32", 10: "float16", 11: "float64", 16: "bfloat16"}  # ONNX elem type -> numpy name
_ORDER = ["bfloat16", "float16", "float32", "float64"]


def model_precision(model: Any) -> str | None:
    """The least precise float type among the model's inputs, outputs, constants and cast targets
    (sub-graphs included): what its float outputs can be judged by."""
    found: set[str] = set()

    def visit(graph: Any) -> None:
        for info in [*graph.input, *graph.output]:
            found.add(_PRECISION.get(info.type.tensor_type.elem_type, ""))
        for init in graph.initializer:
            found.add(_PRECISION.get(init.data_type, ""))
        for node in graph.node:
            for attr in node.attribute:
                if node.op_type == "Cast" and attr.name == "to":
                    found.add(_PRECISION.get(attr.i, ""))
                if attr.type == attr.TENSOR:
                    found.add(_PRECISION.get(attr.t.data_type, ""))
                for sub in [attr.g] if attr.type == attr.GRAPH else list(attr.graphs):
                    visit(sub)

    visit(model.graph)
    ranked = [name for name in _ORDER if name in found]
    return ranked[0] if ranked else None


def _tolerance(dtype: np.dtype, precision: str | None) -> tuple[float, float]:
    own = TOLERANCES.get(dtype.name, (1e-2, 1e-2))
    if precision is None or precision not in TOLERANCES:
        return own if precision != "bfloat16" else (5e-2, 5e-2)
    other = TOLERANCES[precision]
    return max(own[0], other[0]), max(own[1], other[1])


def compare(expected: dict[str, np.ndarray], got: dict[str, np.ndarray], precision: str | None = None) -> str | None:
    """None when `got` matches `expected` within tolerance; else the worst difference, one line.
    `precision`: the model's least precise float type (see `model_precision`)."""
    problems: list[tuple[float, str]] = []
    for name, want in expected.items():
        if name not in got:
            return f"{name}: missing from the artifact's outputs"
        have = np.asarray(got[name])
        if have.shape != want.shape:
            return f"{name}: shape {list(have.shape)}, expected {list(want.shape)}"
        if have.dtype != want.dtype:
            return f"{name}: dtype {have.dtype}, expected {want.dtype}"
        if want.dtype.kind != "f":
            bad = np.argwhere(have != want)
            if bad.size:
                at = tuple(int(i) for i in bad[0])
                problems.append((float("inf"), f"{name}: {len(bad)} of {want.size} elements differ, first at "
                                               f"{list(at)}: expected {want[at]!r}, got {have[at]!r}"))
            continue
        rtol, atol = _tolerance(want.dtype, precision)
        w, h = want.astype(np.float64), have.astype(np.float64)
        finite = np.isfinite(w)
        if not np.array_equal(np.isnan(w), np.isnan(h)) or not np.array_equal(w[~finite & ~np.isnan(w)],
                                                                               h[~finite & ~np.isnan(w)]):
            problems.append((float("inf"), f"{name}: NaN/Inf where the reference has none (or the reverse)"))
            continue
        scale = max(1.0, float(np.max(np.abs(w[finite]), initial=0.0)))
        err = np.where(finite, np.abs(h - w), 0.0)
        err = np.where(np.isnan(err), np.inf, err)
        limit = atol * scale + rtol * np.abs(np.where(finite, w, 0.0))
        excess = err - limit
        if want.size and float(np.max(excess)) > 0:
            at = tuple(int(i) for i in np.unravel_index(int(np.argmax(excess)), want.shape))
            worst = float(err[at])
            problems.append((worst / scale, f"{name}: max abs error {worst:.3g} (scale {scale:.3g}) at {list(at)}: "
                                            f"expected {w[at]:.9g}, got {h[at]:.9g}"))
    if not problems:
        return None
    return max(problems)[1]


def check_case(case: Case, target: str, *, level: int = 3, verify: str = "none", workdir: Path | None = None,
               reference: dict[str, np.ndarray] | None = None, triage: bool = True) -> Verdict:
    """Compile `case` with mlc for `target` at `level` (mlc's own numeric check: `verify`), run the
    artifact on the case's feeds and judge it against `reference` (plain onnxruntime if None)."""
    import mlc
    from mlc.errors import InternalError, MlcError, NumericMismatchError

    started = time.perf_counter()
    if reference is None:
        reason = validate(case)
        if reason is not None:
            return Verdict(INVALID, target, reason)
        reference = reference_run(case)
    folder = Path(tempfile.mkdtemp(prefix="mlc-fuzz-", dir=workdir))
    try:
        model_path = folder / "model.onnx"
        model_path.write_bytes(case.model_bytes())
        try:
            artifact_dir = mlc.compile(model_path, target, folder / "artifact", level=level, verify=verify)
        except NumericMismatchError as error:
            return _done(Verdict(MISMATCH, target, f"mlc's own check: {_first(error)}", 1), started)
        except MlcError as error:
            # exit 70 is mlc's own fault whatever the class (InternalError, a pass's PassFailedError:
            # seed 600259 was counted as a refusal before)
            kind = CRASH if isinstance(error, InternalError) or error.exit_code == 70 else REFUSAL
            return _done(Verdict(kind, target, _first(error), error.exit_code), started)
        except Exception as error:  # noqa: BLE001 - anything else escaping mlc.compile is a crash
            return _done(Verdict(CRASH, target, f"{type(error).__name__}: {_first(error)}"), started)
        try:
            got = mlc.load(artifact_dir).run(case.feeds)
        except Exception as error:  # noqa: BLE001 - valid feeds must run
            code = getattr(error, "exit_code", None)
            verdict = Verdict(CRASH, target, f"artifact run: {type(error).__name__}: {_first(error)}", code)
            if triage:
                verdict.triage = _triage_run_failure(case)
            return _done(verdict, started)
        problem = compare(reference, got, model_precision(case.model))
        if problem is None:
            return _done(Verdict(OK, target), started)
        verdict = Verdict(MISMATCH, target, problem)
        if triage:
            verdict.triage = _triage(case, reference, got)
        return _done(verdict, started)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _triage(case: Case, reference: dict[str, np.ndarray], got: dict[str, np.ndarray]) -> dict[str, Any]:
    """Second opinions on a mismatch: does onnxruntime with its own optimizer on, or onnx's
    reference evaluator, agree with the reference (mlc is wrong) or with mlc (the reference is)?"""
    notes: dict[str, Any] = {}
    precision = model_precision(case.model)
    try:
        optimized = reference_run(case, optimized=True)
        notes["ort_optimized_vs_reference"] = compare(reference, optimized, precision) or "agrees"
        notes["ort_optimized_vs_mlc"] = compare(optimized, got, precision) or "agrees"
    except Exception as error:  # noqa: BLE001 - a second opinion that cannot be had is noted
        notes["ort_optimized"] = f"failed: {_first(error)}"
    try:
        from onnx.reference import ReferenceEvaluator  # noqa: TID251

        evaluator = ReferenceEvaluator(case.model)
        names = [o.name for o in case.model.graph.output]
        values = dict(zip(names, evaluator.run(None, case.feeds), strict=True))
        notes["onnx_reference_vs_reference"] = compare(reference, values, precision) or "agrees"
        notes["onnx_reference_vs_mlc"] = compare(values, got, precision) or "agrees"
    except Exception as error:  # noqa: BLE001
        notes["onnx_reference"] = f"failed: {_first(error)}"
    return notes


def _triage_run_failure(case: Case) -> dict[str, Any]:
    """Does onnxruntime with its own optimizer on fail on the original model as well?"""
    try:
        reference_run(case, optimized=True)
        return {"ort_optimized": "runs"}
    except Exception as error:  # noqa: BLE001
        return {"ort_optimized": f"fails too: {_first(error)}"}


def _done(verdict: Verdict, started: float) -> Verdict:
    verdict.seconds = round(time.perf_counter() - started, 3)
    return verdict


def _first(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return (lines[0] if lines else type(error).__name__)[:400]
