"""The one pipeline runner: import, run a pipeline under its instruments, check the numbers.

`mlc compile`, `mlc debug`, `mlc optimize`, the conformance backends and the Python API all run
their passes here, through one `PassManager` loop whose instruments do the timing, IR dumps,
structural verification and numeric checks. What differs between them is what they do with the
result: compile hands the graph to a backend, optimize writes it as ONNX, debug localizes a
break (`mlc.debugger`).

Numeric checks compare the graph with the original model, imported before any pass: the
specializations a user asks for (`freeze-inputs`, `bind-inputs`, `fix-input-shapes`) are passes
like the others, so the inputs are made to fit them (bound values fed to the original, fixed
dims used as the input shapes) and they are checked too.

A lossy pass (`quantize-qdq`, `prune-*`, `convert-fp16`) is judged by data, not equivalence: the
checks after it compare the outputs with the float original by cosine similarity and SQNR under the lossy gate of
`CheckOptions.lossy_min_cosine` (`mlc.numerics.compare.LossyGate`), and the graph just before
and just after each lossy pass is kept (`PipelineResult.lossy`) so that the quantization doctor
(`mlc.quantize.doctor`) can measure every tensor the two share on the check inputs.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlc.errors import BadInputError
from mlc.hashing import file_sha256
from mlc.ir.core import Graph
from mlc.ir.verifier import verify
from mlc.numerics.compare import DEFAULT_MIN_COSINE, FAIL, INCONCLUSIVE, OK, CheckResult, LossyGate, compare_outputs
from mlc.numerics.hazards import HazardScan, scan_constants
from mlc.numerics.inputs import InputSpec, candidate_specs, dynamic_dims, load_inputs, make_inputs, read_npz
from mlc.numerics.reference import (
    ORT,
    REFERENCE,
    PreparedModel,
    ReferenceError,
    WeightCache,
    run_model,
    run_with_fallback,
)
from mlc.numerics.selection import selection_outputs
from mlc.onnx_io.exporter import export_onnx
from mlc.onnx_io.importer import import_onnx
from mlc.onnx_io.static_checks import check_runnable
from mlc.pass_api import Numerics, Pass
from mlc.pass_manager import Instrument, PassManager, PassRecord

_SEVERITY = {Numerics.EXACT: 0, Numerics.TOLERANCE: 1, Numerics.LOSSY: 2}
VERIFY_MODES = ("each", "final", "none")


@dataclass
class CheckOptions:
    """How the numbers are checked: when, on which inputs, and whether a failure is re-judged."""

    verify: str = "final"  # each | final | none
    inputs_path: str | None = None
    input_spec: InputSpec = field(default_factory=InputSpec)
    second_opinion: bool = True
    # the lossy gate: an output's least cosine similarity to the float original after a lossy pass
    # (None: measured, not judged, because an accuracy budget on data is the gate)
    lossy_min_cosine: float | None = DEFAULT_MIN_COSINE


def loosest_contract(passes: Sequence[Pass]) -> Numerics:
    """The contract a graph is held to after these passes: the loosest of theirs."""
    worst = Numerics.EXACT
    for p in passes:
        if _SEVERITY[p.numerics] > _SEVERITY[worst]:
            worst = p.numerics
    return worst


class Reference:
    """The original model run on the check inputs; `check` compares a graph with it.

    A dynamic model is checked at two shape sets (`feed_sets`, e.g. batch 2 / sequence 16 and
    batch 3 / sequence 7), so that a pass that bakes one shape in is caught. Candidate sets the
    original itself cannot run are skipped; if it runs at none, that is bad input (exit 2) with the
    dims to give. A graph the reference cannot run after a pass gives a failed check whose
    `load_error` says why: that is the pass's fault, localized like a numeric break."""

    def __init__(self, original: Graph, candidates: Iterable[dict[str, np.ndarray]], second_opinion: bool = True,
                 *, sets: int = 2, shown: str = "the model", dims_hint: str = "",
                 gate: LossyGate | None = None) -> None:
        self.weights = WeightCache()
        self.gate = gate or LossyGate()
        self.model = export_onnx(original)
        self.output_names = [v.name for v in original.outputs]
        self.selections = selection_outputs(original)
        self.second_opinion = second_opinion
        self.notes: list[str] = []
        self.sets: list[tuple[dict[str, np.ndarray], dict[str, Any]]] = []
        self.engine = ORT
        prepared = self.weights.prepare(original)
        tried: list[str] = []
        first_error: ReferenceError | None = None
        for feeds in candidates:
            try:
                if self.sets:
                    expected = run_model(prepared, feeds, self.output_names, self.engine)
                else:
                    expected, self.engine = run_with_fallback(prepared, feeds, self.output_names)
            except ReferenceError as error:
                first_error = first_error or error
                tried.append(_shapes_text(feeds))
                continue
            self.sets.append((feeds, expected))
            if len(self.sets) == sets:
                break
        if not self.sets:
            assert first_error is not None
            if len(tried) <= 1 or not dims_hint:
                raise first_error
            raise BadInputError(f"{shown}: the original model runs at none of the shapes tried for its dynamic dims "
                                f"{dims_hint} ({'; '.join(tried[:4])}): {first_error}; give the shapes with "
                                f"--input-shape NAME:D,D")
        if tried:
            self.notes.append(f"the original cannot run at {'; '.join(tried[:3])}: not checked there")
        if self.engine != ORT:
            self.notes.append("onnxruntime cannot run this model; onnx.reference is the reference")
        traced = [name for name, s in self.selections.items() if s.axis is not None]
        if traced:
            ops = "/".join(sorted({op for name in traced for op in self.selections[name].ops}))
            self.notes.append(f"{', '.join(traced)} compared as records in any order among near ties: picked by "
                              f"{ops}, whose near-tied scores may come out in another order")

    def compare(self, expected: dict[str, Any], got: dict[str, Any], numerics: Numerics,
                engine: str | None = None) -> CheckResult:
        """Compare a run's outputs with the original's: element by element, except the outputs a
        TopK/NonMaxSuppression picked, which are compared as records in any order among near ties
        (`mlc.numerics.records`). Every comparison with the original goes through here, the
        compiled artifact's included."""
        return compare_outputs(expected, got, numerics, engine or self.engine, self.selections, self.gate)

    @property
    def feeds(self) -> dict[str, np.ndarray]:
        return self.sets[0][0]

    @property
    def expected(self) -> dict[str, Any]:
        return self.sets[0][1]

    def prepare(self, graph: Graph) -> PreparedModel:
        return self.weights.prepare(graph)

    def check(self, graph: Graph | Any, numerics: Numerics) -> CheckResult:
        """Run `graph` (or an already prepared/exported model) at every shape set and compare with
        the original; the worst set's result is returned."""
        model = self.prepare(graph) if isinstance(graph, Graph) else graph
        worst: CheckResult | None = None
        for feeds, expected in self.sets:
            try:
                got = run_model(model, feeds, self.output_names, self.engine)
            except ReferenceError as error:
                return CheckResult(FAIL, numerics.value, self.engine, note=f"the reference cannot run the graph at "
                                   f"{_shapes_text(feeds)}: {error}", load_error=str(error))
            result = self.compare(expected, got, numerics)
            if result.verdict == FAIL and self.second_opinion and self.engine == ORT:
                self._second_opinion(model, feeds, numerics, result)
            if worst is None or _rank(result) > _rank(worst):
                worst = result
        assert worst is not None
        return worst

    def _second_opinion(self, model: Any, feeds: dict[str, np.ndarray], numerics: Numerics,
                        first: CheckResult) -> None:
        """onnx's reference evaluator re-judges a failure; disagreement means we cannot blame the pass."""
        try:
            ref_expected = run_model(self.model, feeds, self.output_names, REFERENCE)
            ref_got = run_model(model, feeds, self.output_names, REFERENCE)
        except ReferenceError as error:
            _add_note(first, f"second opinion unavailable ({error})")
            return
        second = self.compare(ref_expected, ref_got, numerics, REFERENCE)
        if second.verdict == OK:
            first.verdict = INCONCLUSIVE
            _add_note(first, "the references disagree: onnxruntime sees a difference, onnx.reference does not; "
                             "not blaming the pass")
        else:
            _add_note(first, "confirmed by onnx.reference")


def _add_note(result: CheckResult, note: str) -> None:
    result.note = f"{result.note}; {note}" if result.note else note


def _rank(result: CheckResult) -> tuple[int, float]:
    return ({OK: 0, INCONCLUSIVE: 1, FAIL: 2}.get(result.verdict, 2), result.max_rel)


def _shapes_text(feeds: dict[str, np.ndarray]) -> str:
    return ", ".join(f"{k} {list(v.shape)}" for k, v in feeds.items())


class NumericCheck(Instrument):
    """`--verify each`: after every pass that changed the graph, compare with the original; stop
    the pipeline at the first failure (numbers, or a graph the reference can no longer run)."""

    def __init__(self, reference: Reference, passes: Sequence[Pass]) -> None:
        self.reference = reference
        self.passes = list(passes)
        self.stop = False

    def after_pass(self, index: int, pass_: Pass, graph: Graph, record: PassRecord) -> None:
        if not record.changed:
            return
        record.check = self.reference.check(graph, loosest_contract(self.passes[:index + 1]))
        if record.check.verdict == FAIL:
            self.stop = True


@dataclass
class LossyStep:
    """A lossy pass that ran, with the graph just before it (float) and just after it."""

    index: int
    spec: str
    before: Graph
    after: Graph


class LossySnapshots(Instrument):
    """Keep the graphs around every lossy pass that changed something (for the doctor)."""

    def __init__(self) -> None:
        self.steps: list[LossyStep] = []
        self._before: Graph | None = None

    def before_pass(self, index: int, pass_: Pass, graph: Graph) -> None:
        self._before = graph.clone() if pass_.numerics is Numerics.LOSSY else None

    def after_pass(self, index: int, pass_: Pass, graph: Graph, record: PassRecord) -> None:
        if self._before is not None and record.changed:
            self.steps.append(LossyStep(index, pass_.spec(), self._before, graph.clone()))
        self._before = None


def first_failing_prefix(original: Graph, passes: Sequence[Pass], reference: Reference) -> int:
    """The index of the first pass after which the check fails (bisecting pipeline prefixes
    replayed on copies of the original); the check of the whole pipeline must fail."""
    lo, hi = 0, len(passes)  # prefix lo passes ok, prefix hi fails
    while hi - lo > 1:
        mid = (lo + hi) // 2
        graph = original.clone()
        PassManager(list(passes[:mid])).run(graph)
        if reference.check(graph, loosest_contract(passes[:mid])).verdict == FAIL:
            hi = mid
        else:
            lo = mid
    return hi - 1


@dataclass
class PipelineResult:
    model: str
    model_sha256: str
    pipeline: list[str]
    verify: str
    engine: str
    inputs: dict[str, list[Any]]  # the first shape set checked
    input_sets: list[dict[str, list[Any]]]  # every shape set checked (two for a dynamic model)
    records: list[PassRecord]
    verdict: str  # ok | fail | inconclusive | unchecked
    graph: Graph  # after the passes that ran: what a backend compiles
    original: Graph  # as imported, before any pass (snapshot)
    passes: list[Pass]
    reference: Reference | None = None
    final_check: CheckResult | None = None
    failed_pass: int | None = None  # index of the pass after which the check failed (verify each)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    lossy: list[LossyStep] = field(default_factory=list)  # the lossy passes that changed the graph
    doctor: Any = None  # mlc.quantize.doctor.DoctorReport of the first quantizing pass, when checked
    quantization: dict[str, Any] | None = None  # what the accuracy-budget search found (report, manifest)
    pruning: dict[str, Any] | None = None  # `mlc.prune.record.pruning_record` (report, manifest)
    hazards: list[dict[str, Any]] = field(default_factory=list)  # NaN/Inf/overflow/subnormal constants

    @property
    def lossy_check(self) -> CheckResult | None:
        """The check that judged the lossy graph: the final one, or the last check after a pass."""
        if not self.lossy:
            return None
        if self.final_check is not None:
            return self.final_check
        checked = [r.check for r in self.records if r.check is not None and r.index >= self.lossy[0].index]
        return checked[-1] if checked else None

    def lossy_summary(self) -> str | None:
        """`int8: output cosine 0.9995, SQNR 31.2 dB` (None without a checked lossy pass)."""
        check = self.lossy_check
        if check is None:
            return None
        kind = "int8" if any(s.spec.startswith("quantize-qdq") for s in self.lossy) else \
            "pruned" if all(s.spec.startswith("prune-") for s in self.lossy) else \
            "fp16" if all(s.spec.startswith("convert-fp16") for s in self.lossy) else "lossy"
        errors = f", max abs error {check.max_abs:.3g}, max rel error {check.max_rel:.3g}" if kind == "fp16" else ""
        return f"{kind}: {check.lossy_summary()}{errors}"

    @property
    def feeds(self) -> dict[str, np.ndarray]:
        return self.reference.feeds if self.reference is not None else {}

    @property
    def expected(self) -> dict[str, Any]:
        return self.reference.expected if self.reference is not None else {}


def _option_of(passes: Sequence[Pass], name: str, option: str) -> Any:
    for p in passes:
        if p.name == name:
            return p.option(option)
    return None


def check_inputs(original: Graph, passes: Sequence[Pass], checks: CheckOptions) -> Iterator[dict[str, np.ndarray]]:
    """Candidate inputs for the checks, best first, that fit the pipeline's specializations: the
    values `bind-inputs` binds are fed to the original, and `fix-input-shapes`' dims are the shapes
    generated. The user's `--inputs` are the only candidate when given; otherwise each dynamic dim
    gets sizes by its role (`mlc.numerics.inputs.candidate_specs`)."""
    from mlc.passes.fix_input_shapes import check_shapes, parse_shapes

    bind_file = _option_of(passes, "bind-inputs", "file")
    bound = read_npz(bind_file) if bind_file else {}
    declared = {v.name: v for v in original.inputs}
    for name in bound:
        if name not in declared:  # before any input is generated for the original
            raise BadInputError(f"{bind_file}: cannot bind input {name!r}: the model has no such input "
                                f"(inputs: {', '.join(declared) or 'none'})")
    from mlc.passes.bind_inputs import bound_array

    bound = {name: bound_array(name, declared[name].type, np.asarray(array), str(bind_file))
             for name, array in bound.items() if declared[name].type is not None}
    fixed = parse_shapes(_option_of(passes, "fix-input-shapes", "shapes") or "")
    check_shapes(original, fixed)
    calibration = _option_of(passes, "calibrate", "data")
    if not checks.inputs_path and calibration and not fixed and not bound:
        from mlc.pipelines import is_random

        if not is_random(str(calibration)):
            yield calibration_feeds(original, str(calibration))
            return
    if checks.inputs_path:
        feeds = load_inputs(checks.inputs_path, original, bound)
        for name, dims in fixed.items():
            if name in feeds and tuple(feeds[name].shape) != tuple(dims):
                raise BadInputError(f"{checks.inputs_path}: {name} has shape {list(feeds[name].shape)} but "
                                    f"--input-shape fixes it to {list(dims)}")
        yield {**feeds, **bound}
        return
    spec = checks.input_spec
    for name, dims in fixed.items():
        given = spec.shapes.get(name)
        if given is not None and tuple(given) != tuple(dims):
            raise BadInputError(f"--input-shape {name}:{','.join(map(str, given))} contradicts "
                                f"the fixed shape {name}:{','.join(map(str, dims))}")
    for name, array in bound.items():
        fixed.setdefault(name, tuple(array.shape))
    spec = InputSpec(seed=spec.seed, shapes={**spec.shapes, **fixed}, ranges=spec.ranges,
                     default_dim=spec.default_dim, dims=spec.dims)
    for candidate in candidate_specs(original, spec):
        yield {**make_inputs(original, candidate), **bound}


CHECK_SAMPLES = 16  # calibration samples a quantized pipeline is checked on


def calibration_feeds(original: Graph, data: str) -> dict[str, np.ndarray]:
    """The first calibration samples, as check inputs of a pipeline that quantizes: a lossy pass
    is judged on data like the data its ranges come from (generated inputs fall outside them
    and would measure clipping, not quantization)."""
    from mlc.quantize.data import CalibrationData

    return next(iter(CalibrationData.load(data, original).batches(CHECK_SAMPLES)))


def dims_hint(original: Graph, checks: CheckOptions) -> str:
    """`height (x[2]), width (x[3])`: the dynamic dims the checks choose, for error messages."""
    dynamic = dynamic_dims(original, checks.input_spec.shapes)
    return ", ".join(f"{key.split(':')[0] if ':' not in key else '?'} ({where})" for key, (_, where) in dynamic.items())


def _sha256(source: str | Path | bytes | Any) -> str:
    import hashlib

    if isinstance(source, str | Path):
        return file_sha256(source)
    data = source if isinstance(source, bytes) else source.SerializeToString()
    return hashlib.sha256(data).hexdigest()


def quiet_onnxruntime() -> None:
    """Keep onnxruntime's own logger off stderr (DESIGN: nothing a backend library logs reaches
    stderr unasked): its errors reach mlc as exceptions and become one line; its log lines (a
    failed allocation, a kernel's status) would come before that line, in colour."""
    try:
        import onnxruntime as ort
    except ImportError:
        return
    ort.set_default_logger_severity(4)


def run_pipeline(source: str | Path | bytes | Any, passes: Sequence[Pass], checks: CheckOptions | None = None,
                 instruments: Sequence[Instrument] = (), *, stop_after: int | None = None,
                 max_rewrites: int | None = None, graph: Graph | None = None) -> PipelineResult:
    """Import `source` (a path, bytes or ModelProto; or take `graph`, already imported), run
    `passes` on it under `instruments` and the numeric checks of `checks`."""
    checks = checks or CheckOptions()
    if checks.verify not in VERIFY_MODES:
        raise BadInputError(f"--verify {checks.verify}: expected one of {', '.join(VERIFY_MODES)}")
    started = time.perf_counter()
    shown = str(source) if isinstance(source, str | Path) else "the model"
    if graph is None:
        graph = import_onnx(source)
        verify(graph)
    check_runnable(graph, shown)
    quiet_onnxruntime()
    original = graph.clone()
    passes = list(passes) if stop_after is None else list(passes)[:stop_after]
    reference: Reference | None = None
    feeds: dict[str, np.ndarray] = {}
    if checks.verify != "none":
        try:
            reference = Reference(original, check_inputs(original, passes, checks), checks.second_opinion,
                                  shown=shown, dims_hint=dims_hint(original, checks),
                                  gate=LossyGate(checks.lossy_min_cosine))
        except ReferenceError as error:  # the original itself does not run: bad input, named by its file
            raise ReferenceError(f"{shown}: {error}") from error
        feeds = reference.feeds
    hazards = scan_constants(original) if checks.verify != "none" else None
    numeric = NumericCheck(reference, passes) if reference is not None and checks.verify == "each" else None
    snapshots = LossySnapshots()
    manager = PassManager(passes, [*instruments, snapshots, *([numeric] if numeric else [])],
                          max_rewrites={i: max_rewrites for i in range(len(passes))}
                          if max_rewrites is not None else None)
    records = manager.run(graph)
    verdict = "unchecked"
    final_check = None
    failed_pass = None
    if numeric is not None:
        verdicts = [r.check.verdict for r in records if r.check is not None]
        verdict = FAIL if FAIL in verdicts else INCONCLUSIVE if INCONCLUSIVE in verdicts else OK
        failed_pass = records[-1].index if verdict == FAIL else None
    elif reference is not None:
        final_check = reference.check(graph, loosest_contract(passes))
        verdict = final_check.verdict
    name = str(source) if isinstance(source, str | Path) else "<model>"
    doctor = None
    if reference is not None and snapshots.steps:
        from mlc.quantize.doctor import diagnose

        quantizing = [s for s in snapshots.steps if s.spec.startswith(("quantize-qdq", "quantize-dynamic"))]
        if quantizing:  # the doctor measures quantization error (not pruning's)
            step = quantizing[0]
            doctor = diagnose(step.before, step.after, reference.feeds, engine=reference.engine)
    return PipelineResult(
        model=name, model_sha256=_sha256(source) if source is not None else "", pipeline=[p.spec() for p in passes],
        verify=checks.verify, engine=reference.engine if reference else ORT,
        inputs={k: [str(v.dtype), list(v.shape)] for k, v in feeds.items()},
        input_sets=[{k: [str(v.dtype), list(v.shape)] for k, v in f.items()} for f, _ in reference.sets]
        if reference else [], records=records, verdict=verdict,
        graph=graph, original=original, passes=passes, reference=reference, final_check=final_check,
        failed_pass=failed_pass, seconds=time.perf_counter() - started,
        notes=[*(reference.notes if reference else []), *hazard_notes(hazards)], lossy=snapshots.steps,
        doctor=doctor, hazards=hazards.to_json() if hazards else [])


def hazard_notes(hazards: HazardScan | None) -> list[str]:
    """The scan's lines for the report's notes; NaN, Inf or overflow in the weights reach the
    original's outputs too, so a check cannot tell a broken pass from broken weights there."""
    if hazards is None:
        return []
    lines = hazards.lines()
    if hazards.has_non_finite:
        lines.append("weights: outputs reached by NaN/Inf weights are NaN/Inf in the original too; "
                     "the check cannot judge them")
    return lines
