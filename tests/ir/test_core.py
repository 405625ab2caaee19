"""The use-def mutation API and the node list."""

from __future__ import annotations

import pytest

from mlc.errors import VerificationError
from mlc.ir import DType, Graph, IRError, ModelInfo, Node, TensorType, Value, verify

F32 = TensorType(DType.FLOAT, (2, 3))


def chain() -> tuple[Graph, Value, list[Node]]:
    """x -> Relu -> Neg -> Abs -> out."""
    g = Graph("g", ModelInfo(ir_version=8, opset_imports={"": 17}))
    x = g.add_input(Value("x", F32))
    relu = Node("Relu", [x], ["r"], name="relu")
    neg = Node("Neg", [relu.outputs[0]], ["n"], name="neg")
    abs_ = Node("Abs", [neg.outputs[0]], ["a"], name="abs")
    g.append(relu, neg, abs_)
    g.outputs.append(abs_.outputs[0])
    verify(g)
    return g, x, [relu, neg, abs_]


def test_uses_are_recorded_and_follow_set_input() -> None:
    g, x, (relu, neg, abs_) = chain()
    assert x.uses == [(relu, 0)]
    assert relu.outputs[0].consumers == [neg]
    neg.set_input(0, x)
    assert relu.outputs[0].uses == []
    assert x.uses == [(relu, 0), (neg, 0)]
    verify(g)


def test_replace_all_uses_refuses_graph_output_without_flag() -> None:
    g, x, (relu, neg, abs_) = chain()
    with pytest.raises(IRError, match="replace_graph_outputs=True"):
        abs_.outputs[0].replace_all_uses_with(neg.outputs[0])
    abs_.outputs[0].replace_all_uses_with(neg.outputs[0], replace_graph_outputs=True)
    assert g.outputs[0] is neg.outputs[0]
    assert g.outputs[0].name == "a", "the model's output keeps its interface name"
    g.remove(abs_)
    verify(g)
    assert [n.op_type for n in g] == ["Relu", "Neg"]


def test_remove_refuses_a_node_still_read() -> None:
    g, x, (relu, neg, abs_) = chain()
    with pytest.raises(IRError, match="still read by"):
        g.remove(neg)
    with pytest.raises(IRError, match="graph output"):
        g.remove(abs_)


def test_remove_while_iterating_is_safe() -> None:
    g, x, (relu, neg, abs_) = chain()
    seen = []
    for node in g:
        seen.append(node.op_type)
        if node is relu:
            # Bypass Neg: Abs reads Relu directly; Neg is removed before the loop reaches it.
            abs_.set_input(0, relu.outputs[0])
            g.remove(neg)
    assert seen == ["Relu", "Abs"]
    assert len(g) == 2
    verify(g)


def test_insert_after_cursor_is_visited() -> None:
    g, x, (relu, neg, abs_) = chain()
    seen = []
    for node in g:
        seen.append(node.op_type)
        if node is relu:
            extra = Node("Identity", [relu.outputs[0]], ["i"])
            g.insert_after(relu, extra)
    assert seen == ["Relu", "Identity", "Neg", "Abs"]
    verify(g)


def test_verifier_names_node_and_shows_window() -> None:
    g, x, (relu, neg, abs_) = chain()
    late = Node("Sigmoid", [abs_.outputs[0]], ["s"], name="late")
    g.insert_before(relu, late)  # reads %a before Abs defines it
    with pytest.raises(VerificationError) as info:
        verify(g)
    message = str(info.value)
    assert "node late (Sigmoid)" in message
    assert "%a is used before it is defined" in message
    assert ">> %s: ? = Sigmoid(%a)" not in message  # untyped output prints without a type
    assert ">> %s = Sigmoid(%a)" in message


def test_verifier_catches_value_from_another_graph_and_dangling_uses() -> None:
    g, x, (relu, neg, abs_) = chain()
    stranger = Value("stranger", F32)
    Graph("other").add_input(stranger)
    neg.set_input(0, stranger)
    with pytest.raises(VerificationError, match="not defined in this scope"):
        verify(g)
    g2, x2, (relu2, neg2, abs2) = chain()
    g2.remove(neg2, detach_uses=True)  # leaves Abs reading a removed node's output
    with pytest.raises(VerificationError, match="not defined in this scope"):
        verify(g2)


def test_node_outputs_must_be_fresh_values() -> None:
    g, x, _ = chain()
    with pytest.raises(IRError, match="already defined"):
        Node("Relu", [x], [x])


def test_duplicate_names_are_a_verifier_error() -> None:
    g, x, (relu, neg, abs_) = chain()
    neg.outputs[0].name = "r"
    with pytest.raises(VerificationError, match="two different values are named %r"):
        verify(g)


def test_sort_reorders_and_keeps_uses() -> None:
    g = Graph("g", ModelInfo(opset_imports={"": 17}))
    x = g.add_input(Value("x", F32))
    a = Node("Relu", [x], ["a"])
    b = Node("Neg", [x], ["b"])
    c = Node("Add", [a.outputs[0], b.outputs[0]], ["c"])
    g.append(a, b, c)
    g.outputs.append(c.outputs[0])
    g.sort([b, a, c])
    assert [n.op_type for n in g] == ["Neg", "Relu", "Add"]
    verify(g)
    with pytest.raises(IRError):
        g.sort([a, c])


def test_replace_input_rewires_every_occurrence() -> None:
    g, x, (relu, neg, abs_) = chain()
    mul = Node("Mul", [relu.outputs[0], relu.outputs[0]], ["m"])
    g.insert_after(relu, mul)
    assert mul.replace_input(relu.outputs[0], x) == 2
    assert mul.inputs == (x, x) and (mul, 0) in x._uses and (mul, 1) in x._uses
    assert relu.outputs[0].consumers == [neg]
    verify(g)


IF_GRAPH = '''graph "g" (%x: f32[3], %c: bool[]) {
  %y: f32[3] = If(%c) {
    else_branch = graph "e" () {
      %n: f32[3] = Neg(%x)
      return %n
    },
    then_branch = graph "t" () {
      %m: f32[3] = Relu(%x)
      return %m
    }
  }
  %z: f32[3] = Abs(%x)
  return %z
}'''


def test_removing_a_node_drops_the_reads_of_its_subgraphs() -> None:
    from mlc.testing import as_graph

    graph = as_graph(IF_GRAPH)
    x = graph.inputs[0]
    assert len(x.uses) == 3
    graph.remove(graph.nodes[0])
    assert [n.op_type for n, _ in x.uses] == ["Abs"]



def test_walks_over_all_graphs_follow_nodes_that_join_and_leave() -> None:
    """The graph counts its nodes that hold sub-graphs, so that walks skip graphs with none."""
    from mlc.testing import as_graph

    graph = as_graph(IF_GRAPH)
    if_node, abs_node = graph.nodes
    assert [g.name for g in graph.all_graphs()] == ["g", "e", "t"]
    assert [n.op_type for n in graph.all_nodes()] == ["If", "Neg", "Relu", "Abs"]
    inner = if_node.attributes["then_branch"].value
    relu = inner.nodes[0]
    graph.move_before(abs_node, [relu])  # out of the sub-graph: still counted right on both sides
    assert [g.name for g in graph.all_graphs()] == ["g", "e", "t"]
    graph.remove(if_node)
    assert [g.name for g in graph.all_graphs()] == ["g"]
    assert [n.op_type for n in graph.all_nodes()] == ["Relu", "Abs"]


def test_verifier_catches_a_graph_attribute_added_after_the_node_joined() -> None:
    from mlc.ir.attributes import Attr, AttrType
    from mlc.testing import as_graph

    graph = as_graph(IF_GRAPH)
    abs_node = graph.nodes[1]
    body = Graph("late")
    body.parent = abs_node
    abs_node.attributes["body"] = Attr("body", AttrType.GRAPH, body)
    with pytest.raises(VerificationError, match="graph attribute was added to the node after it joined"):
        verify(graph)


def test_values_and_nodes_compare_by_identity() -> None:
    """`value in graph.outputs` (the IR's membership tests) is identity: neither type defines __eq__."""
    assert Value.__eq__ is object.__eq__ and Node.__eq__ is object.__eq__
    a, b = Value("same"), Value("same")
    assert a in [a] and b not in [a]
