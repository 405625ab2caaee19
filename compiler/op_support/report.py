"""Every node of a graph checked against a target's table: `support_report(graph, target)`.

Nodes of sub-graphs (If/Loop/Scan bodies) are checked too, named `outer[attribute]/inner`: the
node `/b/Add` of the then branch of `/if` is `/if[then_branch]/b/Add`. A node that calls a
model-local function is checked as such, and where the target inlines functions the body's nodes
are checked once per function (named `function domain.name/inner`) at the function's own opset
imports. A node without a name is named `<OpType #index>` (its place in its graph).
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from mlc.errors import BadInputError, did_you_mean
from mlc.ir.core import Function, Graph
from mlc.op_support.table import SEVERITY, Status, SupportTable, Verdict, domain_name, op_text

SHOWN = 3  # nodes named in one_line before "and N more"
_NAME_WIDTH = 60


def _builders() -> dict[str, Callable[[str], SupportTable]]:
    from mlc.op_support.ort import ort_table
    from mlc.op_support.tensorrt import tensorrt_table
    from mlc.op_support.tvm import tvm_table

    return {"onnxruntime": ort_table, "onnxruntime-cuda": ort_table, "llvm": tvm_table, "cuda": tvm_table,
            "tensorrt": tensorrt_table}


@functools.cache
def support_table(target: str) -> SupportTable:
    """The op support table of `target` (BadInputError for an unknown target). Reading TVM's
    converters imports TVM; that happens only for `llvm` and `cuda`."""
    builders = _builders()
    if target not in builders:
        raise BadInputError(f"unknown target {target!r}{did_you_mean(target, builders)} (known: {', '.join(builders)})")
    return builders[target](target)


@dataclass(frozen=True)
class NodeSupport:
    name: str  # the node's name, prefixed with where it sits (sub-graph, function body)
    op_type: str
    domain: str
    opset: int | None
    status: Status
    reason: str = ""

    def text(self) -> str:
        """`/a/NonZero (NonZero, not supported by the TensorRT parser)`."""
        name = self.name if len(self.name) <= _NAME_WIDTH else self.name[:28] + "…" + self.name[-(_NAME_WIDTH - 29):]
        return f"{name} ({op_text(self.domain, self.op_type)}, {self.reason or self.status.value})"

    def to_json(self) -> dict[str, Any]:
        return {"node": self.name, "op_type": self.op_type, "domain": domain_name(self.domain),
                "opset": self.opset, "status": self.status.value, "reason": self.reason}


@dataclass(frozen=True)
class OpSupport:
    """One op type of the graph (at one opset): how many nodes, and the worst verdict among them."""

    op_type: str
    domain: str
    opset: int | None
    count: int
    status: Status
    reason: str
    statuses: dict[str, int]  # status -> nodes (more than one key: the nodes differ, e.g. by element type)

    def to_json(self) -> dict[str, Any]:
        return {"op_type": self.op_type, "domain": domain_name(self.domain), "opset": self.opset, "count": self.count,
                "status": self.status.value, "reason": self.reason, "nodes_by_status": self.statuses}


@dataclass
class SupportReport:
    target: str
    source: str
    nodes: list[NodeSupport]
    known: bool = True
    unknown_reason: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def unsupported(self) -> list[NodeSupport]:
        return [n for n in self.nodes if n.status.blocks]

    @property
    def ok(self) -> bool:
        """No node is known to be unsupported (unknown and conditional nodes do not block)."""
        return not self.unsupported

    def by_op(self) -> list[OpSupport]:
        groups: dict[tuple[str, str, int | None], list[NodeSupport]] = {}
        for n in self.nodes:
            groups.setdefault((n.domain, n.op_type, n.opset), []).append(n)
        found = []
        for (domain, op_type, opset), members in groups.items():
            worst = min(members, key=lambda n: SEVERITY.index(n.status))
            statuses = Counter(n.status.value for n in members)
            reason = worst.reason
            if len(statuses) > 1:
                reason = f"{statuses[worst.status.value]} of {len(members)} nodes: {reason}" if reason else reason
            found.append(OpSupport(op_type, domain, opset, len(members), worst.status, reason, dict(statuses)))
        return sorted(found, key=lambda o: (SEVERITY.index(o.status), -o.count, o.domain, o.op_type))

    def one_line(self, model: str = "MODEL") -> str:
        """The verdict in one line, readable for any number of unsupported nodes: what a backend
        raises (BadInputError) before building."""
        if not self.known:
            return f"{self.target}: support unknown here: {self.unknown_reason}"
        bad = self.unsupported
        if not bad:
            unknown = [n for n in self.nodes if n.status is Status.UNKNOWN]
            conditional = sum(n.status is Status.CONDITIONAL for n in self.nodes)
            total = len(self.nodes)
            if unknown:
                return (f"{self.target}: {len(unknown)} of {total} nodes unknown here, none known to be "
                        f"unsupported: {unknown[0].reason}")
            return (f"{self.target} can build {'the 1 node' if total == 1 else f'all {total} nodes'}"
                    + (f" ({conditional} on conditions)" if conditional else ""))
        head = f"{self.target} cannot build {len(bad)} node{'s' if len(bad) != 1 else ''}"
        if len(bad) > SHOWN:
            kinds = Counter(op_text(n.domain, n.op_type) for n in bad)
            listed = ", ".join(f"{k} ×{c}" for k, c in kinds.most_common(4))
            etc = ", ..." if len(kinds) > 4 else ""
            head += f" ({len(kinds)} op type{'s' if len(kinds) != 1 else ''}: {listed}{etc})"
        named = ", ".join(n.text() for n in bad[:SHOWN])
        more = f", and {len(bad) - SHOWN} more" if len(bad) > SHOWN else ""
        return f"{head}: {named}{more} (see mlc targets --support {model})"

    def to_json(self, model: str = "MODEL") -> dict[str, Any]:
        return {"target": self.target, "source": self.source, "known": self.known,
                "unknown_reason": self.unknown_reason or None, "ok": self.ok, "nodes": len(self.nodes),
                "verdict": self.one_line(model), "ops": [o.to_json() for o in self.by_op()],
                "unsupported": [n.to_json() for n in self.unsupported], "notes": self.notes}


def support_report(graph: Graph, target: str) -> SupportReport:
    """Every node of `graph` (sub-graphs and called model-local functions included) checked
    against `target`'s table at the model's opset of the node's domain."""
    table = support_table(target)
    return SupportReport(target, table.source, list(_walk(graph.root, table)), table.known, table.unknown_reason,
                         list(table.notes))


def require_supported(graph: Graph, target: str, model: str = "MODEL") -> SupportReport:
    """The report, or BadInputError (exit 2) with its one line when a node cannot be built."""
    report = support_report(graph, target)
    if not report.ok:
        raise BadInputError(report.one_line(model))
    return report


def _norm(opsets: dict[str, int]) -> dict[str, int]:
    return {("" if d == "ai.onnx" else d): v for d, v in opsets.items()}


def _walk(graph: Graph, table: SupportTable) -> Iterator[NodeSupport]:
    model = graph.model
    functions: dict[tuple[str, str, str], Function] = {f.key: f for f in model.functions} if model else {}
    model_opsets = _norm(model.opset_imports) if model else {}
    visited: set[tuple[str, str, str]] = set()

    def visit(g: Graph, prefix: str, opsets: dict[str, int]) -> Iterator[NodeSupport]:
        for index, node in enumerate(g):
            own = node.name or f"<{node.op_type} #{index}>"
            label = prefix + (own.removeprefix("/") if prefix.endswith("/") else own)
            domain = "" if node.domain == "ai.onnx" else node.domain
            opset = opsets.get(domain)
            function = functions.get((node.domain, node.op_type, node.overload))
            if function is not None:
                name = f"{domain_name(function.domain)}.{function.name}"
                if not table.known:
                    verdict = Verdict(Status.UNKNOWN, table.unknown_reason)
                elif table.inlines_functions:
                    verdict = Verdict.ok(f"calls model-local function {name} (inlined)")
                else:
                    verdict = Verdict.no(f"calls model-local function {name}, which {table.target} does not inline")
                yield NodeSupport(label, node.op_type, domain, opset, verdict.status, verdict.reason)
                if table.inlines_functions and function.key not in visited:
                    visited.add(function.key)
                    yield from visit(function.body, f"function {name}/", {**model_opsets,
                                                                           **_norm(function.opset_imports)})
                continue
            verdict = table.check(domain, node.op_type, opset, node)
            yield NodeSupport(label, node.op_type, domain, opset, verdict.status, verdict.reason)
            for attr in node.attributes.values():
                subs = attr.subgraphs()
                for i, sub in enumerate(subs):
                    tag = attr.name if len(subs) == 1 else f"{attr.name}#{i}"
                    yield from visit(sub, f"{label}[{tag}]/", opsets)

    yield from visit(graph, "", model_opsets)
