"""The graph IR: `Value`, `Node`, `Attr`, `Graph`, `Function`, `ModelInfo`.

Use-def chains are exact at all times: every edit goes through the mutation API
(`Node.set_input`, `Value.replace_all_uses_with`, `Graph.insert_*`, `Graph.remove`), which checks
before it touches anything and refuses ambiguous edits (removing a node whose outputs are still
used, rewiring a graph output) with a message naming the call or flag to use instead.

The node list of a graph is a doubly linked list: inserting or removing nodes while iterating
over it is safe (a removed node is skipped, a node inserted after the cursor is visited).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlc.ir.attributes import Attr, AttrType
from mlc.ir.irerror import IRError
from mlc.ir.tensor import SparseTensor, Tensor
from mlc.ir.types import TensorType, Type


# ===================================================================== values
class Value:
    """An SSA value: produced by one node output, or a graph input, or a constant (initializer).

    `const` holds the constant's tensor for initializers; a graph input with a `const` is an
    overridable default (an initializer that ONNX also lists as an input).
    """

    __slots__ = ("_graph", "_index", "_producer", "_uses", "const", "doc_string", "name", "type")

    def __init__(self, name: str = "", type: Type | None = None, const: Tensor | SparseTensor | None = None):
        self.name = name
        self.type = type
        self.const = const
        self.doc_string = ""
        self._producer: Node | None = None
        self._index = -1
        self._graph: Graph | None = None
        self._uses: dict[tuple[Node, int], None] = {}

    def __repr__(self) -> str:
        return f"Value(%{self.name})"

    # ---------------------------------------------------------------- use-def
    @property
    def producer(self) -> Node | None:
        return self._producer

    @property
    def index(self) -> int:
        """Output position in the producing node (-1 for inputs and constants)."""
        return self._index

    @property
    def uses(self) -> list[tuple[Node, int]]:
        """(consumer node, input position) pairs, in the order they were made."""
        return list(self._uses)

    @property
    def has_uses(self) -> bool:
        """Whether any node reads it (`uses` without building the list)."""
        return bool(self._uses)

    @property
    def consumers(self) -> list[Node]:
        seen: dict[Node, None] = {}
        for node, _ in self._uses:
            seen[node] = None
        return list(seen)

    @property
    def graph(self) -> Graph | None:
        """The graph this value is defined in."""
        return self._producer.graph if self._producer is not None else self._graph

    @property
    def is_constant(self) -> bool:
        """A constant that no caller can override (initializer that is not a graph input)."""
        return self.const is not None and not self.is_graph_input

    @property
    def is_graph_input(self) -> bool:
        graph = self.graph
        return graph is not None and self._producer is None and self in graph.inputs  # (identity: no __eq__)

    @property
    def is_graph_output(self) -> bool:
        graph = self.graph
        return graph is not None and self in graph.outputs

    def replace_all_uses_with(self, new: Value, *, replace_graph_outputs: bool = False) -> None:
        """Make every consumer read `new` instead of this value.

        A graph output is part of the model's interface: rewiring it renames the model's output,
        so it is refused unless `replace_graph_outputs=True` (new takes this value's place in
        `graph.outputs`; the output keeps this value's name unless `new` already is an output).
        """
        if new is self:
            return
        graph = self.graph
        is_output = graph is not None and self in graph.outputs
        if is_output and not replace_graph_outputs and graph is not None:
            raise IRError(
                f"%{self.name} is an output of graph {graph.name!r}: pass replace_graph_outputs=True "
                "to rewire the output, or replace only node uses with Node.set_input"
            )
        for node, i in list(self._uses):
            node.set_input(i, new)
        if is_output and graph is not None:
            was_output = new in graph.outputs
            graph.outputs = [new if v is self else v for v in graph.outputs]
            if not was_output and new.producer is not None:
                old_name = self.name
                self.name, new.name = new.name, old_name


def _check_value(value: object, what: str) -> None:
    if value is not None and not isinstance(value, Value):
        raise IRError(f"{what}: expected a Value or None, got {type(value).__name__}")


_GRAPH_ATTRS = (AttrType.GRAPH, AttrType.GRAPHS)
_GRAPH, _GRAPHS = _GRAPH_ATTRS


# ===================================================================== nodes
def canonical_domain(domain: str) -> str:
    """The standard domain has two spellings in ONNX, "" and "ai.onnx"; the IR keeps only "", so that
    a pass asks `node.domain == ""` and never has to know the other."""
    return "" if domain == "ai.onnx" else domain


STANDARD_DOMAINS = ("",)  # what `domain in STANDARD_DOMAINS` checks: the one spelling the IR keeps


class Node:
    """One operation. Inputs may hold `None` for an omitted optional input; outputs likewise."""

    __slots__ = ("__weakref__", "_erased", "_inputs", "_nests", "_next", "_outputs", "_prev", "attributes",
                 "created_by", "doc_string", "domain", "graph", "metadata_props", "name", "op_type", "overload",
                 "source")

    def __init__(
        self,
        op_type: str,
        inputs: Sequence[Value | None] = (),
        outputs: int | Sequence[Value | str | None] = 1,
        attributes: dict[str, Any] | Iterable[Attr] | None = None,
        *,
        domain: str = "",
        name: str = "",
        overload: str = "",
        doc_string: str = "",
        metadata_props: dict[str, str] | None = None,
        source: Sequence[str] = (),
        created_by: str = "",
    ) -> None:
        self.op_type = op_type
        self.domain = canonical_domain(domain)
        self.overload = overload
        self.name = name
        self.doc_string = doc_string
        self.metadata_props: dict[str, str] = dict(metadata_props or {})
        # Provenance: the ONNX nodes this node stands for (empty: itself, by name) and the
        # `pass/rule` that created it (empty: imported). Exported as node metadata.
        self.source: tuple[str, ...] = tuple(source)
        self.created_by = created_by
        self.graph: Graph | None = None
        self._prev: Node | None = None
        self._next: Node | None = None
        self._erased = False
        self._nests = False  # holds sub-graphs (set when it joins a graph: `Graph._nested`)
        self.attributes: dict[str, Attr] = {}
        if isinstance(attributes, dict):
            for key, value in attributes.items():
                self.attributes[key] = Attr.infer(key, value)
        elif attributes is not None:
            for item in attributes:
                if not isinstance(item, Attr):
                    raise IRError(f"{op_type}: attributes must be a dict or Attr objects, got {item!r}")
                self.attributes[item.name] = item
        for attr in self.attributes.values():
            for sub in attr.subgraphs():
                sub.parent = self
        self._inputs: list[Value | None] = []
        for i, value in enumerate(inputs):
            _check_value(value, f"{op_type} input {i}")
            self._inputs.append(value)
            if value is not None:
                value._uses[(self, i)] = None
        self._outputs: list[Value | None] = []
        specs: Sequence[Value | str | None] = [""] * outputs if isinstance(outputs, int) else outputs
        for i, spec in enumerate(specs):
            if spec is None:
                self._outputs.append(None)
                continue
            value = spec if isinstance(spec, Value) else Value(spec)
            if value._producer is not None or value._graph is not None:
                raise IRError(f"%{value.name} is already defined; a node output must be a fresh Value")
            value._producer, value._index = self, i
            self._outputs.append(value)

    def __repr__(self) -> str:
        op = f"{self.domain}::{self.op_type}" if self.domain else self.op_type
        return f"Node({op}, name={self.name!r})"

    @property
    def origin(self) -> tuple[str, ...]:
        """The source ONNX node names this node descends from (its own name when imported)."""
        return self.source or ((self.name,) if self.name else ())

    @property
    def inputs(self) -> tuple[Value | None, ...]:
        return tuple(self._inputs)

    @property
    def outputs(self) -> tuple[Value | None, ...]:
        return tuple(self._outputs)

    def set_input(self, index: int, value: Value | None) -> None:
        """Rewire input `index` (keeps both values' use lists exact)."""
        _check_value(value, f"{self.op_type}.set_input({index})")
        old = self._inputs[index]
        if old is not None:
            old._uses.pop((self, index), None)
        self._inputs[index] = value
        if value is not None:
            value._uses[(self, index)] = None

    def replace_input(self, old: Value, new: Value | None) -> int:
        """Make every input that reads `old` read `new`; returns how many were rewired."""
        count = 0
        for i, value in enumerate(self._inputs):
            if value is old:
                self.set_input(i, new)
                count += 1
        return count

    def append_input(self, value: Value | None) -> None:
        self._inputs.append(None)
        self.set_input(len(self._inputs) - 1, value)

    def attr(self, name: str, default: Any = None) -> Any:
        """The value of attribute `name`, or `default` when absent."""
        attr = self.attributes.get(name)
        return default if attr is None else attr.value

    def subgraphs(self) -> list[Graph]:
        # asked of every node by every walk of all graphs: the common answer (none) is kept cheap,
        # with the kinds compared by identity (`Attr` holds the members) and read from module globals
        if not self.attributes:
            return []
        for attr in self.attributes.values():
            if attr.type is _GRAPH or attr.type is _GRAPHS:
                return [g for a in self.attributes.values() if a.type in _GRAPH_ATTRS for g in a.subgraphs()]
        return []

    def drop_output(self, index: int) -> None:
        """Omit an optional output nobody reads (trailing ones are removed, others become None)."""
        value = self._outputs[index]
        if value is None:
            return
        if value._uses or value.is_graph_output:
            raise IRError(f"{self!r}: output %{value.name} is still read; it cannot be dropped")
        value._producer, value._index = None, -1
        self._outputs[index] = None
        while self._outputs and self._outputs[-1] is None:
            self._outputs.pop()

    def _detach_inputs(self) -> None:
        for i, value in enumerate(self._inputs):
            if value is not None:
                value._uses.pop((self, i), None)


# ===================================================================== graphs
@dataclass
class ModelInfo:
    """What an ONNX ModelProto carries beside its main graph."""

    ir_version: int | None = None
    opset_imports: dict[str, int] = field(default_factory=dict)
    producer_name: str = ""
    producer_version: str = ""
    domain: str = ""
    model_version: int = 0
    doc_string: str = ""
    metadata_props: dict[str, str] = field(default_factory=dict)
    functions: list[Function] = field(default_factory=list)


class Graph:
    """A graph: inputs, outputs, constants (initializers) and nodes in topological order.

    The main graph carries `model` (opsets, functions, model metadata); sub-graphs of If/Loop/Scan
    have `model = None` and `parent` set to the node that owns them. Sub-graph nodes may read
    values of enclosing graphs directly (the same Value objects).
    """

    def __init__(self, name: str = "main", model: ModelInfo | None = None) -> None:
        self._name_counter = itertools.count()  # per graph tree (the root's is used): names are reproducible
        self._taken_names: set[str] | None = None  # the root's: names in use when unique_name was first asked
        self.name = name
        self.model = model
        self.parent: Node | None = None
        self.inputs: list[Value] = []
        self.outputs: list[Value] = []
        self.initializers: dict[str, Value] = {}
        self.sparse_initializers: dict[str, Value] = {}
        self.doc_string = ""
        self.metadata_props: dict[str, str] = {}
        self._head = Node.__new__(Node)  # sentinel of the doubly linked node list
        self._head._prev = self._head._next = self._head
        self._head._erased = False
        self._count = 0
        # How many of its nodes hold sub-graphs (counted as nodes join and leave; the verifier checks
        # that no node gained or lost a graph attribute since): the walks over all graphs and all
        # nodes skip the per-node question in the common graph that has none.
        self._nested = 0

    def __repr__(self) -> str:
        return f"Graph({self.name!r}, {self._count} nodes)"

    # ---------------------------------------------------------------- node list
    def __iter__(self) -> Iterator[Node]:
        """Iterate nodes in order; safe while nodes are inserted or removed."""
        head = self._head
        node = head._next
        while node is not head:
            assert node is not None
            if not node._erased:
                yield node
            nxt = node._next
            while nxt is not None and nxt is not head and nxt._erased:
                nxt = nxt._next
            if nxt is None:
                return
            node = nxt

    @property
    def nodes(self) -> list[Node]:
        return list(self)

    def __len__(self) -> int:
        return self._count

    @property
    def first(self) -> Node | None:
        return None if self._count == 0 else self._head._next

    def _link(self, node: Node, after: Node) -> None:
        if node.graph is not None:
            raise IRError(f"{node!r} already belongs to graph {node.graph.name!r}; remove it first")
        nxt = after._next
        assert nxt is not None
        node._prev, node._next = after, nxt
        after._next = node
        nxt._prev = node
        node.graph = self
        node._erased = False
        self._count += 1
        node._nests = bool(node.subgraphs())
        self._nested += node._nests

    def append(self, *nodes: Node) -> Node:
        """Add nodes at the end; returns the last one."""
        for node in nodes:
            last = self._head._prev
            assert last is not None
            self._link(node, last)
        return nodes[-1]

    def insert_before(self, anchor: Node, *nodes: Node) -> None:
        self._check_member(anchor)
        prev = anchor._prev
        assert prev is not None
        for node in nodes:
            self._link(node, prev)
            prev = node

    def insert_after(self, anchor: Node, *nodes: Node) -> None:
        self._check_member(anchor)
        for node in nodes:
            self._link(node, anchor)
            anchor = node

    def _check_member(self, node: Node) -> None:
        if node.graph is not self:
            raise IRError(f"{node!r} is not in graph {self.name!r}")

    def remove(self, node: Node, *, detach_uses: bool = False) -> None:
        """Unlink a node and drop its input uses, and those of the nodes in its sub-graphs.

        Refused while one of its outputs is still read or is a graph output, unless
        `detach_uses=True` (the caller then owns the dangling readers and must rewire them).
        """
        self._check_member(node)
        if not detach_uses:
            for out in node._outputs:
                if out is None:
                    continue
                if out._uses:
                    reader = next(iter(out._uses))[0]
                    raise IRError(
                        f"cannot remove {node!r}: its output %{out.name} is still read by {reader!r}; "
                        "call replace_all_uses_with first"
                    )
                if out in self.outputs:
                    raise IRError(f"cannot remove {node!r}: %{out.name} is a graph output")
        node._detach_inputs()
        for sub in node.subgraphs():  # reads of outer values from inside its sub-graphs go with it
            for inner in sub.all_nodes():
                inner._detach_inputs()
        prev, nxt = node._prev, node._next
        assert prev is not None and nxt is not None
        prev._next, nxt._prev = nxt, prev
        node._erased = True
        node.graph = None
        self._count -= 1
        self._nested -= node._nests

    def move_before(self, anchor: Node, nodes: Sequence[Node]) -> None:
        """Move nodes (of this graph or of a sub-graph) before `anchor`, keeping their uses: the
        caller guarantees the values they read are in scope at the new place."""
        self._check_member(anchor)
        for node in nodes:
            owner = node.graph
            if owner is None:
                raise IRError(f"{node!r} is in no graph")
            prev, nxt = node._prev, node._next
            assert prev is not None and nxt is not None
            prev._next, nxt._prev = nxt, prev
            owner._count -= 1
            owner._nested -= node._nests
            node.graph = None
            before = anchor._prev
            assert before is not None
            self._link(node, before)

    def sort(self, order: Sequence[Node]) -> None:
        """Re-link all nodes in the given order (a permutation of the current nodes)."""
        if len(order) != self._count or any(n.graph is not self for n in order):
            raise IRError("sort() needs a permutation of the graph's nodes")
        head = self._head
        prev = head
        for node in order:
            prev._next, node._prev = node, prev
            prev = node
        prev._next, head._prev = head, prev

    # ---------------------------------------------------------------- values
    def add_input(self, value: Value) -> Value:
        value._graph = self
        self.inputs.append(value)
        return value

    def add_initializer(self, value: Value) -> Value:
        if value.const is None:
            raise IRError(f"initializer %{value.name} has no constant")
        if value.name in self.initializers or value.name in self.sparse_initializers:
            raise IRError(f"graph {self.name!r} already has an initializer named {value.name!r}")
        value._graph = self
        if isinstance(value.const, SparseTensor):
            self.sparse_initializers[value.name] = value
        else:
            self.initializers[value.name] = value
        return value

    def make_constant(self, array: np.ndarray | Tensor, name: str = "") -> Value:
        """A new initializer with a name unique in this model."""
        tensor = array if isinstance(array, Tensor) else Tensor.from_array(array)
        value = Value(self.unique_name(name or "const"), TensorType(tensor.dtype, tensor.shape), tensor)
        return self.add_initializer(value)

    def remove_initializer(self, value: Value) -> None:
        if value._uses:
            raise IRError(f"initializer %{value.name} is still read by {next(iter(value._uses))[0]!r}")
        self.initializers.pop(value.name, None)
        self.sparse_initializers.pop(value.name, None)
        if value not in self.inputs:
            value._graph = None

    def clone(self) -> Graph:
        """A structural copy sharing the (immutable) constant tensors: see `mlc.ir.clone`."""
        from mlc.ir.clone import clone_graph  # clone builds on this module

        return clone_graph(self)

    def unique_name(self, hint: str) -> str:
        """A value name unlikely to collide (the exporter still renames on any collision). Counted
        per model, so that the same rewrites of the same model give the same names (artifacts are
        byte-identical across compiles in one process)."""
        root = self.root
        if root._taken_names is None:
            root._taken_names = {v.name for g in root.all_graphs()
                                 for v in (*g.inputs, *g.initializers.values(), *g.sparse_initializers.values(),
                                           *(o for n in g for o in n.outputs if o is not None))}
        while True:
            name = f"{hint}__{next(root._name_counter)}"
            if name not in root._taken_names:
                root._taken_names.add(name)
                return name

    # ---------------------------------------------------------------- walking
    @property
    def root(self) -> Graph:
        graph = self
        while graph.parent is not None and graph.parent.graph is not None:
            graph = graph.parent.graph
        return graph

    def opset_version(self, domain: str = "") -> int | None:
        model = self.root.model
        if model is None:
            return None
        return model.opset_imports.get(canonical_domain(domain))

    def all_nodes(self) -> Iterator[Node]:
        """Every node of this graph and, depth-first, of its sub-graphs."""
        if not self._nested:
            yield from self
            return
        for node in self:
            yield node
            if node._nests:
                for sub in node.subgraphs():
                    yield from sub.all_nodes()

    def all_graphs(self) -> Iterator[Graph]:
        """This graph and, depth-first, its sub-graphs (every pass walks these)."""
        yield self
        if not self._nested:
            return
        for node in self:
            if node._nests:
                for sub in node.subgraphs():
                    yield from sub.all_graphs()


class Function:
    """A model-local function (ONNX FunctionProto): a body graph plus its signature.

    `attributes` lists the parameter names; `attribute_defaults` holds those with a default.
    """

    def __init__(self, name: str, domain: str, body: Graph, *, overload: str = "",
                 attributes: Sequence[str] = (), attribute_defaults: dict[str, Attr] | None = None,
                 opset_imports: dict[str, int] | None = None, doc_string: str = "",
                 metadata_props: dict[str, str] | None = None) -> None:
        self.name = name
        self.domain = domain
        self.overload = overload
        self.body = body
        self.attributes = list(attributes)
        self.attribute_defaults: dict[str, Attr] = dict(attribute_defaults or {})
        self.opset_imports: dict[str, int] = dict(opset_imports or {})
        self.doc_string = doc_string
        self.metadata_props: dict[str, str] = dict(metadata_props or {})

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.domain, self.name, self.overload)

    def __repr__(self) -> str:
        return f"Function({self.domain}::{self.name})"
