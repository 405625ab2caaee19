"""Comparison of outputs with tolerances by dtype and pass contract.

An element fails when |got - expected| > atol * scale + rtol * |expected|, where `scale` is the
largest finite |expected| of that output (so that atol follows the output's magnitude). Integer,
bool and string outputs must match exactly.

NaN and Inf are judged, not skipped (`nonfinite_classes`): NaN or Inf where the reference is
finite, anything but NaN where the reference is NaN, and NaN or the opposite Inf where it is Inf
are mismatches (`fail`), each counted in the note. Only a finite value where the reference
overflowed to Inf cannot be judged (a fused kernel may keep in range what the unfused one did
not): that alone gives `inconclusive`. A reference that is itself NaN or Inf on the check inputs
is said in the note; NaN there makes the verdict `inconclusive` even where both agree (the check
vouches for nothing at those elements). Two values that both lie below the type's smallest
normal (subnormal or zero) are equal enough: an engine may flush subnormal results to zero
(`mlc.numerics.denormals`), and such differences are counted in the note.

A `lossy` contract (quantization, pruning) changes values on purpose, so no element-wise
tolerance judges it: a float output is measured against the reference (max abs/rel error,
cosine similarity, SQNR in dB) and judged by a sanity gate (`LossyGate`): it fails when its
cosine similarity to the reference drops below `min_cosine` (default 0.99: int8 models keep
0.999 and more; a broken scale or zero point falls far below) or when it holds NaN/Inf where the
reference is finite. Integer and bool outputs of a lossy graph (an argmax label) may flip on
near ties: their disagreement is reported in the note, not failed. An accuracy budget on data
(`mlc.quantize.search`) replaces the gate when the user gives one (`min_cosine=None`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlc.numerics.contract import Numerics
from mlc.numerics.selection import Selection

OK, FAIL, INCONCLUSIVE = "ok", "fail", "inconclusive"
DEFAULT_MIN_COSINE = 0.99


@dataclass(frozen=True)
class LossyGate:
    """How outputs of a graph after a lossy pass are judged: cosine similarity to the reference
    at least `min_cosine`; None records the measures without failing on them."""

    min_cosine: float | None = DEFAULT_MIN_COSINE

    def describe(self) -> str:
        return f"cosine >= {self.min_cosine:g}" if self.min_cosine is not None else "measured only (accuracy budget)"

# (rtol, atol relative to the output's scale) per contract and float width. `exact` passes are
# checked strictly but not bitwise: onnxruntime may pick another kernel for a rewritten graph.
_TOLERANCES: dict[Numerics, dict[str, tuple[float, float]]] = {
    Numerics.EXACT: {"f64": (1e-12, 1e-13), "f32": (1e-5, 1e-6), "f16": (2e-3, 2e-4), "low": (2e-2, 2e-3)},
    Numerics.TOLERANCE: {"f64": (1e-9, 1e-10), "f32": (1e-4, 1e-5), "f16": (1e-2, 1e-3), "low": (5e-2, 5e-3)},
    Numerics.LOSSY: {"f64": (1e-1, 1e-1), "f32": (1e-1, 1e-1), "f16": (1e-1, 1e-1), "low": (1e-1, 1e-1)},
}


def _width(dtype: np.dtype) -> str:
    if dtype == np.float64:
        return "f64"
    if dtype == np.float32:
        return "f32"
    if dtype == np.float16:
        return "f16"
    return "low"


def tolerance_for(numerics: Numerics, dtype: np.dtype) -> tuple[float, float]:
    return _TOLERANCES[numerics][_width(np.dtype(dtype))]


@dataclass
class OutputCheck:
    name: str
    verdict: str
    dtype: str = ""
    shape: tuple[int, ...] = ()
    max_abs: float = 0.0
    max_rel: float = 0.0
    cosine: float = 1.0
    sqnr_db: float | None = None  # signal-to-quantization-noise ratio vs the reference (lossy checks)
    worst_index: tuple[int, ...] | None = None
    expected: float | None = None
    got: float | None = None
    rtol: float = 0.0
    atol: float = 0.0
    note: str = ""
    got_nonfinite: int = 0  # elements NaN/Inf where the reference is finite
    reference_nan: int = 0  # NaN / Inf elements of the reference itself on the check inputs
    reference_inf: int = 0

    def to_json(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["shape"] = list(self.shape)
        data["worst_index"] = list(self.worst_index) if self.worst_index is not None else None
        for key in ("max_abs", "max_rel", "cosine", "sqnr_db", "expected", "got"):
            value = data[key]
            data[key] = None if value is None or not np.isfinite(value) else float(value)
        return data

    def describe(self) -> str:
        if self.note.startswith("lossy") and self.dtype and np.dtype(self.dtype).kind == "f":
            sqnr = f"SQNR {self.sqnr_db:.1f} dB" if self.sqnr_db is not None and np.isfinite(self.sqnr_db) else \
                "SQNR inf dB"
            return (f"{self.name}: {self.verdict}: cosine {self.cosine:.6f}, {sqnr}, max abs {self.max_abs:.3g}"
                    + (f"; {self.note}" if self.note else ""))
        if self.verdict == OK and not self.note:
            return f"{self.name}: ok (max abs {self.max_abs:.3g})"
        if self.got_nonfinite and self.worst_index is not None:  # the figures over finite pairs would mislead
            return (f"{self.name}: {self.verdict}: {self.note} (first at {list(self.worst_index)}: expected "
                    f"{self.expected:.6g}, got {self.got:.6g})")
        where = f" at {list(self.worst_index)}" if self.worst_index is not None else ""
        values = f" (expected {self.expected:.6g}, got {self.got:.6g})" if self.expected is not None else ""
        return (f"{self.name}: {self.verdict}: max abs {self.max_abs:.3g}, max rel {self.max_rel:.3g}, "
                f"cosine {self.cosine:.9f}{where}{values}" + (f"; {self.note}" if self.note else ""))


@dataclass
class CheckResult:
    verdict: str
    numerics: str
    engine: str
    outputs: list[OutputCheck] = field(default_factory=list)
    note: str = ""
    load_error: str = ""  # the reference could not run the graph at all (a pass's fault)

    @property
    def worst(self) -> OutputCheck | None:
        failing = [o for o in self.outputs if o.verdict != OK]
        pool = failing or self.outputs
        return max(pool, key=lambda o: o.max_rel, default=None)

    @property
    def max_abs(self) -> float:
        return max((o.max_abs for o in self.outputs), default=0.0)

    @property
    def min_cosine(self) -> float:
        return min((o.cosine for o in self.outputs if o.dtype and np.dtype(o.dtype).kind in "fc"), default=1.0)

    @property
    def min_sqnr_db(self) -> float | None:
        values = [o.sqnr_db for o in self.outputs if o.sqnr_db is not None]
        return min(values) if values else None

    def lossy_summary(self) -> str:
        """`output cosine 0.9995, SQNR 31.2 dB` (the worst float output's figures)."""
        sqnr = self.min_sqnr_db
        text = f"output cosine {self.min_cosine:.5f}"
        return text + (f", SQNR {sqnr:.1f} dB" if sqnr is not None and np.isfinite(sqnr) else
                       ", SQNR inf dB" if sqnr is not None else "")

    @property
    def max_rel(self) -> float:
        return max((o.max_rel for o in self.outputs), default=0.0)

    def to_json(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "numerics": self.numerics, "engine": self.engine, "note": self.note,
                "load_error": self.load_error or None,
                "max_abs": float(self.max_abs), "max_rel": float(self.max_rel),
                "outputs": [o.to_json() for o in self.outputs]}


def compare_array(name: str, expected: Any, got: Any, numerics: Numerics,
                  gate: LossyGate | None = None) -> OutputCheck:
    if expected is None or got is None:
        same = expected is None and got is None
        return OutputCheck(name, OK if same else FAIL, note="" if same else "one side is None")
    if isinstance(expected, list) or isinstance(got, list):
        if not isinstance(expected, list) or not isinstance(got, list) or len(expected) != len(got):
            return OutputCheck(name, FAIL, note="sequence lengths differ")
        checks = [compare_array(f"{name}[{i}]", e, g, numerics, gate) for i, e, g in
                  zip(range(len(expected)), expected, got, strict=True)]
        bad = [c for c in checks if c.verdict != OK]
        return bad[0] if bad else OutputCheck(name, OK, note=f"{len(checks)} elements")
    exp, act = np.asarray(expected), np.asarray(got)
    check = OutputCheck(name, OK, dtype=str(exp.dtype), shape=tuple(exp.shape))
    if exp.shape != act.shape or exp.dtype != act.dtype:
        check.verdict, check.note = FAIL, f"{act.dtype}{list(act.shape)}, expected {exp.dtype}{list(exp.shape)}"
        return check
    if exp.size == 0:
        return check
    if exp.dtype.kind not in "fc":
        equal = exp == act
        if not np.all(equal) and numerics is Numerics.LOSSY:
            check.note = f"lossy: {int((~equal).sum())} of {exp.size} elements differ (not judged: near ties flip)"
            check.max_abs = float(np.max(np.abs(exp.astype(np.float64) - act.astype(np.float64)))) \
                if exp.dtype.kind in "iub" else 0.0
        elif not np.all(equal):
            index = tuple(int(i) for i in np.argwhere(~equal)[0])
            check.verdict, check.worst_index = FAIL, index
            check.note = f"{int((~equal).sum())} of {exp.size} elements differ (must match exactly)"
            if exp.dtype.kind in "iub":
                check.expected, check.got = float(exp[index]), float(act[index])
                check.max_abs = float(np.max(np.abs(exp.astype(np.float64) - act.astype(np.float64))))
        return check
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        check = _compare_floats(check, exp, act, numerics)
        return _judge_lossy(check, exp, act, gate or LossyGate()) if numerics is Numerics.LOSSY else check


def sqnr_db(expected: np.ndarray, got: np.ndarray) -> float:
    """10·log10(signal power / error power) over the finite elements; inf when they are equal."""
    e64, a64 = np.asarray(expected, np.float64).ravel(), np.asarray(got, np.float64).ravel()
    keep = np.isfinite(e64) & np.isfinite(a64)
    signal = float(np.sum(e64[keep] ** 2))
    noise = float(np.sum((e64[keep] - a64[keep]) ** 2))
    if noise == 0.0:
        return float("inf")
    return 10.0 * float(np.log10(max(signal, 1e-300) / noise))


def _judge_lossy(check: OutputCheck, exp: np.ndarray, act: np.ndarray, gate: LossyGate) -> OutputCheck:
    """Replace the element-wise verdict by the lossy gate (module docstring)."""
    e64, a64 = exp.astype(np.float64), act.astype(np.float64)
    check.sqnr_db = sqnr_db(e64, a64) if exp.dtype.kind == "f" else None
    check.rtol, check.atol = 0.0, 0.0
    classes = nonfinite_classes(e64, a64)
    broken = classes.lost
    if broken.any():
        check.verdict = FAIL
        check.note = f"lossy: {int(broken.sum())} of {exp.size} elements NaN/Inf where the reference is finite"
    elif classes.nan_lost.any() or classes.inf_wrong.any():
        check.verdict = FAIL
        check.note = "lossy: " + "; ".join(classes.describe(exp.size, 0))
    elif gate.min_cosine is not None and check.cosine < gate.min_cosine:
        check.verdict = FAIL
        check.note = f"lossy: cosine {check.cosine:.6f} below the gate {gate.min_cosine:g}"
    else:
        check.verdict = OK if check.verdict != INCONCLUSIVE else INCONCLUSIVE
        check.note = f"lossy: {gate.describe()}" if check.verdict == OK else check.note
    return check


def _compare_floats(check: OutputCheck, exp: np.ndarray, act: np.ndarray, numerics: Numerics) -> OutputCheck:
    """Element-wise judgement of a float output (module docstring), non-finite values included."""
    rtol, atol = tolerance_for(numerics, exp.dtype)
    e64, a64 = exp.astype(np.complex128 if exp.dtype.kind == "c" else np.float64), act.astype(
        np.complex128 if exp.dtype.kind == "c" else np.float64)
    finite = np.isfinite(e64)
    classes = nonfinite_classes(e64, a64)
    scale = float(np.max(np.abs(e64[finite]))) if finite.any() else 0.0
    diff = np.abs(e64 - a64)
    diff = np.where(finite, diff, 0.0)
    limit = atol * max(scale, 1e-30) + rtol * np.abs(np.where(finite, e64, 0.0))
    # both values below the type's smallest normal: an engine may flush subnormal results to zero
    flushed = finite & ~(diff <= limit) & _both_tiny(e64, a64, exp.dtype)
    failing = finite & ~(diff <= limit) & ~flushed  # a NaN result where the reference is finite fails too
    rel = diff / np.maximum(np.abs(np.where(finite, e64, 0.0)), atol * max(scale, 1e-30))
    check.rtol, check.atol = rtol, atol * scale
    both = finite & np.isfinite(a64)
    check.max_abs = float(np.nanmax(np.where(both, diff, 0.0)))
    check.max_rel = float(np.nanmax(np.where(both & ~flushed, rel, 0.0)))
    fe, fa = e64[both].ravel(), a64[both].ravel()
    norms = float(np.linalg.norm(fe) * np.linalg.norm(fa))
    check.cosine = float(np.real(np.vdot(fe, fa)) / norms) if norms > 0 else (1.0 if not fe.size or
                                                                             np.array_equal(fe, fa) else 0.0)
    wrong = classes.lost | classes.nan_lost | classes.inf_wrong  # non-finite mismatches rank first
    score = np.where(failing, rel + 1.0, np.where(flushed, 0.0, rel))
    score = np.where(np.isnan(score) | wrong, np.inf, score)
    first = int(np.argmax(classes.lost)) if classes.lost.any() else int(np.argmax(score))
    index = tuple(int(i) for i in np.unravel_index(first, exp.shape))
    check.worst_index = index
    check.expected, check.got = float(np.real(e64[index])), float(np.real(a64[index]))
    check.got_nonfinite = int(classes.lost.sum())
    check.reference_nan, check.reference_inf = int(np.isnan(e64).sum()), int(np.isinf(e64).sum())
    notes = classes.describe(exp.size, int((failing & ~classes.lost).sum()))
    if flushed.any():
        notes.append(f"{int(flushed.sum())} elements differ only below {np.dtype(exp.dtype).name}'s smallest "
                     "normal (flush-to-zero of subnormal results: accepted)")
    if check.reference_nan or check.reference_inf:
        notes.append(f"the reference itself holds {check.reference_nan} NaN and {check.reference_inf} Inf of "
                     f"{exp.size} elements on the check inputs")
    check.note = "; ".join(notes)
    if failing.any() or wrong.any():
        check.verdict = FAIL
    elif classes.inf_finite.any() or check.reference_nan:
        check.verdict = INCONCLUSIVE  # elements the reference cannot vouch for
    return check


def _both_tiny(e64: np.ndarray, a64: np.ndarray, dtype: np.dtype) -> np.ndarray:
    from mlc.numerics.narrowing import float_limits

    real = np.dtype(dtype).type(0).real.dtype if np.dtype(dtype).kind == "c" else np.dtype(dtype)
    smallest_normal = float_limits(real)[1]
    return (np.abs(e64) < smallest_normal) & (np.abs(a64) < smallest_normal)


@dataclass(frozen=True)
class NonFinite:
    """Where the output and the reference disagree about NaN and Inf, element by element."""

    lost: np.ndarray  # NaN or Inf where the reference is finite: a mismatch
    nan_lost: np.ndarray  # finite or Inf where the reference is NaN: a mismatch
    inf_wrong: np.ndarray  # NaN or the other Inf where the reference is Inf: a mismatch
    inf_finite: np.ndarray  # finite where the reference overflowed to Inf: not judged (inconclusive)
    got_nan: np.ndarray

    def describe(self, size: int, off: int) -> list[str]:
        """The note's phrases, mismatches first, each with its count."""
        notes = []
        if self.lost.any():
            nans = int((self.lost & self.got_nan).sum())
            notes.append(f"{int(self.lost.sum())} of {size} elements are NaN/Inf where the reference is finite "
                         f"({nans} NaN, {int(self.lost.sum()) - nans} Inf)")
        if off:
            notes.append(f"{off} of {size} elements off")
        if self.nan_lost.any():
            notes.append(f"{int(self.nan_lost.sum())} elements are not NaN where the reference is NaN")
        if self.inf_wrong.any():
            notes.append(f"{int(self.inf_wrong.sum())} elements are NaN or the opposite Inf where the reference "
                         "is Inf")
        if self.inf_finite.any():
            notes.append(f"{int(self.inf_finite.sum())} elements are finite where the reference overflowed to Inf "
                         "(not judged)")
        return notes


def nonfinite_classes(e64: np.ndarray, a64: np.ndarray) -> NonFinite:
    """Classify the elements whose NaN/Inf status differs between reference `e64` and `a64`."""
    e_nan, a_nan = np.isnan(e64), np.isnan(a64)
    e_inf, a_inf = np.isinf(e64), np.isinf(a64)
    finite_a = ~a_nan & ~a_inf
    return NonFinite(lost=~e_nan & ~e_inf & ~finite_a, nan_lost=e_nan & ~a_nan,
                     inf_wrong=e_inf & (a_nan | (a_inf & (a64 != e64))), inf_finite=e_inf & finite_a,
                     got_nan=a_nan)


def compare_outputs(expected: dict[str, Any], got: dict[str, Any], numerics: Numerics, engine: str,
                    selections: Mapping[str, Selection] | None = None, gate: LossyGate | None = None) -> CheckResult:
    """Compare every expected output; the verdict is the worst of them.

    `selections` (`mlc.numerics.selection.selection_outputs` of the original graph) names the
    outputs whose records a TopK/NonMaxSuppression picked: those are compared as records, in any
    order among near ties (`mlc.numerics.records`), and the result's note says which and why.
    Every other output is compared element by element."""
    by_name: dict[str, OutputCheck] = {}
    summaries: list[str] = []
    if selections:
        from mlc.numerics.records import compare_groups

        for group in compare_groups(expected, got, selections, numerics):
            by_name.update(group.checks)
            summaries += [group.summary] if group.summary else []
    checks = []
    for name, value in expected.items():
        if name not in got:
            checks.append(OutputCheck(name, FAIL, note="output missing"))
            continue
        check = by_name.get(name) or compare_array(name, value, got[name], numerics, gate)
        selection = (selections or {}).get(name)
        if name not in by_name and selection is not None and check.verdict != OK:
            how = ("its records' axis could not be traced, so it is compared in order: a failure here may be "
                   "near-tied scores picked in another order" if selection.axis is None
                   else "another shape or type than the reference's: the records picked differ in number")
            check.note = "; ".join(x for x in (check.note, f"picked by {'/'.join(selection.ops)}; {how}") if x)
        checks.append(check)
    nonfinite = [f"{c.name} ({c.reference_nan} NaN, {c.reference_inf} Inf)" for c in checks
                 if c.reference_nan or c.reference_inf]
    if nonfinite:
        summaries.append(f"the reference is NaN/Inf on the check inputs in {', '.join(nonfinite)}")
    verdicts = {c.verdict for c in checks}
    verdict = FAIL if FAIL in verdicts else INCONCLUSIVE if INCONCLUSIVE in verdicts else OK
    return CheckResult(verdict, numerics.value, engine, checks, note="; ".join(summaries))
