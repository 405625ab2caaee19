"""`apply_rules`: the one loop every rule-set pass runs.

It walks the main graph and every sub-graph, node by node in order, offers each node to the rules
that name its op (in the order given), and for a `Match` asks `ctx.rewrite(rule)` (which counts it
and stops the pass once `--max-rewrites` is spent, for the debugger's bisection) before rewriting;
for a `Reject` it records the reason in the one uniform format. With `fixpoint`, it repeats until a
sweep changes nothing (bounded, so that two rules undoing each other end with a clear error rather
than a hang).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from mlc.errors import InternalError
from mlc.ir.core import Graph, Node
from mlc.pass_api import Pass, PassContext
from mlc.rewrite.builder import IRBuilder
from mlc.rewrite.rule import COMMUTATIVE, Match, Reject, Rule

MAX_SWEEPS = 32


@contextmanager
def _swapped(node: Node) -> Iterator[None]:
    a, b = node.inputs[0], node.inputs[1]
    node.set_input(0, b)
    node.set_input(1, a)
    try:
        yield
    finally:
        node.set_input(0, a)
        node.set_input(1, b)


def _match(rule: Rule, node: Node) -> Match | Reject | None:
    """The rule's answer, the swapped operand order tried too for a commutative rule."""
    found = rule.match(node)
    if isinstance(found, Match) or not (rule.commutative and node.op_type in COMMUTATIVE
                                        and len(node.inputs) == 2):
        return found
    with _swapped(node):
        again = rule.match(node)
    if isinstance(again, Match):
        a, b = node.inputs[0], node.inputs[1]
        node.set_input(0, b)  # keep the order the match was made in: the rewrite reads it
        node.set_input(1, a)
        return again
    return found if found is not None else again


def _sweep(graph: Graph, rules: Sequence[Rule], ctx: PassContext, rejects: dict[tuple[str, str], Reject]) -> bool:
    changed = False
    for sub in list(graph.all_graphs()):
        for node in sub:  # live: a node a rewrite inserts ahead is visited in this sweep too
            if node.graph is not sub:  # removed by an earlier rewrite in this sweep
                continue
            for rule in rules:
                if not rule.applies_to(node):
                    continue
                found = _match(rule, node)
                if isinstance(found, Reject):
                    rejects.setdefault((found.rule, found.node), found)
                    continue
                if found is None:
                    continue
                name = found.rule or rule.name
                if not ctx.rewrite(name):
                    return changed
                rule.rewrite(found, IRBuilder(sub, ctx, node, name, found.nodes or (node,)))
                changed = True
                if node.graph is not sub:  # rewritten away: the later rules have nothing to look at
                    break
    return changed


def apply_rules(graph: Graph, rules: Sequence[Rule], ctx: PassContext, *, fixpoint: bool = False) -> bool:
    """Apply `rules` over `graph` and its sub-graphs; True when anything was rewritten. Rejects
    become remarks (`mlc debug -v`) in one format, once per rule and node."""
    rejects: dict[tuple[str, str], Reject] = {}
    changed = False
    for _ in range(MAX_SWEEPS if fixpoint else 1):
        swept = _sweep(graph, rules, ctx, rejects)
        changed |= swept
        if not swept or ctx.exhausted:
            break
    else:
        if fixpoint:
            raise InternalError(f"{ctx.pass_name}: rules still rewriting after {MAX_SWEEPS} sweeps "
                                f"({', '.join(r.name for r in rules)}): two of them undo each other")
    for reject in rejects.values():
        ctx.remark(reject.text())
    return changed




class RulePass(Pass):
    """A pass that is a rule set: declare `rules` (or build them from the options in `rule_set`)
    and, where rewrites enable each other, `fixpoint = True`; the driver does the rest."""

    rules: tuple[Rule, ...] = ()
    fixpoint: bool = False

    def rule_set(self) -> Sequence[Rule]:
        return self.rules

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        return apply_rules(graph, self.rule_set(), ctx, fixpoint=self.fixpoint)


__all__ = ["RulePass", "apply_rules"]
