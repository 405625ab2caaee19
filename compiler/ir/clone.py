"""`Graph.clone()`: a structural copy of a graph for snapshots (the debugger's "before" graph,
the reference of a numeric check, a replay of a pipeline prefix).

Exporting to ONNX and importing again also copies a graph, but it serializes every weight and
rebuilds names and types through onnx's checker and shape inference. The copy here rebuilds only
the structure (nodes, values, use lists, sub-graphs, functions) and shares what is immutable:
constant tensors (`Tensor` and `SparseTensor` are never mutated in place) and types (frozen
dataclasses). Names, provenance and the name counter are kept, so a pass run on the copy makes
the same names as on the original.
"""

from __future__ import annotations

import dataclasses
import itertools

from mlc.ir.attributes import Attr, AttrType
from mlc.ir.core import Function, Graph, ModelInfo, Node, Value


def clone_graph(graph: Graph) -> Graph:
    """A copy of `graph` (a main graph or a function body) that shares constants, not structure."""
    model = _clone_model(graph.model) if graph.model is not None else None
    return _clone(graph, {}, model)


def _clone_model(info: ModelInfo) -> ModelInfo:
    return dataclasses.replace(
        info, opset_imports=dict(info.opset_imports), metadata_props=dict(info.metadata_props),
        functions=[_clone_function(f) for f in info.functions])


def _clone_function(function: Function) -> Function:
    return Function(function.name, function.domain, _clone(function.body, {}, None), overload=function.overload,
                    attributes=function.attributes,
                    attribute_defaults={k: _clone_attr(a, {}) for k, a in function.attribute_defaults.items()},
                    opset_imports=function.opset_imports, doc_string=function.doc_string,
                    metadata_props=function.metadata_props)


def _value(old: Value, mapping: dict[int, Value]) -> Value:
    new = mapping.get(id(old))
    if new is None:
        new = Value(old.name, old.type, old.const)
        new.doc_string = old.doc_string
        mapping[id(old)] = new
    return new


def _clone_attr(attr: Attr, mapping: dict[int, Value]) -> Attr:
    if attr.type == AttrType.GRAPH:
        return dataclasses.replace(attr, value=_clone(attr.value, mapping, None))
    if attr.type == AttrType.GRAPHS:
        return dataclasses.replace(attr, value=[_clone(g, mapping, None) for g in attr.value])
    if isinstance(attr.value, list):
        return dataclasses.replace(attr, value=list(attr.value))
    return dataclasses.replace(attr)


def _clone(graph: Graph, mapping: dict[int, Value], model: ModelInfo | None) -> Graph:
    """Copy one graph; `mapping` (old value id -> new value) is shared with enclosing graphs, so
    that a sub-graph reading an outer value reads the copy of it."""
    new = Graph(graph.name, model)
    following = next(graph._name_counter)
    graph._name_counter = itertools.count(following)  # peeking consumed one number: put it back
    new._name_counter = itertools.count(following)
    new._taken_names = set(graph._taken_names) if graph._taken_names is not None else None
    new.doc_string = graph.doc_string
    new.metadata_props = dict(graph.metadata_props)
    for value in graph.inputs:
        new.add_input(_value(value, mapping))
    for value in [*graph.initializers.values(), *graph.sparse_initializers.values()]:
        new.add_initializer(_value(value, mapping))
    for node in graph:
        attributes = [_clone_attr(a, mapping) for a in node.attributes.values()]
        inputs = [None if v is None else _value(v, mapping) for v in node.inputs]
        outputs = [None if v is None else _value(v, mapping) for v in node.outputs]
        new.append(Node(node.op_type, inputs, outputs, attributes, domain=node.domain, name=node.name,
                        overload=node.overload, doc_string=node.doc_string, metadata_props=node.metadata_props,
                        source=node.source, created_by=node.created_by))
    for value in graph.outputs:
        new.outputs.append(_value(value, mapping))
    return new
