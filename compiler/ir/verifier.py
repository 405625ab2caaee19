"""Structural verifier: the invariants every pass must keep.

* each value is defined once (by one node output, one graph input or one constant), and names
  are unique across the model so that export needs no guessing;
* nodes are in topological order; a node reads only values defined before it, in its own graph
  or in an enclosing one (sub-graph scoping);
* use lists are exact (every use recorded, no use of a removed node);
* a constant's declared type agrees with its tensor.

It is linear in the size of the graph and runs after every pass. An error names the node and
shows the IR around it.
"""

from __future__ import annotations

from mlc.errors import VerificationError
from mlc.ir.core import Function, Graph, Node, Value
from mlc.ir.printer import print_node
from mlc.ir.tensor import Tensor
from mlc.ir.types import TensorType

WINDOW = 3


def _window(graph: Graph, node: Node) -> str:
    nodes = graph.nodes
    try:
        at = next(i for i, n in enumerate(nodes) if n is node)
    except StopIteration:
        return ""
    lines = []
    for i in range(max(0, at - WINDOW), min(len(nodes), at + WINDOW + 1)):
        mark = ">>" if i == at else "  "
        lines.append(f"  {mark} {print_node(nodes[i])}")
    return "\n" + "\n".join(lines)


class _Verifier:
    """Walks graphs; `names` maps the names visible in the current scope chain to their values
    (sibling sub-graphs, such as the two branches of an If, may reuse a name)."""

    def __init__(self) -> None:
        self.names: dict[str, Value] = {}

    def fail(self, graph: Graph, node: Node | None, message: str) -> VerificationError:
        where = f"graph {graph.name!r}"
        if node is not None:
            label = node.name or f"#{_position(graph, node)}"
            where += f", node {label} ({node.op_type})"
            return VerificationError(f"{where}: {message}{_window(graph, node)}")
        return VerificationError(f"{where}: {message}")

    def define(self, graph: Graph, node: Node | None, value: Value, visible: set[int]) -> None:
        if id(value) in visible:
            raise self.fail(graph, node, f"value %{value.name} is defined twice")
        other = self.names.get(value.name)
        if other is not None and other is not value:
            raise self.fail(graph, node, f"two different values are named %{value.name}")
        self.names[value.name] = value
        visible.add(id(value))

    def graph(self, graph: Graph, outer: set[int]) -> None:
        saved_names = self.names
        self.names = dict(saved_names)
        try:
            self._graph(graph, outer)
        finally:
            self.names = saved_names

    def _graph(self, graph: Graph, outer: set[int]) -> None:
        visible = set(outer)
        for value in graph.inputs:
            if value.producer is not None:
                raise self.fail(graph, None, f"graph input %{value.name} is produced by a node")
            self.define(graph, None, value, visible)
        input_ids = {id(v) for v in graph.inputs}
        for table in (graph.initializers, graph.sparse_initializers):
            for key, value in table.items():
                if value.name != key:
                    raise self.fail(graph, None, f"initializer table key {key!r} names %{value.name}")
                if value.const is None:
                    raise self.fail(graph, None, f"initializer %{value.name} has no constant")
                const = value.const
                if (isinstance(const, Tensor) and isinstance(value.type, TensorType)
                        and value.type.dtype != const.dtype):
                    raise self.fail(graph, None, f"constant %{value.name} is typed {value.type.dtype.short_name}"
                                                 f" but holds {const.dtype.short_name}")
                if id(value) not in input_ids:
                    self.define(graph, None, value, visible)
        for node in graph:
            self._node(graph, node, visible)
        for value in graph.outputs:
            if id(value) not in visible:
                raise self.fail(graph, None, f"graph output %{value.name} is not defined")

    def _node(self, graph: Graph, node: Node, visible: set[int]) -> None:
        # The hot loop of every verification (it runs after each pass): it reads the IR's own
        # fields rather than the properties that copy them, and defines outputs inline.
        if node.graph is not graph:
            raise self.fail(graph, node, "node's graph pointer is wrong")
        for i, read in enumerate(node._inputs):
            if read is None:
                continue
            if id(read) not in visible:
                if read.producer is not None and read.producer.graph is graph:
                    raise self.fail(graph, node, f"input %{read.name} is used before it is defined")
                raise self.fail(graph, node, f"input %{read.name} is not defined in this scope")
            if (node, i) not in read._uses:
                raise self.fail(graph, node, f"use of %{read.name} at input {i} is not recorded")
        subgraphs = node.subgraphs()
        if bool(subgraphs) != node._nests:  # the graph's count of nesting nodes (its walks trust it) is stale
            raise self.fail(graph, node, f"a graph attribute was {'added to' if subgraphs else 'removed from'} "
                                         "the node after it joined the graph (build the node with its sub-graphs)")
        for sub in subgraphs:
            if sub.parent is not node:
                raise self.fail(graph, node, f"sub-graph {sub.name!r} does not point back to its node")
            self.graph(sub, visible)
        names = self.names
        for i, written in enumerate(node._outputs):
            if written is None:
                continue
            if written._producer is not node or written._index != i:
                raise self.fail(graph, node, f"output %{written.name} does not point back to its producer")
            key = id(written)
            other = names.get(written.name)
            if key in visible or (other is not None and other is not written):
                self.define(graph, node, written, visible)  # raises, naming what is wrong
            names[written.name] = written
            visible.add(key)
            for user, j in written._uses:
                if user.graph is None:
                    raise self.fail(graph, node, f"%{written.name} is read by a removed node {user!r}")
                inputs = user._inputs
                if j >= len(inputs) or inputs[j] is not written:
                    raise self.fail(graph, node, f"stale use of %{written.name} by {user!r}")


def _position(graph: Graph, node: Node) -> int:
    for i, n in enumerate(graph):
        if n is node:
            return i
    return -1


def verify(graph: Graph) -> None:
    """Raise `VerificationError` if the graph (with its sub-graphs and functions) is malformed."""
    _Verifier().graph(graph, set())
    if graph.model is not None:
        for fn in graph.model.functions:
            verify_function(fn)


def verify_function(fn: Function) -> None:
    _Verifier().graph(fn.body, set())
