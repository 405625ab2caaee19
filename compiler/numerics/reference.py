"""Reference execution: onnxruntime with its graph optimizer off, or onnx's reference evaluator.

ORT runs with `ORT_DISABLE_ALL` so that its own fusions cannot hide or cause a difference; the
reference evaluator (pure numpy, slow) is the second, independent opinion. Any intermediate value
can be exposed as an extra graph output to compare tensors inside the graph.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx

from mlc.errors import MlcError
from mlc.ir.core import Graph
from mlc.onnx_io.exporter import export_onnx

log = logging.getLogger("mlc.numerics")

ORT = "onnxruntime"
REFERENCE = "onnx.reference"


class ReferenceError(MlcError):
    """Neither reference can run the model (an op both lack, a malformed graph)."""

    exit_code = 2


def expose_values(model: onnx.ModelProto, names: Sequence[str]) -> onnx.ModelProto:
    """A copy of `model` whose main graph also outputs the named intermediate values."""
    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    graph = exposed.graph
    have = {o.name for o in graph.output}
    types = {vi.name: vi for vi in graph.value_info}
    for name in names:
        if name in have or not name:
            continue
        out = graph.output.add()
        if name in types:
            out.CopyFrom(types[name])
        else:
            out.name = name
        have.add(name)
    return exposed


def _run_ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray], outputs: Sequence[str] | None) -> dict[str, Any]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = list(outputs) if outputs is not None else [o.name for o in session.get_outputs()]
    wanted = {i.name for i in session.get_inputs()}
    results = session.run(names, {k: v for k, v in feeds.items() if k in wanted})
    return dict(zip(names, results, strict=True))


def _run_reference(model: onnx.ModelProto, feeds: dict[str, np.ndarray],
                   outputs: Sequence[str] | None) -> dict[str, Any]:
    from onnx.reference import ReferenceEvaluator

    evaluator = ReferenceEvaluator(model)
    names = list(outputs) if outputs is not None else list(evaluator.output_names)
    wanted = set(evaluator.input_names)
    results = evaluator.run(names, {k: v for k, v in feeds.items() if k in wanted})
    return dict(zip(names, results, strict=True))


def run_model(model: onnx.ModelProto, feeds: dict[str, np.ndarray], outputs: Sequence[str] | None = None,
              engine: str = ORT) -> dict[str, Any]:
    """Run a model; `outputs` may name intermediate values (they are exposed first)."""
    if outputs is not None:
        model = expose_values(model, outputs)
    runner = _run_ort if engine == ORT else _run_reference
    try:
        return runner(model, feeds, outputs)
    except MlcError:
        raise
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ReferenceError(f"{engine} cannot run the model: {first[:300]}") from error


def run_graph(graph: Graph, feeds: dict[str, np.ndarray], outputs: Sequence[str] | None = None,
              engine: str = ORT) -> dict[str, Any]:
    return run_model(export_onnx(graph), feeds, outputs, engine)


def run_with_fallback(model: onnx.ModelProto, feeds: dict[str, np.ndarray],
                      outputs: Sequence[str] | None = None) -> tuple[dict[str, Any], str]:
    """ORT first; the reference evaluator where ORT cannot run the graph. Returns (values, engine)."""
    try:
        return run_model(model, feeds, outputs, ORT), ORT
    except ReferenceError as ort_error:
        log.info("%s; trying %s", ort_error, REFERENCE)
        try:
            return run_model(model, feeds, outputs, REFERENCE), REFERENCE
        except ReferenceError as ref_error:
            raise ReferenceError(f"{ort_error}; {ref_error}") from ref_error
