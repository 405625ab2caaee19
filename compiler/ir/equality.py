"""Structural equality of graphs up to renaming of values (TVM's `assert_structural_equal`).

Two graphs are equal when their inputs, constants, nodes (in order) and outputs correspond one
to one: same op, domain, attributes (sub-graphs compared recursively), types, constant values
(bitwise) and wiring. Value and node names are not compared; doc strings and metadata are,
unless `check_metadata=False`. The model's `ir_version` is not compared: export clamps it to
what onnxruntime opens, which changes no meaning.
"""

from __future__ import annotations

from typing import Any

from mlc.ir.attributes import Attr, AttrType
from mlc.ir.core import Function, Graph, Node, Value
from mlc.ir.printer import format_type, print_node
from mlc.ir.tensor import SparseTensor, Tensor


class _Mismatch(Exception):
    pass


class _Comparer:
    def __init__(self, check_metadata: bool) -> None:
        self.check_metadata = check_metadata
        self.mapping: dict[int, Value] = {}

    def fail(self, where: str, message: str) -> _Mismatch:
        return _Mismatch(f"{where}: {message}")

    def const(self, a: Tensor | SparseTensor | None, b: Tensor | SparseTensor | None, where: str) -> None:
        if (a is None) != (b is None):
            raise self.fail(where, "one side is a constant, the other is not")
        if a is None or b is None:
            return
        if type(a) is not type(b) or not a.equals(b):  # type: ignore[arg-type]
            raise self.fail(where, f"constants differ: {a!r} vs {b!r}")

    def bind(self, a: Value | None, b: Value | None, where: str) -> None:
        if (a is None) != (b is None):
            raise self.fail(where, "one side is omitted (none), the other is not")
        if a is None or b is None:
            return
        if a.type != b.type:
            raise self.fail(where, f"%{a.name}: type {format_type(a.type)} vs {format_type(b.type)}")
        self.mapping[id(a)] = b

    def use(self, a: Value | None, b: Value | None, where: str) -> None:
        if (a is None) != (b is None):
            raise self.fail(where, "one side is omitted (none), the other is not")
        if a is None or b is None:
            return
        mapped = self.mapping.get(id(a))
        if mapped is None:
            if a.const is not None and b.const is not None and id(b) not in self._bound_b:
                self.const(a.const, b.const, where)
                self.bind(a, b, where)
                self._bound_b.add(id(b))
                return
            raise self.fail(where, f"%{a.name} has no counterpart (reads %{b.name})")
        if mapped is not b:
            raise self.fail(where, f"reads %{a.name}, which corresponds to %{mapped.name}, not %{b.name}")

    _bound_b: set[int]

    def attr_value(self, a: Attr, b: Attr, where: str) -> None:
        if a.type != b.type or a.ref != b.ref:
            raise self.fail(where, f"attribute {a.name}: kind {a.type.name} vs {b.type.name}")
        if a.ref is not None:
            return
        if a.type in (AttrType.GRAPH,):
            self.graph(a.value, b.value, f"{where}.{a.name}")
        elif a.type == AttrType.GRAPHS:
            if len(a.value) != len(b.value):
                raise self.fail(where, f"attribute {a.name}: {len(a.value)} vs {len(b.value)} graphs")
            for i, (ga, gb) in enumerate(zip(a.value, b.value, strict=True)):
                self.graph(ga, gb, f"{where}.{a.name}[{i}]")
        elif a.type in (AttrType.TENSOR, AttrType.SPARSE_TENSOR):
            self.const(a.value, b.value, f"{where} attribute {a.name}")
        elif a.type in (AttrType.TENSORS, AttrType.SPARSE_TENSORS):
            if len(a.value) != len(b.value):
                raise self.fail(where, f"attribute {a.name}: {len(a.value)} vs {len(b.value)} tensors")
            for ta, tb in zip(a.value, b.value, strict=True):
                self.const(ta, tb, f"{where} attribute {a.name}")
        elif not _same(a.value, b.value):
            raise self.fail(where, f"attribute {a.name}: {a.value!r} vs {b.value!r}")

    def node(self, a: Node, b: Node, where: str) -> None:
        try:
            self._node(a, b)
        except _Mismatch as mismatch:
            raise self.fail(f"{where}, node {print_node(a)[:120]}", str(mismatch)) from None

    def _node(self, a: Node, b: Node) -> None:
        where = "node"
        if (a.op_type, a.domain, a.overload) != (b.op_type, b.domain, b.overload):
            raise self.fail(where, f"op {a.domain}::{a.op_type} vs {b.domain}::{b.op_type}")
        if len(a.inputs) != len(b.inputs) or len(a.outputs) != len(b.outputs):
            raise self.fail(where, "different number of inputs or outputs")
        if set(a.attributes) != set(b.attributes):
            raise self.fail(where, f"attributes {sorted(a.attributes)} vs {sorted(b.attributes)}")
        if self.check_metadata and (a.doc_string, a.metadata_props) != (b.doc_string, b.metadata_props):
            raise self.fail(where, "doc string or metadata differ")
        for i, (va, vb) in enumerate(zip(a.inputs, b.inputs, strict=True)):
            self.use(va, vb, f"input {i}")
        for key, attr in a.attributes.items():
            self.attr_value(attr, b.attributes[key], "attributes")
        for i, (va, vb) in enumerate(zip(a.outputs, b.outputs, strict=True)):
            self.bind(va, vb, f"output {i}")

    def graph(self, a: Graph, b: Graph, where: str = "graph") -> None:
        if len(a.inputs) != len(b.inputs):
            raise self.fail(where, f"{len(a.inputs)} vs {len(b.inputs)} inputs")
        for i, (va, vb) in enumerate(zip(a.inputs, b.inputs, strict=True)):
            self.const(va.const, vb.const, f"{where} input {i}")
            self.bind(va, vb, f"{where} input {i}")
            self._bound_b.add(id(vb))
        if self.check_metadata and (a.doc_string, a.metadata_props) != (b.doc_string, b.metadata_props):
            raise self.fail(where, "graph doc string or metadata differ")
        na, nb = a.nodes, b.nodes
        if len(na) != len(nb):
            raise self.fail(where, f"{len(na)} vs {len(nb)} nodes")
        for x, y in zip(na, nb, strict=True):
            self.node(x, y, where)
        if len(a.outputs) != len(b.outputs):
            raise self.fail(where, f"{len(a.outputs)} vs {len(b.outputs)} outputs")
        for i, (va, vb) in enumerate(zip(a.outputs, b.outputs, strict=True)):
            self.use(va, vb, f"{where} output {i}")
        ca = [v for v in [*a.initializers.values(), *a.sparse_initializers.values()] if id(v) not in self.mapping]
        cb = [v for v in [*b.initializers.values(), *b.sparse_initializers.values()] if id(v) not in self._bound_b]
        if len(ca) != len(cb):
            raise self.fail(where, f"{len(ca)} vs {len(cb)} unused constants")
        for va, vb in zip(ca, cb, strict=True):
            self.const(va.const, vb.const, f"{where} unused constant %{va.name}")

    def function(self, a: Function, b: Function) -> None:
        where = f"function {a.domain}::{a.name}"
        if (a.name, a.domain, a.overload, a.attributes, a.opset_imports) != (
                b.name, b.domain, b.overload, b.attributes, b.opset_imports):
            raise self.fail(where, "signature or opsets differ")
        if set(a.attribute_defaults) != set(b.attribute_defaults):
            raise self.fail(where, "attribute defaults differ")
        for key, attr in a.attribute_defaults.items():
            self.attr_value(attr, b.attribute_defaults[key], where)
        self.graph(a.body, b.body, where)


def _same(x: Any, y: Any) -> bool:
    """Equality that treats NaN as equal to NaN (attribute floats)."""
    if isinstance(x, list) and isinstance(y, list):
        return len(x) == len(y) and all(_same(p, q) for p, q in zip(x, y, strict=True))
    if isinstance(x, float) and isinstance(y, float) and x != x and y != y:
        return True
    return type(x) is type(y) and x == y


def graph_difference(a: Graph, b: Graph, *, check_metadata: bool = True) -> str | None:
    """The first structural difference between two graphs, or None when they are equal."""
    comparer = _Comparer(check_metadata)
    comparer._bound_b = set()
    try:
        ma, mb = a.model, b.model
        if (ma is None) != (mb is None):
            raise comparer.fail("model", "one side is a main graph, the other a sub-graph")
        if ma is not None and mb is not None:
            fields: tuple[str, ...] = ("opset_imports", "producer_name", "producer_version", "domain", "model_version")
            if check_metadata:
                fields += ("doc_string", "metadata_props")
            for key in fields:
                if getattr(ma, key) != getattr(mb, key):
                    raise comparer.fail("model", f"{key}: {getattr(ma, key)!r} vs {getattr(mb, key)!r}")
            if len(ma.functions) != len(mb.functions):
                raise comparer.fail("model", f"{len(ma.functions)} vs {len(mb.functions)} functions")
            for fa, fb in zip(ma.functions, mb.functions, strict=True):
                comparer.function(fa, fb)
        comparer.graph(a, b)
    except _Mismatch as mismatch:
        return str(mismatch)
    return None


def assert_graph_equal(a: Graph, b: Graph, *, check_metadata: bool = True) -> None:
    """Raise AssertionError naming the first difference when `a` and `b` differ structurally."""
    difference = graph_difference(a, b, check_metadata=check_metadata)
    if difference is not None:
        raise AssertionError(f"graphs differ: {difference}")
