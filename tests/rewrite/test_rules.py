"""The rewrite framework: rules as data, the one driver, the builder, the uniform reject format."""

from __future__ import annotations

import numpy as np
import pytest

from mlc.errors import InternalError
from mlc.ir.core import Graph, Node, Value
from mlc.ir.parser import parse_ir
from mlc.ir.printer import print_ir
from mlc.pass_api import PassContext
from mlc.rewrite import ANY_OP, IRBuilder, Match, Reject, Rule, ValueMatch, ValueRule, apply_rules
from tests.cli.helpers import mlc


class AddZero(Rule):
    """Add(x, 0) -> x, written for the constant on the right only: the driver tries the swap."""

    name = "add-zero"
    law = "Add(x, 0) -> x"
    ops = ("Add",)
    commutative = True

    def match(self, node: Node) -> Match | Reject | None:
        x, zero = node.inputs
        if zero is None or not zero.is_constant:
            return None
        if np.any(zero.const.numpy() != 0):  # type: ignore[union-attr]
            return self.reject(node, "the constant is not 0")
        if x is None or x.type != node.outputs[0].type:  # type: ignore[union-attr]
            return self.reject(node, "0 broadcasts x to another shape")
        return Match(node, values={"x": x, "y": node.outputs[0]})

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        builder.replace(match["y"], match["x"])
        builder.remove(match.root)


class Double(Rule):
    """x + x -> x * 2, emitted through the builder (provenance checked)."""

    name = "double"
    law = "Add(x, x) -> Mul(x, 2)"
    ops = ("Add",)

    def match(self, node: Node) -> Match | Reject | None:
        a, b = node.inputs
        return Match(node, values={"x": a, "y": node.outputs[0]}) if a is b and a is not None else None

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        two = builder.constant(np.array(2.0, np.float32), "two")
        doubled = builder.op("Mul", [match["x"], two], type=match["y"].type)
        builder.replace(match["y"], doubled)
        builder.remove(match.root)


GRAPH = '''graph "g" (%x: f32[4]) {
  const %zero = dense<f32[]> [0.0]
  const %one = dense<f32[]> [1.0]
  %a: f32[4] = Add(%zero, %x) name="left_zero"
  %b: f32[4] = Add(%a, %one) name="adds_one"
  %c: f32[4] = Add(%b, %b) name="twice"
  return %c
}'''


def _run(rules: list[Rule], text: str = GRAPH, **kwargs: object) -> tuple[str, PassContext]:
    graph = parse_ir(text)
    ctx = PassContext("test")
    apply_rules(graph, rules, ctx, **kwargs)  # type: ignore[arg-type]
    return print_ir(graph), ctx


def test_commuted_operands_match_without_a_written_out_variant() -> None:
    text, ctx = _run([AddZero()])
    assert "left_zero" not in text and "Add(%x, %one)" in text
    assert ctx.rules["add-zero"] == 1


def test_rejects_are_one_uniform_line_each() -> None:
    _, ctx = _run([AddZero()])
    assert ctx.remarks == ["add-zero at 'adds_one': not applied, the constant is not 0"]
    assert Reject("r", "n", "why").to_json() == {"rule": "r", "node": "n", "why": "why"}


def test_builder_emits_with_provenance_and_the_output_keeps_its_name() -> None:
    graph = parse_ir(GRAPH)
    apply_rules(graph, [Double()], PassContext("test"))
    mul = next(n for n in graph if n.op_type == "Mul")
    assert mul.source == ("twice",) and mul.created_by == "test/double"
    assert [v.name for v in graph.outputs] == ["c"]


def test_max_rewrites_stops_the_driver() -> None:
    graph = parse_ir(GRAPH)
    ctx = PassContext("test", max_rewrites=1)
    apply_rules(graph, [AddZero(), Double()], ctx)
    assert ctx.rewrites == 1 and sum(1 for n in graph if n.op_type == "Add") == 2


def test_sub_graphs_are_walked() -> None:
    text = '''graph "g" (%x: f32[4], %p: bool[]) {
  const %zero = dense<f32[]> [0.0]
  %y: f32[4] = If(%p) {then_branch = graph "t" () {
      %t: f32[4] = Add(%x, %zero) name="inner"
      return %t
    }, else_branch = graph "e" () {
      return %x
    }}
  return %y
}'''
    printed, ctx = _run([AddZero()], text)
    assert ctx.rules["add-zero"] == 1 and "inner" not in printed


class Flip(Rule):
    name = "flip"
    law = "Neg(Neg(x)) -> Neg(Neg(x))"
    ops = ("Neg",)

    def match(self, node: Node) -> Match | Reject | None:
        return Match(node)

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        match.root.name += "'"


def test_fixpoint_is_bounded() -> None:
    with pytest.raises(InternalError, match="still rewriting after 32 sweeps"):
        _run([Flip()], 'graph "g" (%x: f32[2]) {\n  %y: f32[2] = Neg(%x)\n  return %y\n}', fixpoint=True)


def test_a_rule_must_declare_its_law() -> None:
    with pytest.raises(TypeError, match="declares its name, its law"):
        class Nameless(Rule):
            def match(self, node: Node) -> Match | Reject | None:
                return None


def test_mlc_debug_verbose_prints_rejects_in_the_uniform_format(tmp_path, capfd) -> None:  # type: ignore[no-untyped-def]
    """An Identity from a graph input to a graph output cannot go (the interface needs both names)."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"], name="keep_me")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    path = tmp_path / "identity.onnx"
    onnx.save(model, path)
    code, out, err = mlc(capfd, "debug", path, "--passes", "eliminate-identity", "-v")
    assert code == 0, err
    assert ("remark [eliminate-identity]: identity at 'keep_me': not applied, its output names a graph output "
            "its input cannot take") in out


# --------------------------------------------------------------- what the cleanup passes need of the driver
class Unread(Rule):
    """Any node nobody reads goes: offered every op (ANY_OP), last node first when `reverse`."""

    name = "unread"
    law = "Op(...) unread -> removed"
    ops = ANY_OP

    def match(self, node: Node) -> Match | Reject | None:
        return Match(node) if all(not v.uses and not v.is_graph_output for v in node.outputs if v) else None

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        builder.graph.remove(match.root)


CHAIN = '''graph "g" (%x: f32[4]) {
  %a: f32[4] = Neg(%x) name="first"
  %b: f32[4] = Abs(%a) name="second"
  %c: f32[4] = Exp(%b) name="third"
  return %x
}'''


def test_a_reverse_walk_removes_a_dead_chain_in_one_sweep() -> None:
    forward, _ = _run([Unread()], CHAIN)
    backward, ctx = _run([Unread()], CHAIN, reverse=True)
    assert "second" in forward and "third" not in forward  # forward: only the chain's end was dead
    assert "Neg" not in backward and ctx.rewrites == 3


class SeenTwice(Rule):
    """Counts nodes of one op per graph: a table reset by `start`, and a reject counted as a statistic."""

    name = "seen-twice"
    law = "(test) the second Add of a graph is rejected"
    ops = ("Add",)

    def start(self, graph: Graph) -> None:
        self.seen = 0

    def match(self, node: Node) -> Match | Reject | None:
        self.seen += 1
        return Reject(self.name, node.name, "second", count="second_adds") if self.seen == 2 else None


class DropUnreadConstant(ValueRule):
    name = "drop-constant"
    law = "constant unread -> removed"

    def match(self, value: Value) -> ValueMatch | Reject | None:
        return ValueMatch(value) if not value.uses else self.reject(value, "read")

    def rewrite(self, match: ValueMatch, builder: IRBuilder) -> None:
        builder.graph.remove_initializer(match.value)


def test_start_hook_value_rules_phases_and_counted_rejects() -> None:
    text = GRAPH.replace("const %one", "const %spare = dense<f32[]> [3.0]\n  const %one")
    graph = parse_ir(text)
    ctx = PassContext("test")
    apply_rules(graph, [SeenTwice()], ctx, then=[[DropUnreadConstant()]])
    assert ctx.stats["second_adds"] == 1 and "seen-twice at 'adds_one': not applied, second" in ctx.remarks
    assert set(graph.initializers) == {"zero", "one"}  # the value phase ran after the node phase
    assert "drop-constant at 'one': not applied, read" in ctx.remarks


def test_rejects_of_unnamed_nodes_are_not_merged() -> None:
    """Two unnamed Adds rejected by one rule give two remarks: `<Add>` names neither uniquely."""
    text = '''graph "g" (%x: f32[4]) {
  const %one = dense<f32[]> [1.0]
  %a: f32[4] = Add(%x, %one)
  %b: f32[4] = Add(%a, %one)
  return %b
}'''
    _, ctx = _run([AddZero()], text)
    assert ctx.remarks == ["add-zero at '<Add>': not applied, the constant is not 0"] * 2


class OnlyInner(AddZero):
    """add-zero, but only in sub-graphs: `walks` says no to the main graph."""

    name = "add-zero-inner"

    def walks(self, graph: Graph) -> bool:
        return graph.parent is not None


def test_a_rule_that_does_not_walk_a_graph_is_not_offered_its_nodes() -> None:
    text = '''graph "g" (%x: f32[4], %p: bool[]) {
  const %zero = dense<f32[]> [0.0]
  %o: f32[4] = Add(%x, %zero) name="outer"
  %y: f32[4] = If(%p) {then_branch = graph "t" () {
      %t: f32[4] = Add(%o, %zero) name="inner"
      return %t
    }, else_branch = graph "e" () {
      return %o
    }}
  return %y
}'''
    printed, ctx = _run([OnlyInner()], text)
    assert ctx.rules["add-zero-inner"] == 1 and "inner" not in printed and "outer" in printed
    printed, ctx = _run([OnlyInner(), AddZero()], text)  # another rule of the phase walks the main graph
    assert ctx.rules == {"add-zero-inner": 1, "add-zero": 1}
