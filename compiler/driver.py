"""`mlc.compile`: import → pipeline (numbers checked) → backend → artifact folder.

The pipeline runs through the same engine as `mlc debug`, so a compile whose numbers break stops
with exit code 1, names the pass (found by bisection when only the final result is checked), and
writes no artifact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlc.artifact import FORMAT_VERSION, write_artifact
from mlc.debugger import DebugOptions, DebugResult, run_debug
from mlc.errors import NumericMismatchError
from mlc.hashing import file_sha256
from mlc.ir.printer import format_type
from mlc.numerics.compare import compare_outputs
from mlc.numerics.inputs import InputSpec
from mlc.pass_api import Numerics, parse_pass_spec
from mlc.pipelines import build_pipeline
from mlc.report import tool_versions
from mlc.targets import require

DEFAULT_LEVEL = "O2"


def default_output(model: str | Path, target: str) -> Path:
    return Path(f"{Path(model).stem}.{target}")


def _manifest(result: DebugResult, target: str, model: Path, options: dict[str, Any]) -> dict[str, Any]:
    graph = result.graph
    assert graph is not None
    return {
        "format_version": FORMAT_VERSION,
        "target": target,
        "options": options,
        "inputs": [{"name": v.name, "type": format_type(v.type), "default": v.const is not None}
                   for v in graph.inputs],
        "outputs": [{"name": v.name, "type": format_type(v.type)} for v in graph.outputs],
        "passes": [{k: r.to_json()[k] for k in ("name", "spec", "numerics", "changed", "rewrites", "rules",
                                                 "nodes_before", "nodes_after", "constant_bytes_before",
                                                 "constant_bytes_after")} for r in result.records],
        "verification": {"verify": result.verify, "verdict": result.verdict, "reference": result.engine},
        "source": {"name": model.name, "sha256": file_sha256(model)},
        "tool_versions": tool_versions(),
    }


def write_artifact_for_graph(graph: Any, target: str, backend: Any, folder: Path,
                             options: dict[str, Any] | None = None) -> Path:
    """An artifact for an already optimized graph (no pass log, no source file): conformance
    adapters and tests use it."""

    def build(tmp: Path) -> dict[str, Any]:
        compiled = backend.compile(graph, target, dict(options or {}), tmp)
        return {"format_version": FORMAT_VERSION, "target": target, "backend": backend.name,
                "backend_options": compiled.options, "requirements": compiled.requirements,
                "inputs": [{"name": v.name, "type": format_type(v.type), "default": v.const is not None}
                           for v in graph.inputs],
                "outputs": [{"name": v.name, "type": format_type(v.type)} for v in graph.outputs],
                "tool_versions": tool_versions()}

    return write_artifact(folder, build)


def _bound_record(path: str) -> dict[str, Any]:
    """What the manifest says of the values the artifact was specialized to (names and digests)."""
    from mlc.numerics.inputs import read_npz

    return {name: {"shape": list(array.shape), "dtype": str(array.dtype),
                   "values": array.reshape(-1).tolist()[:64]} for name, array in sorted(read_npz(path).items())}


def target_pipeline(backend: Any, target: str, level: str | None = None, passes: str | None = None,
                    disabled: tuple[str, ...] = (), pass_options: tuple[str, ...] = ()) -> list[Any]:
    """The optimization pipeline (`-O` level or `--passes`; at -O3 plus the target's composite
    ops) followed by the target's legalization passes, all under the same checks."""
    if passes is not None:
        pipeline = build_pipeline(None, passes, disabled, pass_options)
    else:
        pipeline = build_pipeline(level or DEFAULT_LEVEL, None, disabled, pass_options)
        if (level or DEFAULT_LEVEL).lstrip("-").upper() == "O3":
            pipeline += [parse_pass_spec(spec) for spec in backend.composites(target)]
    return pipeline + [parse_pass_spec(spec) for spec in backend.legalization(target)]


def _check_artifact(backend: Any, target: str, folder: Path, manifest: dict[str, Any], result: DebugResult,
                    model: Path) -> str:
    """Run the compiled artifact on the check inputs and compare with the original's outputs, so
    that a backend's wrong result is never shipped silently. Returns the verdict recorded."""
    state = backend.check_runnable(target, manifest["requirements"])
    if not state.ok:
        return f"not run on the compiling machine ({state.reason})"
    runner = backend.load(folder, manifest)
    got = runner.run(result.feeds)
    check = compare_outputs(result.expected, got, Numerics.TOLERANCE, result.engine)
    if check.verdict == "fail":
        worst = "; ".join(o.describe() for o in check.outputs if o.verdict != "ok")
        raise NumericMismatchError(f"{model}: the {target} artifact computes different numbers from the original "
                                   f"under {result.engine}: {worst}; no artifact written")
    return check.verdict


def compile_model(
    model: str | Path,
    target: str = "onnxruntime",
    output: str | Path | None = None,
    *,
    level: str | None = None,
    passes: str | None = None,
    disabled: tuple[str, ...] = (),
    pass_options: tuple[str, ...] = (),
    verify: str = "final",
    inputs_path: str | None = None,
    input_spec: InputSpec | None = None,
    freeze_inputs: bool = False,
    bind_inputs: str | None = None,
    static_shapes: dict[str, tuple[int, ...]] | None = None,
    backend_options: dict[str, Any] | None = None,
    instruments: list[Any] | None = None,
) -> tuple[Path, DebugResult]:
    """Compile `model` for `target` into an artifact folder; returns (folder, pipeline result)."""
    backend = require(target)
    model = Path(model)
    pipeline = target_pipeline(backend, target, level, passes, disabled, pass_options)
    options = DebugOptions(passes=pipeline, verify=verify, inputs_path=inputs_path,
                           input_spec=input_spec or InputSpec(), freeze_inputs=freeze_inputs,
                           bind_inputs_path=bind_inputs, static_shapes=dict(static_shapes or {}))
    result = run_debug(str(model), options, instruments)
    if result.verdict == "fail":
        loc = result.localization
        where = f"pass #{loc.pass_index} {loc.pass_spec}" if loc else "the pipeline"
        raise NumericMismatchError(f"{model}: the numbers changed beyond tolerance in {where}; no artifact written "
                                   f"(run `mlc debug` with the same options for details)")
    folder = Path(output) if output is not None else default_output(model, target)
    recorded = {"pipeline": [p.spec() for p in pipeline], "freeze_inputs": freeze_inputs,
                **({"bound_inputs": _bound_record(bind_inputs)} if bind_inputs else {}),
                **({"static_shapes": {k: list(v) for k, v in sorted(static_shapes.items())}} if static_shapes else {}),
                **(backend_options or {})}

    def build(tmp: Path) -> dict[str, Any]:
        assert result.graph is not None
        compiled = backend.compile(result.graph, target, dict(backend_options or {}), tmp)
        manifest = _manifest(result, target, model, recorded)
        manifest["backend"] = backend.name
        manifest["backend_options"] = compiled.options
        manifest["requirements"] = compiled.requirements
        if verify != "none" and result.expected:
            manifest["verification"]["artifact"] = _check_artifact(backend, target, tmp, manifest, result, model)
        return manifest

    return write_artifact(folder, build), result
