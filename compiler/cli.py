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
from typing import Any

from mlc.errors import MlcError

INTERNAL_ERROR = 70


class _ArgumentParser(argparse.ArgumentParser):
    """argparse exits with 2 on bad usage already; keep its message to one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


# ===================================================================== commands
def cmd_inspect(args: argparse.Namespace) -> int:
    from rich.table import Table

    from mlc.console import make_console
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
    console = make_console()
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


def cmd_passes(args: argparse.Namespace) -> int:
    from rich.table import Table

    from mlc.console import make_console
    from mlc.pass_api import registered_passes
    from mlc.pipelines import PIPELINES

    console = make_console()
    table = Table(show_edge=False, pad_edge=False)
    for column in ("pass", "numerics", "description", "options", "statistics"):
        table.add_column(column)
    for name, cls in registered_passes().items():
        options = ", ".join(f"{o.name}={o.default!r} ({o.help})" for o in cls.options)
        table.add_row(name, cls.numerics.value, cls.description, options or "-", ", ".join(cls.statistics) or "-")
    console.print(table)
    console.print()
    for level, specs in PIPELINES.items():
        console.print(f"-{level}: {', '.join(specs) or '(no passes)'}")
    return 0


def cmd_debug(args: argparse.Namespace) -> int:
    from mlc.debug_view import render_debug
    from mlc.debugger import DebugOptions, load_plugin, run_debug
    from mlc.instruments import IRDiff, IRDumper, PrintAfterChange
    from mlc.pass_manager import Instrument
    from mlc.pipelines import build_pipeline
    from mlc.report import debug_report, write_report

    loaded = [load_plugin(spec) for spec in args.load]
    level = f"O{args.O}" if args.O is not None else None
    passes = build_pipeline(level, args.passes, args.disable_pass, _pass_options(args))
    instruments: list[Instrument] = []
    if args.dump_ir:
        instruments.append(IRDumper(args.dump_ir))
    if args.print_ir_after_change:
        instruments.append(PrintAfterChange())
    if args.ir_diff:
        instruments.append(IRDiff())
    options = DebugOptions(
        passes=passes, verify=args.verify, inputs_path=args.inputs, input_spec=_input_spec(args),
        stop_after=args.stop_after, max_rewrites=args.max_rewrites, reproducer_dir=args.reproducer,
        second_opinion=not args.no_second_opinion, freeze_inputs=args.freeze_inputs, loaded_modules=loaded,
        bind_inputs_path=args.bind_inputs, static_shapes=_static_shapes(args))
    result = run_debug(args.model, options, instruments)
    render_debug(result, verbose=args.verbose)
    if args.report:
        write_report(debug_report(result), args.report)
    return 1 if result.verdict == "fail" else 0


def _pipeline_args(parser: argparse.ArgumentParser, default_level: str) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-O", choices=["0", "1", "2", "3"], default=None,
                       help=f"a named pipeline, e.g. -O2 (default -O{default_level})")
    group.add_argument("--passes", metavar="P,P,...",
                       help="explicit pipeline, e.g. --passes 'cse,dce' or 'name{option=value}'")
    parser.add_argument("--disable-pass", action="append", default=[], metavar="NAME",
                        help="drop a pass from the pipeline, e.g. --disable-pass cse (repeatable)")
    parser.add_argument("--pass-option", action="append", default=[], metavar="PASS.OPTION=VALUE",
                        help="set a pass option, e.g. --pass-option perturb-weights.epsilon=0.1 (repeatable)")
    parser.add_argument("--fold-limit", type=int, metavar="BYTES",
                        help="largest constant folding may create, e.g. --fold-limit 1048576 (default 4 MiB)")
    parser.add_argument("--prune-inputs", action="store_true",
                        help="remove graph inputs nothing reads (changes the model's interface)")


def _static_shapes(args: argparse.Namespace) -> dict[str, tuple[int, ...]]:
    from mlc.numerics.inputs import parse_shape_flags

    return parse_shape_flags(args.static_shape)


def _pass_options(args: argparse.Namespace) -> list[str]:
    """--pass-option values plus the shorthand flags, which apply where their pass runs."""
    options = list(args.pass_option)
    if getattr(args, "fold_limit", None) is not None:
        options.append(f"?fold-constants.limit={args.fold_limit}")
    if getattr(args, "prune_inputs", False):
        options.append("?dce.prune_inputs=true")
    return options


def _input_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--inputs", metavar="F.npz",
                        help="input arrays keyed by input name, e.g. --inputs sample.npz (default: generated)")
    parser.add_argument("--input-shape", action="append", default=[], metavar="NAME:D,D",
                        help="shape of a generated input, e.g. --input-shape pixels:4,64 (repeatable)")
    parser.add_argument("--input-range", action="append", default=[], metavar="NAME:LO,HI",
                        help="value range of a generated input, e.g. --input-range ids:0,30521 (repeatable)")
    parser.add_argument("--seed", type=int, default=0, help="seed of generated inputs, e.g. --seed 7 (default 0)")


def _input_spec(args: argparse.Namespace) -> Any:
    from mlc.numerics.inputs import InputSpec, parse_range_flags, parse_shape_flags

    return InputSpec(seed=args.seed, shapes=parse_shape_flags(args.input_shape),
                     ranges=parse_range_flags(args.input_range))


def cmd_compile(args: argparse.Namespace) -> int:
    from mlc.driver import compile_model
    from mlc.instruments import IRDumper
    from mlc.report import debug_report, write_report

    instruments = [IRDumper(args.dump_ir)] if args.dump_ir else []
    folder, result = compile_model(
        args.model, args.target, args.output, level=f"O{args.O}" if args.O is not None else None,
        passes=args.passes, disabled=tuple(args.disable_pass), pass_options=tuple(_pass_options(args)),
        verify=args.verify, inputs_path=args.inputs, input_spec=_input_spec(args), freeze_inputs=args.freeze_inputs,
        bind_inputs=args.bind_inputs, static_shapes=_static_shapes(args), instruments=instruments,
        backend_options={k: v for k, v in (("mcpu", args.mcpu), ("mattr", args.mattr), ("cuda_arch", args.cuda_arch))
                         if v})
    if args.report:
        report = debug_report(result)
        report["command"] = "compile"
        write_report(report, args.report)
    changed = sum(1 for r in result.records if r.changed)
    nodes = f"{result.records[0].nodes_before} -> {result.records[-1].nodes_after} nodes" if result.records else ""
    print(f"{folder}: {args.target} artifact ({len(result.records)} passes, {changed} changed the graph"
          f"{', ' + nodes if nodes else ''}; numbers {result.verdict})")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    import numpy as np

    from mlc.artifact import load

    artifact = load(args.artifact)
    if args.inputs:
        from mlc.errors import BadInputError

        try:
            with np.load(args.inputs, allow_pickle=False) as data:
                feeds = {k: data[k] for k in data.files}
        except (OSError, ValueError) as error:
            raise BadInputError(f"{args.inputs}: cannot read inputs ({error})") from None
    else:
        from mlc.errors import BadInputError

        raise BadInputError("mlc run needs --inputs IN.npz (arrays keyed by input name)")
    outputs = artifact.run(feeds)
    if args.output:
        np.savez(args.output, **outputs)
    for name, value in outputs.items():
        array = np.asarray(value)
        print(f"{name}: {array.dtype}{list(array.shape)}")
    return 0


def cmd_targets(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.table import Table

    from mlc.console import make_console
    from mlc.targets import TARGETS, availability

    table = Table(show_edge=False, pad_edge=False)
    for column in ("target", "available", "why / version"):
        table.add_column(column)
    for target in TARGETS:
        state = availability(target)
        table.add_row(target, "yes" if state.ok else "no", escape(state.reason))
    make_console().print(table)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from rich.table import Table

    from mlc.bench import bench
    from mlc.console import make_console

    ours, plain, target = bench(args.model, args.target, original=args.original, runs=args.runs, warmup=args.warmup,
                                inputs_path=args.inputs, spec=_input_spec(args),
                                level=f"O{args.O}" if args.O is not None else None)
    table = Table(show_edge=False, pad_edge=False)
    for column in ("", "median ms", "p10 ms", "p90 ms", "runs", "vs plain onnxruntime"):
        table.add_column(column, justify="right" if column else "left")
    rows = [ours] + ([plain] if plain else [])
    for row in rows:
        ratio = ""
        if plain is not None:
            ratio = f"{plain.median_ms / row.median_ms:.2f}x speed" if row is ours else "1.00x"
        table.add_row(row.label, f"{row.median_ms:.3f}", f"{row.p10_ms:.3f}", f"{row.p90_ms:.3f}", str(row.runs), ratio)
    console = make_console()
    console.print(f"mlc bench {args.model} (target {target}; interleaved runs, medians)")
    console.print(table)
    if plain is None:
        console.print("no plain onnxruntime baseline: pass --original MODEL.onnx for an artifact folder")
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

    passes = sub.add_parser("passes", help="list passes (name, contract, options) and pipelines -O0..-O3")
    passes.set_defaults(func=cmd_passes)

    debug = sub.add_parser(
        "debug", help="run passes one by one, check the numbers after each, localize a break",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""Run a pipeline pass by pass on MODEL, print one row per pass (time, nodes before -> after,
rewrites, max error vs the original, verdict) and, when the numbers break, name the first pass, the
first rewrite inside it and the first tensor that diverges, and write a reproducer folder.

examples:
  mlc debug models/digits_mlp.onnx -O1
  mlc debug model.onnx --passes eliminate-identity,cse,dce --inputs inputs.npz --report report.json
  mlc debug model.onnx -O2 --verify final          # check only the end; bisect the pipeline on failure
  mlc debug model.onnx -O2 --stop-after 3 --dump-ir ir/   # the first 3 passes, IR after each

exit codes: 0 numbers hold (or inconclusive), 1 a numeric check failed, 2 bad input, 70 a pass crashed""",
    )
    debug.add_argument("model", help="an .onnx file")
    _pipeline_args(debug, "1")
    _input_args(debug)
    debug.add_argument("--verify", choices=["each", "final", "none"], default="each",
                       help="check numbers after each changing pass (default), only at the end "
                            "(a failure is then bisected over the pipeline prefix), or never")
    debug.add_argument("--stop-after", type=int, metavar="N",
                       help="run only the first N passes, e.g. --stop-after 3")
    debug.add_argument("--max-rewrites", type=int, metavar="N",
                       help="stop each pass after N rewrites, e.g. --max-rewrites 10 (the debugger bisects this)")
    debug.add_argument("--dump-ir", metavar="DIR",
                       help="write NNN_<pass>.txt (text IR) and NNN_<pass>.onnx after each pass, e.g. --dump-ir ir/")
    debug.add_argument("--print-ir-after-change", action="store_true",
                       help="print the IR after every pass that changed it")
    debug.add_argument("--ir-diff", action="store_true", help="print a unified diff of the IR across each pass")
    debug.add_argument("--report", metavar="FILE.json",
                       help="write the JSON report (schema: compiler/schemas/report.schema.json)")
    debug.add_argument("--reproducer", metavar="DIR",
                       help="where to write the reproducer on failure (default ./mlc-repro-<model>)")
    debug.add_argument("--no-second-opinion", action="store_true",
                       help="do not re-judge a failure with onnx's reference evaluator")
    debug.add_argument("--load", action="append", default=[], metavar="MODULE",
                       help="import a module or .py file that registers extra passes, e.g. --load my_passes.py")
    debug.add_argument("--freeze-inputs", action="store_true",
                       help="treat initializers listed as graph inputs as constants")
    debug.add_argument("--bind-inputs", metavar="F.npz",
                      help="compile for these values of the named inputs (shape operands such as Reshape "
                           "shapes or Reduce axes), which become constants, e.g. --bind-inputs axes.npz")
    debug.add_argument("--static-shape", action="append", default=[], metavar="NAME:D,D",
                      help="fix an input's dims (dynamic ones included) so that shape computations fold, "
                           "e.g. --static-shape input_ids:1,128 (repeatable)")
    debug.set_defaults(func=cmd_debug)

    comp = sub.add_parser(
        "compile", help="compile a model for a target into an artifact folder",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""Import MODEL, run the pipeline (numbers checked against the original), compile it for
TARGET and write an artifact folder (manifest.json + the backend's files), atomically.

examples:
  mlc compile models/digits_mlp.onnx --target onnxruntime -o digits.ort
  mlc compile model.onnx --target onnxruntime -O1 --verify each --report report.json""")
    comp.add_argument("model", help="an .onnx file")
    comp.add_argument("--target", default="onnxruntime", help="e.g. --target onnxruntime (`mlc targets` lists them)")
    comp.add_argument("-o", "--output", metavar="DIR", help="artifact folder, e.g. -o out/ (default MODEL.TARGET)")
    comp.add_argument("--mcpu", help="llvm: the CPU to compile for, e.g. --mcpu skylake-avx512 (default: this one)")
    comp.add_argument("--mattr", help="llvm: CPU features on/off, e.g. --mattr +avx512f (default -avx512f: TVM 0.27 "
                                       "miscompiles some ops with AVX-512)")
    comp.add_argument("--cuda-arch", help="cuda: the GPU architecture, e.g. --cuda-arch sm_90 (default sm_80)")
    _pipeline_args(comp, "2")
    comp.add_argument("--verify", choices=["each", "final", "none"], default="final",
                      help="check the numbers after each pass, at the end (default), or never")
    _input_args(comp)
    comp.add_argument("--dump-ir", metavar="DIR", help="IR after each pass, e.g. --dump-ir ir/")
    comp.add_argument("--report", metavar="FILE.json", help="JSON report, e.g. --report report.json")
    comp.add_argument("--freeze-inputs", action="store_true",
                      help="treat initializers listed as graph inputs as constants")
    comp.add_argument("--bind-inputs", metavar="F.npz",
                      help="compile for these values of the named inputs (shape operands such as Reshape "
                           "shapes or Reduce axes), which become constants, e.g. --bind-inputs axes.npz")
    comp.add_argument("--static-shape", action="append", default=[], metavar="NAME:D,D",
                      help="fix an input's dims (dynamic ones included) so that shape computations fold, "
                           "e.g. --static-shape input_ids:1,128 (repeatable)")
    comp.set_defaults(func=cmd_compile)

    run = sub.add_parser("run", help="run an artifact on inputs from an .npz",
                         description="example: mlc run digits.ort --inputs models/digits_mlp.sample.npz "
                                     "--output out.npz")
    run.add_argument("artifact", help="an artifact folder written by mlc compile")
    run.add_argument("--inputs", metavar="IN.npz", help="arrays keyed by input name")
    run.add_argument("--output", metavar="OUT.npz", help="write the outputs, keyed by output name")
    run.set_defaults(func=cmd_run)

    ben = sub.add_parser(
        "bench", help="median latency of a model or artifact against plain onnxruntime, measured interleaved",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""examples:
  mlc bench models/digits_mlp.onnx --target onnxruntime
  mlc bench digits.ort --original models/digits_mlp.onnx --runs 200""")
    ben.add_argument("model", help="an .onnx file (compiled first) or an artifact folder")
    ben.add_argument("--target", default="onnxruntime", help="target when MODEL is an .onnx file, e.g. --target llvm")
    ben.add_argument("--original", metavar="MODEL.onnx", help="the source model, for an artifact folder's baseline")
    ben.add_argument("-O", choices=["0", "1", "2", "3"], default=None, help="pipeline when compiling, e.g. -O2")
    ben.add_argument("--runs", type=int, default=50, help="timed runs of each, e.g. --runs 200 (default 50)")
    ben.add_argument("--warmup", type=int, default=5, help="untimed runs first (default 5)")
    _input_args(ben)
    ben.set_defaults(func=cmd_bench)

    targets = sub.add_parser("targets", help="list targets and whether this machine can use them")
    targets.set_defaults(func=cmd_targets)
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
