"""`mlc targets --support MODEL`: per target, a table of the model's op types (count, verdict,
why) and the verdict line; the same facts as one JSON payload."""

from __future__ import annotations

from typing import Any

from mlc.ir.core import Graph
from mlc.op_support.report import SupportReport
from mlc.op_support.table import Status, domain_name, op_text

_STYLE = {Status.SUPPORTED: "green", Status.CONDITIONAL: "yellow", Status.UNSUPPORTED: "red", Status.UNKNOWN: "dim"}


def payload(model: str, graph: Graph, reports: list[SupportReport]) -> dict[str, Any]:
    """`nodes`: the graph's, sub-graphs included (a target's own count adds the bodies of the
    model-local functions it inlines)."""
    return {"model": model, "nodes": sum(1 for _ in graph.all_nodes()), "targets": [r.to_json(model) for r in reports]}


def print_support(console: Any, model: str, reports: list[SupportReport]) -> None:
    from rich.markup import escape
    from rich.table import Table

    for report in reports:
        console.print(f"[bold]{escape(report.target)}[/bold]  {escape(report.source)}")
        if report.known and report.nodes:
            table = Table(show_edge=False, pad_edge=False)
            for column in ("op", "opset", "nodes", "support", "why / condition"):
                table.add_column(column, justify="right" if column == "nodes" else "left")
            for op in report.by_op():
                style = _STYLE[op.status]
                opset = f"{domain_name(op.domain)} {op.opset}" if op.opset is not None else "-"
                table.add_row(escape(op_text(op.domain, op.op_type)), escape(opset), str(op.count),
                              f"[{style}]{op.status.value}[/{style}]", escape(op.reason))
            console.print(table)
        for note in report.notes:
            console.print(f"[dim]note: {escape(note)}[/dim]")
        verdict = "ok" if report.ok and report.known else ("unknown" if not report.known else "refused")
        console.print(f"{verdict}: {escape(report.one_line(model))}")
        console.print()
