"""Parser of the textual IR (the inverse of `mlc.ir.printer`).

Values are resolved by name through the scopes of nested graphs, so a sub-graph may read a value
of its enclosing graph. Errors raise `TextParseError` with line and column.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

from mlc.errors import TextParseError
from mlc.ir.attributes import Attr, AttrType
from mlc.ir.core import Function, Graph, ModelInfo, Node, Value
from mlc.ir.dtypes import DType
from mlc.ir.tensor import SparseTensor, Tensor
from mlc.ir.types import MapType, OpaqueType, OptionalType, SequenceType, SparseTensorType, TensorType, Type

_TOKEN = re.compile(
    r"""(?P<ws>\s+|//[^\n]*)
      |(?P<value>%(?:"(?:[^"\\]|\\.)*"|[A-Za-z0-9_.\-/]+))
      |(?P<hex>hex"[0-9a-fA-F]*")
      |(?P<string>"(?:[^"\\]|\\.)*")
      |(?P<number>-?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|inf\b|nan\b))
      |(?P<ident>[A-Za-z_][A-Za-z0-9_.\-]*)
      |(?P<ellipsis>\.\.\.)
      |(?P<punct>->|::|[()\[\]{}<>,=:@*?])
    """,
    re.VERBOSE,
)
_LIST_KINDS = {"floats": AttrType.FLOATS, "ints": AttrType.INTS, "strings": AttrType.STRINGS,
               "tensors": AttrType.TENSORS, "graphs": AttrType.GRAPHS,
               "sparse_tensors": AttrType.SPARSE_TENSORS, "types": AttrType.TYPE_PROTOS}
_KIND_BY_NAME = {t.name.lower(): t for t in AttrType}


class _Tok:
    __slots__ = ("kind", "pos", "text")

    def __init__(self, kind: str, text: str, pos: int) -> None:
        self.kind, self.text, self.pos = kind, text, pos


def _tokenize(text: str) -> list[_Tok]:
    tokens = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            line = text.count("\n", 0, pos) + 1
            col = pos - (text.rfind("\n", 0, pos) + 1) + 1
            raise TextParseError(f"line {line}:{col}: unexpected character {text[pos]!r}")
        kind = match.lastgroup
        assert kind is not None
        if kind != "ws":
            tokens.append(_Tok(kind, match.group(), pos))
        pos = match.end()
    tokens.append(_Tok("eof", "", len(text)))
    return tokens


def _unquote(token: str) -> str | bytes:
    if token.startswith("hex"):
        return bytes.fromhex(token[4:-1])
    text: str = json.loads(token)  # a JSON string token
    return text


class Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0
        self.scopes: list[dict[str, Value]] = []

    # ---------------------------------------------------------------- token helpers
    def error(self, message: str, tok: _Tok | None = None) -> TextParseError:
        tok = tok or self.tokens[self.i]
        line = self.text.count("\n", 0, tok.pos) + 1
        col = tok.pos - (self.text.rfind("\n", 0, tok.pos) + 1) + 1
        shown = tok.text or "end of input"
        return TextParseError(f"line {line}:{col}: {message} (at {shown!r})")

    @property
    def tok(self) -> _Tok:
        return self.tokens[self.i]

    def peek(self, offset: int = 1) -> _Tok:
        return self.tokens[min(self.i + offset, len(self.tokens) - 1)]

    def next(self) -> _Tok:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def at(self, text: str) -> bool:
        return self.tok.text == text and self.tok.kind in ("punct", "ident", "ellipsis")

    def accept(self, text: str) -> bool:
        if self.at(text):
            self.i += 1
            return True
        return False

    def expect(self, text: str) -> _Tok:
        if not self.at(text):
            raise self.error(f"expected {text!r}")
        return self.next()

    def name(self) -> str:
        """An identifier or a quoted string."""
        tok = self.next()
        if tok.kind == "ident":
            return tok.text
        if tok.kind in ("string", "hex"):
            text = _unquote(tok.text)
            return text.decode("utf-8", "surrogateescape") if isinstance(text, bytes) else text
        raise self.error("expected a name", tok)

    def string(self) -> str | bytes:
        tok = self.next()
        if tok.kind not in ("string", "hex"):
            raise self.error("expected a string", tok)
        return _unquote(tok.text)

    def text_string(self) -> str:
        value = self.string()
        return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value

    def integer(self) -> int:
        tok = self.next()
        if tok.kind != "number":
            raise self.error("expected an integer", tok)
        try:
            return int(tok.text)
        except ValueError:
            raise self.error("expected an integer", tok) from None

    def json_object(self) -> dict[str, Any]:
        """A `{"key": value, ...}` object of strings or ints, read token by token."""
        self.expect("{")
        result: dict[str, Any] = {}
        while not self.accept("}"):
            key = self.text_string()
            self.expect(":")
            tok = self.tok
            result[key] = self.integer() if tok.kind == "number" else self.text_string()
            if not self.at("}"):
                self.expect(",")
        return result

    # ---------------------------------------------------------------- values
    def value_name(self) -> str:
        tok = self.next()
        if tok.kind != "value":
            raise self.error("expected a %value", tok)
        body = tok.text[1:]
        return json.loads(body) if body.startswith('"') else body

    def lookup(self, name: str, tok: _Tok) -> Value:
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        raise self.error(f"undefined value %{name}", tok)

    def define(self, value: Value, tok: _Tok) -> None:
        if value.name in self.scopes[-1]:
            raise self.error(f"value %{value.name} is defined twice", tok)
        self.scopes[-1][value.name] = value

    def use(self) -> Value | None:
        if self.accept("none"):
            return None
        tok = self.tok
        return self.lookup(self.value_name(), tok)

    # ---------------------------------------------------------------- types
    def dtype(self) -> DType:
        tok = self.next()
        try:
            return DType.from_short_name(tok.text)
        except ValueError:
            raise self.error("expected an element type", tok) from None

    def shape(self) -> tuple[int | str | None, ...] | None:
        self.expect("[")
        if self.accept("*"):
            self.expect("]")
            return None
        dims: list[int | str | None] = []
        while not self.accept("]"):
            tok = self.tok
            if self.accept("?"):
                dims.append(None)
            elif tok.kind == "number":
                dims.append(self.integer())
            else:
                dims.append(self.name())
            if not self.at("]"):
                self.expect(",")
        return tuple(dims)

    def type(self) -> Type | None:
        if self.accept("?"):
            return None
        tok = self.tok
        if tok.kind == "ident" and self.peek().text == "<":
            word = self.next().text
            self.expect("<")
            result: Type
            if word == "seq":
                result = SequenceType(self.type())
            elif word == "opt":
                result = OptionalType(self.type())
            elif word == "map":
                key = self.dtype()
                self.expect(",")
                result = MapType(key, self.type())
            elif word == "sparse_tensor":
                dtype = self.dtype()
                result = SparseTensorType(dtype, self.shape())
            elif word == "opaque":
                domain = self.text_string()
                self.expect(",")
                result = OpaqueType(domain, self.text_string())
            else:
                raise self.error("unknown type constructor", tok)
            self.expect(">")
            return result
        dtype = self.dtype()
        return TensorType(dtype, self.shape())

    # ---------------------------------------------------------------- tensors
    def _head(self, word: str) -> tuple[DType, tuple[int, ...]]:
        self.expect(word)
        self.expect("<")
        dtype = self.dtype()
        tok = self.tok
        shape = self.shape()
        if shape is None or not all(isinstance(d, int) for d in shape):
            raise self.error("a constant needs a static shape", tok)
        self.expect(">")
        return dtype, tuple(int(d) for d in shape)  # type: ignore[arg-type]

    def scalar(self, dtype: DType) -> Any:
        tok = self.next()
        if dtype == DType.BOOL:
            if tok.text not in ("true", "false"):
                raise self.error("expected true or false", tok)
            return tok.text == "true"
        if dtype == DType.STRING:
            if tok.kind not in ("string", "hex"):
                raise self.error("expected a string", tok)
            value = _unquote(tok.text)
            return value.encode() if isinstance(value, str) else value
        if tok.kind not in ("number", "ident"):
            raise self.error("expected a number", tok)
        return tok.text

    def tensor(self) -> Tensor:
        word = self.tok.text
        if word == "splat":
            dtype, shape = self._head("splat")
            if self.tok.kind == "hex":
                raw = _unquote(self.next().text)
                assert isinstance(raw, bytes)
                value = np.frombuffer(raw, dtype=dtype.numpy)[0]
                return Tensor(dtype, shape, splat=value)
            return Tensor.splat_of(self._convert([self.scalar(dtype)], dtype)[0], dtype, shape)
        if word == "digest":
            dtype, shape = self._head("digest")
            digest = self.text_string()
            self.expect("[")
            preview = []
            while not self.accept("]"):
                tok = self.next()
                if tok.text != ",":
                    preview.append(tok.text)
            return Tensor(dtype, shape, digest=digest, preview=preview)
        dtype, shape = self._head("dense")
        if self.tok.kind == "hex":
            raw = _unquote(self.next().text)
            assert isinstance(raw, bytes)
            array = np.frombuffer(raw, dtype=dtype.numpy).reshape(shape).copy()
            return Tensor(dtype, shape, array=array)
        self.expect("[")
        items = []
        while not self.accept("]"):
            items.append(self.scalar(dtype))
            if not self.at("]"):
                self.expect(",")
        array = np.array(self._convert(items, dtype), dtype=dtype.numpy)
        if dtype == DType.STRING:
            array = np.empty(len(items), dtype=object)
            array[:] = items
        return Tensor(dtype, shape, array=array.reshape(shape))

    @staticmethod
    def _convert(items: list[Any], dtype: DType) -> list[Any]:
        if dtype == DType.BOOL or dtype == DType.STRING:
            return items
        if dtype.is_float:
            return [float(x) for x in items]
        return [int(x) for x in items]

    def sparse(self) -> SparseTensor:
        self.expect("sparse")
        self.expect("<")
        self.dtype()
        tok = self.tok
        dims = self.shape()
        if dims is None or not all(isinstance(d, int) for d in dims):
            raise self.error("sparse dims must be static", tok)
        self.expect(">")
        self.expect("values")
        self.expect("=")
        values = self.tensor()
        self.expect("indices")
        self.expect("=")
        indices = self.tensor()
        return SparseTensor(values, indices, [int(d) for d in dims])  # type: ignore[arg-type]

    # ---------------------------------------------------------------- attributes
    def attr(self, name: str) -> Attr:
        tok = self.tok
        if self.accept("@"):
            ref = self.name()
            self.expect(":")
            kind_tok = self.next()
            if kind_tok.text not in _KIND_BY_NAME:
                raise self.error("unknown attribute kind", kind_tok)
            return Attr(name, _KIND_BY_NAME[kind_tok.text], None, ref=ref)
        if tok.kind == "ident" and tok.text in _LIST_KINDS and self.peek().text == "[":
            self.next()
            self.expect("[")
            self.expect("]")
            return Attr(name, _LIST_KINDS[tok.text], [])
        if tok.kind == "number":
            self.next()
            if re.fullmatch(r"-?\d+", tok.text):
                return Attr(name, AttrType.INT, int(tok.text))
            return Attr(name, AttrType.FLOAT, float(np.float32(tok.text)))
        if tok.kind == "ident" and tok.text in ("inf", "nan"):
            self.next()
            return Attr(name, AttrType.FLOAT, float(np.float32(tok.text)))
        if tok.kind in ("string", "hex"):
            value = _unquote(self.next().text)
            return Attr(name, AttrType.STRING, value)
        if tok.text in ("dense", "splat", "digest"):
            return Attr(name, AttrType.TENSOR, self.tensor())
        if tok.text == "sparse":
            return Attr(name, AttrType.SPARSE_TENSOR, self.sparse())
        if tok.text == "type":
            return Attr(name, AttrType.TYPE_PROTO, self.type_literal())
        if tok.text == "graph":
            return Attr(name, AttrType.GRAPH, self.graph())
        if self.accept("["):
            return self.attr_list(name)
        raise self.error(f"attribute {name}: expected a value")

    def type_literal(self) -> Type | None:
        self.expect("type")
        self.expect("<")
        result = self.type()
        self.expect(">")
        return result

    def attr_list(self, name: str) -> Attr:
        items: list[Attr] = []
        while not self.accept("]"):
            items.append(self.attr(name))
            if not self.at("]"):
                self.expect(",")
        kinds = {a.type for a in items}
        if kinds <= {AttrType.INT}:
            return Attr(name, AttrType.INTS, [a.value for a in items])
        if kinds <= {AttrType.INT, AttrType.FLOAT}:
            return Attr(name, AttrType.FLOATS, [float(np.float32(a.value)) for a in items])
        single = {AttrType.STRING: AttrType.STRINGS, AttrType.TENSOR: AttrType.TENSORS,
                  AttrType.GRAPH: AttrType.GRAPHS, AttrType.SPARSE_TENSOR: AttrType.SPARSE_TENSORS,
                  AttrType.TYPE_PROTO: AttrType.TYPE_PROTOS}
        if len(kinds) == 1 and next(iter(kinds)) in single:
            return Attr(name, single[next(iter(kinds))], [a.value for a in items])
        raise self.error(f"attribute {name}: a list mixes kinds")

    def attrs(self) -> list[Attr]:
        result: list[Attr] = []
        if not self.accept("{"):
            return result
        while not self.accept("}"):
            name = self.name()
            self.expect("=")
            attr = self.attr(name)
            if self.accept("doc"):
                self.expect("=")
                attr.doc_string = self.text_string()
            result.append(attr)
            if not self.at("}"):
                self.expect(",")
        return result

    # ---------------------------------------------------------------- nodes and graphs
    def output_decl(self) -> Value | None:
        if self.accept("none"):
            return None
        tok = self.tok
        value = Value(self.value_name())
        if self.accept(":"):
            value.type = self.type()
        self.define(value, tok)
        return value

    def node(self, graph: Graph) -> None:
        outputs: list[Value | None] = []
        if self.tok.kind == "value" or (self.at("none") and self.peek().text in (",", "=")):
            outputs.append(self.output_decl())
            while self.accept(","):
                outputs.append(self.output_decl())
            self.expect("=")
        first = self.name()
        domain, op_type = "", first
        if self.accept("::"):
            domain, op_type = first, self.name()
        overload = ""
        if self.accept("<"):
            overload = self.text_string()
            self.expect(">")
        self.expect("(")
        inputs: list[Value | None] = []
        while not self.accept(")"):
            inputs.append(self.use())
            if not self.at(")"):
                self.expect(",")
        attrs = self.attrs()
        node = Node(op_type, inputs, outputs, attrs, domain=domain, overload=overload)
        while True:
            if self.accept("name"):
                self.expect("=")
                node.name = self.text_string()
            elif self.accept("doc"):
                self.expect("=")
                node.doc_string = self.text_string()
            elif self.accept("meta"):
                self.expect("=")
                node.metadata_props = self.json_object()
            elif self.accept("loc"):
                self.expect("(")
                self.expect("[")
                sources = []
                while not self.accept("]"):
                    sources.append(self.text_string())
                    if not self.at("]"):
                        self.expect(",")
                node.source = tuple(sources)
                if self.accept(","):
                    node.created_by = self.text_string()
                self.expect(")")
            else:
                break
        graph.append(node)

    def graph_input(self, graph: Graph) -> None:
        tok = self.tok
        value = Value(self.value_name())
        if self.accept(":"):
            value.type = self.type()
        self.define(value, tok)
        graph.add_input(value)
        if self.accept("="):
            value.const = self.sparse() if self.at("sparse") else self.tensor()
            graph.add_initializer(value)

    def graph_inputs(self, graph: Graph) -> None:
        """`(%a: T, %w: T = <tensor>, ...)`"""
        self.expect("(")
        while not self.accept(")"):
            self.graph_input(graph)
            if not self.at(")"):
                self.expect(",")

    def body(self, graph: Graph) -> None:
        self.expect("{")
        while True:
            if self.accept("doc"):
                graph.doc_string = self.text_string()
            elif self.accept("meta"):
                graph.metadata_props = self.json_object()
            elif self.accept("const"):
                tok = self.tok
                value = Value(self.value_name())
                if self.accept(":"):
                    value.type = self.type()
                self.expect("=")
                const = self.sparse() if self.at("sparse") else self.tensor()
                value.const = const
                if value.type is None:
                    value.type = (SparseTensorType(const.dtype, const.dims) if isinstance(const, SparseTensor)
                                  else TensorType(const.dtype, const.shape))
                self.define(value, tok)
                graph.add_initializer(value)
            elif self.accept("return"):
                if not self.at("}"):
                    graph.outputs.append(self._output_use())
                    while self.accept(","):
                        graph.outputs.append(self._output_use())
                self.expect("}")
                return
            else:
                self.node(graph)

    def _output_use(self) -> Value:
        tok = self.tok
        value = self.use()
        if value is None:
            raise self.error("a graph output cannot be none", tok)
        return value

    def graph(self, model: ModelInfo | None = None) -> Graph:
        self.expect("graph")
        graph = Graph(self.name(), model)
        self.scopes.append({})
        try:
            self.graph_inputs(graph)
            self.body(graph)
        finally:
            self.scopes.pop()
        return graph

    def function(self) -> Function:
        self.expect("function")
        first = self.name()
        domain, name = "", first
        if self.accept("::"):
            domain, name = first, self.name()
        overload = ""
        if self.accept("<"):
            overload = self.text_string()
            self.expect(">")
        body = Graph(name)
        self.scopes.append({})
        try:
            self.graph_inputs(body)
            params: list[str] = []
            defaults: dict[str, Attr] = {}
            opsets: dict[str, int] = {}
            doc, meta = "", {}
            while True:
                if self.accept("attributes"):
                    self.expect("[")
                    while not self.accept("]"):
                        pname = self.name()
                        if self.accept("="):
                            defaults[pname] = self.attr(pname)
                        else:
                            params.append(pname)
                        if not self.at("]"):
                            self.expect(",")
                elif self.accept("opset_import"):
                    self.expect("=")
                    opsets = self.json_object()
                elif self.accept("doc"):
                    self.expect("=")
                    doc = self.text_string()
                elif self.accept("meta"):
                    self.expect("=")
                    meta = self.json_object()
                else:
                    break
            self.body(body)
        finally:
            self.scopes.pop()
        return Function(name, domain, body, overload=overload, attributes=params,
                        attribute_defaults=defaults, opset_imports=opsets, doc_string=doc,
                        metadata_props=meta)

    def module(self) -> Graph:
        model: ModelInfo | None = None
        if self.accept("model"):
            model = ModelInfo()
            while self.tok.kind == "ident" and self.peek().text == "=":
                key = self.next().text
                self.expect("=")
                if key in ("ir_version", "model_version"):
                    setattr(model, key, self.integer())
                elif key == "opset_import":
                    model.opset_imports = self.json_object()
                elif key in ("producer_name", "producer_version", "domain"):
                    setattr(model, key, self.text_string())
                elif key == "doc":
                    model.doc_string = self.text_string()
                elif key == "meta":
                    model.metadata_props = self.json_object()
                else:
                    raise self.error(f"unknown model field {key!r}")
            while self.at("function"):
                model.functions.append(self.function())
        graph = self.graph(model)
        if self.tok.kind != "eof":
            raise self.error("expected end of input")
        return graph


def parse_ir(text: str) -> Graph:
    """Parse the text form back into a Graph (inverse of `print_ir`)."""
    return Parser(text).module()


def parse_type(text: str) -> Type | None:
    """One type in the text form (`f32[N,64]`, `?` for unknown: None), as `format_type` prints it;
    TextParseError when the text is not exactly one type."""
    parser = Parser(text)
    result = parser.type()
    if parser.tok.kind != "eof":
        raise parser.error("unexpected text after the type")
    return result

