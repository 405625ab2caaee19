"""`apply_rules`: the one loop every rule-set pass runs.

It walks the main graph and every sub-graph, node by node in order, offers each node to the rules
that name its op (in the order given), and for a `Match` asks `ctx.rewrite(rule)` (which counts it
and stops the pass once `--max-rewrites` is spent, for the debugger's bisection) before rewriting;
for a `Reject` it records the reason in the one uniform format. After the nodes of a graph, its
constants (or the main graph's inputs) go to the value rules the same way. Each graph is walked by
every phase of the pass in turn (`then`), last node first where asked (`reverse`), with each rule's
`start` hook called first; a rule whose `walks` then says it has nothing to do there sits the graph
out, and a graph no rule of the phase walks is not walked. With `fixpoint`, it repeats until a sweep
changes nothing (bounded, so that two rules undoing each other end with a clear error rather than a
hang).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager

from mlc.errors import InternalError
from mlc.ir.core import Graph, Node
from mlc.pass_api import Pass, PassContext
from mlc.rewrite.builder import IRBuilder
from mlc.rewrite.rule import ANY_OP, COMMUTATIVE, Match, Reject, Rule, ValueMatch, ValueRule

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


AnyRule = Rule | ValueRule


def _nodes(graph: Graph, reverse: bool) -> Iterable[Node]:
    """Last node first from a snapshot (a chain of dead nodes goes in one sweep), or the graph's live
    order (a node a rewrite inserts ahead is visited in this sweep too)."""
    return reversed(graph.nodes) if reverse else graph  # (`nodes` is a fresh list)


Matcher = Callable[[Node], Match | Reject | None]
Candidates = list[tuple[Rule, Matcher, tuple[str, ...]]]


def _matcher(rule: Rule) -> Matcher:
    return rule.match if not rule.commutative else lambda node: _match(rule, node)


class _Dispatch:
    """Which rules a node of each op type is offered, in the rules' order, with their matchers and
    domains bound, built once per pass run by one walk over the rules: `by_op` for the ops some
    rule names (a pass of many rules, legalize-tvm's, asks a node only those that name its op),
    `default` (the rules offered every node) for the others."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = list(rules)
        self.by_op: dict[str, Candidates] = {}
        self.default: Candidates = []
        for rule in rules:
            entry = (rule, _matcher(rule), rule.domains)
            if rule.ops is ANY_OP:
                self.default.append(entry)
                for listed in self.by_op.values():
                    listed.append(entry)
            else:
                for op in dict.fromkeys(rule.ops):
                    self.by_op.setdefault(op, list(self.default)).append(entry)


class _Phase:
    """One phase's rules, split once per pass run: the node rules' dispatch, the value rules, and
    the rules whose `start` or `walks` hooks are their own (the others need not be called)."""

    def __init__(self, rules: Sequence[AnyRule]) -> None:
        node_rules = [r for r in rules if isinstance(r, Rule)]
        self.dispatch = _Dispatch(node_rules)
        self.value_rules = [r for r in rules if isinstance(r, ValueRule)]
        self.starting = [r for r in rules if type(r).start not in (Rule.start, ValueRule.start)]
        self.choosy = [r for r in node_rules if type(r).walks is not Rule.walks]

    def walking(self, sub: Graph) -> _Dispatch | None:
        """The dispatch for `sub`: every node rule, or those whose `walks` says yes (None: none)."""
        if not self.dispatch.rules or not self.choosy:
            return self.dispatch if self.dispatch.rules else None
        resting = {id(r) for r in self.choosy if not r.walks(sub)}
        if not resting:
            return self.dispatch
        walking = [r for r in self.dispatch.rules if id(r) not in resting]
        return _Dispatch(walking) if walking else None


class _Sweep:
    """One pass of every phase over every graph; `changed` says whether anything was rewritten,
    `stopped` whether `--max-rewrites` ran out."""

    def __init__(self, ctx: PassContext, rejects: dict[tuple[str, str, int], Reject]) -> None:
        self.ctx, self.rejects = ctx, rejects
        self.changed = self.stopped = False

    def _answer(self, found: Match | ValueMatch | Reject, rule: AnyRule, offered: object
                ) -> Match | ValueMatch | None:
        if isinstance(found, Reject):
            # once per rule and node; unnamed nodes (labelled `<Op>`) are told apart by identity
            self.rejects.setdefault((found.rule, found.node, id(offered) if found.node.startswith("<") else 0), found)
            if found.count:
                self.ctx.stats[found.count] += 1
            return None
        if not self.ctx.rewrite(getattr(found, "rule", "") or rule.name):
            self.stopped = True
            return None
        return found

    def nodes(self, sub: Graph, dispatch: _Dispatch, reverse: bool) -> None:
        # The driver's hot loop: every node of every graph, in every rule pass.
        by_op, default = dispatch.by_op, dispatch.default
        for node in _nodes(sub, reverse):
            for rule, match, domains in by_op.get(node.op_type, default):
                if node.graph is not sub:  # removed by an earlier rewrite: nothing left to look at
                    break
                if node.domain not in domains:  # (its op was checked when the dispatch was built)
                    continue
                answer = match(node)
                if answer is None:  # not a candidate: the common case, kept cheap
                    continue
                found = self._answer(answer, rule, node)
                if self.stopped:
                    return
                if isinstance(found, Match):
                    rule.rewrite(found, IRBuilder(sub, self.ctx, node, found.rule or rule.name, found.nodes or (node,)))
                    self.changed = True

    def values(self, sub: Graph, rules: Sequence[ValueRule]) -> None:
        for rule in rules:
            for value in rule.candidates(sub):
                answer = rule.match(value)
                if answer is None:
                    continue
                found = self._answer(answer, rule, value)
                if self.stopped:
                    return
                if isinstance(found, ValueMatch):
                    rule.rewrite(found, IRBuilder(sub, self.ctx, None, rule.name))
                    self.changed = True

    def run(self, graph: Graph, phases: Sequence[_Phase], reverse: bool) -> None:
        graphs = list(graph.all_graphs())
        for sub in reversed(graphs) if reverse else graphs:  # reverse: inner graphs first
            for phase in phases:
                for rule in phase.starting:
                    rule.start(sub)
                dispatch = phase.walking(sub)
                if dispatch is not None:  # a graph no rule has work in is not walked (fold-region, nothing refused)
                    self.nodes(sub, dispatch, reverse)
                if phase.value_rules and not self.stopped:
                    self.values(sub, phase.value_rules)
                if self.stopped:
                    return


def apply_rules(graph: Graph, rules: Sequence[AnyRule], ctx: PassContext, *, fixpoint: bool = False,
                reverse: bool = False, then: Sequence[Sequence[AnyRule]] = ()) -> bool:
    """Apply `rules` over `graph` and its sub-graphs; True when anything was rewritten. Rejects
    become remarks (`mlc debug -v`) in one format, once per rule and node.

    `reverse` walks each graph's nodes last to first and inner graphs before outer ones (what
    dead-code elimination needs to remove a chain in one sweep). `then` lists later phases: each
    graph is walked by `rules`, then by each phase of `then`, before the next graph (fold-constants
    folds single nodes first, then the constant regions of what it had to refuse)."""
    phases = [_Phase(rules), *map(_Phase, then)]
    rejects: dict[tuple[str, str, int], Reject] = {}
    changed = False
    for _ in range(MAX_SWEEPS if fixpoint else 1):
        sweep = _Sweep(ctx, rejects)
        sweep.run(graph, phases, reverse)
        changed |= sweep.changed
        if not sweep.changed or sweep.stopped or ctx.exhausted:
            break
    else:
        if fixpoint:
            names = ", ".join(r.name for phase in (rules, *then) for r in phase)
            raise InternalError(f"{ctx.pass_name}: rules still rewriting after {MAX_SWEEPS} sweeps "
                                f"({names}): two of them undo each other")
    for reject in rejects.values():
        ctx.remark(reject.text())
    return changed


class RulePass(Pass):
    """A pass that is a rule set: declare `rules` (or build them from the options in `rule_set`)
    and, where rewrites enable each other, `fixpoint = True`; the driver does the rest."""

    rules: tuple[AnyRule, ...] = ()
    fixpoint: bool = False
    reverse: bool = False

    def rule_set(self) -> Sequence[AnyRule]:
        return self.rules

    def later_phases(self) -> Sequence[Sequence[AnyRule]]:
        """Rule sets that walk each graph after `rule_set` has (see `apply_rules`' `then`)."""
        return ()

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        return apply_rules(graph, self.rule_set(), ctx, fixpoint=self.fixpoint, reverse=self.reverse,
                           then=self.later_phases())


__all__ = ["AnyRule", "RulePass", "apply_rules"]
