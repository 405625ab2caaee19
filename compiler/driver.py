"""`mlc.compile` and `mlc.optimize`: build the pipeline for a target, run it through the one
runner (numbers checked), then write an artifact folder or an optimized model.

The pipeline comes from `mlc.pipelines.build_pipeline` and runs through
`mlc.runner.run_pipeline`, exactly as `mlc debug --target T` runs it; localization and
reproducers belong to `mlc debug`, so a compile whose numbers break stops with exit code 1,
names the pass when it was checked after each pass, prints the `mlc debug` command that replays
it, and writes nothing.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mlc.artifact import FORMAT_VERSION, write_artifact
from mlc.backends.base import Backend
from mlc.errors import BadInputError, NumericMismatchError
from mlc.hashing import file_sha256
from mlc.ir.core import Graph
from mlc.ir.printer import format_type
from mlc.numerics.inputs import InputSpec
from mlc.output_guard import guard_output, write_file_atomically
from mlc.pass_api import Numerics, Pass
from mlc.pass_manager import Instrument, PassFailedError
from mlc.pipelines import DEFAULT_LEVEL, DEFAULT_PRECISION, PruneOptions, QuantizeOptions, build_pipeline
from mlc.report import tool_versions
from mlc.runner import CheckOptions, PipelineResult, first_failing_prefix, loosest_contract, run_pipeline
from mlc.targets import require

Stage = Callable[[str], Any]  # a progress reporter: stage("building") returns a context manager


@dataclass
class PipelineRequest:
    """Everything that decides which passes run: the same fields for compile, debug and optimize."""

    target: str | None = "onnxruntime"
    level: str | None = None
    passes: str | None = None
    disabled: tuple[str, ...] = ()
    pass_options: tuple[str, ...] = ()
    freeze_inputs: bool = False
    bind_inputs: str | None = None
    static_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    quantize: str | None = None  # "int8" or "int8-dynamic"
    calibration: QuantizeOptions | None = None
    model: str | None = None  # names the default calibration table
    accuracy_budget: str | None = None  # `mlc.quantize.search.parse_budget`
    eval_data: str | None = None
    prune: PruneOptions | None = None  # `--prune` and its flags
    measure_latency: bool = False  # with `prune`: latency before/after on the target (and onnxruntime)
    precision: str = DEFAULT_PRECISION  # "fp32" or "fp16" (`convert-fp16`)

    def build(self, model: str | Path | None = None) -> list[Pass]:
        return build_pipeline(self.level, self.passes, self.disabled, self.pass_options, target=self.target,
                              freeze_inputs=self.freeze_inputs, bind_inputs=self.bind_inputs,
                              static_shapes=self.static_shapes, quantize=self.quantize,
                              calibration=self.calibration, model=model or self.model, prune=self.prune,
                              precision=self.precision)

    def validate(self) -> None:
        """The quantization flags that only make sense together (one line each, exit 2)."""
        if self.accuracy_budget is not None and self.quantize is None and self.prune is None:
            raise BadInputError("--accuracy-budget needs --quantize int8 or --prune")
        if self.accuracy_budget is not None and self.quantize is not None and self.prune is not None:
            raise BadInputError("--accuracy-budget searches one lossy rewrite at a time: search the --prune ratio "
                                "first (without --quantize), then quantize the pruned model with its budget")
        if self.measure_latency and self.prune is None:
            raise BadInputError("--measure-latency measures pruning's gain: it needs --prune")
        if self.accuracy_budget is not None and self.quantize == "int8-dynamic":
            raise BadInputError("--accuracy-budget searches over the static QDQ pass: use --quantize int8, or keep "
                                "nodes in float under int8-dynamic with --exclude-nodes/--exclude-ops")
        if self.eval_data is not None and self.accuracy_budget is None:
            raise BadInputError("--eval-data needs --accuracy-budget (the budget the evaluation is held to)")
        if self.accuracy_budget is not None:
            from mlc.quantize.search import parse_budget

            parse_budget(self.accuracy_budget)
            if self.eval_data is None:
                raise BadInputError("--accuracy-budget needs --eval-data (an .npz of the model's inputs, with "
                                    "`labels` for top-1 accuracy)")
            if not Path(self.eval_data).is_file():
                raise BadInputError(f"--eval-data {self.eval_data}: no such file")
        if self.quantize is not None or self.calibration is not None or self.prune is not None or \
                self.precision != DEFAULT_PRECISION:
            self.build()  # --quantize without --calibration-data, a bad method, a missing file, a bad precision

    def debug_args(self) -> list[str]:
        """The `mlc debug` flags that build this very pipeline."""
        args = ["--target", self.target] if self.target else []
        args += ["--passes", self.passes] if self.passes is not None else [f"-O{(self.level or DEFAULT_LEVEL)[-1]}"]
        for name in self.disabled:
            args += ["--disable-pass", name]
        for option in self.pass_options:
            args += ["--pass-option", option.lstrip("?")]
        args += ["--freeze-inputs"] if self.freeze_inputs else []
        args += ["--bind-inputs", self.bind_inputs] if self.bind_inputs else []
        for name, dims in sorted(self.static_shapes.items()):
            args += ["--input-shape", f"{name}:{','.join(map(str, dims))}"]
        args += ["--precision", self.precision] if self.precision != DEFAULT_PRECISION else []
        return args + self.prune_args() + self.quantize_args()

    def prune_args(self) -> list[str]:
        """The `--prune` flags that rebuild this pruning (the searched ratio when there was a search)."""
        if self.prune is None:
            return []
        names = list(self.prune.exclude_nodes)
        return self.prune.args() + (["--exclude-nodes", ",".join(names)] if names and self.quantize is None else [])

    def quantize_args(self, resolved_cache: str | None = None) -> list[str]:
        """The `--quantize` flags that rebuild this quantization, the search's float-kept nodes
        as `--exclude-nodes` (so the build is reproduced without searching again)."""
        options = self.calibration
        if self.quantize is None or options is None:
            return []
        if self.quantize == "int8-dynamic":  # nothing calibrated: no data, method or table
            args = ["--quantize", self.quantize]
        else:
            args = ["--quantize", self.quantize, "--calibration-data", options.data]
            if options.method != "minmax":
                args += ["--calibration-method", options.method]
            if options.method == "percentile":
                args += ["--percentile", f"{options.percentile:g}"]
            if options.batch != 16:
                args += ["--calibration-batch", str(options.batch)]
            cache = options.cache or resolved_cache
            args += ["--calibration-cache", cache] if cache else []
        args += [] if options.per_channel else ["--no-per-channel"]
        excluded = list(dict.fromkeys([*options.exclude_nodes, *options.keep_float]))
        args += ["--exclude-nodes", ",".join(excluded)] if excluded else []
        args += ["--exclude-ops", ",".join(options.exclude_ops)] if options.exclude_ops else []
        return args



def default_output(model: str | Path, target: str) -> Path:
    return Path(f"{Path(model).stem}.{target}")


def protected_paths(model: Path, request: PipelineRequest | None = None, checks: CheckOptions | None = None,
                    backend_options: dict[str, Any] | None = None, passes: Sequence[Pass] = ()) -> list[Path]:
    """The files an output must never replace: the model, the external-data files it names and
    every file the request reads (`--inputs`, `--bind-inputs`, `--eval-data`, the calibration data
    and table, the tuning database, TensorRT's `--timing-cache`, files the passes' options name);
    the API protects them as the CLI does."""
    from mlc.output_guard import protected_inputs

    calibration = request.calibration if request is not None else None
    named = [checks.inputs_path if checks else None, request.bind_inputs if request else None,
             request.eval_data if request else None, calibration.data if calibration else None,
             calibration.cache if calibration else None, (backend_options or {}).get("tuning_db"),
             (backend_options or {}).get("timing_cache")]
    return protected_inputs(model, *[n for n in named if n and n != "random"], passes=passes)


def _io(graph: Graph) -> dict[str, Any]:
    return {"inputs": [{"name": v.name, "type": format_type(v.type), "default": v.const is not None}
                       for v in graph.inputs],
            "outputs": [{"name": v.name, "type": format_type(v.type)} for v in graph.outputs]}


_PASS_FIELDS = ("name", "spec", "numerics", "changed", "rewrites", "rules", "nodes_before", "nodes_after",
                "constant_bytes_before", "constant_bytes_after")


def artifact_manifest(graph: Graph, target: str, backend: Backend, compiled: Any, *,
                      result: PipelineResult | None = None, source: Path | None = None,
                      options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The manifest of every artifact, compile's and the conformance backends' alike."""
    manifest: dict[str, Any] = {"format_version": FORMAT_VERSION, "target": target, "backend": backend.name,
                                "options": dict(options or {}), "backend_options": compiled.options,
                                "requirements": compiled.requirements, **_io(graph),
                                "tool_versions": tool_versions()}
    if result is not None:
        manifest["passes"] = [{k: r.to_json()[k] for k in _PASS_FIELDS} for r in result.records]
        precision = _precision_record(result)
        manifest["verification"] = {"verify": result.verify, "verdict": result.verdict, "reference": result.engine,
                                    "inputs": result.inputs,
                                    **({"numeric_hazards": result.hazards} if result.hazards else {}),
                                    **({"precision": precision} if precision else {})}
    if source is not None:
        manifest["source"] = {"name": source.name, "sha256": file_sha256(source)}
    return manifest


def _precision(result: PipelineResult) -> str:
    """`fp16` when convert-fp16 changed the graph (`--precision fp16`, or named in `--passes`), else `fp32`."""
    return "fp16" if any(r.name == "convert-fp16" and r.changed for r in result.records) else "fp32"


def _error_figures(checks: Sequence[Any]) -> dict[str, dict[str, float | None]]:
    """Per float output, over the checks (one per shape set): the largest max abs/rel error and the
    least cosine similarity against the float32 original."""
    figures: dict[str, dict[str, float | None]] = {}
    for check in checks:
        for output in check.outputs:
            if not output.dtype or output.dtype[0] != "f":
                continue
            got = output.to_json()
            seen = figures.setdefault(output.name, {"max_abs": 0.0, "max_rel": 0.0, "cosine": 1.0})
            for key, pick in (("max_abs", max), ("max_rel", max), ("cosine", min)):
                values = [v for v in (seen[key], got[key]) if v is not None]
                seen[key] = pick(values) if values else None
    return figures


def _precision_record(result: PipelineResult) -> dict[str, Any] | None:
    """The manifest's `verification.precision` of a float16 build: the lossy gate and each output's
    measured error of the converted graph (onnxruntime CPU) against the float32 original."""
    check = result.lossy_check
    if _precision(result) != "fp16" or check is None or result.reference is None:
        return None
    return {"precision": "fp16", "gate": result.reference.gate.describe(), "reference": result.engine,
            "graph": _error_figures([check])}


def check_artifact(backend: Backend, target: str, folder: Path, manifest: dict[str, Any],
                   result: PipelineResult, shown: str) -> str:
    """Run the compiled artifact on the check inputs and compare with the original's outputs, so
    that a backend's wrong result is never shipped silently. Returns the verdict recorded."""
    state = backend.check_runnable(target, manifest["requirements"])
    if not state.ok:
        return f"not run here ({state.reason})"
    from mlc.feeds import run_backend

    runner = backend.load(folder, manifest)
    assert result.reference is not None
    # a backend may round differently (TOLERANCE); after a lossy pass its int8 kernels are judged
    # like the lossy graph: by the lossy gate against the float original
    numerics = Numerics.LOSSY if loosest_contract(result.passes) is Numerics.LOSSY else Numerics.TOLERANCE
    verdicts = []
    checks = []
    for feeds, expected in result.reference.sets:  # every shape set the pipeline was checked at
        got = run_backend(runner.run, feeds, target=target)
        check = result.reference.compare(expected, got, numerics)
        if check.verdict == "fail":
            worst = "; ".join(o.describe() for o in check.outputs if o.verdict != "ok")
            shapes = ", ".join(f"{k} {list(v.shape)}" for k, v in feeds.items())
            raise NumericMismatchError(f"{shown}: the {target} artifact computes different numbers from the "
                                       f"original under {result.engine} at {shapes}: {worst}; no artifact written")
        verdicts.append(check.verdict)
        checks.append(check)
    precision = manifest.get("verification", {}).get("precision")
    if precision is not None:  # a float16 build: the artifact's own error against the float32 original
        precision["artifact"] = _error_figures(checks)
    return "inconclusive" if "inconclusive" in verdicts else "ok"


def build_artifact(graph: Graph, target: str, folder: Path, *, backend_options: dict[str, Any] | None = None,
                   result: PipelineResult | None = None, source: Path | None = None,
                   recorded: dict[str, Any] | None = None, force: bool = False,
                   stage: Stage | None = None) -> Path:
    """Compile `graph` for `target` into the artifact folder `folder`, atomically; with a
    pipeline `result` that checked numbers, the artifact is run and compared before it is kept."""
    from contextlib import nullcontext

    backend = require(target)
    stage = stage or (lambda _name: nullcontext())
    shown = str(source) if source is not None else "<model>"

    def build(tmp: Path) -> dict[str, Any]:
        with stage(f"{target}: building"):
            try:
                compiled = backend.compile(graph, target, dict(backend_options or {}), tmp)
            except BadInputError as error:  # a target's refusal names the model, as every refusal does
                if source is None or str(source) in str(error):
                    raise
                raise BadInputError(f"{source}: {error}") from None
        manifest = artifact_manifest(graph, target, backend, compiled, result=result, source=source,
                                     options=recorded)
        if result is not None and result.verify != "none" and result.expected:
            with stage(f"{target}: checking the artifact"):
                manifest["verification"]["artifact"] = check_artifact(backend, target, tmp, manifest, result, shown)
        return manifest

    return write_artifact(folder, build, force=force)


def _bound_record(path: str) -> dict[str, Any]:
    """What the manifest says of the values the artifact was specialized to."""
    from mlc.numerics.inputs import read_npz

    return {name: {"shape": list(array.shape), "dtype": str(array.dtype),
                   "values": array.reshape(-1).tolist()[:64]} for name, array in sorted(read_npz(path).items())}


def _refuse_broken(result: PipelineResult, request: PipelineRequest, model: Path, checks: CheckOptions,
                   what: str) -> None:
    """A pipeline whose numbers broke: exit 1, nothing written, and the `mlc debug` command that
    runs the very same pipeline and localizes the break (pass, rewrite, tensor, reproducer)."""
    if result.verdict != "fail":
        return
    index = result.failed_pass
    check = result.records[index].check if index is not None else result.final_check
    if index is None and result.reference is not None:  # checked at the end only: find the pass
        index = first_failing_prefix(result.original, result.passes, result.reference)
    where = f"pass #{index} {result.pipeline[index]}" if index is not None else "the pipeline"
    args = ["mlc", "debug", str(model), *request.debug_args()]
    if checks.inputs_path:
        args += ["--inputs", checks.inputs_path]
    spec = checks.input_spec
    args += [f"--input-range={name}:{lo},{hi}" for name, (lo, hi) in sorted(spec.ranges.items())]
    args += ["--seed", str(spec.seed)] if spec.seed else []
    from mlc.numerics.compare import DEFAULT_MIN_COSINE

    if (request.quantize or request.precision == "fp16") and checks.lossy_min_cosine != DEFAULT_MIN_COSINE:
        args += ["--min-cosine", f"{checks.lossy_min_cosine or 0:.12g}"]
    for module in dict.fromkeys(type(p).__module__ for p in result.passes):
        source = getattr(sys.modules.get(module), "__file__", None)
        if not module.startswith("mlc.passes") and source:
            args += ["--load", str(Path(source).resolve())]
    command = " ".join(shlex.quote(a) for a in args)
    if check is not None and not check.load_error and check.numerics == Numerics.LOSSY.value:
        worst = "; ".join(o.describe() for o in check.outputs if o.verdict == "fail")
        raise NumericMismatchError(f"{model}: after {where} the outputs fail the lossy gate "
                                   f"({result.reference.gate.describe() if result.reference else 'cosine'}): "
                                   f"{worst}; no {what} written ({_lossy_advice(result)}: {command})")
    if check is not None and check.load_error:
        raise PassFailedError(f"{where} left a graph the reference cannot run ({check.load_error}); a bug in that "
                              f"pass; no {what} written (localize it: {command})", index)
    raise NumericMismatchError(f"{model}: the numbers changed beyond tolerance in {where}; no {what} written "
                               f"(localize it: {command})")


def _lossy_advice(result: PipelineResult) -> str:
    """What to try when the lossy gate fails, for the lossy passes that ran."""
    if result.lossy and all(s.spec.startswith("convert-fp16") for s in result.lossy):
        return "keep nodes in float32 with --pass-option convert-fp16.keep_nodes=A+B (or keep_ops), lower " \
               "convert-fp16.range_limit, or give it real samples with convert-fp16.data=F.npz; replay it with"
    if result.lossy and all(s.spec.startswith("prune-") for s in result.lossy):
        return "prune less, let --accuracy-budget with --eval-data pick the ratio, or judge it yourself with " \
               "--min-cosine 0; replay it with"
    return "keep nodes in float with --exclude-nodes or --accuracy-budget, or see the doctor's table"


def _prepare(model: Path, request: PipelineRequest, checks: CheckOptions, metric: Any,
             stage: Stage | None) -> tuple[list[Pass], Any]:
    """The pipeline to run; with an accuracy budget, the search runs first and its float-kept
    nodes go into the quantize-qdq pass (returns the passes and the search result or None)."""
    from contextlib import nullcontext

    request.validate()
    passes = request.build(model)
    if request.accuracy_budget is None:
        return passes, None
    if request.prune is not None:
        return _search_prune(model, request, passes, metric, stage)
    from mlc.quantize.search import search_pipeline, with_keep_float

    assert request.eval_data is not None
    with (stage or (lambda _name: nullcontext()))("accuracy-budget search"):
        found = search_pipeline(model, passes, request.eval_data, request.accuracy_budget, metric=metric)
    if not found.met:
        raise NumericMismatchError(f"{model}: {found.describe()}; even keeping every quantized node in float misses "
                                   f"the budget on {request.eval_data}; nothing written")
    return [with_keep_float(p, found.keep_float) if p.name == "quantize-qdq" else p for p in passes], found


def _search_prune(model: Path, request: PipelineRequest, passes: list[Pass], metric: Any,
                  stage: Stage | None) -> tuple[list[Pass], Any]:
    """`--accuracy-budget` with `--prune`: the largest ratio meeting the budget; the request and
    the pipeline are rebuilt with it (so the report, the manifest and `mlc debug` show it)."""
    from contextlib import nullcontext

    from mlc.prune.search import rebuilt, search_ratio

    assert request.eval_data is not None and request.prune is not None
    with (stage or (lambda _name: nullcontext()))("accuracy-budget search"):
        found = search_ratio(model, passes, request.prune, request.eval_data, request.accuracy_budget, metric=metric)
    if not found.met:
        raise NumericMismatchError(f"{model}: {found.describe()}; even ratio 0 misses the budget on "
                                   f"{request.eval_data} (the other --prune flags alone do); nothing written")
    request.prune = rebuilt(request.prune, found)
    return request.build(model), found


def _pruning(request: PipelineRequest, result: PipelineResult, found: Any) -> dict[str, Any] | None:
    """The report's and manifest's pruning record (`mlc.prune.record`), latency measured when asked."""
    if request.prune is None:
        return None
    from mlc.prune.record import pruning_record

    return pruning_record(request, result, found if found is not None and hasattr(found, "asked") else None)


def quantization_record(request: PipelineRequest, result: PipelineResult, found: Any) -> dict[str, Any] | None:
    """What the report and the manifest say of the quantization: method, kept-float nodes (the
    search's and the user's), the flags that rebuild it, the lossy check's figures."""
    options = request.calibration
    if request.quantize is None or options is None:
        return None
    keep = list(found.keep_float) if found is not None and hasattr(found, "keep_float") else []
    check = result.lossy_check
    record: dict[str, Any] = {
        "mode": request.quantize, "calibration_data": options.data or None,
        "method": "dynamic" if request.quantize == "int8-dynamic" else options.method,
        "per_channel": options.per_channel, "exclude_nodes": list(options.exclude_nodes),
        "exclude_ops": list(options.exclude_ops), "keep_float": keep,
        "reproduce": " ".join(shlex.quote(a) for a in PipelineRequest(
            quantize=request.quantize, calibration=replace(options, keep_float=tuple(keep))).quantize_args()),
        "check": None if check is None else {"min_cosine": check.min_cosine, "min_sqnr_db": check.min_sqnr_db,
                                             "gate": result.reference.gate.min_cosine if result.reference else None,
                                             "verdict": check.verdict},
        "search": found.to_json() if found is not None and hasattr(found, "keep_float") else None}
    return record


def import_checked(model: Path) -> Graph:
    """The model imported and checked first, before a backend library, the passes or the output
    folder are touched: a hostile or malformed model is refused (exit 2) at the cost of an import,
    and what runs later starts from a checked graph."""
    from mlc.ir.verifier import verify
    from mlc.onnx_io.importer import import_onnx

    graph = import_onnx(model)
    verify(graph)
    return graph


def compile_model(model: str | Path, request: PipelineRequest, output: str | Path | None = None, *,
                  checks: CheckOptions | None = None, backend_options: dict[str, Any] | None = None,
                  instruments: Sequence[Instrument] = (), force: bool = False,
                  stage: Stage | None = None, metric: Any = None,
                  graph: Graph | None = None) -> tuple[Path, PipelineResult]:
    """Compile `model` for `request.target` into an artifact folder; returns (folder, result).
    With `request.accuracy_budget`, `metric` (outputs -> score) may replace the default measure.
    `graph`: the model as `import_checked` gave it, when the caller imported it already."""
    model = Path(model)
    graph = graph if graph is not None else import_checked(model)
    target = request.target or "onnxruntime"
    backend = require(target)
    backend.validate_options(target, dict(backend_options or {}))
    folder = Path(output) if output is not None else default_output(model, target)
    checks = checks or CheckOptions()
    # refused before the (possibly long) accuracy-budget search, and again once the passes, which
    # may read files of their own (bind-inputs{file=}, calibrate{data=}), are known
    guard_output(folder, protected=protected_paths(model, request, checks, backend_options), force=force)
    passes, found = _prepare(model, request, checks, metric, stage)
    guard_output(folder, protected=protected_paths(model, request, checks, backend_options, passes), force=force)
    result = run_pipeline(model, passes, checks, instruments, graph=graph)
    _refuse_broken(result, request, model, checks, "artifact")
    result.quantization = quantization_record(request, result, found)
    result.pruning = _pruning(request, result, found)
    recorded = {"pipeline": result.pipeline, "freeze_inputs": request.freeze_inputs, "precision": _precision(result),
                **({"bound_inputs": _bound_record(request.bind_inputs)} if request.bind_inputs else {}),
                **({"static_shapes": {k: list(v) for k, v in sorted(request.static_shapes.items())}}
                   if request.static_shapes else {}),
                **({"quantization": _manifest_quantization(result.quantization)} if result.quantization else {}),
                **({"pruning": _manifest_pruning(result.pruning)} if result.pruning else {}),
                **(backend_options or {})}
    written = build_artifact(result.graph, target, folder, backend_options=backend_options, result=result,
                             source=model, recorded=recorded, force=force, stage=stage)
    return written, result


def _data_of_our_model(model: Path, data: Path) -> bool:
    """Whether `data` is the external-data file of `model`, an ONNX file mlc wrote: an earlier
    `mlc optimize -o` of a large model, which a new one may replace as a whole."""
    from mlc.onnx_io.external_data import referenced_files
    from mlc.output_guard import mlc_wrote

    try:
        return mlc_wrote(model) and data.resolve() in {p.resolve() for p in referenced_files(model)}
    except (OSError, BadInputError):
        return False


def _manifest_pruning(record: dict[str, Any]) -> dict[str, Any]:
    """The manifest's copy: what was pruned and how to rebuild it; no timings (they vary)."""
    return {k: v for k, v in record.items() if k in ("prune", "scope", "norm", "exclude_nodes", "reproduce",
                                                      "channels_removed", "search_ratio")}


def _manifest_quantization(record: dict[str, Any]) -> dict[str, Any]:
    """The manifest's copy: no figures that vary from run to run beyond the search's scores."""
    search = record.get("search")
    kept = {k: v for k, v in record.items() if k not in ("search", "check")}
    if search is not None:
        kept["search"] = {k: search[k] for k in ("budget", "met", "samples", "float_score", "quantized_score",
                                                 "final_score", "keep_float", "reproduce")}
    return kept


def optimize_model(model: str | Path, request: PipelineRequest, output: str | Path, *,
                   checks: CheckOptions | None = None, instruments: Sequence[Instrument] = (),
                   force: bool = False, metric: Any = None,
                   graph: Graph | None = None) -> tuple[Path, PipelineResult]:
    """The optimized model alone (what onnxsim writes, but checked): the pipeline for
    `request.target` (portable ai.onnx ops when it is None), verified, written atomically."""
    from mlc.onnx_io.exporter import needs_external_data, save_onnx

    model = Path(model)
    graph = graph if graph is not None else import_checked(model)
    checks = checks or CheckOptions()
    destination = guard_output(output, protected=protected_paths(model, request, checks), force=force)
    passes, found = _prepare(model, request, checks, metric, None)
    guard_output(destination, protected=protected_paths(model, request, checks, passes=passes), force=force)
    result = run_pipeline(model, passes, checks, instruments, graph=graph)
    _refuse_broken(result, request, model, checks, "model")
    result.quantization = quantization_record(request, result, found)
    result.pruning = _pruning(request, result, found)
    graph = result.graph
    if graph.model is not None:
        props = {**graph.model.metadata_props, "mlc.optimized": ",".join(result.pipeline) or "(no passes)"}
        if result.quantization and result.quantization["keep_float"]:
            props["mlc.keep_float"] = ",".join(result.quantization["keep_float"])
        graph.model.metadata_props = props
        graph.model.producer_name = "mlc"
    if needs_external_data(graph):
        # Past protobuf's 2 GB the weights go to `NAME.data` beside the model, which names it: the
        # data file gets its final name (guarded as -o is), the model is renamed into place last.
        data = destination.with_name(destination.name + ".data")
        data = guard_output(data, protected=protected_paths(model, request, checks, passes=passes),
                            force=force or _data_of_our_model(destination, data))
        return write_file_atomically(destination, lambda tmp: save_onnx(graph, tmp, data_name=data.name)), result
    return write_file_atomically(destination, lambda tmp: save_onnx(graph, tmp)), result


__all__ = ["DEFAULT_LEVEL", "InputSpec", "PipelineRequest", "build_artifact", "compile_model", "optimize_model"]
