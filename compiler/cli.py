"""The `mlc` command.

Exit codes (DESIGN.md): 0 success, 1 a numeric check failed, 2 bad usage or bad input model,
3 requested target unavailable, 70 an internal error (a bug in mlc: please report it).
Errors are one line on stderr; `-v` adds the traceback and debug logging.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import traceback
from collections.abc import Callable, Sequence

from mlc.errors import MlcError

INTERNAL_ERROR = 70


class _ArgumentParser(argparse.ArgumentParser):
    """argparse exits with 2 on bad usage already; keep its message to one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


# ===================================================================== commands
def cmd_inspect(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from mlc.ir.printer import print_ir
    from mlc.ir.verifier import verify
    from mlc.onnx_io.importer import import_onnx
    from mlc.summary import human_bytes, summarize

    graph = import_onnx(args.model, freeze_inputs=args.freeze_inputs)
    verify(graph)
    summary = summarize(graph)
    if args.json:
        print(json.dumps(summary.to_json(), indent=1))
        return 0
    console = Console(highlight=False, soft_wrap=True)
    opsets = ", ".join(f"{d or 'ai.onnx'} {v}" for d, v in sorted(summary.opsets.items()))
    console.print(f"[bold]{args.model}[/bold]  graph {summary.name!r}  IR {summary.ir_version}  "
                  f"opsets: {opsets}" + (f"  producer: {summary.producer}" if summary.producer else ""),
                  markup=True)
    io = Table(title=None, show_edge=False, pad_edge=False)
    io.add_column("", style="dim")
    io.add_column("name")
    io.add_column("type")
    for name, type_text, has_default in summary.inputs:
        io.add_row("input", name, type_text + ("  (default: overridable initializer)" if has_default else ""))
    for name, type_text in summary.outputs:
        io.add_row("output", name, type_text)
    console.print(io)
    sub = f" (+{summary.subgraph_nodes} in sub-graphs)" if summary.subgraph_nodes else ""
    console.print(f"nodes: {summary.nodes}{sub}   parameters: {summary.parameters:,} "
                  f"({human_bytes(summary.parameter_bytes)} in {summary.constants} constants)")
    ops = Table(show_edge=False, pad_edge=False)
    ops.add_column("op")
    ops.add_column("count", justify="right")
    for op, n in summary.ops.most_common():
        ops.add_row(op, str(n))
    console.print(ops)
    if summary.functions:
        console.print("functions: " + ", ".join(summary.functions))
    if args.text:
        sys.stdout.write("\n" + print_ir(graph, max_elements=None if args.full_constants else 32))
    return 0


# ===================================================================== parser and main
def build_parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(
        prog="mlc",
        description="mlc: compile ONNX models through a verified IR (see README.md).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="exit codes: 0 ok, 1 numeric check failed, 2 bad usage or bad input, "
               "3 target unavailable, 70 internal error",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging and tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_ArgumentParser)
    sub.required = True

    inspect = sub.add_parser(
        "inspect", help="summarize a model: interface, op histogram, parameters, opsets",
        description="Import MODEL into mlc's IR, verify it, and summarize it.\n\n"
                    "example: mlc inspect models/digits_mlp.onnx --text",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    inspect.add_argument("model", help="an .onnx file")
    inspect.add_argument("--text", action="store_true", help="also print the IR in its text form")
    inspect.add_argument("--full-constants", action="store_true",
                         help="with --text: print every constant in full instead of a digest")
    inspect.add_argument("--json", action="store_true", help="print the summary as JSON")
    inspect.add_argument("--freeze-inputs", action="store_true",
                         help="treat initializers listed as graph inputs as constants")
    inspect.set_defaults(func=cmd_inspect)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="mlc: %(levelname)s: %(message)s")
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except MlcError as error:
        if args.verbose:
            traceback.print_exc()
        text = str(error)
        first = text.splitlines()[0] if text else type(error).__name__
        print(f"mlc: error: {first}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("mlc: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as error:  # noqa: BLE001 - any failure here is reported, not raised
        if args.verbose:
            traceback.print_exc()
        print(f"mlc: internal error: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
              " (run with -v for the traceback)", file=sys.stderr)
        return INTERNAL_ERROR


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
