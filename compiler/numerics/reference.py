"""Reference execution: onnxruntime with its graph optimizer off, or onnx's reference evaluator.

ORT runs with `ORT_DISABLE_ALL` so that its own fusions cannot hide or cause a difference; the
reference evaluator (pure numpy, slow) is the second, independent opinion. Any intermediate value
can be exposed as an extra graph output to compare tensors inside the graph.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from mlc.errors import MlcError
from mlc.ir.core import Graph
from mlc.ir.dtypes import DType
from mlc.ir.tensor import Tensor
from mlc.onnx_io.exporter import _inline_sink, export_onnx

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


SHARED_LOCATION = "mlc-shared-weights"  # a name, not a file: the bytes come from OrtValues in memory


@dataclass
class PreparedModel:
    """A model whose large weights are handed to onnxruntime from memory, not serialized.

    Checking after every pass would otherwise serialize and re-parse every weight each time
    (ResNet-50: 100 MB, about 0.3 s of the 0.45 s a check costs)."""

    proto: onnx.ModelProto
    names: list[str]
    values: list[Any]  # OrtValues, same order as names
    arrays: dict[str, np.ndarray]

    def inline(self) -> onnx.ModelProto:
        """The same model with every weight written inline (for onnx.reference, files, re-import)."""
        full = onnx.ModelProto()
        full.CopyFrom(self.proto)
        for tensor in full.graph.initializer:
            if tensor.data_location == onnx.TensorProto.EXTERNAL and tensor.name in self.arrays:
                del tensor.external_data[:]
                tensor.data_location = onnx.TensorProto.DEFAULT
                tensor.raw_data = onnx.numpy_helper.from_array(self.arrays[tensor.name]).raw_data
        return full


class WeightCache:
    """One OrtValue per constant tensor (tensors are immutable, so identity is enough)."""

    def __init__(self, min_bytes: int = 4096) -> None:
        self.min_bytes = min_bytes
        self._entries: dict[int, tuple[Tensor, np.ndarray, Any]] = {}

    def prepare(self, graph: Graph) -> PreparedModel:
        import onnxruntime as ort

        by_proto: list[tuple[onnx.TensorProto, np.ndarray, Any]] = []

        def sink(proto: onnx.TensorProto, tensor: Tensor) -> None:
            if tensor.nbytes < self.min_bytes or tensor.dtype.is_exotic or tensor.dtype == DType.STRING:
                _inline_sink(proto, tensor)
                return
            entry = self._entries.get(id(tensor))
            if entry is None:
                array = np.ascontiguousarray(tensor.numpy())
                entry = (tensor, array, ort.OrtValue.ortvalue_from_numpy(array))
                self._entries[id(tensor)] = entry
            proto.data_location = onnx.TensorProto.EXTERNAL
            for key, value in (("location", SHARED_LOCATION), ("offset", "0"), ("length", str(entry[1].nbytes))):
                item = proto.external_data.add()
                item.key, item.value = key, value
            by_proto.append((proto, entry[1], entry[2]))

        model = export_onnx(graph, sink=sink, sink_all=True)
        # onnxruntime drops initializers nothing reads, and then refuses their external values:
        # hand over (and keep) only those the graph reads (passes may leave dead ones to dce)
        read = _read_names(model.graph) | {i.name for i in model.graph.input}
        kept = [t for t in model.graph.initializer if t.name in read]
        if len(kept) != len(model.graph.initializer):
            del model.graph.initializer[:]
            model.graph.initializer.extend(kept)
        by_proto = [entry for entry in by_proto if entry[0].name in read]
        names = [p.name for p, _, _ in by_proto]
        return PreparedModel(model, names, [v for _, _, v in by_proto],
                             {p.name: a for p, a, _ in by_proto})


def _read_names(graph: onnx.GraphProto) -> set[str]:
    """Names read by any node of the graph or its sub-graphs, or returned by the main graph."""
    read = {o.name for o in graph.output}
    stack = [graph]
    while stack:
        current = stack.pop()
        for node in current.node:
            read.update(node.input)
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    stack.append(attr.g)
                elif attr.type == onnx.AttributeProto.GRAPHS:
                    stack.extend(attr.graphs)
        read.update(o.name for o in current.output)
    return read


def _run_ort(model: onnx.ModelProto | PreparedModel, feeds: dict[str, np.ndarray],
             outputs: Sequence[str] | None) -> dict[str, Any]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 4  # fatal only: its errors reach us as exceptions, its logs never reach stderr
    if isinstance(model, PreparedModel):
        if model.names:
            options.add_external_initializers(model.names, model.values)
        model = model.proto
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


def run_model(model: onnx.ModelProto | PreparedModel, feeds: dict[str, np.ndarray],
              outputs: Sequence[str] | None = None, engine: str = ORT) -> dict[str, Any]:
    """Run a model; `outputs` may name intermediate values (they are exposed first)."""
    if isinstance(model, PreparedModel) and engine != ORT:
        model = model.inline()
    if outputs is not None:
        if isinstance(model, PreparedModel):
            model = PreparedModel(expose_values(model.proto, outputs), model.names, model.values, model.arrays)
        else:
            model = expose_values(model, outputs)
    try:
        if engine == ORT:
            return _run_ort(model, feeds, outputs)
        assert not isinstance(model, PreparedModel)
        return _run_reference(model, feeds, outputs)
    except MlcError:
        raise
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ReferenceError(f"{engine} cannot run the model: {first[:300]}") from error


def run_graph(graph: Graph, feeds: dict[str, np.ndarray], outputs: Sequence[str] | None = None,
              engine: str = ORT) -> dict[str, Any]:
    return run_model(export_onnx(graph), feeds, outputs, engine)


def run_with_fallback(model: onnx.ModelProto | PreparedModel, feeds: dict[str, np.ndarray],
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
