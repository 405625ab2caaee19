"""ONNX backend adapters (`onnx.backend.base.Backend`) for the official conformance suite.

Each case runs through what a user gets: import → the default pipeline (-O2) and the target's
legalizations → the target's backend compile into an artifact folder → load → run. For `llvm`,
inputs that feed shape operands (Reshape shapes, Reduce axes, Resize scales, TopK's k, ...) are
bound to the values of the first run and the model compiled for them, as `mlc compile
--bind-inputs` does; other values compile again. `OnnxRuntimeBackend` serves the
`onnxruntime` target:

    python ../shared/conformance/conformance.py run --backend mlc.conformance:OnnxRuntimeBackend --name mlc-ort
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx.backend.base import Backend, BackendRep

from mlc.artifact import load
from mlc.backends.base import Runner
from mlc.driver import build_artifact
from mlc.errors import NumericMismatchError
from mlc.numerics.compare import compare_outputs
from mlc.numerics.inputs import InputSpec, make_inputs
from mlc.numerics.reference import run_model
from mlc.onnx_io.exporter import export_onnx
from mlc.onnx_io.importer import import_onnx
from mlc.pass_api import Numerics
from mlc.pipelines import DEFAULT_LEVEL, build_pipeline
from mlc.runner import CheckOptions, run_pipeline
from mlc.specialize import shape_inputs


def _stage(name: str) -> None:
    """Tell the conformance harness which stage runs (when it is the caller)."""
    import sys

    anchors = sys.modules.get("anchor_backends")
    if anchors is not None:
        anchors.STAGES.enter(name)


class MlcRep(BackendRep):
    def __init__(self, runner: Runner, input_names: list[str], output_names: list[str]) -> None:
        self.runner = runner
        self.input_names = input_names
        self.output_names = output_names

    def run(self, inputs: Any, **kwargs: Any) -> list[Any]:  # type: ignore[override]
        feeds = _as_feeds(inputs, self.input_names)
        outputs = self.runner.run({k: np.asarray(v) if isinstance(v, np.generic) else v for k, v in feeds.items()})
        return [outputs[name] for name in self.output_names]


def _refuse_wrong_numbers(target: str, graph: Any, reference: onnx.ModelProto, runner: Runner,
                          bound: dict[str, np.ndarray]) -> None:
    """What `mlc compile` does before it ships an artifact: run it on generated inputs and compare
    with onnxruntime on the original. A case whose inputs cannot be generated, or that onnxruntime
    cannot run, is not checked (the harness then judges it on its own data)."""
    try:
        feeds = make_inputs(graph, InputSpec(seed=0))
        expected = run_model(reference, {**feeds, **bound})  # the original still takes the bound inputs
        got = runner.run(feeds)
    except Exception:  # noqa: BLE001 - no check possible: leave the judgement to the harness
        return
    result = compare_outputs(expected, got, Numerics.TOLERANCE, "onnxruntime")
    if result.verdict == "fail":
        worst = next(o for o in result.outputs if o.verdict == "fail")
        raise NumericMismatchError(f"{target} result refused: {worst.describe()}")


class SpecializingRep(BackendRep):
    """Compiles on first run, with the model's shape-operand inputs bound to the values given
    (`mlc.specialize`); a later run with other values compiles again (one artifact per value set)."""

    def __init__(self, backend: type[_TargetBackend], model: onnx.ModelProto, bound: list[str],
                 input_names: list[str], kwargs: dict[str, Any]) -> None:
        self.backend, self.model, self.bound = backend, model, bound
        self.input_names, self.kwargs = input_names, kwargs
        self.compiled: dict[bytes, MlcRep] = {}

    def run(self, inputs: Any, **kwargs: Any) -> list[Any]:  # type: ignore[override]
        feeds = _as_feeds(inputs, self.input_names)
        values = {name: np.asarray(feeds[name]) for name in self.bound if name in feeds}
        key = b"".join(name.encode() + v.dtype.str.encode() + str(v.shape).encode() + v.tobytes()
                       for name, v in sorted(values.items()))
        if key not in self.compiled:
            self.compiled[key] = self.backend._build(self.model, values, self.kwargs)
        rest = {k: v for k, v in feeds.items() if k not in values}
        return self.compiled[key].run(rest)


def _as_feeds(inputs: Any, input_names: list[str]) -> dict[str, Any]:
    if isinstance(inputs, dict):
        return dict(inputs)
    values = list(inputs) if isinstance(inputs, list | tuple) else [inputs]
    return dict(zip(input_names, values, strict=False))


class _TargetBackend(Backend):
    target = ""
    check_against_onnxruntime = True
    specialize_shape_inputs = False  # bind shape-operand inputs at first run (targets that need them constant)

    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> BackendRep:
        if cls.specialize_shape_inputs:
            _stage("import")
            bound = shape_inputs(import_onnx(model))
            if bound:
                weights = {t.name for t in model.graph.initializer}
                names = [i.name for i in model.graph.input if i.name not in weights]
                return SpecializingRep(cls, model, bound, names, kwargs)
        return cls._build(model, {}, kwargs)

    @classmethod
    def _build(cls, model: onnx.ModelProto, bound: dict[str, np.ndarray], kwargs: dict[str, Any]) -> MlcRep:
        _stage("import")
        # Inputs arrive by position over the inputs that are not initializers (as onnxruntime lists them).
        weights = {t.name for t in model.graph.initializer}
        original_inputs = [i.name for i in model.graph.input if i.name not in weights and i.name not in bound]
        folder = Path(tempfile.mkdtemp(prefix="mlc-conformance-"))
        try:
            bind_file = None
            if bound:  # the same bind-inputs pass `mlc compile --bind-inputs` runs
                bind_file = str(folder / "bound.npz")
                np.savez(bind_file, **bound)  # type: ignore[arg-type]  # numpy types **kwds as allow_pickle
            graph = import_onnx(model)
            reference = export_onnx(graph) if cls.check_against_onnxruntime else None
            _stage("optimize")
            passes = build_pipeline(kwargs.get("level", DEFAULT_LEVEL), target=cls.target, bind_inputs=bind_file)
            result = run_pipeline(model, passes, CheckOptions(verify="none"), graph=graph)
            graph = result.graph
            _stage("compile")
            # in-process TVM builds: thousands of cases, and their bytes need not be reproducible
            build_artifact(graph, cls.target, folder / "artifact", backend_options={"in_process": True})
            _stage("load")
            artifact = load(folder / "artifact")
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        if reference is not None and kwargs.get("check", True):
            _stage("check")
            declared = {i.name: i.type.tensor_type.elem_type for i in model.graph.input}
            as_declared = {k: np.asarray(v).astype(onnx.helper.tensor_dtype_to_np_dtype(declared[k]))
                           for k, v in bound.items() if declared.get(k)}
            _refuse_wrong_numbers(cls.target, graph, reference, artifact.runner, as_declared)
        return MlcRep(artifact.runner, original_inputs, [v.name for v in graph.outputs])

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return device == "CPU"

    @classmethod
    def run_node(cls, node: Any, inputs: Any, device: str = "CPU", outputs_info: Any = None,
                 **kwargs: Any) -> tuple[np.ndarray, ...]:
        raise NotImplementedError("mlc runs whole models; onnx's BackendTest uses prepare()")


class OnnxRuntimeBackend(_TargetBackend):
    target = "onnxruntime"
    check_against_onnxruntime = False  # it is the reference


class LlvmBackend(_TargetBackend):
    """The `llvm` target (TVM on the host CPU)."""

    target = "llvm"
    specialize_shape_inputs = True
