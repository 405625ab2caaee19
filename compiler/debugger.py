"""`mlc debug`: run a pipeline pass by pass, check the numbers, and localize a break.

After each pass that changed the graph (`--verify each`) the graph is exported and run under the
reference (onnxruntime, optimizer off) on the same inputs as the original, and compared with the
original's outputs under the tolerance of the loosest contract seen so far. When a check fails:

1. the first diverging pass is the one just run (or, with `--verify final`, is found by
   bisecting the pipeline prefix: `--stop-after N` runs the first N passes);
2. the first rewrite that breaks the numbers: the pass is replayed on its input with
   `max_rewrites = m`, bisecting m;
3. the first diverging tensor: every intermediate value of the graph before and after the pass
   is computed and matched by name, else by provenance (the source ONNX nodes a node stands for);
   the first one, in topological order, that differs beyond tolerance names the node;
4. a reproducer folder: the IR before the pass (`before.onnx`, `before.txt`), the inputs, the
   pass and its options, and a one-line command that replays the failure.

A failing check is confirmed by onnx's reference evaluator; when the two references disagree the
verdict is `inconclusive` and the pass is not blamed.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlc.errors import BadInputError
from mlc.hashing import file_sha256
from mlc.ir.core import Graph
from mlc.ir.printer import print_ir
from mlc.ir.verifier import verify
from mlc.numerics.compare import FAIL, INCONCLUSIVE, OK, CheckResult, OutputCheck, compare_array, compare_outputs
from mlc.numerics.inputs import InputSpec, load_inputs, make_inputs, read_npz
from mlc.numerics.reference import (
    ORT,
    REFERENCE,
    PreparedModel,
    ReferenceError,
    WeightCache,
    run_model,
    run_with_fallback,
)
from mlc.onnx_io.exporter import export_onnx
from mlc.onnx_io.importer import import_onnx
from mlc.pass_api import Numerics, Pass
from mlc.pass_manager import Instrument, PassFailedError, PassManager, PassRecord

Model = Any  # an onnx.ModelProto: this module hands models between export and the reference, opaquely

_SEVERITY = {Numerics.EXACT: 0, Numerics.TOLERANCE: 1, Numerics.LOSSY: 2}


@dataclass
class DebugOptions:
    passes: list[Pass]
    verify: str = "each"  # each | final | none
    inputs_path: str | None = None
    input_spec: InputSpec = field(default_factory=InputSpec)
    stop_after: int | None = None
    max_rewrites: int | None = None
    reproducer_dir: str | None = None
    second_opinion: bool = True
    freeze_inputs: bool = False
    bind_inputs_path: str | None = None  # .npz of input values to compile the model for (specialization)
    static_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # input dims fixed at import
    loaded_modules: list[str] = field(default_factory=list)


@dataclass
class TensorDivergence:
    value: str
    node: str
    op_type: str
    origin: list[str]
    created_by: str
    matched_by: str  # "name" | "provenance"
    check: OutputCheck

    def to_json(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["check"] = self.check.to_json()
        return data


@dataclass
class Localization:
    pass_index: int
    pass_spec: str
    found_by: str  # "check after each pass" | "bisection of the pipeline prefix"
    rewrites: int
    first_bad_rewrite: int | None = None
    rule: str | None = None
    tensor: TensorDivergence | None = None
    reproducer: str | None = None
    command: str | None = None
    check: CheckResult | None = None

    def to_json(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k not in ("tensor", "check")}
        data["tensor"] = self.tensor.to_json() if self.tensor else None
        data["check"] = self.check.to_json() if self.check else None
        return data


@dataclass
class DebugResult:
    model: str
    model_sha256: str
    pipeline: list[str]
    verify: str
    engine: str
    inputs: dict[str, list[Any]]
    records: list[PassRecord]
    verdict: str  # ok | fail | inconclusive | unchecked
    final_check: CheckResult | None = None
    localization: Localization | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    graph: Graph | None = None  # the graph after the passes that ran (what compile hands the backend)
    feeds: dict[str, Any] = field(default_factory=dict)
    expected: dict[str, Any] = field(default_factory=dict)  # the original's outputs on `feeds`


def load_plugin(spec: str) -> str:
    """Import a module (dotted name or .py path) whose passes register themselves."""
    path = Path(spec)
    if spec.endswith(".py"):
        if not path.is_file():
            raise BadInputError(f"--load {spec}: no such file")
        module_name = f"mlc_plugin_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]}"
        if module_name not in sys.modules:
            loader_spec = importlib.util.spec_from_file_location(module_name, path)
            if loader_spec is None or loader_spec.loader is None:
                raise BadInputError(f"--load {spec}: cannot import this file")
            module = importlib.util.module_from_spec(loader_spec)
            sys.modules[module_name] = module
            loader_spec.loader.exec_module(module)
        return str(path.resolve())
    try:
        module = importlib.import_module(spec)
    except ImportError as error:
        raise BadInputError(f"--load {spec}: {error}") from None
    return str(Path(module.__file__).resolve()) if module.__file__ else spec


class _Debugger:
    def __init__(self, model_path: str, options: DebugOptions, instruments: list[Instrument]) -> None:
        self.model_path = model_path
        self.options = options
        self.instruments = instruments
        self.notes: list[str] = []
        self.weights = WeightCache()

    # ---------------------------------------------------------------- checks
    def check(self, model: Model, numerics: Numerics) -> CheckResult:
        got = run_model(model, self.feeds, self.output_names, self.engine)
        result = compare_outputs(self.expected, got, numerics, self.engine)
        if result.verdict == FAIL and self.options.second_opinion and self.engine == ORT:
            result = self.second_opinion(model, numerics, result)
        return result

    def second_opinion(self, model: Model, numerics: Numerics, first: CheckResult) -> CheckResult:
        """onnx's reference evaluator re-judges a failure; disagreement means we cannot blame the pass."""
        try:
            ref_expected = run_model(self.original, self.feeds, self.output_names, REFERENCE)
            ref_got = run_model(model, self.feeds, self.output_names, REFERENCE)
        except ReferenceError as error:
            first.note = f"second opinion unavailable ({error})"
            return first
        second = compare_outputs(ref_expected, ref_got, numerics, REFERENCE)
        if second.verdict == OK:
            first.verdict = INCONCLUSIVE
            first.note = ("the references disagree: onnxruntime sees a difference, onnx.reference does not; "
                          "not blaming the pass")
        else:
            first.note = "confirmed by onnx.reference"
        return first

    def numerics_of(self, passes: list[Pass]) -> Numerics:
        worst = Numerics.EXACT
        for p in passes:
            if _SEVERITY[p.numerics] > _SEVERITY[worst]:
                worst = p.numerics
        return worst

    # ---------------------------------------------------------------- main flow
    def run(self) -> DebugResult:
        started = time.perf_counter()
        opts = self.options
        bound = read_npz(opts.bind_inputs_path) if opts.bind_inputs_path else {}
        graph = import_onnx(self.model_path, freeze_inputs=opts.freeze_inputs, bind_inputs=bound,
                            static_shapes=opts.static_shapes)
        verify(graph)
        self.original = export_onnx(graph)
        self.output_names = [v.name for v in graph.outputs]
        self.feeds = (load_inputs(opts.inputs_path, graph, bound) if opts.inputs_path
                      else make_inputs(graph, opts.input_spec))
        self.engine = ORT
        if opts.verify != "none":
            self.expected, self.engine = run_with_fallback(self.original, self.feeds, self.output_names)
            if self.engine != ORT:
                self.notes.append("onnxruntime cannot run this model; onnx.reference is the reference")
        passes = opts.passes if opts.stop_after is None else opts.passes[:opts.stop_after]
        manager = PassManager(passes, self.instruments,
                              max_rewrites={i: opts.max_rewrites for i in range(len(passes))}
                              if opts.max_rewrites is not None else None)
        records: list[PassRecord] = []
        localization: Localization | None = None
        current = self.original
        verdict = "unchecked"
        final_check = None
        for index, pass_ in enumerate(passes):
            before = current
            if opts.verify != "each" and index > 0:
                before = None  # not snapshotted: a crash reproducer replays the prefix instead
            try:
                record = manager.run_one(index, pass_, graph, [p.spec() for p in passes[:index]])
            except PassFailedError as error:
                self.crash_reproducer(error, index, pass_, passes, before)
                raise
            records.append(record)
            if opts.verify != "each":
                continue
            if record.changed:
                current = self.weights.prepare(graph)
                record.check = self.check(current, self.numerics_of(passes[:index + 1]))
            if record.check is not None and record.check.verdict == FAIL:
                localization = self.localize(index, pass_, before, record, "check after each pass")
                localization.check = record.check
                verdict = FAIL
                break
            if record.check is not None and record.check.verdict == INCONCLUSIVE:
                verdict = INCONCLUSIVE
        if opts.verify == "each" and verdict == "unchecked":
            verdict = OK
        if opts.verify == "final":
            final_check = self.check(self.weights.prepare(graph), self.numerics_of(passes))
            verdict = final_check.verdict
            if verdict == FAIL:
                localization = self.bisect_prefix(passes, records)
                localization.check = final_check
        return DebugResult(
            model=self.model_path, model_sha256=file_sha256(self.model_path), pipeline=[p.spec() for p in passes],
            verify=opts.verify, engine=self.engine,
            inputs={k: [str(v.dtype), list(v.shape)] for k, v in self.feeds.items()},
            records=records, verdict=verdict, final_check=final_check, localization=localization,
            seconds=time.perf_counter() - started, notes=self.notes, graph=graph, feeds=self.feeds,
            expected=getattr(self, "expected", {}))

    # ---------------------------------------------------------------- localization
    def replay(self, start: Model, passes: list[Pass], max_rewrites: dict[int, int] | None = None,
               ) -> tuple[Graph, list[PassRecord]]:
        graph = import_onnx(start)
        records = PassManager(passes, max_rewrites=max_rewrites).run(graph)
        return graph, records

    def bisect_prefix(self, passes: list[Pass], records: list[PassRecord]) -> Localization:
        """Find the shortest failing prefix of the pipeline (its last pass is the culprit)."""
        lo, hi = 0, len(passes)  # prefix lo passes ok, prefix hi fails
        while hi - lo > 1:
            mid = (lo + hi) // 2
            graph, _ = self.replay(self.original, passes[:mid])
            if self.check(self.weights.prepare(graph), self.numerics_of(passes[:mid])).verdict == FAIL:
                hi = mid
            else:
                lo = mid
        index = hi - 1
        before_graph, _ = self.replay(self.original, passes[:index])
        return self.localize(index, passes[index], export_onnx(before_graph), records[index],
                             "bisection of the pipeline prefix")

    def localize(self, index: int, pass_: Pass, before: Model, record: PassRecord,
                 found_by: str) -> Localization:
        if isinstance(before, PreparedModel):
            before = before.inline()
        loc = Localization(index, pass_.spec(), found_by, record.rewrites)
        numerics = self.numerics_of(self.options.passes[:index + 1])
        after_model: Model | None = None
        if record.rewrites > 0:
            lo, hi = 0, record.rewrites  # lo rewrites are fine, hi rewrites fail
            if self.options.max_rewrites is not None:
                hi = min(hi, self.options.max_rewrites)
            hi_model = None
            while hi - lo > 1:
                mid = (lo + hi) // 2
                graph, _ = self.replay(before, [pass_], {0: mid})
                model = self.weights.prepare(graph)
                if self.check(model, numerics).verdict == FAIL:
                    hi, hi_model = mid, model.inline()
                else:
                    lo = mid
            graph, records = self.replay(before, [pass_], {0: hi})
            after_model = hi_model or export_onnx(graph)
            loc.first_bad_rewrite = hi
            loc.rule = records[0].last_rule
        if after_model is None:
            graph, _ = self.replay(before, [pass_])
            after_model = export_onnx(graph)
        loc.tensor = self.first_divergence(before, after_model, pass_.numerics)
        loc.reproducer, loc.command = self.write_reproducer(before, pass_, loc.first_bad_rewrite)
        return loc

    def first_divergence(self, before: Model, after: Model,
                         numerics: Numerics) -> TensorDivergence | None:
        """The first value of `after`, in topological order, that differs from its counterpart."""
        before_graph, after_graph = import_onnx(before), import_onnx(after)
        by_name = {v.name for n in before_graph for v in n.outputs if v is not None}
        by_origin: dict[str, list[str | None]] = {}
        for node in before_graph:
            for origin in node.origin:
                by_origin.setdefault(origin, [v.name if v is not None else None for v in node.outputs])
        candidates: list[tuple[str, str, str, Any]] = []  # (after value, before value, matched_by, node)
        for node in after_graph:
            for i, value in enumerate(node.outputs):
                if value is None:
                    continue
                if value.name in by_name:
                    candidates.append((value.name, value.name, "name", node))
                    continue
                for origin in node.origin:
                    names = by_origin.get(origin)
                    if names and i < len(names) and names[i] is not None:
                        candidates.append((value.name, names[i], "provenance", node))  # type: ignore[arg-type]
                        break
        if not candidates:
            return None
        try:
            want = run_model(before, self.feeds, sorted({c[1] for c in candidates}), self.engine)
            have = run_model(after, self.feeds, [c[0] for c in candidates], self.engine)
        except ReferenceError as error:
            self.notes.append(f"intermediate values could not be compared: {error}")
            return None
        for after_name, before_name, matched_by, node in candidates:
            check = compare_array(after_name, want[before_name], have[after_name], numerics)
            if check.verdict == FAIL:
                return TensorDivergence(after_name, node.name, node.op_type, list(node.origin), node.created_by,
                                        matched_by, check)
        return None

    def crash_reproducer(self, error: PassFailedError, index: int, pass_: Pass, passes: list[Pass],
                         before: Model | None) -> None:
        """A pass raised or broke the IR: write its input and a replay command, and say where."""
        if before is None:
            graph, _ = self.replay(self.original, passes[:index])
            before = export_onnx(graph)
        elif isinstance(before, PreparedModel):
            before = before.inline()
        folder, command = self.write_reproducer(before, pass_, None)
        error.args = (f"{error.args[0] if error.args else error}; reproducer: {folder}; replay: {command}",)

    def write_reproducer(self, before: Model, pass_: Pass,
                         max_rewrites: int | None) -> tuple[str, str]:
        folder = Path(self.options.reproducer_dir or f"mlc-repro-{Path(self.model_path).stem}").resolve()
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "before.onnx").write_bytes(before.SerializeToString())
        (folder / "before.txt").write_text(print_ir(import_onnx(before), debug_info=True))
        np.savez(folder / "inputs.npz", **self.feeds)
        args = ["mlc", "debug", "before.onnx", "--passes", pass_.spec(), "--inputs", "inputs.npz"]
        if max_rewrites is not None:
            args += ["--max-rewrites", str(max_rewrites)]
        module = type(pass_).__module__
        if not module.startswith("mlc.passes"):
            source = sys.modules[module].__file__
            if source:
                args += ["--load", str(Path(source).resolve())]
        command = f"cd {shlex.quote(str(folder))} && " + " ".join(shlex.quote(a) for a in args)
        (folder / "pass.json").write_text(json.dumps({"pass": pass_.spec(), "options": pass_.values,
                                                      "numerics": pass_.numerics.value,
                                                      "max_rewrites": max_rewrites}, indent=1, default=str))
        (folder / "command.sh").write_text("#!/bin/sh\n# replays the failure: exit code 1 and the same pass\n"
                                           + command + "\n")
        return str(folder), command


def run_debug(model_path: str, options: DebugOptions, instruments: list[Instrument] | None = None) -> DebugResult:
    return _Debugger(model_path, options, list(instruments or [])).run()
