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
4. a reproducer folder (`--reproducer DIR`, else a new temporary folder that the output names;
   never the working folder): the IR before the pass (`before.onnx`, `before.txt`), the inputs,
   the pass and its options, and a one-line command that replays the failure. DIR is checked
   before anything runs: new, empty or an earlier reproducer, and never a file, the working
   folder nor a folder holding an input (replaying `before.onnx` into its own folder would
   write over the model being debugged).

The pipeline itself runs through `mlc.runner.run_pipeline`, exactly as `mlc compile` runs it:
this module adds only what debugging needs on top (localization and reproducers).

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
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from mlc.errors import BadInputError
from mlc.instruments import IRDumper, save_mlc_onnx, written_by_mlc
from mlc.ir.core import Graph
from mlc.ir.printer import print_ir
from mlc.ir.verifier import verify
from mlc.numerics.compare import FAIL, CheckResult, OutputCheck, compare_array
from mlc.numerics.reference import ReferenceError, run_model
from mlc.onnx_io.exporter import export_onnx
from mlc.onnx_io.importer import import_onnx
from mlc.output_guard import guard_output_folder, is_ir_text, protected_inputs, save_npz, write_file_atomically
from mlc.pass_api import Numerics, Pass
from mlc.pass_manager import Instrument, PassFailedError, PassManager, PassRecord
from mlc.runner import CheckOptions, PipelineResult, Reference, first_failing_prefix, loosest_contract, run_pipeline

# What a reproducer folder holds (`before.onnx.data` only for a model past protobuf's 2 GB).
REPRODUCER_FILES = ("before.onnx", "before.onnx.data", "before.txt", "inputs.npz", "pass.json", "command.sh")
_SCRIPT_HEAD = "#!/bin/sh\n# replays the failure"
_PASS_KEYS = {"pass", "options", "numerics", "max_rewrites"}


def _reproducer_file_is_ours(path: Path) -> bool:
    """Whether a file of a reproducer folder is one an earlier `mlc debug` wrote (by content):
    then a new reproducer may replace it."""
    try:
        if path.name == "command.sh":
            with path.open("rb") as stream:
                return stream.read(len(_SCRIPT_HEAD)) == _SCRIPT_HEAD.encode()
        if path.name == "pass.json":
            if path.stat().st_size > 1 << 20:
                return False
            data = json.loads(path.read_bytes())
            return isinstance(data, dict) and set(data) == _PASS_KEYS and isinstance(data["pass"], str)
    except (OSError, ValueError, RecursionError):
        return False
    return is_ir_text(path) if path.name == "before.txt" else written_by_mlc(path)


def guard_reproducer(folder: str | Path, protected: list[Path]) -> Path:
    """`--reproducer DIR` checked (one line, exit 2) and resolved: see `guard_output_folder`."""
    return guard_output_folder(folder, writes=REPRODUCER_FILES.__contains__, ours=_reproducer_file_is_ours,
                               protected=protected, flag="--reproducer")


@dataclass
class DebugOptions:
    """What `mlc debug` adds to a pipeline run: a prefix, a rewrite budget, where reproducers go."""

    stop_after: int | None = None
    max_rewrites: int | None = None
    reproducer_dir: str | None = None
    target: str | None = None  # named in reproducer commands
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
class DebugResult(PipelineResult):
    localization: Localization | None = None


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
    def __init__(self, source: str, passes: list[Pass], checks: CheckOptions, options: DebugOptions,
                 instruments: list[Instrument]) -> None:
        self.model_path = source
        self.passes = passes
        self.checks = checks
        self.options = options
        self.instruments = instruments
        self.reference: Reference | None = None  # set once the pipeline ran (a crash may come first)
        self.protected: list[Path] = []

    # ---------------------------------------------------------------- main flow
    def guard_outputs(self) -> None:
        """Refuse, before any work, a reproducer or dump folder that would write over an input:
        the model, its external data, `--inputs`, the files the passes read, a loaded plugin."""
        plugins = [m for m in self.options.loaded_modules if m.endswith(".py")]
        self.protected = protected_inputs(self.model_path, self.checks.inputs_path, *plugins, passes=self.passes)
        if self.options.reproducer_dir:
            guard_reproducer(self.options.reproducer_dir, self.protected)
        for instrument in self.instruments:
            if isinstance(instrument, IRDumper):
                instrument.protect(self.protected)

    def run(self) -> DebugResult:
        self.guard_outputs()
        graph = import_onnx(self.model_path)
        verify(graph)
        self.original = graph.clone()
        passes = self.passes if self.options.stop_after is None else self.passes[:self.options.stop_after]
        try:
            result = run_pipeline(self.model_path, passes, self.checks, self.instruments, graph=graph,
                                  max_rewrites=self.options.max_rewrites)
        except PassFailedError as error:
            self.crash_reproducer(error, passes)
            raise
        debug = DebugResult(**{f.name: getattr(result, f.name) for f in fields(PipelineResult)})
        self.reference = result.reference
        if result.verdict == FAIL and result.failed_pass is not None:
            index = result.failed_pass
            debug.localization = self.localize(index, passes[index], self.replay(self.original, passes[:index])[0],
                                               result.records[index], "check after each pass")
            debug.localization.check = result.records[index].check
        elif result.verdict == FAIL and result.final_check is not None:
            debug.localization = self.bisect_prefix(passes, result.records)
            debug.localization.check = result.final_check
        debug.notes = list(debug.notes) + (self.reference.notes[len(debug.notes):] if self.reference else [])
        return debug

    def check(self, graph: Graph, numerics: Numerics) -> CheckResult:
        assert self.reference is not None
        return self.reference.check(graph, numerics)

    # ---------------------------------------------------------------- localization
    @staticmethod
    def replay(start: Graph, passes: list[Pass], max_rewrites: dict[int, int] | None = None,
               ) -> tuple[Graph, list[PassRecord]]:
        graph = start.clone()
        records = PassManager(passes, max_rewrites=max_rewrites).run(graph)
        return graph, records

    def bisect_prefix(self, passes: list[Pass], records: list[PassRecord]) -> Localization:
        """Find the shortest failing prefix of the pipeline (its last pass is the culprit)."""
        assert self.reference is not None
        index = first_failing_prefix(self.original, passes, self.reference)
        before_graph, _ = self.replay(self.original, passes[:index])
        return self.localize(index, passes[index], before_graph, records[index], "bisection of the pipeline prefix")

    def localize(self, index: int, pass_: Pass, before: Graph, record: PassRecord, found_by: str) -> Localization:
        loc = Localization(index, pass_.spec(), found_by, record.rewrites)
        numerics = loosest_contract(self.passes[:index + 1])
        after: Graph | None = None
        if record.rewrites > 0:
            lo, hi = 0, record.rewrites  # lo rewrites are fine, hi rewrites fail
            if self.options.max_rewrites is not None:
                hi = min(hi, self.options.max_rewrites)
            while hi - lo > 1:
                mid = (lo + hi) // 2
                graph, _ = self.replay(before, [pass_], {0: mid})
                if self.check(graph, numerics).verdict == FAIL:
                    hi = mid
                else:
                    lo = mid
            after, records = self.replay(before, [pass_], {0: hi})
            loc.first_bad_rewrite = hi
            loc.rule = records[0].last_rule
        if after is None:
            after, _ = self.replay(before, [pass_])
        loc.tensor = self.first_divergence(before, after, pass_.numerics)
        loc.reproducer, loc.command = self.write_reproducer(before, pass_, loc.first_bad_rewrite)
        return loc

    def first_divergence(self, before_graph: Graph, after_graph: Graph,
                         numerics: Numerics) -> TensorDivergence | None:
        """The first value of `after`, in topological order, that differs from its counterpart."""
        assert self.reference is not None
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
        feeds, engine = self.reference.feeds, self.reference.engine
        try:
            want = run_model(export_onnx(before_graph), feeds, sorted({c[1] for c in candidates}), engine)
            have = run_model(export_onnx(after_graph), feeds, [c[0] for c in candidates], engine)
        except ReferenceError as error:
            self.reference.notes.append(f"intermediate values could not be compared: {error}")
            return None
        for after_name, before_name, matched_by, node in candidates:
            check = compare_array(after_name, want[before_name], have[after_name], numerics)
            if check.verdict == FAIL:
                return TensorDivergence(after_name, node.name, node.op_type, list(node.origin), node.created_by,
                                        matched_by, check)
        return None

    def crash_reproducer(self, error: PassFailedError, passes: list[Pass]) -> None:
        """A pass raised or broke the IR: write its input and a replay command, and say where."""
        index = getattr(error, "pass_index", None)
        if index is None or index >= len(passes):
            return
        before, _ = self.replay(self.original, passes[:index])
        feeds = self.reference.feeds if self.reference is not None else None
        folder, command = self.write_reproducer(before, passes[index], None, feeds)
        error.args = (f"{error.args[0] if error.args else error}; reproducer: {folder}; replay: {command}",)

    def write_reproducer(self, before: Graph, pass_: Pass, max_rewrites: int | None,
                         feeds: dict[str, np.ndarray] | None = None) -> tuple[str, str]:
        if self.options.reproducer_dir:  # checked before the run; again now, just before writing
            folder = guard_reproducer(self.options.reproducer_dir, self.protected)
            folder.mkdir(parents=True, exist_ok=True)
        else:
            folder = Path(tempfile.mkdtemp(prefix=f"mlc-repro-{Path(self.model_path).stem}-"))
        save_mlc_onnx(before, folder / "before.onnx")
        text = print_ir(before, debug_info=True)
        write_file_atomically(folder / "before.txt", lambda tmp: tmp.write_text(text))
        if feeds is None and self.reference is not None:
            feeds = self.reference.feeds
        args = ["mlc", "debug", "before.onnx", "--passes", pass_.spec()]
        if self.options.target:
            args += ["--target", self.options.target]
        if feeds:
            save_npz(folder / "inputs.npz", feeds)
            args += ["--inputs", "inputs.npz"]
        if max_rewrites is not None:
            args += ["--max-rewrites", str(max_rewrites)]
        module = type(pass_).__module__
        if not module.startswith("mlc.passes"):
            source = sys.modules[module].__file__
            if source:
                args += ["--load", str(Path(source).resolve())]
        command = f"cd {shlex.quote(str(folder))} && " + " ".join(shlex.quote(a) for a in args)
        spec = json.dumps({"pass": pass_.spec(), "options": pass_.values, "numerics": pass_.numerics.value,
                           "max_rewrites": max_rewrites}, indent=1, default=str)
        write_file_atomically(folder / "pass.json", lambda tmp: tmp.write_text(spec))
        script = f"{_SCRIPT_HEAD}: exit code 1 and the same pass\n{command}\n"
        write_file_atomically(folder / "command.sh", lambda tmp: tmp.write_text(script))
        return str(folder), command


def debug_model(source: str, passes: list[Pass], checks: CheckOptions | None = None,
                options: DebugOptions | None = None, instruments: list[Instrument] | None = None) -> DebugResult:
    """Run `passes` on `source` through the pipeline runner and localize a numeric break."""
    return _Debugger(source, passes, checks or CheckOptions(verify="each"), options or DebugOptions(),
                     list(instruments or [])).run()
