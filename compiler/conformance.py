"""ONNX backend adapters (`onnx.backend.base.Backend`) for the official conformance suite.

Each case runs through what a user gets: import → the default pipeline (-O2) → the target's
backend compile into an artifact folder → load → run. `OnnxRuntimeBackend` serves the
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
from mlc.driver import DEFAULT_LEVEL
from mlc.errors import NumericMismatchError
from mlc.numerics.compare import compare_outputs
from mlc.numerics.inputs import InputSpec, make_inputs
from mlc.numerics.reference import run_model
from mlc.onnx_io.exporter import export_onnx
from mlc.onnx_io.importer import import_onnx
from mlc.pass_api import Numerics
from mlc.pass_manager import PassManager
from mlc.pipelines import build_pipeline
from mlc.targets import require


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
        if isinstance(inputs, dict):
            feeds = dict(inputs)
        else:
            values = list(inputs) if isinstance(inputs, list | tuple) else [inputs]
            feeds = dict(zip(self.input_names, values, strict=False))
        outputs = self.runner.run({k: np.asarray(v) if isinstance(v, np.generic) else v for k, v in feeds.items()})
        return [outputs[name] for name in self.output_names]


def _refuse_wrong_numbers(target: str, graph: Any, reference: onnx.ModelProto, runner: Runner) -> None:
    """What `mlc compile` does before it ships an artifact: run it on generated inputs and compare
    with onnxruntime on the original. A case whose inputs cannot be generated, or that onnxruntime
    cannot run, is not checked (the harness then judges it on its own data)."""
    try:
        feeds = make_inputs(graph, InputSpec(seed=0))
        expected = run_model(reference, feeds)
        got = runner.run(feeds)
    except Exception:  # noqa: BLE001 - no check possible: leave the judgement to the harness
        return
    result = compare_outputs(expected, got, Numerics.TOLERANCE, "onnxruntime")
    if result.verdict == "fail":
        worst = next(o for o in result.outputs if o.verdict == "fail")
        raise NumericMismatchError(f"{target} result refused: {worst.describe()}")


class _TargetBackend(Backend):
    target = ""
    check_against_onnxruntime = True

    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> MlcRep:
        _stage("import")
        # Inputs arrive by position over the inputs that are not initializers (as onnxruntime lists them).
        weights = {t.name for t in model.graph.initializer}
        original_inputs = [i.name for i in model.graph.input if i.name not in weights]
        graph = import_onnx(model)
        reference = export_onnx(graph) if cls.check_against_onnxruntime else None
        _stage("optimize")
        PassManager(build_pipeline(kwargs.get("level", DEFAULT_LEVEL))).run(graph)
        _stage("compile")
        backend = require(cls.target)
        folder = Path(tempfile.mkdtemp(prefix="mlc-conformance-"))
        try:
            from mlc.driver import write_artifact_for_graph

            write_artifact_for_graph(graph, cls.target, backend, folder / "artifact")
            _stage("load")
            artifact = load(folder / "artifact")
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        if reference is not None and kwargs.get("check", True):
            _stage("check")
            _refuse_wrong_numbers(cls.target, graph, reference, artifact.runner)
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
