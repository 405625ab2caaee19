"""Reference execution: onnxruntime with its graph optimizer off, or onnx's reference evaluator.

ORT runs with `ORT_DISABLE_ALL` so that its own fusions cannot hide or cause a difference; the
reference evaluator (pure numpy, slow) is the second, independent opinion. Any intermediate value
can be exposed as an extra graph output to compare tensors inside the graph.
"""

from __future__ import annotations

import atexit
import functools
import logging
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from mlc.errors import MlcError
from mlc.ir.core import Graph
from mlc.ir.dtypes import DType
from mlc.ir.tensor import Tensor
from mlc.numerics.denormals import REFERENCE_SESSION_CONFIG
from mlc.onnx_io.exporter import export_onnx, inline_sink

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
_PENDING = SHARED_LOCATION + "#"  # during export: "#<index>" names the cached array a tensor proto holds


@dataclass
class PreparedModel:
    """A model whose large weights are handed to onnxruntime from memory, not serialized.

    Checking after every pass would otherwise serialize and re-parse every weight each time
    (ResNet-50: 100 MB, about 0.3 s of the 0.45 s a check costs). Only initializers of the main
    graph with a non-empty name of their own are handed over (onnxruntime's
    `add_external_initializers` replaces main-graph initializers by name, nothing else): tensors
    in attributes (Constant values: their name is empty), in sub-graphs and sparse initializers are
    written inline, since onnxruntime would otherwise look for their bytes in a file named
    `mlc-shared-weights` beside the model (a model loaded from bytes: the working folder)."""

    proto: onnx.ModelProto
    names: list[str]
    values: list[Any]  # OrtValues, same order as names
    arrays: dict[str, np.ndarray]

    def inline(self) -> onnx.ModelProto:
        """The same model with every weight written inline (for onnx.reference, files, re-import)."""
        full = onnx.ModelProto()
        full.CopyFrom(self.proto)
        for tensor in full.graph.initializer:
            if _is_shared(tensor) and tensor.name in self.arrays:
                _write_inline(tensor, self.arrays[tensor.name])
        return full


def _is_shared(tensor: onnx.TensorProto) -> bool:
    return tensor.data_location == onnx.TensorProto.EXTERNAL and any(
        item.key == "location" and item.value.startswith(SHARED_LOCATION) for item in tensor.external_data)


def _pending_index(tensor: onnx.TensorProto) -> int | None:
    if tensor.data_location != onnx.TensorProto.EXTERNAL:
        return None
    for item in tensor.external_data:
        if item.key == "location" and item.value.startswith(_PENDING):
            return int(item.value[len(_PENDING):])
    return None


def _write_inline(tensor: onnx.TensorProto, array: np.ndarray) -> None:
    del tensor.external_data[:]
    tensor.data_location = onnx.TensorProto.DEFAULT
    tensor.raw_data = onnx.numpy_helper.from_array(array).raw_data


def _nested_tensors(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    """Every TensorProto of the model that is not an initializer of the main graph: attribute
    tensors (Constant values, sparse ones too), sub-graph initializers, sparse initializers (all
    graphs), and those of model-local functions."""

    def of_sparse(sparse: onnx.SparseTensorProto) -> Iterator[onnx.TensorProto]:
        yield sparse.values
        yield sparse.indices

    def of_nodes(nodes: Iterable[onnx.NodeProto]) -> Iterator[onnx.TensorProto]:
        for node in nodes:
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t
                yield from attr.tensors
                if attr.HasField("sparse_tensor"):
                    yield from of_sparse(attr.sparse_tensor)
                for sparse in attr.sparse_tensors:
                    yield from of_sparse(sparse)
                if attr.HasField("g"):
                    yield from of_graph(attr.g, main=False)
                for sub in attr.graphs:
                    yield from of_graph(sub, main=False)

    def of_graph(graph: onnx.GraphProto, main: bool) -> Iterator[onnx.TensorProto]:
        if not main:
            yield from graph.initializer
        for sparse in graph.sparse_initializer:
            yield from of_sparse(sparse)
        yield from of_nodes(graph.node)

    yield from of_graph(model.graph, main=True)
    for function in model.functions:
        yield from of_nodes(function.node)


class WeightCache:
    """One OrtValue per constant tensor (tensors are immutable, so identity is enough)."""

    def __init__(self, min_bytes: int = 4096) -> None:
        self.min_bytes = min_bytes
        self._entries: dict[int, tuple[Tensor, np.ndarray, Any]] = {}

    def prepare(self, graph: Graph) -> PreparedModel:
        import onnxruntime as ort

        pending: list[tuple[np.ndarray, Any]] = []

        def sink(proto: onnx.TensorProto, tensor: Tensor) -> None:
            if tensor.nbytes < self.min_bytes or tensor.dtype.is_exotic or tensor.dtype == DType.STRING:
                inline_sink(proto, tensor)
                return
            entry = self._entries.get(id(tensor))
            if entry is None:
                array = np.ascontiguousarray(tensor.numpy())
                entry = (tensor, array, ort.OrtValue.ortvalue_from_numpy(array))
                self._entries[id(tensor)] = entry
            # the proto's name is not set yet (nor known to be a main-graph initializer): mark it
            # with the index of its array, and decide once the whole model is written
            proto.data_location = onnx.TensorProto.EXTERNAL
            for key, value in (("location", f"{_PENDING}{len(pending)}"), ("offset", "0"),
                               ("length", str(entry[1].nbytes))):
                item = proto.external_data.add()
                item.key, item.value = key, value
            pending.append((entry[1], entry[2]))

        model = export_onnx(graph, sink=sink, sink_all=True)
        # onnxruntime drops initializers nothing reads, and then refuses their external values:
        # hand over (and keep) only those the graph reads (passes may leave dead ones to dce)
        read = _read_names(model.graph) | {i.name for i in model.graph.input}
        kept = [t for t in model.graph.initializer if t.name in read]
        if len(kept) != len(model.graph.initializer):
            del model.graph.initializer[:]
            model.graph.initializer.extend(kept)
        names: list[str] = []
        values: list[Any] = []
        arrays: dict[str, np.ndarray] = {}
        handed = 0
        for tensor in model.graph.initializer:
            index = _pending_index(tensor)
            if index is None:
                continue
            array, value = pending[index]
            if not tensor.name or tensor.name in arrays:  # no name (or a duplicate) to replace it by
                _write_inline(tensor, array)
                continue
            tensor.external_data[0].value = SHARED_LOCATION
            names.append(tensor.name)
            values.append(value)
            arrays[tensor.name] = array
            handed += 1
        if handed != len(pending):  # some are elsewhere (attributes, sub-graphs, sparse) or were dropped
            for tensor in _nested_tensors(model):
                index = _pending_index(tensor)
                if index is not None:
                    _write_inline(tensor, pending[index][0])
        return PreparedModel(model, names, values, arrays)


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
    read.discard("")  # an omitted optional input, not a name
    return read


@functools.cache
def _no_files_folder() -> str:
    """An empty folder of our own, where onnxruntime is told external data lives: a model loaded
    from bytes otherwise resolves external data against the working folder, so a result could
    depend on where mlc runs (and read whatever file is there)."""
    folder = tempfile.mkdtemp(prefix="mlc-no-external-data-")
    atexit.register(shutil.rmtree, folder, True)
    return folder


def _external_tensors(model: onnx.ModelProto) -> list[str]:
    """Names of tensors whose bytes are declared to live outside the model (main-graph initializers
    included)."""
    found = [t.name for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    found += [t.name or "<unnamed>" for t in _nested_tensors(model) if t.data_location == onnx.TensorProto.EXTERNAL]
    return found


def reference_session(model: onnx.ModelProto, handed: tuple[list[str], list[Any]] | None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 4  # fatal only: its errors reach us as exceptions, its logs never reach stderr
    options.add_session_config_entry("session.model_external_initializers_file_folder_path", _no_files_folder())
    for key, value in REFERENCE_SESSION_CONFIG.items():  # subnormals kept, on every thread (mlc.numerics.denormals)
        options.add_session_config_entry(key, value)
    if handed is not None and handed[0]:
        options.add_external_initializers(*handed)
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _run_ort(model: onnx.ModelProto | PreparedModel, feeds: dict[str, np.ndarray],
             outputs: Sequence[str] | None) -> dict[str, Any]:
    if isinstance(model, PreparedModel):
        try:
            session = reference_session(model.proto, (model.names, model.values))
        except Exception as error:  # noqa: BLE001 - the hand-over failed: judge the model on its own
            log.debug("onnxruntime refused the weights handed from memory (%s); retrying with them inline",
                      str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__)
            session = reference_session(model.inline(), None)
    else:
        outside = _external_tensors(model)
        if outside:
            raise ReferenceError(f"{ORT} cannot run the model: its tensors {', '.join(outside[:3])} keep their "
                                 f"values in external files, and the reference reads no file")
        session = reference_session(model, None)
    names = list(outputs) if outputs is not None else [o.name for o in session.get_outputs()]
    wanted = {i.name for i in session.get_inputs()}
    results = session.run(names, {k: v for k, v in feeds.items() if k in wanted})
    return dict(zip(names, results, strict=True))


def _run_reference(model: onnx.ModelProto, feeds: dict[str, np.ndarray],
                   outputs: Sequence[str] | None) -> dict[str, Any]:
    from onnx.reference import ReferenceEvaluator

    outside = _external_tensors(model)
    if outside:  # onnx would read them from the working folder
        raise ReferenceError(f"{REFERENCE} cannot run the model: its tensors {', '.join(outside[:3])} keep their "
                             f"values in external files, and the reference reads no file")
    evaluator = ReferenceEvaluator(model)
    names = list(outputs) if outputs is not None else list(evaluator.output_names)
    wanted = set(evaluator.input_names)
    with np.errstate(all="ignore"):  # its numpy kernels overflow like the model does: no warnings on stderr
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
