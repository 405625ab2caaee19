"""A rewrite rule as data: its name, its law in one line, a matcher and a rewriter.

    class DropIdentity(Rule):
        name = "identity"
        law = "Identity(x) -> x"
        ops = ("Identity",)

        def match(self, node: Node) -> Match | Reject | None:
            ...
        def rewrite(self, match: Match, builder: IRBuilder) -> None:
            ...

`match` answers in one of three ways, and only these: a `Match` (the values and nodes the rewrite
needs), a `Reject` (a candidate that does not apply, with the reason in words), or None (not a
candidate at all: silent). The driver (`mlc.rewrite.driver.apply_rules`) reports every reject the
same way, as `rule at 'node': not applied, why` in `mlc debug -v` and as {rule, node, why} in the
JSON report, so that no pass invents its own format. A rule on a commutative op (Add, Mul, ...)
declares `commutative = True` and matches operands in the written order only: the driver tries
the swapped order too. A rule that looks at every node (dead-code elimination, CSE) says
`ops = ANY_OP`; one that keeps a table while the driver walks a graph (CSE's expressions seen)
resets it in `start(graph)`.

Some cleanups are about values, not nodes: an unused constant, two equal constants, a graph input
nobody reads. A `ValueRule` is offered the graph's initializers (or, `offers = "inputs"`, the main
graph's inputs) after the nodes, and answers a `ValueMatch` the same three ways.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from mlc.ir.core import STANDARD_DOMAINS, Graph, Node, Value

if TYPE_CHECKING:
    from mlc.rewrite.builder import IRBuilder

COMMUTATIVE = frozenset({"Add", "Mul", "Max", "Min", "Sum", "Mean", "And", "Or", "Xor", "Equal", "BitwiseAnd",
                         "BitwiseOr", "BitwiseXor"})
ANY_OP = ("*",)  # `ops` of a rule offered every node


def label(node: Node) -> str:
    """How a node is named in reasons: its name, else its op type."""
    return node.name or f"<{node.op_type}>"


@dataclass
class Match:
    """What a rule found: the root node, the nodes the rewrite replaces (their provenance goes to
    the new nodes) and named values or facts the rewrite reads."""

    root: Node
    nodes: tuple[Node, ...] = ()
    values: Mapping[str, Value | None] = field(default_factory=dict)
    facts: Mapping[str, Any] = field(default_factory=dict)
    rule: str = ""  # the member of a rule family that applies (`conv-batchnorm`), counted under its name

    def __getitem__(self, key: str) -> Value:
        value = self.values[key]
        assert value is not None, key
        return value


@dataclass(slots=True)
class Reject:
    """A candidate a rule does not rewrite, and why (words a user reads in `mlc debug -v`). Made for
    most candidates of most rules, so it is a plain slotted record (a frozen dataclass costs three
    times as much to make)."""

    rule: str
    node: str
    why: str
    count: str = ""  # a pass statistic the driver counts this reject under (fold-constants' skipped_size)

    def text(self) -> str:
        return f"{self.rule} at {self.node!r}: not applied, {self.why}"

    def to_json(self) -> dict[str, str]:
        return {"rule": self.rule, "node": self.node, "why": self.why}


class Rule:
    """Base of rewrite rules; subclasses set `name`, `law`, `ops` and implement match/rewrite."""

    # class attributes for a rule written once; a rule family made from a table (one rule per
    # activation, per op...) sets them per instance in __init__ instead
    name: str = ""
    law: str = ""
    ops: tuple[str, ...] = ()
    domains: tuple[str, ...] = STANDARD_DOMAINS
    commutative: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declared = "__init__" in cls.__dict__ or (cls.name and cls.law and cls.ops)
        if cls.__dict__.get("match") is not None and not declared:
            raise TypeError(f"{cls.__name__}: a rule declares its name, its law and the ops it matches")

    def start(self, graph: Graph) -> None:
        """Called before the driver walks `graph` (each sweep): where a rule resets per-graph state."""

    def walks(self, graph: Graph) -> bool:
        """Whether the driver offers `graph`'s nodes to this rule, asked after `start`: a rule whose
        `start` found nothing it could match (fold-region when no fold was refused) says False, and
        a graph that no rule of a phase walks is not walked at all."""
        return True

    def reject(self, node: Node, why: str) -> Reject:
        return Reject(self.name, label(node), why)

    def match(self, node: Node) -> Match | Reject | None:
        raise NotImplementedError

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        raise NotImplementedError


@dataclass
class ValueMatch:
    """What a value rule found: the value and the facts its rewrite reads."""

    value: Value
    facts: Mapping[str, Any] = field(default_factory=dict)


class ValueRule:
    """Base of rules over values (constants, graph inputs) rather than nodes; see the module docstring."""

    name: str = ""
    law: str = ""
    offers: str = "initializers"  # or "inputs": the main graph's inputs

    def start(self, graph: Graph) -> None:
        """Called before the driver offers `graph`'s values (each sweep)."""

    def candidates(self, graph: Graph) -> list[Value]:
        """The values the driver offers: by `offers`; a rule whose `start` already knows which few
        can match (dedupe-constants: groups of equal dtype and shape) narrows this."""
        if self.offers == "inputs":
            return list(graph.inputs) if graph.parent is None else []  # a body's inputs are its parameters
        return [*graph.initializers.values(), *graph.sparse_initializers.values()]

    def reject(self, value: Value, why: str) -> Reject:
        return Reject(self.name, value.name, why)

    def match(self, value: Value) -> ValueMatch | Reject | None:
        raise NotImplementedError

    def rewrite(self, match: ValueMatch, builder: IRBuilder) -> None:
        raise NotImplementedError


__all__ = ["ANY_OP", "COMMUTATIVE", "STANDARD_DOMAINS", "Match", "Reject", "Rule", "ValueMatch", "ValueRule",
           "label"]
