"""The textual form of the IR (what `mlc inspect --text`, IR dumps and pass tests use).

Example::

    model ir_version=8 opset_import={"": 17}
    graph "mlp" (%x: f32[N,64], %w0: f32[64,32] = digest<f32[64,32]> "9f2c61d0a1b2c3d4" [0.1, -0.2, ...]) {
      const %b0 = dense<f32[2]> [0.5, -1.0]
      %h: f32[N,32] = Gemm(%x, %w0, %b0) {transB=0}
      %y: f32[N,32] = Relu(%h) name="relu_1"
      return %y
    }

Print, parse, print is a fixpoint (`parse_ir(print_ir(g))` prints the same text). Constants above
`max_elements` print as a digest (dtype, shape, a sha256 prefix and a few values): such a constant
parses back into a digest tensor that compares equal by hash but has no values; pass
`max_elements=None` for a dump that keeps every value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

import numpy as np

from mlc.ir.attributes import Attr, AttrType
from mlc.ir.core import Function, Graph, Node, Value
from mlc.ir.dtypes import DType
from mlc.ir.tensor import SparseTensor, Tensor
from mlc.ir.types import MapType, OpaqueType, OptionalType, SequenceType, SparseTensorType, TensorType, Type

DEFAULT_MAX_ELEMENTS = 32
PREVIEW = 4
_BARE_VALUE = re.compile(r"[A-Za-z0-9_.\-/]+\Z")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*\Z")
_DIM_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_KEYWORDS = {"none", "inf", "nan", "true", "false", "graph", "const", "return", "model", "function",
             "dense", "splat", "digest", "sparse", "type", "hex", "doc", "meta", "name", "loc"}
_EMPTY_LIST = {AttrType.FLOATS: "floats[]", AttrType.INTS: "ints[]", AttrType.STRINGS: "strings[]",
               AttrType.TENSORS: "tensors[]", AttrType.GRAPHS: "graphs[]",
               AttrType.SPARSE_TENSORS: "sparse_tensors[]", AttrType.TYPE_PROTOS: "types[]"}
ATTR_KIND_NAMES = {t: t.name.lower() for t in AttrType}


def quote(text: str | bytes) -> str:
    """A string literal: JSON-escaped UTF-8, or hex"..." for bytes that are not UTF-8."""
    if isinstance(text, bytes):
        return 'hex"' + text.hex() + '"'
    return json.dumps(text, ensure_ascii=False)


def value_ref(value: Value | None) -> str:
    if value is None:
        return "none"
    name = value.name
    return "%" + name if _BARE_VALUE.match(name) else "%" + quote(name)


def ident(name: str) -> str:
    return name if _IDENT.match(name) and name not in _KEYWORDS else quote(name)


def op_ref(domain: str, op_type: str, overload: str = "") -> str:
    text = (ident(domain) + "::" if domain else "") + ident(op_type)
    return text + (f"<{quote(overload)}>" if overload else "")


def format_float(value: float, dtype: DType = DType.FLOAT) -> str:
    """Shortest text that reads back to the same value of `dtype`."""
    if dtype == DType.DOUBLE:
        text = repr(float(value))
    elif dtype == DType.FLOAT16:
        text = str(np.float16(value))
    else:
        text = str(np.float32(value))
    return text


def format_dim(dim: int | str | None) -> str:
    if dim is None:
        return "?"
    if isinstance(dim, int):
        return str(dim)
    return dim if _DIM_IDENT.match(dim) and dim not in ("inf", "nan") else quote(dim)


def format_shape(shape: Sequence[int | str | None] | None) -> str:
    return "[*]" if shape is None else "[" + ",".join(format_dim(d) for d in shape) + "]"


def format_type(t: Type | None) -> str:
    if t is None:
        return "?"
    if isinstance(t, TensorType):
        return t.dtype.short_name + format_shape(t.shape)
    if isinstance(t, SparseTensorType):
        return f"sparse_tensor<{t.dtype.short_name}{format_shape(t.shape)}>"
    if isinstance(t, SequenceType):
        return f"seq<{format_type(t.elem)}>"
    if isinstance(t, OptionalType):
        return f"opt<{format_type(t.elem)}>"
    if isinstance(t, MapType):
        return f"map<{t.key.short_name}, {format_type(t.value)}>"
    if isinstance(t, OpaqueType):
        return f"opaque<{quote(t.domain)}, {quote(t.name)}>"
    raise TypeError(f"not an IR type: {t!r}")


def _element_texts(array: np.ndarray, dtype: DType) -> list[str] | None:
    """Per-element literals, or None when the values must print as raw bytes (exact hex)."""
    flat = array.reshape(-1)
    if dtype == DType.BOOL:
        return ["true" if v else "false" for v in flat]
    if dtype == DType.STRING:
        return [quote(_as_text(v)) for v in flat]
    if dtype in (DType.FLOAT, DType.FLOAT16, DType.DOUBLE):
        if np.isnan(flat).any():
            return None  # NaN payloads would be lost
        return [format_float(v, dtype) for v in flat]
    if dtype.is_exotic or dtype in (DType.COMPLEX64, DType.COMPLEX128) or dtype == DType.UNDEFINED:
        return None
    return [str(int(v)) for v in flat]


def _as_text(value: object) -> str | bytes:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value
    return str(value)


def format_tensor(tensor: Tensor, max_elements: int | None = DEFAULT_MAX_ELEMENTS) -> str:
    head = f"{tensor.dtype.short_name}{format_shape(tensor.shape)}"
    if tensor.is_splat:
        texts = _element_texts(np.asarray(tensor.splat_value, dtype=tensor.dtype.numpy).reshape(1),
                               tensor.dtype)
        body = texts[0] if texts is not None else 'hex"' + np.asarray(
            tensor.splat_value, dtype=tensor.dtype.numpy).tobytes().hex() + '"'
        return f"splat<{head}> {body}"
    if tensor.is_digest:
        return f"digest<{head}> {quote(tensor.digest())} [{', '.join(tensor.preview)}]"
    if max_elements is not None and tensor.size > max_elements:
        flat = tensor.numpy().reshape(-1)[:PREVIEW]
        texts = _element_texts(flat, tensor.dtype)
        preview = texts if texts is not None else ["?"] * len(flat)
        more = [", ..."] if tensor.size > PREVIEW else []
        return f"digest<{head}> {quote(tensor.digest())} [{', '.join(preview)}{''.join(more)}]"
    array = tensor.numpy()
    texts = _element_texts(array, tensor.dtype)
    if texts is None:
        return f'dense<{head}> hex"{np.ascontiguousarray(array).tobytes().hex()}"'
    return f"dense<{head}> [{', '.join(texts)}]"


def format_sparse(sparse: SparseTensor, max_elements: int | None) -> str:
    dims = ",".join(str(d) for d in sparse.dims)
    return (f"sparse<{sparse.dtype.short_name}[{dims}]> values={format_tensor(sparse.values, max_elements)}"
            f" indices={format_tensor(sparse.indices, max_elements)}")


def _doc_meta(doc: str, meta: dict[str, str]) -> str:
    """The ` doc="…" meta={…}` suffix of nodes, functions and the model line (empty parts omitted)."""
    text = f" doc={quote(doc)}" if doc else ""
    return text + (f" meta={json.dumps(meta, ensure_ascii=False)}" if meta else "")


class Printer:
    def __init__(self, max_elements: int | None = DEFAULT_MAX_ELEMENTS, indent: str = "  ",
                 debug_info: bool = False) -> None:
        self.max_elements = max_elements
        self.indent = indent
        self.debug_info = debug_info

    # ---------------------------------------------------------------- attributes
    def attr_value(self, attr: Attr, depth: int) -> str:
        if attr.ref is not None:
            return f"@{ident(attr.ref)}: {ATTR_KIND_NAMES[attr.type]}"
        t, v = attr.type, attr.value
        if t in _EMPTY_LIST and not v:
            return _EMPTY_LIST[t]
        if t == AttrType.INT:
            return str(v)
        if t == AttrType.FLOAT:
            return format_float(v)
        if t == AttrType.STRING:
            return quote(v)
        if t == AttrType.TENSOR:
            return format_tensor(v, self.max_elements)
        if t == AttrType.SPARSE_TENSOR:
            return format_sparse(v, self.max_elements)
        if t == AttrType.TYPE_PROTO:
            return f"type<{format_type(v)}>"
        if t == AttrType.GRAPH:
            return self.graph(v, depth)
        if t == AttrType.INTS:
            return "[" + ", ".join(str(x) for x in v) + "]"
        if t == AttrType.FLOATS:
            return "[" + ", ".join(format_float(x) for x in v) + "]"
        if t == AttrType.STRINGS:
            return "[" + ", ".join(quote(x) for x in v) + "]"
        if t == AttrType.TENSORS:
            return "[" + ", ".join(format_tensor(x, self.max_elements) for x in v) + "]"
        if t == AttrType.SPARSE_TENSORS:
            return "[" + ", ".join(format_sparse(x, self.max_elements) for x in v) + "]"
        if t == AttrType.TYPE_PROTOS:
            return "[" + ", ".join(f"type<{format_type(x)}>" for x in v) + "]"
        if t == AttrType.GRAPHS:
            return "[" + ", ".join(self.graph(g, depth) for g in v) + "]"
        raise TypeError(f"attribute {attr.name}: cannot print kind {t!r}")

    def attrs(self, attributes: dict[str, Attr], depth: int) -> str:
        if not attributes:
            return ""
        parts = []
        for attr in attributes.values():
            doc = f" doc={quote(attr.doc_string)}" if attr.doc_string else ""
            parts.append(f"{ident(attr.name)}={self.attr_value(attr, depth)}{doc}")
        return " {" + ", ".join(parts) + "}"

    # ---------------------------------------------------------------- values and nodes
    @staticmethod
    def typed(value: Value) -> str:
        return value_ref(value) if value.type is None else f"{value_ref(value)}: {format_type(value.type)}"

    def node(self, node: Node, depth: int) -> str:
        outs = ", ".join("none" if v is None else self.typed(v) for v in node.outputs)
        ins = ", ".join(value_ref(v) for v in node.inputs)
        text = (f"{outs} = " if node.outputs else "") + f"{op_ref(node.domain, node.op_type, node.overload)}({ins})"
        text += self.attrs(node.attributes, depth)
        if node.name:
            text += f" name={quote(node.name)}"
        text += _doc_meta(node.doc_string, node.metadata_props)
        if self.debug_info and (node.source or node.created_by):
            sources = ", ".join(quote(s) for s in node.source)
            text += f" loc([{sources}]" + (f", {quote(node.created_by)})" if node.created_by else ")")
        return text

    # ---------------------------------------------------------------- graphs
    def graph_lines(self, graph: Graph, depth: int) -> list[str]:
        pad = self.indent * (depth + 1)
        lines: list[str] = []
        if graph.doc_string:
            lines.append(f"{pad}doc {quote(graph.doc_string)}")
        if graph.metadata_props:
            lines.append(f"{pad}meta {json.dumps(graph.metadata_props, ensure_ascii=False)}")
        inputs = {id(v) for v in graph.inputs}
        for table in (graph.initializers, graph.sparse_initializers):
            for value in table.values():
                if id(value) in inputs:
                    continue
                lines.append(f"{pad}const {self._const_decl(value)}")
        for node in graph:
            lines.append(pad + self.node(node, depth + 1))
        lines.append(f"{pad}return " + ", ".join(value_ref(v) for v in graph.outputs))
        return lines

    def _const_decl(self, value: Value) -> str:
        const = value.const
        if isinstance(const, SparseTensor):
            literal = format_sparse(const, self.max_elements)
            derived: Type = SparseTensorType(const.dtype, const.dims)
        else:
            assert const is not None
            literal = format_tensor(const, self.max_elements)
            derived = TensorType(const.dtype, const.shape)
        head = value_ref(value) if value.type in (None, derived) else self.typed(value)
        return f"{head} = {literal}"

    def graph_input(self, value: Value) -> str:
        text = self.typed(value)
        if value.const is not None:
            literal = (format_sparse(value.const, self.max_elements) if isinstance(value.const, SparseTensor)
                       else format_tensor(value.const, self.max_elements))
            text += f" = {literal}"
        return text

    def graph(self, graph: Graph, depth: int = 0) -> str:
        head = f"graph {quote(graph.name)} (" + ", ".join(self.graph_input(v) for v in graph.inputs) + ") {"
        closing = self.indent * depth + "}"
        return "\n".join([head, *self.graph_lines(graph, depth), closing])

    def function(self, fn: Function) -> str:
        body = fn.body
        params = []
        for name in fn.attributes:
            default = fn.attribute_defaults.get(name)
            params.append(ident(name) if default is None else f"{ident(name)}={self.attr_value(default, 0)}")
        for name, default in fn.attribute_defaults.items():
            if name not in fn.attributes:
                params.append(f"{ident(name)}={self.attr_value(default, 0)}")
        head = f"function {op_ref(fn.domain, fn.name, fn.overload)}("
        head += ", ".join(self.typed(v) for v in body.inputs) + ")"
        if params:
            head += " attributes [" + ", ".join(params) + "]"
        if fn.opset_imports:
            head += f" opset_import={json.dumps(fn.opset_imports)}"
        head += _doc_meta(fn.doc_string, fn.metadata_props)
        return "\n".join([head + " {", *self.graph_lines(body, 0), "}"])

    def module(self, graph: Graph) -> str:
        parts: list[str] = []
        model = graph.model
        if model is not None:
            fields = []
            if model.ir_version is not None:
                fields.append(f"ir_version={model.ir_version}")
            fields.append(f"opset_import={json.dumps(model.opset_imports)}")
            for key in ("producer_name", "producer_version", "domain"):
                if getattr(model, key):
                    fields.append(f"{key}={quote(getattr(model, key))}")
            if model.model_version:
                fields.append(f"model_version={model.model_version}")
            if model.doc_string:
                fields.append(f"doc={quote(model.doc_string)}")
            if model.metadata_props:
                fields.append(f"meta={json.dumps(model.metadata_props, ensure_ascii=False)}")
            parts.append("model " + " ".join(fields))
            parts.extend(self.function(fn) for fn in model.functions)
        parts.append(self.graph(graph))
        return "\n".join(parts) + "\n"


def print_ir(graph: Graph, max_elements: int | None = DEFAULT_MAX_ELEMENTS, *, debug_info: bool = False) -> str:
    """The text form of a graph (and, for a main graph, its model header and functions).

    `debug_info=True` adds each node's provenance, like MLIR locations:
    `loc(["conv1", "bn1"], "fuse-conv-bn/conv_bn")` (source ONNX nodes, creating pass/rule).
    """
    return Printer(max_elements, debug_info=debug_info).module(graph)


def print_node(node: Node) -> str:
    return Printer().node(node, 0)
