"""Runs a pipeline of passes with instruments around each one.

The manager enforces the pass contract: `run` must return a bool, the IR must verify after the
pass, and an exception inside a pass becomes a `PassFailedError` that names the pass and the
passes that ran before it (so the failure can be replayed from the right prefix).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mlc.errors import MlcError, VerificationError
from mlc.gc_pause import gc_paused
from mlc.ir.core import Graph
from mlc.ir.tensor import Tensor
from mlc.ir.verifier import verify
from mlc.pass_api import Pass, PassContext


class PassFailedError(MlcError):
    """A pass raised or broke the IR: a bug in mlc (or in a plug-in pass), not bad input."""

    exit_code = 70

    def __init__(self, message: str, pass_index: int | None = None) -> None:
        super().__init__(message)
        self.pass_index = pass_index  # which pass of the pipeline: the debugger writes its input as a reproducer


@dataclass
class PassRecord:
    """What one pass did: the figures `mlc debug` prints and reports carry."""

    index: int
    name: str
    spec: str
    numerics: str
    seconds: float = 0.0
    nodes_before: int = 0
    nodes_after: int = 0
    constant_bytes_before: int = 0
    constant_bytes_after: int = 0
    changed: bool = False
    rewrites: int = 0
    rules: dict[str, int] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)
    remarks: list[str] = field(default_factory=list)
    last_rule: str | None = None  # the rule of the last rewrite applied (the m-th when stopped at m)
    check: Any = None  # a verify.CheckResult when numbers were checked after this pass

    def to_json(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "check"}
        data["seconds"] = round(self.seconds, 6)
        data["check"] = self.check.to_json() if self.check is not None else None
        return data


class Instrument:
    """Hooks around every pass (timing and counting are built into the manager). An instrument
    that sets `stop` ends the pipeline after the current pass (a failed numeric check)."""

    stop: bool = False

    def before_pass(self, index: int, pass_: Pass, graph: Graph) -> None:
        pass

    def after_pass(self, index: int, pass_: Pass, graph: Graph, record: PassRecord) -> None:
        pass


def count_nodes(graph: Graph) -> int:
    return sum(1 for _ in graph.all_nodes())


def constant_bytes(graph: Graph) -> int:
    """Bytes of constant data the model would carry (a splat costs one element)."""
    return graph_figures(graph)[1]


def graph_figures(graph: Graph) -> tuple[int, int]:
    """(nodes, constant bytes) of the graph and its sub-graphs, in one walk: the manager counts
    both after every pass that rewrote something."""
    nodes = total = 0
    for sub in graph.all_graphs():
        nodes += len(sub)
        for value in sub.initializers.values():
            const = value.const
            if isinstance(const, Tensor):
                total += max(1, const.dtype.bits // 8) if const.is_splat else const.nbytes
    return nodes, total


class PassManager:
    def __init__(self, passes: Sequence[Pass], instruments: Sequence[Instrument] = (), *,
                 verify_each: bool = True, max_rewrites: dict[int, int] | None = None) -> None:
        self.passes = list(passes)
        self.instruments = list(instruments)
        self.verify_each = verify_each
        self.max_rewrites = dict(max_rewrites or {})

    def run(self, graph: Graph, stop_after: int | None = None) -> list[PassRecord]:
        """Run the pipeline (its first `stop_after` passes) on `graph` in place."""
        records: list[PassRecord] = []
        passes = self.passes if stop_after is None else self.passes[:stop_after]
        with gc_paused():  # passes make many short-lived objects and no cycles worth collecting mid-way
            sizes: tuple[int, int] | None = None  # the graph's figures after the previous pass: no recount
            for index, pass_ in enumerate(passes):
                record = self.run_one(index, pass_, graph, passes[:index], sizes)
                records.append(record)
                sizes = (record.nodes_after, record.constant_bytes_after)
                if any(instrument.stop for instrument in self.instruments):
                    break
        return records

    def run_one(self, index: int, pass_: Pass, graph: Graph, before: Sequence[Pass],
                sizes: tuple[int, int] | None = None) -> PassRecord:
        """Run one pass under the instruments; `before` are the passes run ahead of it (named when
        it fails); `sizes` (nodes, constant bytes) are the graph's figures when the caller knows
        them (the previous pass's record), else they are counted."""
        nodes, const_bytes = sizes if sizes is not None else graph_figures(graph)
        record = PassRecord(index, pass_.name, pass_.spec(), pass_.numerics.value,
                            nodes_before=nodes, constant_bytes_before=const_bytes)
        for instrument in self.instruments:
            instrument.before_pass(index, pass_, graph)
        ctx = PassContext(pass_.name, max_rewrites=self.max_rewrites.get(index))

        def where() -> str:  # only a failure is told where it happened: no text for a pass that succeeds
            ran = ", ".join(p.spec() for p in before)
            return f"pass #{index} {pass_.spec()}" + (f" (after {ran})" if before else " (first pass)")

        started = time.perf_counter()
        try:
            changed = pass_.run(graph, ctx)
        except MlcError:
            raise
        except Exception as error:
            raise PassFailedError(f"{where()} raised {type(error).__name__}: {error}", index) from error
        record.seconds = time.perf_counter() - started
        if not isinstance(changed, bool):
            raise PassFailedError(f"{where()} returned {changed!r}; run() must return True or False", index)
        touched = changed or ctx.rewrites > 0
        if self.verify_each and touched:  # a pass that rewrote nothing left the verified graph as it was
            try:
                verify(graph)
            except VerificationError as error:
                raise PassFailedError(f"{where()} broke the IR: {error}", index) from error
        record.changed = changed
        record.nodes_after, record.constant_bytes_after = (graph_figures(graph) if touched else
                                                           (record.nodes_before, record.constant_bytes_before))
        record.rewrites = ctx.rewrites
        record.rules = dict(ctx.rules)
        record.stats = dict(ctx.stats)
        record.remarks = list(ctx.remarks)
        record.last_rule = ctx.last_rule
        if changed and ctx.rewrites == 0:
            raise PassFailedError(f"{where()} changed the graph without counting a rewrite (use ctx.rewrite)", index)
        for instrument in self.instruments:
            try:
                instrument.after_pass(index, pass_, graph, record)
            except PassFailedError as error:
                error.pass_index = index if error.pass_index is None else error.pass_index
                raise
        return record
