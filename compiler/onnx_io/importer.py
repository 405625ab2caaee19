"""ONNX → IR.

Every op of every domain imports (unknown ops pass through untouched), with sub-graphs,
model-local functions, metadata and doc strings. Value types come from the model's own value
infos completed by onnx's shape inference (symbolic dims stay symbolic). Nodes out of
topological order are sorted; a cycle, a read of an undefined value or a name defined twice is
a `BadInputError` naming the node and the value.

Weights are not converted on import: a constant keeps a reference to its TensorProto and is
turned into numpy on first use; external data is checked and memory-mapped
(`mlc.onnx_io.external_data`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import numpy_helper

from mlc.errors import BadInputError
from mlc.gc_pause import gc_paused
from mlc.ir.attributes import Attr, AttrType
from mlc.ir.core import Function, Graph, ModelInfo, Node, Value, canonical_domain
from mlc.ir.dtypes import DType
from mlc.ir.tensor import SparseTensor, Tensor
from mlc.ir.types import MapType, OpaqueType, OptionalType, SequenceType, SparseTensorType, TensorType, Type
from mlc.onnx_io import external_data
from mlc.onnx_io.exporter import CREATED_BY_KEY, SOURCE_KEY
from mlc.onnx_io.static_checks import check_inference, check_sizes
from mlc.onnx_io.validate import guess_attribute_type, validate_model

log = logging.getLogger("mlc.import")

# Shape inference serializes the model: skip it where that would copy a very large model.


# ===================================================================== types
def type_from_proto(proto: onnx.TypeProto) -> Type | None:
    which = proto.WhichOneof("value")
    if which == "tensor_type":
        t = proto.tensor_type
        return TensorType(DType(t.elem_type), _shape(t) if t.HasField("shape") else None)
    if which == "sparse_tensor_type":
        t = proto.sparse_tensor_type
        return SparseTensorType(DType(t.elem_type), _shape(t) if t.HasField("shape") else None)
    if which == "sequence_type":
        return SequenceType(type_from_proto(proto.sequence_type.elem_type)
                            if proto.sequence_type.HasField("elem_type") else None)
    if which == "optional_type":
        return OptionalType(type_from_proto(proto.optional_type.elem_type)
                            if proto.optional_type.HasField("elem_type") else None)
    if which == "map_type":
        return MapType(DType(proto.map_type.key_type), type_from_proto(proto.map_type.value_type)
                       if proto.map_type.HasField("value_type") else None)
    if which == "opaque_type":
        return OpaqueType(proto.opaque_type.domain, proto.opaque_type.name)
    return None


def _shape(t: Any) -> tuple[int | str | None, ...]:
    dims: list[int | str | None] = []
    for d in t.shape.dim:
        which = d.WhichOneof("value")
        dims.append(d.dim_value if which == "dim_value" else d.dim_param if which == "dim_param" else None)
    return tuple(dims)


# ===================================================================== importer
class Importer:
    def __init__(self, model_path: str, base_dir: Path | None, freeze_inputs: bool) -> None:
        self.model_path = model_path
        self.base_dir = base_dir
        self.freeze_inputs = freeze_inputs
        self.ir_version = 0
        self.model_file: Path | None = None  # the model's own file, when imported from one

    def fail(self, message: str) -> BadInputError:
        return BadInputError(f"{self.model_path}: {message}")

    # ---------------------------------------------------------------- tensors
    def tensor(self, proto: onnx.TensorProto, what: str = "") -> Tensor:
        name = proto.name or what
        try:
            dtype = DType(proto.data_type)
        except ValueError:
            raise self.fail(f"tensor {name!r} has unknown element type {proto.data_type}") from None
        shape = tuple(proto.dims)
        if any(d < 0 for d in shape):
            raise self.fail(f"tensor {name!r} has a negative dimension {list(shape)}")
        if proto.data_location == onnx.TensorProto.EXTERNAL:
            entries = {e.key: e.value for e in proto.external_data}
            ref = external_data.resolve(self.model_path, self.base_dir, name, entries, self.model_file)
            external_data.check_size(self.model_path, name, ref, dtype, shape)
            return Tensor(dtype, shape, loader=external_data.loader(ref, dtype, shape), name=proto.name)
        loader = self._inline_loader(proto, name)
        return Tensor(dtype, shape, loader=loader, source=proto, name=proto.name)

    def _inline_loader(self, proto: onnx.TensorProto, name: str) -> Callable[[], np.ndarray]:
        model_path = self.model_path

        def load() -> np.ndarray:
            try:
                return numpy_helper.to_array(proto)
            except Exception as error:  # noqa: BLE001 - any decoding failure is a bad model
                raise BadInputError(f"{model_path}: tensor {name!r} cannot be decoded: {error}") from None

        return load

    def sparse(self, proto: onnx.SparseTensorProto) -> SparseTensor:
        return SparseTensor(self.tensor(proto.values), self.tensor(proto.indices), list(proto.dims))

    # ---------------------------------------------------------------- attributes
    def attribute(self, proto: onnx.AttributeProto, scopes: list[dict[str, Value]]) -> Attr:
        kind = proto.type or guess_attribute_type(proto)
        t = AttrType(kind)
        if proto.ref_attr_name:
            return Attr(proto.name, t, None, ref=proto.ref_attr_name, doc_string=proto.doc_string)
        value: Any
        if t == AttrType.FLOAT:
            value = proto.f
        elif t == AttrType.INT:
            value = proto.i
        elif t == AttrType.STRING:
            value = _text(proto.s)
        elif t == AttrType.TENSOR:
            value = self.tensor(proto.t)
        elif t == AttrType.GRAPH:
            value = self.graph(proto.g, scopes, None)
        elif t == AttrType.SPARSE_TENSOR:
            value = self.sparse(proto.sparse_tensor)
        elif t == AttrType.TYPE_PROTO:
            value = type_from_proto(proto.tp)
        elif t == AttrType.FLOATS:
            value = list(proto.floats)
        elif t == AttrType.INTS:
            value = list(proto.ints)
        elif t == AttrType.STRINGS:
            value = [_text(s) for s in proto.strings]
        elif t == AttrType.TENSORS:
            value = [self.tensor(x) for x in proto.tensors]
        elif t == AttrType.GRAPHS:
            value = [self.graph(g, scopes, None) for g in proto.graphs]
        elif t == AttrType.SPARSE_TENSORS:
            value = [self.sparse(x) for x in proto.sparse_tensors]
        elif t == AttrType.TYPE_PROTOS:
            value = [type_from_proto(x) for x in proto.type_protos]
        else:
            raise self.fail(f"attribute {proto.name!r} has no type")
        return Attr(proto.name, t, value, doc_string=proto.doc_string)

    # ---------------------------------------------------------------- graphs
    def graph(self, proto: onnx.GraphProto, outer: list[dict[str, Value]], model: ModelInfo | None,
              function: onnx.FunctionProto | None = None) -> Graph:
        """Import a graph (or a function body when `function` is given) under the enclosing scopes."""
        graph = Graph(function.name if function is not None else proto.name, model)
        scope: dict[str, Value] = {}
        scopes = [*outer, scope]
        where = f"function {function.name!r}" if function is not None else f"graph {graph.name!r}"
        is_main = model is not None

        def define(name: str, value: Value, by: str) -> None:
            if name in scope:
                raise self.fail(f"{where}: value {name!r} is defined twice ({by})")
            if _lookup(outer, name) is not None:  # ONNX names are single-assignment across scopes
                raise self.fail(f"{where}: value {name!r} ({by}) shadows a value of the enclosing graph")
            scope[name] = value

        types: dict[str, Type | None] = {}
        if function is not None:
            for vi in function.value_info:
                types[vi.name] = type_from_proto(vi.type)
            for name in function.input:
                define(name, graph.add_input(Value(name, types.get(name))), "function input")
            nodes_proto: Any = function.node
            graph.doc_string = ""
        else:
            for vi in proto.value_info:
                types[vi.name] = type_from_proto(vi.type)
            for vi in proto.output:
                if vi.HasField("type"):
                    types[vi.name] = type_from_proto(vi.type)
            graph.doc_string = proto.doc_string
            graph.metadata_props = {p.key: p.value for p in proto.metadata_props}
            initializer_names = {t.name for t in proto.initializer} | {
                s.values.name for s in proto.sparse_initializer}
            legacy = self.ir_version < 4 or self.freeze_inputs
            for vi in proto.input:
                if vi.name in initializer_names and legacy and is_main:
                    continue  # an IR<4 weight listed as input: a constant, as onnxruntime treats it
                value = Value(vi.name, type_from_proto(vi.type) if vi.HasField("type") else None)
                value.doc_string = vi.doc_string
                define(vi.name, graph.add_input(value), "graph input")
            # Only graph inputs are in scope yet: a name found there is an initializer listed as input.
            for t in proto.initializer:
                existing = scope.get(t.name)
                tensor = self.tensor(t)
                if existing is not None and existing.const is None:
                    existing.const = tensor
                    graph.add_initializer(existing)
                    continue
                value = Value(t.name, TensorType(tensor.dtype, tensor.shape), tensor)
                define(t.name, value, "initializer")
                graph.add_initializer(value)
            for s in proto.sparse_initializer:
                sparse = self.sparse(s)
                name = s.values.name
                existing = scope.get(name)
                if existing is not None and existing.const is None and existing.producer is None:
                    existing.const = sparse
                    graph.add_initializer(existing)
                    continue
                value = Value(name, SparseTensorType(sparse.dtype, sparse.dims), sparse)
                define(name, value, "sparse initializer")
                graph.add_initializer(value)
            nodes_proto = proto.node

        # Pass 1: every node's outputs, so that reads of later values (unsorted models) resolve.
        outputs_of: list[list[Value | None]] = []
        for index, node_proto in enumerate(nodes_proto):
            outs: list[Value | None] = []
            for name in node_proto.output:
                if not name:
                    outs.append(None)
                    continue
                created = Value(name, types.get(name))
                define(name, created, f"output of node {_label(node_proto, index)}")
                outs.append(created)
            outputs_of.append(outs)

        # Pass 2: nodes with their inputs and attributes (sub-graphs see this graph's scope).
        nodes: list[Node] = []
        for index, (node_proto, outs) in enumerate(zip(nodes_proto, outputs_of, strict=True)):
            inputs: list[Value | None] = []
            for name in node_proto.input:
                if not name:
                    inputs.append(None)
                    continue
                read = _lookup(scopes, name)
                if read is None:
                    raise self.fail(f"{where}: node {_label(node_proto, index)} reads {name!r}, "
                                    "which is not defined")
                inputs.append(read)
            attrs = [self.attribute(a, scopes) for a in node_proto.attribute]
            meta = {p.key: p.value for p in node_proto.metadata_props}
            source, created_by = _provenance(meta)
            node = Node(node_proto.op_type, inputs, outs, attrs, domain=node_proto.domain,
                        name=node_proto.name, overload=node_proto.overload,
                        doc_string=node_proto.doc_string, metadata_props=meta,
                        source=source, created_by=created_by)
            nodes.append(node)

        graph.append(*nodes) if nodes else None
        self._order(graph, nodes, where)

        output_names = function.output if function is not None else [vi.name for vi in proto.output]
        for name in output_names:
            output = _lookup(scopes, name)
            if output is None:
                raise self.fail(f"{where}: output {name!r} is not defined")
            graph.outputs.append(output)
        if function is None:
            for vi in proto.output:
                output = _lookup(scopes, vi.name)
                if output is not None and vi.doc_string and output.producer is not None:
                    output.doc_string = vi.doc_string
        return graph

    def _order(self, graph: Graph, nodes: list[Node], where: str) -> None:
        """Sort nodes topologically when the file did not; report a cycle with its nodes."""
        position = {id(n): i for i, n in enumerate(nodes)}
        needs_sort = False
        deps: list[list[Node]] = []
        for i, node in enumerate(nodes):
            mine = []
            for value in _reads(node):
                producer = value.producer
                if producer is not None and id(producer) in position:
                    mine.append(producer)
                    if position[id(producer)] >= i:
                        needs_sort = True
            deps.append(mine)
        if not needs_sort:
            return
        import networkx as nx  # only for a file out of order: importing it is 0.12 s of every command's start

        dag = nx.DiGraph()
        dag.add_nodes_from(range(len(nodes)))
        for i, mine in enumerate(deps):
            for producer in mine:
                dag.add_edge(position[id(producer)], i)
        try:
            order = list(nx.lexicographical_topological_sort(dag))
        except nx.NetworkXUnfeasible:
            cycle = nx.find_cycle(dag)
            names = [_node_label(nodes[a]) for a, _ in cycle]
            raise self.fail(f"{where}: the graph has a cycle: {' -> '.join([*names, names[0]])}") from None
        graph.sort([nodes[i] for i in order])

    # ---------------------------------------------------------------- functions and model
    def function(self, proto: onnx.FunctionProto) -> Function:
        body = self.graph(onnx.GraphProto(), [], None, function=proto)
        defaults = {a.name: self.attribute(a, []) for a in proto.attribute_proto}
        return Function(proto.name, proto.domain, body, overload=proto.overload,
                        attributes=list(proto.attribute), attribute_defaults=defaults,
                        opset_imports={canonical_domain(o.domain): o.version for o in proto.opset_import},
                        doc_string=proto.doc_string,
                        metadata_props={p.key: p.value for p in proto.metadata_props})

    def model(self, proto: onnx.ModelProto) -> Graph:
        self.ir_version = proto.ir_version
        for unsupported in ("training_info", "configuration"):
            if len(getattr(proto, unsupported)):
                log.warning("%s: %s is not imported (inference graphs only)", self.model_path, unsupported)
        info = ModelInfo(
            ir_version=proto.ir_version,
            opset_imports={canonical_domain(o.domain): o.version for o in proto.opset_import},
            producer_name=proto.producer_name,
            producer_version=proto.producer_version,
            domain=proto.domain,
            model_version=proto.model_version,
            doc_string=proto.doc_string,
            metadata_props={p.key: p.value for p in proto.metadata_props},
        )
        info.functions = [self.function(f) for f in proto.functions]
        return self.graph(proto.graph, [], info)


def _provenance(meta: dict[str, str]) -> tuple[tuple[str, ...], str]:
    """Take mlc's provenance keys out of node metadata (written by our exporter)."""
    created_by = meta.pop(CREATED_BY_KEY, "")
    text = meta.pop(SOURCE_KEY, None)
    if text is None:
        return (), created_by
    try:
        parsed = json.loads(text)
    except ValueError:
        return (text,), created_by
    return tuple(str(s) for s in parsed) if isinstance(parsed, list) else (str(parsed),), created_by


def _lookup(scopes: list[dict[str, Value]], name: str) -> Value | None:
    for scope in reversed(scopes):
        value = scope.get(name)
        if value is not None:
            return value
    return None


def _reads(node: Node) -> list[Value]:
    """Values a node reads: its inputs and, through sub-graphs, values of enclosing graphs."""
    values = [v for v in node.inputs if v is not None]
    for sub in node.subgraphs():
        for inner in sub.all_nodes():
            values.extend(v for v in inner.inputs if v is not None)
    return values


def _label(proto: onnx.NodeProto, index: int) -> str:
    return f"{proto.name!r} ({proto.op_type})" if proto.name else f"#{index} ({proto.op_type})"


def _node_label(node: Node) -> str:
    return f"{node.name or '?'}({node.op_type})"


def _text(data: bytes) -> str | bytes:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data


# ===================================================================== entry points
def _read_model(path: Path) -> onnx.ModelProto:
    shown = str(path)
    if not path.exists():
        raise BadInputError(f"{shown}: no such file")
    if path.is_dir():
        raise BadInputError(f"{shown}: is a folder, not an ONNX model file")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise BadInputError(f"{shown}: cannot read: {error.strerror}") from None
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as error:
        reason = str(error) or "truncated?"
        raise BadInputError(f"{shown}: not an ONNX model (protobuf parse failed: {reason})") from None
    _check_model_proto(model, shown)
    return model


def _check_model_proto(model: onnx.ModelProto, shown: str) -> None:
    if model.ir_version <= 0 or not model.HasField("graph"):
        raise BadInputError(f"{shown}: not an ONNX model (no ir_version or no graph)")
    if not model.opset_import and model.ir_version >= 3:
        raise BadInputError(f"{shown}: the model declares no opset_import")


def _infer_shapes(model: onnx.ModelProto, shown: str, owned: bool) -> onnx.ModelProto:
    """onnx's shape inference, best effort: a model it cannot complete keeps its own value infos.

    onnx runs inference in C++ on a serialized copy of the model and hands back another: for a
    model of 100+ MB that is most of the import time (FCN-ResNet50: 1.4 s of 1.8 s). Weights never
    shape anything, so inference runs on a copy without the large initializers (declared as inputs
    of their type instead), and the types it infers are copied into the model (`owned`: ours to
    change, as when read from a file; otherwise into a copy, never into the caller's proto)."""
    try:
        light = _without_weights(model)
        inferred = onnx.shape_inference.infer_shapes(light, check_type=False, strict_mode=False, data_prop=True)
    except Exception as error:  # noqa: BLE001 - inference is an optional enrichment
        log.info("%s: shape inference skipped: %s", shown, str(error).splitlines()[0] if str(error) else error)
        return model
    if not owned:
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        model = copy
    _copy_types(inferred.graph, model.graph)
    return model


_WEIGHT_BYTES = 4096  # initializers larger than this are weights, never shape values


def _without_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model without its large main-graph initializers, each declared as a graph input of
    its type (so inference still knows it) unless it already is one."""
    light = onnx.ModelProto()
    _copy_fields(model, light, skip="graph")
    source, graph = model.graph, light.graph
    _copy_fields(source, graph, skip="initializer")
    inputs = {vi.name for vi in source.input}
    for tensor in source.initializer:
        if tensor.ByteSize() <= _WEIGHT_BYTES:
            graph.initializer.append(tensor)
        elif tensor.name not in inputs:
            graph.input.append(onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims)))
    return light


def _copy_fields(source: Any, target: Any, skip: str) -> None:
    """Every set field of the message `source` but `skip`, into `target` (a message of its type)."""
    for field, value in source.ListFields():
        if field.name == skip:
            continue
        if hasattr(value, "extend"):  # a repeated field
            getattr(target, field.name).extend(value)
        elif hasattr(value, "CopyFrom"):  # a message
            getattr(target, field.name).CopyFrom(value)
        else:
            setattr(target, field.name, value)


def _copy_types(inferred: onnx.GraphProto, graph: onnx.GraphProto) -> None:
    """The value infos and output types as inference left them (the declared ones refined, new
    ones added), into `graph` and its sub-graphs, which the weightless copy has node for node."""
    del graph.value_info[:]  # inference returns the declared value infos too, refined
    graph.value_info.extend(inferred.value_info)
    for mine, theirs in zip(graph.output, inferred.output, strict=False):
        if theirs.HasField("type"):
            mine.type.CopyFrom(theirs.type)
    for node, inferred_node in zip(graph.node, inferred.node, strict=False):
        for attr, inferred_attr in zip(node.attribute, inferred_node.attribute, strict=False):
            if attr.HasField("g"):
                _copy_types(inferred_attr.g, attr.g)
            for sub, inferred_sub in zip(attr.graphs, inferred_attr.graphs, strict=False):
                _copy_types(inferred_sub, sub)


def import_onnx(
    source: str | Path | onnx.ModelProto | bytes,
    *,
    freeze_inputs: bool = False,
    infer_shapes: bool = True,
    base_dir: str | Path | None = None,
) -> Graph:
    """Import an ONNX model (a file path, a ModelProto or serialized bytes) into the IR.

    `freeze_inputs`: initializers also listed as graph inputs become constants (from IR 4 on they
    are overridable defaults and stay inputs otherwise). `base_dir`: the folder external data is
    resolved against when `source` is not a path. Specializing a model (binding inputs to values,
    fixing dims) is not an import option: the passes bind-inputs and fix-input-shapes do it, so
    that it shows in the pass log and is checked like any other rewrite.
    """
    folder: Path | None
    owned = True  # the proto is ours (parsed here), not the caller's
    if isinstance(source, str | Path):
        path = Path(source)
        model = _read_model(path)
        shown, folder = str(path), path.resolve().parent
    else:
        if isinstance(source, bytes):
            model = onnx.ModelProto()
            try:
                model.ParseFromString(source)
            except DecodeError as error:
                raise BadInputError(f"<bytes>: not an ONNX model ({error})") from None
        elif isinstance(source, onnx.ModelProto):
            model, owned = source, False
        else:
            raise BadInputError(f"import_onnx: expected a path, bytes or ModelProto, got {type(source).__name__}")
        shown, folder = "<model>", (Path(base_dir) if base_dir is not None else None)
        _check_model_proto(model, shown)
    validate_model(model, shown)
    if infer_shapes:
        model = _infer_shapes(model, shown, owned)
    importer = Importer(shown, folder, freeze_inputs)
    importer.model_file = Path(source) if isinstance(source, str | Path) else None
    with gc_paused():
        graph = importer.model(model)
    check_inference(_without_weights(model), shown)
    check_sizes(graph, shown)
    return graph
