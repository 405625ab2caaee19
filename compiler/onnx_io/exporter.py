"""IR → ONNX.

`export_onnx(graph)` gives a ModelProto that onnxruntime 1.31 opens: the IR version is the
model's own, clamped to the highest onnxruntime reads. Unmodified weights are copied from the
TensorProto they were imported from (a C++ copy); large splats are written back as
ConstantOfShape. Value names are made unique where passes left duplicates, without touching the
graph. `save_onnx(graph, path)` writes a file atomically and moves weights to a side file when the
model would pass protobuf's 2 GB limit.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from mlc.errors import BadInputError
from mlc.gc_pause import gc_paused
from mlc.ir.attributes import Attr, AttrType
from mlc.ir.core import Function, Graph, Node, Value
from mlc.ir.dtypes import DType
from mlc.ir.tensor import SparseTensor, Tensor
from mlc.ir.types import MapType, OpaqueType, OptionalType, SequenceType, SparseTensorType, TensorType, Type

# onnxruntime 1.31 opens IR versions up to 13 (tests/onnx_io/test_exporter.py asks onnxruntime).
ORT_MAX_IR_VERSION = 13
# A splat above this many bytes is written as ConstantOfShape rather than as a full initializer.
SPLAT_AS_NODE_BYTES = 1024
PROTOBUF_LIMIT = 2**31 - 1
# Keep well clear of the limit: the graph itself needs room beside the weights.
EXTERNAL_THRESHOLD = PROTOBUF_LIMIT - (64 << 20)

# Provenance travels in node metadata under these keys (read back by the importer).
SOURCE_KEY = "mlc.source"
CREATED_BY_KEY = "mlc.created_by"

TensorSink = Callable[[onnx.TensorProto, Tensor], None]


def type_to_proto(t: Type | None, proto: onnx.TypeProto) -> None:
    if t is None:
        return
    if isinstance(t, TensorType | SparseTensorType):
        target = proto.tensor_type if isinstance(t, TensorType) else proto.sparse_tensor_type
        target.elem_type = int(t.dtype)
        if t.shape is not None:
            shape = target.shape
            shape.SetInParent()
            for d in t.shape:
                dim = shape.dim.add()
                if isinstance(d, int):
                    dim.dim_value = d
                elif isinstance(d, str):
                    dim.dim_param = d
    elif isinstance(t, SequenceType):
        proto.sequence_type.SetInParent()
        type_to_proto(t.elem, proto.sequence_type.elem_type)
    elif isinstance(t, OptionalType):
        proto.optional_type.SetInParent()
        type_to_proto(t.elem, proto.optional_type.elem_type)
    elif isinstance(t, MapType):
        proto.map_type.key_type = int(t.key)
        type_to_proto(t.value, proto.map_type.value_type)
    elif isinstance(t, OpaqueType):
        proto.opaque_type.domain = t.domain
        proto.opaque_type.name = t.name


def inline_sink(proto: onnx.TensorProto, tensor: Tensor) -> None:
    array = tensor.numpy()
    if tensor.dtype == DType.STRING:
        proto.string_data.extend(s if isinstance(s, bytes) else str(s).encode() for s in array.reshape(-1))
        return
    converted = numpy_helper.from_array(np.ascontiguousarray(array).astype(tensor.dtype.numpy, copy=False))
    proto.raw_data = converted.raw_data


class _Names:
    """Export names: each value's own name, made unique in its scope chain where needed."""

    def __init__(self) -> None:
        self.names: dict[int, str] = {}
        self.taken: set[str] = set()
        self.counter = 0

    def assign(self, value: Value) -> str:
        name = value.name or "v"
        if name in self.taken:
            base = name
            while name in self.taken:
                self.counter += 1
                name = f"{base}__{self.counter}"
        self.taken.add(name)
        self.names[id(value)] = name
        return name

    def __call__(self, value: Value | None) -> str:
        if value is None:
            return ""
        name = self.names.get(id(value))
        if name is None:
            raise BadInputError(f"export: %{value.name} is used but not defined in scope (run the verifier)")
        return name


class Exporter:
    def __init__(self, sink: TensorSink, legacy_inputs: bool, opsets: dict[str, int], sink_all: bool = False,
                 value_info: bool = True) -> None:
        self.value_info = value_info
        self.sink = sink
        self.sink_all = sink_all
        self.legacy_inputs = legacy_inputs
        self.opsets = opsets
        self.names = _Names()

    def tensor(self, tensor: Tensor, proto: onnx.TensorProto, name: str) -> None:
        source = tensor.source
        if (not self.sink_all and isinstance(source, onnx.TensorProto)
                and source.data_location != onnx.TensorProto.EXTERNAL):
            proto.CopyFrom(source)
        else:
            proto.data_type = int(tensor.dtype)
            proto.dims.extend(tensor.shape)
            if tensor.is_digest:
                raise BadInputError(f"export: constant {name!r} came from a text digest and has no values")
            self.sink(proto, tensor)
        proto.name = name

    def sparse(self, sparse: SparseTensor, proto: onnx.SparseTensorProto, name: str) -> None:
        self.tensor(sparse.values, proto.values, name)
        self.tensor(sparse.indices, proto.indices, sparse.indices.name)
        proto.dims.extend(sparse.dims)

    def attribute(self, attr: Attr, proto: onnx.AttributeProto) -> None:
        proto.name = attr.name
        proto.type = onnx.AttributeProto.AttributeType.Value(attr.type.name)
        if attr.doc_string:
            proto.doc_string = attr.doc_string
        if attr.ref is not None:
            proto.ref_attr_name = attr.ref
            return
        t, v = attr.type, attr.value
        if t == AttrType.FLOAT:
            proto.f = v
        elif t == AttrType.INT:
            proto.i = v
        elif t == AttrType.STRING:
            proto.s = v.encode() if isinstance(v, str) else v
        elif t == AttrType.TENSOR:
            self.tensor(v, proto.t, v.name)
        elif t == AttrType.GRAPH:
            self.graph(v, proto.g)
        elif t == AttrType.SPARSE_TENSOR:
            self.sparse(v, proto.sparse_tensor, v.values.name)
        elif t == AttrType.TYPE_PROTO:
            type_to_proto(v, proto.tp)
        elif t == AttrType.FLOATS:
            proto.floats.extend(v)
        elif t == AttrType.INTS:
            proto.ints.extend(v)
        elif t == AttrType.STRINGS:
            proto.strings.extend(s.encode() if isinstance(s, str) else s for s in v)
        elif t == AttrType.TENSORS:
            for x in v:
                self.tensor(x, proto.tensors.add(), x.name)
        elif t == AttrType.GRAPHS:
            for g in v:
                self.graph(g, proto.graphs.add())
        elif t == AttrType.SPARSE_TENSORS:
            for x in v:
                self.sparse(x, proto.sparse_tensors.add(), x.values.name)
        elif t == AttrType.TYPE_PROTOS:
            for x in v:
                type_to_proto(x, proto.type_protos.add())

    def node(self, node: Node, proto: onnx.NodeProto) -> None:
        names = self.names
        proto.op_type = node.op_type
        if node.domain:
            proto.domain = node.domain
        if node.overload:
            proto.overload = node.overload
        if node.name:
            proto.name = node.name
        if node.doc_string:
            proto.doc_string = node.doc_string
        proto.input.extend(names(v) for v in node.inputs)
        for key, value in node.metadata_props.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        if node.source:
            entry = proto.metadata_props.add()
            entry.key, entry.value = SOURCE_KEY, json.dumps(list(node.source))
        if node.created_by:
            entry = proto.metadata_props.add()
            entry.key, entry.value = CREATED_BY_KEY, node.created_by
        for attr in node.attributes.values():
            self.attribute(attr, proto.attribute.add())
        proto.output.extend("" if v is None else names.assign(v) for v in node.outputs)

    def _splat_as_node(self, value: Value, proto: onnx.GraphProto) -> bool:
        """Write a large splat constant as ConstantOfShape(shape) where the opset allows it."""
        tensor = value.const
        if not isinstance(tensor, Tensor) or not tensor.is_splat or tensor.nbytes <= SPLAT_AS_NODE_BYTES:
            return False
        opset = self.opsets.get("", 0)
        allowed_before_20 = tensor.dtype not in (DType.STRING,) and not tensor.dtype.is_exotic and (
            tensor.dtype not in (DType.COMPLEX64, DType.COMPLEX128))
        if opset < 9 or (opset < 20 and not allowed_before_20) or tensor.dtype == DType.STRING:
            return False
        name = self.names.assign(value)
        shape_value = Value(f"{name}__shape")
        shape_name = self.names.assign(shape_value)
        shape_proto = proto.initializer.add()
        shape_proto.CopyFrom(numpy_helper.from_array(np.array(tensor.shape, dtype=np.int64), shape_name))
        node = proto.node.add()
        node.op_type = "ConstantOfShape"
        node.input.append(shape_name)
        node.output.append(name)
        attr = node.attribute.add()
        attr.name, attr.type = "value", onnx.AttributeProto.TENSOR
        one = Tensor(tensor.dtype, (1,), array=np.asarray([tensor.splat_value], dtype=tensor.dtype.numpy))
        self.tensor(one, attr.t, "")
        return True

    def graph(self, graph: Graph, proto: onnx.GraphProto, main: bool = False) -> None:
        names = self.names
        saved_taken = set(names.taken)
        proto.name = graph.name
        if graph.doc_string:
            proto.doc_string = graph.doc_string
        for key, text in graph.metadata_props.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, text
        input_ids = set()
        for value in graph.inputs:
            input_ids.add(id(value))
            vi = proto.input.add()
            vi.name = names.assign(value)
            if value.doc_string:
                vi.doc_string = value.doc_string
            type_to_proto(value.type, vi.type)
        for value in graph.initializers.values():
            if id(value) not in input_ids:
                if self._splat_as_node(value, proto):
                    continue
                names.assign(value)
            assert isinstance(value.const, Tensor)
            self.tensor(value.const, proto.initializer.add(), names(value))
            if main and self.legacy_inputs and id(value) not in input_ids:
                vi = proto.input.add()
                vi.name = names(value)
                type_to_proto(value.type or TensorType(value.const.dtype, value.const.shape), vi.type)
        for value in graph.sparse_initializers.values():
            if id(value) not in input_ids:
                names.assign(value)
            assert isinstance(value.const, SparseTensor)
            self.sparse(value.const, proto.sparse_initializer.add(), names(value))
        for node in graph:
            self.node(node, proto.node.add())
        output_ids = set()
        for value in graph.outputs:
            output_ids.add(id(value))
            vi = proto.output.add()
            vi.name = names(value)
            type_to_proto(value.type, vi.type)
            if value.doc_string and value.producer is not None:
                vi.doc_string = value.doc_string
        for node in graph if self.value_info else ():
            for out in node.outputs:
                if out is not None and out.type is not None and id(out) not in output_ids:
                    vi = proto.value_info.add()
                    vi.name = names(out)
                    type_to_proto(out.type, vi.type)
        names.taken = saved_taken | set()  # sibling sub-graphs may reuse names

    def function(self, fn: Function, proto: onnx.FunctionProto) -> None:
        body = fn.body
        proto.name, proto.domain = fn.name, fn.domain
        if fn.overload:
            proto.overload = fn.overload
        if fn.doc_string:
            proto.doc_string = fn.doc_string
        proto.input.extend(self.names.assign(v) for v in body.inputs)
        proto.attribute.extend(fn.attributes)
        for attr in fn.attribute_defaults.values():
            self.attribute(attr, proto.attribute_proto.add())
        for domain, version in fn.opset_imports.items():
            opset = proto.opset_import.add()
            opset.domain, opset.version = domain, version
        for key, text in fn.metadata_props.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, text
        for node in body:
            self.node(node, proto.node.add())
        proto.output.extend(self.names(v) for v in body.outputs)
        for node in body if self.value_info else ():
            for value in node.outputs:
                if value is not None and value.type is not None:
                    vi = proto.value_info.add()
                    vi.name = self.names(value)
                    type_to_proto(value.type, vi.type)


def export_ir_version(graph: Graph) -> int:
    """The model's IR version (or the lowest its opsets allow), clamped to what onnxruntime opens."""
    model = graph.model
    opsets = dict(model.opset_imports) if model is not None else {"": 17}
    version = model.ir_version if model is not None and model.ir_version else None
    if version is None:
        ids = [onnx.helper.make_opsetid(d, v) for d, v in opsets.items()]
        try:
            version = max(onnx.helper.find_min_ir_version_for(ids, ignore_unknown=True), 7)
        except Exception:  # noqa: BLE001 - unknown domains: fall back to a modern default
            version = 10
    return min(version, ORT_MAX_IR_VERSION)


def export_onnx(graph: Graph, *, sink: TensorSink | None = None, sink_all: bool = False,
                value_info: bool = True) -> onnx.ModelProto:
    """The graph as an ONNX ModelProto (the graph is not modified).

    `sink` writes a tensor's values into its TensorProto (default: inline raw data); with
    `sink_all` it is called for every tensor, also unmodified imported weights. `value_info=False`
    leaves out the types of intermediate values (a runtime then infers them itself; onnxruntime
    trusts declared ones, and refuses a model where a declared type is stricter than it needs,
    e.g. a Range bound declared [1] rather than a scalar).
    """
    model = graph.model
    if model is None:
        raise BadInputError("export_onnx: needs a main graph (this one is a sub-graph)")
    proto = onnx.ModelProto()
    ir_version = export_ir_version(graph)
    proto.ir_version = ir_version
    for domain, version in model.opset_imports.items():
        opset = proto.opset_import.add()
        opset.domain, opset.version = domain, version
    for key in ("producer_name", "producer_version", "domain", "model_version", "doc_string"):
        value = getattr(model, key)
        if value:
            setattr(proto, key, value)
    for key, value in model.metadata_props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    exporter = Exporter(sink or inline_sink, legacy_inputs=ir_version < 4, opsets=model.opset_imports,
                         sink_all=sink_all, value_info=value_info)
    with gc_paused():
        for fn in model.functions:
            exporter.names = _Names()
            exporter.function(fn, proto.functions.add())
        exporter.names = _Names()
        exporter.graph(graph, proto.graph, main=True)
    return proto


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _total_constant_bytes(graph: Graph) -> int:
    total = 0
    for g in graph.all_graphs():
        for value in g.initializers.values():
            if isinstance(value.const, Tensor) and not value.const.is_splat:
                total += value.const.nbytes
        for node in g:
            for attr in node.attributes.values():
                if attr.type == AttrType.TENSOR and attr.value is not None:
                    total += attr.value.nbytes
    return total


def needs_external_data(graph: Graph) -> bool:
    """Whether the graph's constants would pass protobuf's 2 GB limit in one file."""
    return _total_constant_bytes(graph) > EXTERNAL_THRESHOLD


def save_onnx(graph: Graph, path: str | Path, *, external_data: bool | None = None,
              min_external_bytes: int = 1024, value_info: bool = True, data_name: str | None = None) -> Path:
    """Write the graph to `path` atomically.

    `external_data=None` decides by size: a model whose constants would pass protobuf's 2 GB
    limit keeps weights of `min_external_bytes` or more in `<name>.data` beside it, or in
    `data_name` beside it when the model is written under a temporary name that a caller renames
    afterwards (the model names its data file, so the name must be the final one).
    """
    path = Path(path)
    if external_data is None:
        external_data = needs_external_data(graph)
    folder = path.resolve().parent
    folder.mkdir(parents=True, exist_ok=True)
    data_name = data_name or path.name + ".data"
    tmp_model = tempfile.NamedTemporaryFile(dir=folder, prefix=f".{path.name}.", suffix=".tmp", delete=False)
    tmp_data = None
    try:
        if external_data:
            tmp_data = tempfile.NamedTemporaryFile(dir=folder, prefix=f".{data_name}.", suffix=".tmp",
                                                   delete=False)
            data_file = tmp_data

            def sink(proto: onnx.TensorProto, tensor: Tensor) -> None:
                if tensor.nbytes < min_external_bytes or tensor.dtype == DType.STRING:
                    inline_sink(proto, tensor)
                    return
                offset = data_file.tell()
                padding = (-offset) % 4096  # page-aligned so that readers can memory-map
                data_file.write(b"\0" * padding)
                offset += padding
                scratch = onnx.TensorProto()
                inline_sink(scratch, tensor)
                data_file.write(scratch.raw_data)
                proto.data_location = onnx.TensorProto.EXTERNAL
                for key, value in (("location", data_name), ("offset", str(offset)),
                                   ("length", str(len(scratch.raw_data)))):
                    entry = proto.external_data.add()
                    entry.key, entry.value = key, value

            proto = export_onnx(graph, sink=sink, sink_all=True, value_info=value_info)
            tmp_data.close()
        else:
            proto = export_onnx(graph, value_info=value_info)
        tmp_model.write(proto.SerializeToString())
        tmp_model.close()
        mode = 0o666 & ~_umask()
        os.chmod(tmp_model.name, mode)  # NamedTemporaryFile creates 0600; a saved model is an ordinary file
        if tmp_data is not None:
            os.chmod(tmp_data.name, mode)
        if tmp_data is not None:
            os.replace(tmp_data.name, folder / data_name)
        os.replace(tmp_model.name, path)
    except BaseException:
        tmp_model.close()
        for tmp in (tmp_model, tmp_data):
            if tmp is not None and os.path.exists(tmp.name):
                os.unlink(tmp.name)
        raise
    return path
