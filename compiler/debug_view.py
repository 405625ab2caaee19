"""How `mlc debug` shows its result: the per-pass table and the localization lines."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mlc.console import make_console
from mlc.debugger import DebugResult
from mlc.pass_manager import PassRecord


def _verdict(record: PassRecord, verify: str) -> str:
    if record.check is not None:
        return {"ok": "ok", "fail": "FAIL", "inconclusive": "inconclusive"}[record.check.verdict]
    if verify == "each":
        return "unchanged" if not record.changed else "-"
    return "-"


def render_debug(result: DebugResult, verbose: bool = False, console: Console | None = None) -> None:
    console = console or make_console()
    shapes = " and ".join(", ".join(f"{k} {d}{s}" for k, (d, s) in one.items()) for one in result.input_sets)
    console.print(f"mlc debug {result.model}  ({len(result.pipeline)} passes, verify {result.verify}, "
                  f"reference {result.engine}, inputs {shapes or 'none'})", markup=False)
    table = Table(show_edge=False, pad_edge=False)
    for column, justify in (("#", "right"), ("pass", "left"), ("ms", "right"), ("nodes", "right"),
                            ("rewrites", "right"), ("max abs err", "right"), ("max rel err", "right"),
                            ("verdict", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    last_abs, last_rel = "", ""
    for record in result.records:
        if record.check is not None:
            last_abs, last_rel = f"{record.check.max_abs:.2e}", f"{record.check.max_rel:.2e}"
        table.add_row(str(record.index), escape(record.spec), f"{record.seconds * 1e3:.1f}",
                      f"{record.nodes_before} -> {record.nodes_after}", str(record.rewrites),
                      last_abs if result.verify == "each" else "", last_rel if result.verify == "each" else "",
                      _verdict(record, result.verify))
    console.print(table)
    if verbose:
        for record in result.records:
            for remark in record.remarks:
                console.print(f"  remark [{record.name}]: {remark}", markup=False)
    if result.final_check is not None:
        console.print(f"final check: {result.final_check.verdict}"
                      + (f" ({result.final_check.note})" if result.final_check.note else ""))
    loc = result.localization
    if loc is not None:
        console.print(f"first diverging pass: #{loc.pass_index} {loc.pass_spec} (found by {loc.found_by})",
                      markup=False)
        if loc.check is not None:
            for output in loc.check.outputs:
                if output.verdict != "ok":
                    console.print("  " + output.describe(), markup=False)
            if loc.check.note:
                console.print(f"  {loc.check.note}", markup=False)
        if loc.first_bad_rewrite is not None:
            console.print(f"first breaking rewrite: #{loc.first_bad_rewrite} of {loc.rewrites}"
                          + (f" (rule {loc.rule})" if loc.rule else ""), markup=False)
        if loc.tensor is not None:
            t = loc.tensor
            origin = f", from ONNX node {', '.join(t.origin)}" if t.origin else ""
            made = f", made by {t.created_by}" if t.created_by else ""
            console.print(f"first diverging tensor: %{t.value} = {t.op_type} node {t.node or '?'}{origin}{made} "
                          f"(matched by {t.matched_by})", markup=False)
            console.print("  " + t.check.describe(), markup=False)
        if loc.reproducer:
            console.print(f"reproducer: {loc.reproducer}", markup=False)
            console.print(f"replay: {loc.command}", markup=False)
    for note in result.notes:
        console.print(f"note: {note}", markup=False)
    console.print(f"verdict: {result.verdict}  ({result.seconds:.2f} s)")
