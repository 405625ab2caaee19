"""`Graph.clone()`: the same IR text, independent structure, shared constants."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

import mlc
from mlc.ir import verify


def _model_with_if() -> bytes:
    """x -> Add(w) -> If(cond){then: Mul(y, x); else: Neg(y)} -> out: sub-graphs read outer values."""
    then = helper.make_graph([helper.make_node("Mul", ["y", "x"], ["t"])], "then", [],
                             [helper.make_tensor_value_info("t", TensorProto.FLOAT, [2])])
    other = helper.make_graph([helper.make_node("Neg", ["y"], ["e"])], "else", [],
                              [helper.make_tensor_value_info("e", TensorProto.FLOAT, [2])])
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"]),
         helper.make_node("If", ["cond"], ["out"], then_branch=then, else_branch=other)],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2]),
              helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [2])],
        [helper.make_tensor("w", TensorProto.FLOAT, [2], [1.0, 2.0])])
    return helper.make_model(graph, ir_version=10, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def test_clone_prints_the_same_and_verifies() -> None:
    graph = mlc.import_onnx(_model_with_if())
    copy = graph.clone()
    verify(copy)
    assert mlc.print_ir(copy, debug_info=True) == mlc.print_ir(graph, debug_info=True)
    mlc.assert_graph_equal(copy, graph)


def test_clone_is_independent_but_shares_constants() -> None:
    graph = mlc.import_onnx(_model_with_if())
    before = mlc.print_ir(graph, debug_info=True)
    copy = graph.clone()
    assert copy.initializers["w"].const is graph.initializers["w"].const  # tensors are immutable: shared
    assert copy.initializers["w"] is not graph.initializers["w"]
    add = copy.nodes[0]
    # the sub-graph of the copy reads the copy's outer value, not the original's
    if_node = copy.nodes[1]
    then_mul = if_node.attributes["then_branch"].value.nodes[0]
    assert then_mul.inputs[0] is add.outputs[0]
    neg = mlc.ir.Node("Neg", [add.outputs[0]], ["n"])
    copy.insert_after(add, neg)
    add.outputs[0].replace_all_uses_with(neg.outputs[0])
    neg.set_input(0, add.outputs[0])
    verify(copy)
    assert mlc.print_ir(graph, debug_info=True) == before  # the original is untouched
    assert len(graph.nodes) == 2 and len(copy.nodes) == 3


def test_clone_keeps_the_name_counter() -> None:
    graph = mlc.import_onnx(_model_with_if())
    graph.unique_name("a")
    copy = graph.clone()
    assert copy.unique_name("k") == graph.unique_name("k")
    assert np.array_equal(copy.initializers["w"].const.numpy(), [1.0, 2.0])
