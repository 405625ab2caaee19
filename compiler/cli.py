"""The `mlc` command.

Exit codes (DESIGN.md): 0 success, 1 a numeric check failed, 2 bad usage or bad input,
3 requested target unavailable, 70 an internal error (a bug in mlc, naming the pass).
Errors are one line on stderr; `-v` adds the traceback and debug logging. `--json` on every
subcommand prints one JSON document on stdout and nothing else (human output and anything a
library writes to stdout go to stderr meanwhile).
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from mlc.errors import MlcError

INTERNAL_ERROR = 70


class _ArgumentParser(argparse.ArgumentParser):
    """argparse exits with 2 on bad usage already; keep its message to one line, with a
    "did you mean" for a mistyped option."""

    def error(self, message: str) -> None:  # type: ignore[override]
        if message.startswith("unrecognized arguments:"):
            known = [s for parser in self._parsers() for action in parser._actions for s in action.option_strings]
            hints = [difflib.get_close_matches(word.split("=")[0], known, n=1, cutoff=0.6)
                     for word in message.split(":", 1)[1].split() if word.startswith("-")]
            names = [h[0] for h in hints if h]
            if names:
                message += f"; did you mean {' / '.join(names)}?"
        self.exit(2, f"{self.prog}: error: {message}\n")

    def _parsers(self) -> list[argparse.ArgumentParser]:
        """This parser and its subcommands' (the top parser reports their unknown options)."""
        found: list[argparse.ArgumentParser] = [self]
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                found += list(dict.fromkeys(action.choices.values()))
        return found


def _escape(text: object) -> str:
    from rich.markup import escape

    return escape(str(text))


class Output:
    """Where a command's results go: a JSON payload (printed by `main` under `--json`) and human
    text on stdout otherwise."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.json = bool(getattr(args, "json", False))
        self.quiet = bool(getattr(args, "quiet", False))
        self.payload: Any = None

    @property
    def human(self) -> bool:
        return not self.json

    def console(self) -> Any:
        from mlc.console import make_console

        return make_console()

    def warn(self, text: str) -> None:
        if not self.quiet:
            print(f"mlc: warning: {text}", file=sys.stderr)


def _progress(args: argparse.Namespace) -> Any:
    from mlc.progress import Progress

    silent = getattr(args, "quiet", False) or getattr(args, "json", False)
    return Progress(enabled=False if silent else None)


# ===================================================================== shared option groups
def _pipeline_args(parser: argparse.ArgumentParser, target_default: str | None = "onnxruntime") -> None:
    from mlc.pipelines import DEFAULT_LEVEL

    parser.add_argument("--target", default=target_default,
                        help="the target whose pipeline runs, e.g. --target llvm (`mlc targets` lists them; "
                             + (f"default {target_default})" if target_default else "default: none, portable "
                                "ai.onnx ops only)"))
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-O", choices=["0", "1", "2", "3"], default=None,
                       help=f"a named pipeline, e.g. -O3 (default -{DEFAULT_LEVEL}; -O3 adds the target's own ops)")
    group.add_argument("--passes", metavar="P,P,...",
                       help="explicit pipeline, e.g. --passes 'cse,dce' or 'name{option=value}'")
    parser.add_argument("--disable-pass", action="append", default=[], metavar="NAME",
                        help="drop a pass from the pipeline, e.g. --disable-pass cse (repeatable)")
    parser.add_argument("--pass-option", action="append", default=[], metavar="PASS.OPTION=VALUE",
                        help="set a pass option, e.g. --pass-option fold-constants.limit=1048576 (repeatable)")
    parser.add_argument("--fold-limit", type=int, metavar="BYTES",
                        help="largest constant folding may create, e.g. --fold-limit 1048576 (default 4 MiB)")
    parser.add_argument("--prune-inputs", action="store_true",
                        help="remove graph inputs nothing reads (changes the model's interface)")
    parser.add_argument("--freeze-inputs", action="store_true",
                        help="treat initializers listed as graph inputs as constants (pass freeze-inputs)")
    parser.add_argument("--bind-inputs", metavar="F.npz",
                        help="compile for these values of the named inputs (shape operands such as Reshape "
                             "shapes or Reduce axes), which become constants (pass bind-inputs)")
    parser.add_argument("--input-shape", "--static-shape", dest="input_shape", action="append", default=[],
                        metavar="NAME:D,D",
                        help="fix an input's dims (dynamic ones included) in the result, and check at them, so "
                             "that shape computations fold, e.g. --input-shape pixels:8,64 (repeatable; pass "
                             "fix-input-shapes); with --target tensorrt a range is an optimization profile: "
                             "x:1,3,224,224..8,3,224,224 or x:min=1,64;opt=4,64;max=8,64")
    parser.add_argument("--precision", choices=["fp32", "fp16"], default="fp32",
                        help="fp16: compute in float16 (pass convert-fp16), keeping the float32 inputs and outputs "
                             "and the numerically sensitive ops (normalizations, softmax, reductions, exp/log/pow, "
                             "large-range tensors) in float32; judged by the lossy gate (default fp32)")


def _quantize_args(parser: argparse.ArgumentParser, search: bool = True) -> None:
    """--quantize int8 / int8-dynamic and its calibration, exclusion and accuracy-budget flags."""
    from mlc.numerics.compare import DEFAULT_MIN_COSINE
    from mlc.pipelines import CALIBRATION_METHODS, QUANTIZE_MODES

    group = parser.add_argument_group("int8 quantization")
    group.add_argument("--quantize", choices=QUANTIZE_MODES,
                       help="int8: calibrate, then insert QuantizeLinear/DequantizeLinear (static QDQ), e.g. "
                            "--quantize int8 --calibration-data cal.npz; int8-dynamic: int8 MatMul/Gemm weights, "
                            "activations quantized at run time (no calibration data; refuses --calibration-data)")
    group.add_argument("--calibration-data", metavar="CAL",
                       help="calibration samples: an .npz keyed by input name (samples on axis 0), a folder of "
                            ".npz/.npy, or `random` (warned: noise gives noise's ranges)")
    group.add_argument("--calibration-method", choices=CALIBRATION_METHODS, default="minmax",
                       help="how ranges are chosen from the observed values (default minmax)")
    group.add_argument("--percentile", type=float, default=99.99, metavar="P",
                       help="with --calibration-method percentile: the percentile of |x| kept (default 99.99)")
    group.add_argument("--calibration-batch", type=int, default=16, metavar="N",
                       help="samples per calibration run: bounds memory (default 16)")
    group.add_argument("--per-channel", action=argparse.BooleanOptionalAction, default=True,
                       help="one int8 weight scale per output channel (default) or one per tensor")
    group.add_argument("--calibration-cache", metavar="FILE",
                       help="the calibration table to reuse or write (default: in ~/.cache/mlc/calibration/, "
                            "named by the model, the data and the method)")
    group.add_argument("--exclude-nodes", metavar="A,B", default="",
                       help="node names kept whole: in float under --quantize, unpruned under --prune, e.g. "
                            "--exclude-nodes /layer4/conv2/Conv")
    group.add_argument("--exclude-ops", metavar="OP,OP", default="",
                       help="op types kept in float, e.g. --exclude-ops Gemm,Concat")
    group.add_argument("--min-cosine", type=float, default=None, metavar="C",
                       help=f"fail (exit 1) when an output's cosine similarity to the float model drops below C "
                            f"after quantization (default {DEFAULT_MIN_COSINE:g}; 0 turns the gate off; with "
                            "--accuracy-budget the budget is the gate)")
    if search:
        group.add_argument("--accuracy-budget", metavar="X",
                           help="with --quantize int8: keep the fewest nodes in float, with --prune: take the "
                                "largest ratio, so that the model meets X on --eval-data: with "
                                "labels the largest top-1 drop in points (e.g. 0.5), without the least output "
                                "cosine to float (e.g. 0.999); or points:X / cosine:X")
        group.add_argument("--eval-data", metavar="EVAL.npz",
                           help="evaluation samples keyed by input name, optionally `labels` (one class each)")


def _prune_args(parser: argparse.ArgumentParser, measure: bool = True) -> None:
    """--prune KIND:ARGS (repeatable) and its ranking flags."""
    group = parser.add_argument_group("weight pruning")
    group.add_argument("--prune", action="append", default=[], metavar="KIND:ARGS",
                       help="channels:R removes the fraction R of the output channels of Conv/Gemm/MatMul "
                            "(structured: the graph shrinks), magnitude:S zeroes the fraction S of the smallest "
                            "weights, nm:N:M keeps N of every M weights along the reduction axis (e.g. nm:2:4); "
                            "repeatable, e.g. --prune channels:0.3 --prune nm:2:4; with --accuracy-budget the "
                            "largest ratio up to R (or S) that meets it")
    group.add_argument("--prune-scope", choices=("layer", "global"), default="layer",
                       help="layer: every layer loses the ratio; global: one ranking over all layers "
                            "(default layer)")
    group.add_argument("--prune-norm", choices=("l1", "l2"), default="l1",
                       help="the norm that ranks channels for channels:R (default l1)")
    group.add_argument("--prune-multiple", type=int, default=1, metavar="N",
                       help="with channels:R, round the channels each layer keeps to a multiple of N: CPU "
                            "kernels block channels by 8 or 16, so 12 cost what 16 do (default 1)")
    if measure:
        group.add_argument("--measure-latency", action="store_true",
                           help="with --prune: time the model without and with pruning on the target and on "
                                "onnxruntime, side by side, into the report")


def _input_args(parser: argparse.ArgumentParser, shapes: bool = False) -> None:
    parser.add_argument("--inputs", metavar="F.npz",
                        help="input arrays keyed by input name, e.g. --inputs models/digits_mlp.sample.npz "
                             "(default: generated at two shape sets for a dynamic model)")
    if shapes:
        parser.add_argument("--input-shape", action="append", default=[], metavar="NAME:D,D",
                            help="shape of a generated input, e.g. --input-shape pixels:4,64 (repeatable)")
    parser.add_argument("--input-range", action="append", default=[], metavar="NAME:LO,HI",
                        help="value range of a generated input, e.g. --input-range ids:0,30521 (repeatable)")
    parser.add_argument("--seed", type=int, default=0, help="seed of generated inputs, e.g. --seed 7 (default 0)")


def _request(args: argparse.Namespace) -> Any:
    from mlc.driver import PipelineRequest
    from mlc.numerics.inputs import parse_shape_flags

    request = PipelineRequest(
        target=args.target, level=f"O{args.O}" if args.O is not None else None, passes=args.passes,
        disabled=tuple(args.disable_pass), pass_options=tuple(_pass_options(args)),
        freeze_inputs=args.freeze_inputs, bind_inputs=args.bind_inputs,
        static_shapes=parse_shape_flags(args.input_shape), model=args.model, **_quantize_request(args),
        **_prune_request(args), precision=getattr(args, "precision", "fp32"))
    request.validate()
    return request


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in (text or "").split(",") if n.strip())


def _prune_request(args: argparse.Namespace) -> dict[str, Any]:
    """The PipelineRequest fields of the pruning flags."""
    from mlc.pipelines import PruneOptions

    values = getattr(args, "prune", None) or []
    measure = bool(getattr(args, "measure_latency", False))
    if not values:
        from mlc.errors import BadInputError

        for flag, given in (("--prune-scope", getattr(args, "prune_scope", "layer") != "layer"),
                            ("--prune-norm", getattr(args, "prune_norm", "l1") != "l1"),
                            ("--prune-multiple", getattr(args, "prune_multiple", 1) != 1),
                            ("--measure-latency", measure)):
            if given:
                raise BadInputError(f"{flag} needs --prune")
        return {}
    return {"prune": PruneOptions.parse(values, args.prune_scope, args.prune_norm, _names(args.exclude_nodes),
                                        args.prune_multiple),
            "measure_latency": measure}


def _quantize_request(args: argparse.Namespace) -> dict[str, Any]:
    """The PipelineRequest fields of the quantization flags (validated by the request)."""
    from mlc.pipelines import QuantizeOptions

    def names(text: str) -> tuple[str, ...]:
        return tuple(n.strip() for n in (text or "").split(",") if n.strip())

    budget, eval_data = getattr(args, "accuracy_budget", None), getattr(args, "eval_data", None)
    given = [flag for flag, value in (("--calibration-data", args.calibration_data),
                                      ("--calibration-cache", args.calibration_cache),
                                      ("--exclude-nodes", args.exclude_nodes if not getattr(args, "prune", None)
                                       else ""), ("--exclude-ops", args.exclude_ops),
                                      ("--min-cosine", args.min_cosine if not getattr(args, "prune", None)
                                       and getattr(args, "precision", "fp32") != "fp16" else None)) if value]
    if args.quantize is None:
        if given:
            from mlc.errors import BadInputError

            raise BadInputError(f"{given[0]} needs --quantize int8" + ("" if given[0] in ("--calibration-data",
                                "--calibration-cache", "--exclude-ops") else " or --prune")
                                + (" or --precision fp16" if given[0] == "--min-cosine" else ""))
        return {"accuracy_budget": budget, "eval_data": eval_data}
    calibration = None
    if args.quantize == "int8-dynamic":  # the pipeline refuses calibration data and cache in one line
        calibration = QuantizeOptions(data=args.calibration_data or "", cache=args.calibration_cache,
                                      per_channel=args.per_channel, exclude_nodes=names(args.exclude_nodes),
                                      exclude_ops=names(args.exclude_ops))
    elif args.calibration_data is not None:
        calibration = QuantizeOptions(data=args.calibration_data, method=args.calibration_method,
                                      percentile=args.percentile, batch=args.calibration_batch,
                                      cache=args.calibration_cache, per_channel=args.per_channel,
                                      exclude_nodes=names(args.exclude_nodes), exclude_ops=names(args.exclude_ops))
    return {"quantize": args.quantize, "calibration": calibration, "accuracy_budget": budget, "eval_data": eval_data}


def _pass_options(args: argparse.Namespace) -> list[str]:
    """--pass-option values plus the shorthand flags, which apply where their pass runs."""
    options = list(args.pass_option)
    if getattr(args, "fold_limit", None) is not None:
        options.append(f"?fold-constants.limit={args.fold_limit}")
    if getattr(args, "prune_inputs", False):
        options.append("?dce.prune_inputs=true")
    return options


def _checks(args: argparse.Namespace) -> Any:
    from mlc.numerics.compare import DEFAULT_MIN_COSINE
    from mlc.numerics.inputs import InputSpec, parse_range_flags
    from mlc.runner import CheckOptions

    spec = InputSpec(seed=args.seed, ranges=parse_range_flags(args.input_range))  # fixed dims come as a pass
    profiles = getattr(args, "input_profiles", None)
    if profiles and not args.inputs:  # a TensorRT plan runs inside its profiles: checked at their opt shapes
        from mlc.backends.tensorrt_profiles import parse_profile_flags

        spec.shapes = {name: p.opt for name, p in parse_profile_flags(profiles).items()}
    gate = getattr(args, "min_cosine", None)
    if gate is None:  # the budget on data is the gate when there is one; pruning is judged by its user
        gate = None if getattr(args, "accuracy_budget", None) or getattr(args, "prune", None) else DEFAULT_MIN_COSINE
    elif not 0.0 <= gate <= 1.0:
        raise argparse_error(f"--min-cosine {gate:g}: expected a value in [0, 1]")
    return CheckOptions(verify=args.verify, inputs_path=args.inputs, input_spec=spec,
                        second_opinion=not getattr(args, "no_second_opinion", False),
                        lossy_min_cosine=gate or None)


def _write_report(report: dict[str, Any], path: str, out: Output, protected: Sequence[Path] = ()) -> None:
    """`--report FILE.json` (an mlc report it may replace), or `--report -` for stdout."""
    if path == "-":
        out.payload = report
        return
    from mlc.output_guard import guard_output, write_file_atomically

    destination = guard_output(path, protected=list(protected), flag="--report")
    text = json.dumps(report, indent=1, default=str) + "\n"
    write_file_atomically(destination, lambda tmp: tmp.write_text(text))


def command_inputs(args: argparse.Namespace) -> list[Path]:
    """Every file the command reads (model, its data, input flags): no output may land on one."""
    from mlc.output_guard import command_inputs as inputs_of

    return inputs_of(args)


def _guard_report(args: argparse.Namespace) -> None:
    """Refuse a `--report` path mlc may not write before doing any work."""
    if getattr(args, "report", None) and args.report != "-":
        from mlc.output_guard import guard_output

        guard_output(args.report, protected=command_inputs(args), flag="--report")


def _summary_line(result: Any) -> str:
    changed = sum(1 for r in result.records if r.changed)
    nodes = f", {result.records[0].nodes_before} -> {result.records[-1].nodes_after} nodes" if result.records else ""
    return f"{len(result.records)} passes, {changed} changed the graph{nodes}"


def _checked_shapes(result: Any) -> str:
    sets = [", ".join(f"{k} {d}{s}" for k, (d, s) in one.items()) for one in result.input_sets]
    return " and ".join(sets) or "no inputs"


# ===================================================================== commands
def cmd_inspect(args: argparse.Namespace, out: Output) -> int:
    path = Path(args.model)
    if path.is_dir():
        return _inspect_artifact(path, out)
    from rich.table import Table

    from mlc.ir.printer import print_ir
    from mlc.ir.verifier import verify
    from mlc.numerics.hazards import scan_constants
    from mlc.onnx_io.importer import import_onnx
    from mlc.onnx_io.static_checks import check_runnable
    from mlc.summary import human_bytes, summarize

    graph = import_onnx(args.model, freeze_inputs=args.freeze_inputs)
    verify(graph)
    check_runnable(graph, str(args.model))  # what compile refuses, inspect refuses
    summary = summarize(graph)
    hazards = scan_constants(graph)
    out.payload = {**summary.to_json(), "numeric_hazards": hazards.to_json()}
    if not out.human:
        return 0
    console = out.console()
    opsets = ", ".join(f"{d or 'ai.onnx'} {v}" for d, v in sorted(summary.opsets.items()))
    producer = f"  producer: {_escape(summary.producer)}" if summary.producer else ""
    console.print(f"[bold]{_escape(args.model)}[/bold]  graph {_escape(repr(summary.name))}  IR {summary.ir_version}  "
                  f"opsets: {_escape(opsets)}{producer}")
    io = Table(title=None, show_edge=False, pad_edge=False)
    io.add_column("", style="dim")
    io.add_column("name")
    io.add_column("type")
    for name, type_text, has_default in summary.inputs:
        io.add_row("input", _escape(name), _escape(type_text) + ("  (default: overridable initializer)"
                                                                  if has_default else ""))
    for name, type_text in summary.outputs:
        io.add_row("output", _escape(name), _escape(type_text))
    console.print(io)
    sub = f" (+{summary.subgraph_nodes} in sub-graphs)" if summary.subgraph_nodes else ""
    console.print(f"nodes: {summary.nodes}{sub}   parameters: {summary.parameters:,} "
                  f"({human_bytes(summary.parameter_bytes)} in {summary.constants} constants)")
    ops = Table(show_edge=False, pad_edge=False)
    ops.add_column("op")
    ops.add_column("count", justify="right")
    for op, n in summary.ops.most_common():
        ops.add_row(_escape(op), str(n))
    console.print(ops)
    if summary.functions:
        console.print("functions: " + _escape(", ".join(summary.functions)))
    for line in hazards.lines():
        console.print(f"[yellow]{_escape(line)}[/yellow]")
    if args.text:
        sys.stdout.write("\n" + print_ir(graph, max_elements=None if args.full_constants else 32))
    return 0


def _inspect_artifact(folder: Path, out: Output) -> int:
    from rich.table import Table

    from mlc.artifact import read_manifest
    from mlc.artifact_check import check_model_files

    manifest = read_manifest(folder)
    check_model_files(folder, manifest)
    verification = manifest.get("verification", {})
    out.payload = {"artifact": str(folder), **{k: manifest.get(k) for k in (
        "target", "backend", "backend_options", "requirements", "options", "inputs", "outputs", "source",
        "tool_versions", "files")}, "passes": manifest.get("passes", []), "verification": verification}
    if not out.human:
        return 0
    console = out.console()
    source = manifest.get("source", {})
    console.print(f"[bold]{_escape(folder)}[/bold]: mlc artifact, target {_escape(manifest.get('target'))} "
                  f"(backend {_escape(manifest.get('backend', '?'))})"
                  + (f", from {_escape(source.get('name'))} sha256 {source.get('sha256', '')[:12]}" if source else ""))
    requirements = manifest.get("requirements") or {}
    if requirements:
        console.print("requires: " + _escape(", ".join(f"{k}={v if not isinstance(v, list) else len(v)}"
                                                       for k, v in sorted(requirements.items()))))
    io = Table(show_edge=False, pad_edge=False)
    for column in ("", "name", "type"):
        io.add_column(column)
    for item in manifest.get("inputs", []):
        io.add_row("input", _escape(item["name"]), _escape(item["type"]) + ("  (has a default)"
                                                                            if item.get("default") else ""))
    for item in manifest.get("outputs", []):
        io.add_row("output", _escape(item["name"]), _escape(item["type"]))
    console.print(io)
    passes = manifest.get("passes", [])
    if passes:
        table = Table(show_edge=False, pad_edge=False)
        for column in ("#", "pass", "changed", "rewrites", "nodes"):
            table.add_column(column)
        for i, record in enumerate(passes):
            table.add_row(str(i), _escape(record["spec"]), "yes" if record["changed"] else "",
                          str(record["rewrites"]), f"{record['nodes_before']} -> {record['nodes_after']}")
        console.print(table)
    from mlc.artifact import quantization_of

    quantized = quantization_of(manifest)
    if quantized:
        kept = [*quantized.get("exclude_nodes", []), *quantized.get("keep_float", [])]
        how = (f"{quantized.get('method')} calibration on {quantized.get('calibration_data')}"
               if quantized.get("calibration_data") else "activations quantized at run time")
        console.print(_escape(f"{quantized.get('mode')}: {how}; kept in float: {', '.join(kept) or 'none'}"
                              + (f" (rebuild: {quantized['reproduce']})" if quantized.get("keep_float") else "")))
    pruned = manifest.get("options", {}).get("pruning")
    if isinstance(pruned, dict):
        console.print(_escape(f"pruned: {pruned.get('reproduce')} (scope {pruned.get('scope')}, norm "
                              f"{pruned.get('norm')}; {pruned.get('channels_removed', 0)} channels removed)"))
    if verification:
        console.print(f"numbers: {_escape(verification.get('verdict'))} (verify {_escape(verification.get('verify'))}, "
                      f"reference {_escape(verification.get('reference'))}); artifact run at compile time: "
                      f"{_escape(verification.get('artifact', 'no'))}")
    files = manifest.get("files", {})
    console.print("files: " + _escape(", ".join(f"{n} ({info['bytes']:,} B)" for n, info in sorted(files.items()))))
    return 0


def cmd_passes(args: argparse.Namespace, out: Output) -> int:
    from rich.table import Table

    from mlc.pass_api import registered_passes
    from mlc.pipelines import PIPELINES, build_pipeline

    passes = registered_passes()
    pipelines: dict[str, list[str]] = {f"-{level}": list(specs) for level, specs in PIPELINES.items()}
    if args.target:
        pipelines = {f"-O{n}": [p.spec() for p in build_pipeline(f"O{n}", target=args.target)] for n in range(4)}
    out.payload = {
        "passes": [{"name": name, "numerics": cls.numerics.value, "description": cls.description,
                    "options": [{"name": o.name, "type": o.type.__name__, "default": o.default, "help": o.help}
                                for o in cls.options], "statistics": list(cls.statistics)}
                   for name, cls in passes.items()],
        "pipelines": pipelines, "target": args.target}
    if not out.human:
        return 0
    console = out.console()
    table = Table(show_edge=False, pad_edge=False)
    for column in ("pass", "numerics", "description", "options", "statistics"):
        table.add_column(column)
    for name, cls in passes.items():
        options = ", ".join(f"{o.name}={o.default!r} ({o.help})" for o in cls.options)
        table.add_row(name, cls.numerics.value, _escape(cls.description), _escape(options or "-"),
                      ", ".join(cls.statistics) or "-")
    console.print(table)
    console.print()
    for level, specs in pipelines.items():
        console.print(_escape(f"{level}{' for ' + args.target if args.target else ''}: "
                              f"{', '.join(specs) or '(no passes)'}"))
    return 0


def cmd_debug(args: argparse.Namespace, out: Output) -> int:
    from mlc.debug_view import render_debug
    from mlc.debugger import DebugOptions, debug_model, load_plugin
    from mlc.instruments import IRDiff, IRDumper, PrintAfterChange
    from mlc.pass_manager import Instrument
    from mlc.progress import PassProgress
    from mlc.report import debug_report

    loaded = [load_plugin(spec) for spec in args.load]
    _guard_report(args)
    _split_profile_flags(args)
    request = _request(args)
    passes = request.build()
    instruments: list[Instrument] = []
    if args.dump_ir:
        instruments.append(IRDumper(args.dump_ir, command_inputs(args)))
    stream = sys.stdout if out.human else sys.stderr
    if args.print_ir_after_change:
        instruments.append(PrintAfterChange(stream))
    if args.ir_diff:
        instruments.append(IRDiff(stream))
    options = DebugOptions(stop_after=args.stop_after, max_rewrites=args.max_rewrites,
                           reproducer_dir=args.reproducer, target=args.target, loaded_modules=loaded)
    with _progress(args) as progress:
        instruments.append(PassProgress(progress, len(passes)))
        progress.update(f"importing {args.model}")
        result = debug_model(args.model, passes, _checks(args), options, instruments)
    report = debug_report(result)
    engine = _debug_engine(args, result)
    if engine is not None:
        report["engine"] = engine.to_json()
    out.payload = report
    if args.report:
        _write_report(report, args.report, out, command_inputs(args))
    if out.human and out.payload is report and not args.report == "-":
        render_debug(result, verbose=args.verbose)
        _print_doctor(result, verbose=args.verbose)
        if engine is not None:
            print(engine.line())
    if result.verdict != "fail":
        return 1 if engine is not None and engine.verdict == "fail" else 0
    check = result.localization.check if result.localization is not None else None
    return INTERNAL_ERROR if check is not None and check.load_error else 1  # a graph the reference cannot load


def _split_profile_flags(args: argparse.Namespace) -> None:
    """`--input-shape NAME:MIN..MAX` and `NAME:min=..;opt=..;max=..` are TensorRT optimization
    profiles (`args.input_profiles`); `NAME:D,D` fixes the dims for every target, as before."""
    from mlc.errors import BadInputError

    flags = list(getattr(args, "input_shape", []) or [])
    ranges = [f for f in flags if ".." in f or "min=" in f or "max=" in f]
    args.input_profiles = ranges
    args.input_shape = [f for f in flags if f not in ranges]
    if ranges and args.target != "tensorrt":
        raise BadInputError(f"--input-shape {ranges[0]}: a range is a TensorRT optimization profile (--target "
                            f"tensorrt); --target {args.target} takes one shape, NAME:D,D")
    timing_cache = getattr(args, "timing_cache", None)
    if timing_cache and args.target != "tensorrt":
        raise BadInputError(f"--timing-cache {timing_cache}: only --target tensorrt builds with a timing cache")


def _debug_engine(args: argparse.Namespace, result: Any) -> Any:
    """With --target tensorrt and passes whose numbers held: the engine itself checked, and a
    mismatch localized at the tensors that survive TensorRT's fusions (`mlc.backends.tensorrt_debug`)."""
    if args.target != "tensorrt" or result.verdict == "fail" or result.reference is None:
        return None
    from mlc.backends.tensorrt_debug import debug_engine
    from mlc.pass_api import Numerics
    from mlc.runner import loosest_contract

    lossy = loosest_contract(result.passes) is Numerics.LOSSY
    return debug_engine(result.graph, result.reference.sets, Numerics.LOSSY if lossy else Numerics.TOLERANCE,
                        getattr(args, "input_profiles", None))


def _print_doctor(result: Any, verbose: bool = False) -> None:
    """After a lossy pass: the summary line and the quantization doctor's table, worst first."""
    if not result.lossy:
        return
    summary = result.lossy_summary()
    if summary:
        print(summary)
    if result.doctor is not None:
        print("\n".join(result.doctor.lines(limit=1000 if verbose else 12)))
    elif result.verify == "none":
        print("quantization doctor: not run (--verify none: no inputs to measure on)")


def _verdict_text(result: Any, manifest: dict[str, Any] | None) -> str:
    """What was checked, said plainly: the graph against the original, and the artifact itself."""
    if result.verify == "none":
        return "numbers not checked (--verify none)"
    text = f"numbers {result.verdict} at {_checked_shapes(result)}"
    artifact = (manifest or {}).get("verification", {}).get("artifact")
    if manifest is not None:
        text += "; artifact " + ("checked " + artifact if artifact in ("ok", "inconclusive")
                                 else artifact or "not run")
    return text


def cmd_compile(args: argparse.Namespace, out: Output) -> int:
    from mlc.artifact import read_manifest
    from mlc.driver import compile_model, import_checked
    from mlc.instruments import IRDumper
    from mlc.pass_manager import Instrument
    from mlc.progress import PassProgress
    from mlc.report import debug_report

    _guard_report(args)
    _split_profile_flags(args)
    request = _request(args)
    instruments: list[Instrument] = [IRDumper(args.dump_ir, command_inputs(args))] if args.dump_ir else []
    backend_options = {k: v for k, v in (("mcpu", args.mcpu), ("mattr", args.mattr),
                                         ("cuda_arch", args.cuda_arch), ("schedules", args.tvm_schedules),
                                         ("tuning_db", args.tuning_db), ("timing_cache", args.timing_cache),
                                         ("input_profiles", args.input_profiles)) if v}
    if args.tuning_db:
        from mlc.tuning import check_compile_target

        check_compile_target(args.target, args.tuning_db)
    with _progress(args) as progress:
        progress.update(f"importing {args.model}")
        graph = import_checked(Path(args.model))  # a bad model is refused before the target's passes load
        instruments.append(PassProgress(progress, len(request.build())))
        folder, result = compile_model(args.model, request, args.output, checks=_checks(args), graph=graph,
                                       backend_options=backend_options, instruments=instruments, force=args.force,
                                       stage=progress.stage)
    manifest = read_manifest(folder)
    report = debug_report(result)
    report.update(command="compile", target=args.target, artifact=str(folder),
                  artifact_check=manifest.get("verification", {}).get("artifact"))
    out.payload = report
    if args.report:
        _write_report(report, args.report, out, command_inputs(args))
    if out.human and args.report != "-" and not out.quiet:
        print(f"{folder}: {args.target} artifact ({_summary_line(result)}; {_verdict_text(result, manifest)})")
        for line in (n for n in result.notes if n.startswith("weights: ")):
            print(f"  {line}")
        _print_quantization(result)
    return 0


def cmd_tune(args: argparse.Namespace, out: Output) -> int:
    from mlc.numerics.inputs import parse_shape_flags
    from mlc.tuning import parse_duration, parse_tracker, tune_model

    options = {k: v for k, v in (("mcpu", args.mcpu), ("mattr", args.mattr), ("cuda_arch", args.cuda_arch)) if v}
    quiet = out.quiet

    def progress(line: str) -> None:
        if not quiet:
            print(f"mlc tune: {line}", file=sys.stderr, flush=True)

    summary = tune_model(args.model, args.target, args.tuning_db, trials=args.trials,
                         time_budget_s=parse_duration(args.time_budget), rpc=parse_tracker(args.rpc_tracker,
                                                                                           args.rpc_key),
                         backend_options=options, level=None if args.O is None else f"O{args.O}",
                         static_shapes=parse_shape_flags(args.input_shape),
                         strategy=args.strategy, cost_model=args.cost_model, progress=progress)
    tuned, untuned = summary.estimate_ms()
    out.payload = {"command": "tune", "database": str(summary.database), "target": summary.target,
                   "tasks": [dict(t.__dict__) for t in summary.tasks],
                   "estimated_ms": {"tuned": tuned, "untuned": untuned}}
    if out.human and not quiet:
        done = sum(1 for t in summary.tasks if t.status not in ("skipped", "dynamic"))
        print(f"{summary.database}: {done}/{len(summary.tasks)} kernel(s) tuned or recorded for {args.target}")
    return 0


def _print_pruning(record: dict[str, Any] | None) -> None:
    """`pruned channels:0.5: parameters 1.2M -> 0.6M, FLOPs ..., bytes ...` and the search's ratio."""
    if not record:
        return
    before, after = record.get("before"), record.get("after")
    line = f"pruned {' '.join(record['prune'])}"
    if before and after:
        def ratio(key: str) -> str:
            return f"{_si(before[key])} -> {_si(after[key])}"
        line += (f": parameters {ratio('parameters')} ({_si(after['nonzero_parameters'])} non-zero), "
                 f"FLOPs {ratio('flops_total')}, model bytes {ratio('bytes')}")
    print(line)
    search = record.get("search")
    if search is not None:
        print(f"accuracy budget ({search['budget']['text']}) met on {search['samples']} samples at ratio "
              f"{search['ratio']:g} (asked {search['asked']:g}): float {search['float_score']:.4g}, pruned "
              f"{search['score']:.4g}; reproduce without searching: {record['reproduce']}")
    for target, row in (record.get("latency") or {}).get("targets", {}).items():
        print(f"latency on {target}: {row['before_ms']:.3f} ms -> {row['after_ms']:.3f} ms "
              f"(pruned / original {row['ratio']:.2f})")


def _si(value: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:g}"


def _print_quantization(result: Any) -> None:
    """`int8: output cosine 0.9995, SQNR 31.2 dB` and what the search kept in float."""
    _print_pruning(getattr(result, "pruning", None))
    summary = result.lossy_summary()
    if summary:
        print(summary)
    record = result.quantization or {}
    search = record.get("search")
    if search is not None:
        kept = ", ".join(search["keep_float"]) or "none"
        print(f"accuracy budget ({search['budget']['text']}) met on {search['samples']} samples: float "
              f"{search['float_score']:.4g}, all int8 {search['quantized_score']:.4g}, final "
              f"{search['final_score']:.4g}; kept in float: {kept}")
        if search["keep_float"]:
            print(f"reproduce without searching: {record['reproduce']}")


def cmd_optimize(args: argparse.Namespace, out: Output) -> int:
    from mlc.driver import import_checked, optimize_model
    from mlc.progress import PassProgress
    from mlc.report import debug_report

    _guard_report(args)
    request = _request(args)
    with _progress(args) as progress:
        progress.update(f"importing {args.model}")
        graph = import_checked(Path(args.model))  # a bad model is refused before the target's passes load
        written, result = optimize_model(args.model, request, args.output, checks=_checks(args), graph=graph,
                                         instruments=[PassProgress(progress, len(request.build()))], force=args.force)
    report = debug_report(result)
    report.update(command="optimize", target=args.target, output=str(written))
    out.payload = report
    if args.report:
        _write_report(report, args.report, out, command_inputs(args))
    if out.human and args.report != "-" and not out.quiet:
        print(f"{written}: optimized model ({_summary_line(result)}; {_verdict_text(result, None)})")
        _print_quantization(result)
    return 0


def cmd_run(args: argparse.Namespace, out: Output) -> int:
    import numpy as np

    from mlc.artifact import load
    from mlc.feeds import (
        check_feeds,
        compare_outputs_to,
        generate_feeds,
        output_stats,
        read_reference_npz,
        role_dims,
    )
    from mlc.numerics.inputs import parse_shape_flags, read_npz
    from mlc.runner import quiet_onnxruntime

    quiet_onnxruntime()
    artifact = load(args.artifact)  # names and shape first, then the hashes, then the model files
    inputs = artifact.manifest["inputs"]
    generated: dict[str, int] | None = None
    if args.inputs:
        if args.input_shape:
            raise argparse_error("--input-shape shapes generated inputs; it cannot be used with --inputs")
        feeds, unused = check_feeds(inputs, read_npz(args.inputs), source=args.inputs)
        if unused:
            out.warn(f"{args.inputs}: ignoring {', '.join(unused)}: not inputs of the artifact "
                     f"(inputs: {', '.join(i['name'] for i in inputs)})")
    else:
        feeds, generated = generate_feeds(inputs, seed=args.seed, shapes=parse_shape_flags(args.input_shape),
                                          dims=role_dims(inputs))
    destination = None
    if args.output:
        from mlc.output_guard import guard_output

        destination = guard_output(args.output, flag="--output")
    outputs = artifact.run(feeds)
    stats = output_stats(outputs)
    payload: dict[str, Any] = {"artifact": str(args.artifact), "target": artifact.manifest["target"],
                               "inputs": {k: {"dtype": str(v.dtype), "shape": list(v.shape)} for k, v in feeds.items()},
                               "generated": generated is not None, "outputs": stats}
    code = 0
    if args.compare:
        comparison = compare_outputs_to(outputs, read_reference_npz(args.compare), atol=args.atol, rtol=args.rtol)
        payload["compare"] = {"reference": args.compare, "atol": args.atol, "rtol": args.rtol, "outputs": comparison,
                              "ok": all(c["ok"] for c in comparison)}
        code = 0 if payload["compare"]["ok"] else 1
    if destination is not None:
        from mlc.output_guard import save_npz

        save_npz(destination, {k: np.asarray(v) for k, v in outputs.items()})
        payload["written"] = str(destination)
    out.payload = payload
    if out.human:
        _render_run(payload, generated, out)
    return code


def argparse_error(message: str) -> MlcError:
    from mlc.errors import BadInputError

    return BadInputError(message)


def _render_run(payload: dict[str, Any], generated: dict[str, int] | None, out: Output) -> None:
    from rich.table import Table

    console = out.console()
    if generated is not None:
        shapes = ", ".join(f"{k} {v['dtype']}{v['shape']}" for k, v in payload["inputs"].items())
        bound = ", ".join(f"{k}={v}" for k, v in generated.items())
        console.print(_escape(f"generated inputs (seeded): {shapes}" + (f" with {bound}" if bound else "")))
    table = Table(show_edge=False, pad_edge=False)
    for column in ("output", "dtype", "shape", "min", "max", "mean", "first values"):
        table.add_column(column)

    def number(value: Any) -> str:
        return "-" if value is None else f"{value:.6g}" if isinstance(value, float) else str(value)

    for item in payload["outputs"]:
        table.add_row(_escape(item["name"]), item["dtype"], _escape(item["shape"]), number(item["min"]),
                      number(item["max"]), number(item["mean"]),
                      _escape(", ".join(number(v) if isinstance(v, float) else str(v) for v in item["first"])))
    console.print(table)
    compare = payload.get("compare")
    if compare:
        for item in compare["outputs"]:
            figures = (f"max abs {item['max_abs']:.3g}, max rel {item['max_rel']:.3g}"
                       if item.get("max_abs") is not None else "")
            note = f" ({item['note']})" if item.get("note") else ""
            console.print(_escape(f"compare {item['name']}: {'ok' if item['ok'] else 'MISMATCH'} {figures}{note}"))
        console.print(f"compare with {_escape(compare['reference'])} (atol {compare['atol']}, rtol {compare['rtol']}): "
                      + ("ok" if compare["ok"] else "MISMATCH"))
    if payload.get("written"):
        console.print(f"wrote {_escape(payload['written'])}")


def cmd_targets(args: argparse.Namespace, out: Output) -> int:
    from rich.table import Table

    from mlc.errors import BadInputError, did_you_mean
    from mlc.targets import TARGETS, availability

    if args.target is not None and args.target not in TARGETS:
        raise BadInputError(f"unknown target {args.target!r}{did_you_mean(args.target, TARGETS)} "
                            f"(known: {', '.join(TARGETS)})")
    chosen = [args.target] if args.target is not None else list(TARGETS)
    if args.support is not None:
        from mlc.driver import import_checked
        from mlc.op_support import support_report
        from mlc.op_support.render import payload, print_support

        graph = import_checked(Path(args.support))
        reports = [support_report(graph, target) for target in chosen]
        out.payload = payload(args.support, graph, reports)
        if out.human:
            print_support(out.console(), args.support, reports)
        return 0
    states = {target: availability(target) for target in chosen}
    out.payload = {"targets": [{"target": t, "available": s.ok, "reason": s.reason} for t, s in states.items()]}
    if not out.human:
        return 0
    table = Table(show_edge=False, pad_edge=False)
    for column in ("target", "available", "why / version"):
        table.add_column(column)
    for target, state in states.items():
        table.add_row(target, "yes" if state.ok else "no", _escape(state.reason))
    out.console().print(table)
    return 0


def cmd_bench(args: argparse.Namespace, out: Output) -> int:
    from rich.table import Table

    from mlc.benchmark import PLAIN, bench_variants
    from mlc.errors import BadInputError
    from mlc.numerics.inputs import InputSpec, parse_range_flags, parse_shape_flags

    spec = InputSpec(seed=args.seed, shapes=parse_shape_flags(args.input_shape),
                     ranges=parse_range_flags(args.input_range))
    try:
        static = parse_shape_flags(args.static_shape)
    except BadInputError as error:  # the parser names --input-shape, its usual spelling
        raise BadInputError(str(error).replace("--input-shape", "--static-shape", 1)) from None
    with _progress(args) as progress, progress.stage("benchmarking"):
        report = bench_variants(args.model, args.target, original=args.original, runs=args.runs,
                                warmup=args.warmup, inputs_path=args.inputs, spec=spec,
                                level=f"O{args.O}" if args.O is not None else None, static_shapes=static,
                                tuning_db=args.tuning_db, stage=progress.stage)
    plain, variants = report.plain, report.variants
    first = variants[0]
    out.payload = {"model": args.model, "target": ",".join(report.targets), "cpu": report.cpu,
                   "runs": [v.timing.__dict__ for v in variants] + ([plain.__dict__] if plain else []),
                   "speedup_vs_onnxruntime": (plain.median_ms / first.timing.median_ms) if plain else None,
                   "variants": [v.to_json(plain) for v in variants],
                   "baseline": plain.__dict__ if plain else None, "feeds": report.feeds, "warmup": report.warmup}
    for variant in variants:
        if variant.check is not None and not variant.check.ok:
            out.warn(f"{variant.label} computes other numbers than plain onnxruntime on the timed feeds: "
                     f"{variant.check.detail}")
    if not out.human:
        return 0
    table = Table(show_edge=False, pad_edge=False)
    for column in ("", "median ms", "p10 ms", "p90 ms", "runs", "vs plain onnxruntime", "check"):
        table.add_column(column, justify="right" if column not in ("", "check") else "left")
    for variant in variants:
        timing, check = variant.timing, variant.check
        ratio = f"{plain.median_ms / timing.median_ms:.2f}x speed" if plain else ""
        verdict = "" if check is None else check.text() if check.ok else f"[red]{check.text()}[/red]"
        table.add_row(_escape(variant.label), f"{timing.median_ms:.3f}", f"{timing.p10_ms:.3f}",
                      f"{timing.p90_ms:.3f}", str(timing.runs), ratio, verdict)
    if plain is not None:
        table.add_row(PLAIN, f"{plain.median_ms:.3f}", f"{plain.p10_ms:.3f}", f"{plain.p90_ms:.3f}",
                      str(plain.runs), "1.00x", "reference")
    shapes = ", ".join(f"{k} [{','.join(map(str, v))}]" for k, v in report.feeds.items())
    console = out.console()
    console.print(f"mlc bench {_escape(args.model)}: {_escape(report.cpu)}; {args.runs} runs each, "
                  f"interleaved, medians; feeds {_escape(shapes)}")
    console.print(table)
    if plain is None:
        console.print("no plain onnxruntime baseline: pass --original MODEL.onnx for an artifact folder")
    return 0


# ===================================================================== parser and main
EXAMPLES = {
    "inspect": ["mlc inspect models/digits_mlp.onnx --text", "mlc inspect digits.ort --json"],
    "passes": ["mlc passes", "mlc passes --target llvm --json"],
    "debug": ["mlc debug models/digits_mlp.onnx",
              "mlc debug models/digits_mlp.onnx --target llvm -O3 --verify final --report -",
              "mlc debug models/digits_mlp.onnx --passes eliminate-identity,cse,dce "
              "--inputs models/digits_mlp.sample.npz --report report.json",
              "mlc debug models/digits_mlp.onnx --stop-after 3 --dump-ir ir/"],
    "compile": ["mlc compile models/digits_mlp.onnx --target onnxruntime -o digits.ort",
                "mlc compile models/digits_mlp.onnx --target llvm -O3 -o digits.llvm --report report.json",
                "mlc compile models/digits_mlp.onnx --target onnxruntime --input-shape pixels:8,64 -o digits8.ort"],
    "optimize": ["mlc optimize models/digits_mlp.onnx -o digits.opt.onnx",
                 "mlc optimize models/digits_mlp.onnx -o digits.ort.onnx --target onnxruntime -O3 --json"],
    "run": ["mlc run digits.ort --inputs models/digits_mlp.sample.npz --output out.npz",
            "mlc run digits.ort --input-shape pixels:4,64 --seed 1",
            "mlc run digits.ort --inputs models/digits_mlp.sample.npz --compare out.npz --atol 1e-6"],
    "targets": ["mlc targets", "mlc targets --json", "mlc targets --support models/digits_mlp.onnx --target tensorrt"],
    "tune": ["mlc tune models/digits_mlp.onnx --target llvm --input-shape pixels:1,64 --trials 2 "
             "--strategy replay-trace --cost-model random --tuning-db tuning/"],
    "bench": ["mlc bench models/digits_mlp.onnx --target onnxruntime --runs 20",
              "mlc bench models/digits_mlp.onnx --target llvm,onnxruntime --runs 20 --warmup 2",
              "mlc bench digits.ort --original models/digits_mlp.onnx --runs 20 --json"],
}


def _describe(text: str, command: str) -> str:
    lines = "\n".join(f"  {e}" for e in EXAMPLES[command])
    return f"{text}\n\nexamples:\n{lines}"


def _common(parser: argparse.ArgumentParser, top: bool = False) -> None:
    """-v/-q/--json: accepted before or after the subcommand."""
    default = False if top else argparse.SUPPRESS
    parser.add_argument("-v", "--verbose", action="store_true", default=default,
                        help="debug logging and tracebacks")
    parser.add_argument("-q", "--quiet", action="store_true", default=default,
                        help="no progress and no summary line (errors still print)")
    parser.add_argument("--json", action="store_true", default=default,
                        help="print one JSON document on stdout and nothing else")


def build_parser() -> argparse.ArgumentParser:
    from mlc import __version__

    parser = _ArgumentParser(
        prog="mlc",
        description="mlc: compile ONNX models through a verified IR (see README.md).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="exit codes: 0 ok, 1 numeric check failed, 2 bad usage or bad input, "
               "3 target unavailable, 70 internal error",
    )
    parser.add_argument("--version", action="version", version=f"mlc {__version__}")
    _common(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_ArgumentParser)
    sub.required = True

    def add(name: str, help_text: str, description: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text, description=_describe(description, name),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
        _common(command)
        return command

    inspect = add("inspect", "summarize a model or an artifact folder",
                  "Import MODEL into mlc's IR, verify it and summarize it (interface, op histogram,\n"
                  "parameters, opsets); or summarize an artifact folder (target, requirements, inputs and\n"
                  "outputs, pass log, verdict).")
    inspect.add_argument("model", help="an .onnx file or an artifact folder")
    inspect.add_argument("--text", action="store_true", help="also print the IR in its text form")
    inspect.add_argument("--full-constants", action="store_true",
                         help="with --text: print every constant in full instead of a digest")
    inspect.add_argument("--freeze-inputs", action="store_true",
                         help="treat initializers listed as graph inputs as constants")
    inspect.set_defaults(func=cmd_inspect)

    passes = add("passes", "list passes (name, contract, options) and the pipelines -O0..-O3",
                 "List every pass and the named pipelines; with --target, the pipelines exactly as compile\n"
                 "and debug build them for that target.")
    passes.add_argument("--target", help="show the pipelines for this target, e.g. --target llvm")
    passes.set_defaults(func=cmd_passes)

    debug = add("debug", "run the pipeline pass by pass, check the numbers after each, localize a break",
                "Run the pipeline mlc compile runs for TARGET, pass by pass on MODEL, print one row per pass\n"
                "(time, nodes before -> after, rewrites, max error vs the original, verdict) and, when the\n"
                "numbers break, name the first pass, the first rewrite inside it and the first tensor that\n"
                "diverges, and write a reproducer folder.\n\n"
                "exit codes: 0 numbers hold (or inconclusive), 1 a numeric check failed, 2 bad input, "
                "70 a pass crashed")
    debug.add_argument("model", help="an .onnx file")
    _pipeline_args(debug)
    _quantize_args(debug, search=False)
    _prune_args(debug, measure=False)
    _input_args(debug)
    debug.add_argument("--verify", choices=["each", "final", "none"], default="each",
                       help="check numbers after each changing pass (default), only at the end "
                            "(a failure is then bisected over the pipeline prefix), or never")
    debug.add_argument("--stop-after", type=int, metavar="N", help="run only the first N passes, e.g. --stop-after 3")
    debug.add_argument("--max-rewrites", type=int, metavar="N",
                       help="stop each pass after N rewrites, e.g. --max-rewrites 10 (the debugger bisects this)")
    debug.add_argument("--dump-ir", metavar="DIR",
                       help="write NNN_<pass>.txt (text IR) and NNN_<pass>.onnx after each pass, e.g. --dump-ir ir/")
    debug.add_argument("--print-ir-after-change", action="store_true",
                       help="print the IR after every pass that changed it")
    debug.add_argument("--ir-diff", action="store_true", help="print a unified diff of the IR across each pass")
    debug.add_argument("--report", metavar="FILE.json",
                       help="write the JSON report (schema: compiler/schemas/report.schema.json); - for stdout")
    debug.add_argument("--reproducer", metavar="DIR",
                       help="where to write the reproducer on failure (default: a new temporary folder, named "
                            "in the output)")
    debug.add_argument("--no-second-opinion", action="store_true",
                       help="do not re-judge a failure with onnx's reference evaluator")
    debug.add_argument("--load", action="append", default=[], metavar="MODULE",
                       help="import a module or .py file that registers extra passes, e.g. --load my_passes.py")
    debug.set_defaults(func=cmd_debug)

    comp = add("compile", "compile a model for a target into an artifact folder",
               "Import MODEL, run the pipeline for TARGET (numbers checked against the original), compile\n"
               "it and write an artifact folder (manifest.json + the backend's files), atomically. -o may\n"
               "replace only an earlier mlc artifact (--force for anything else that is not the model).")
    comp.add_argument("model", help="an .onnx file")
    comp.add_argument("-o", "--output", metavar="DIR", help="artifact folder, e.g. -o out/ (default MODEL.TARGET)")
    comp.add_argument("--force", action="store_true",
                      help="replace an existing -o that is not an mlc artifact (never the model or its data)")
    comp.add_argument("--mcpu", help="llvm: the CPU to compile for, e.g. --mcpu skylake-avx512 (default: this one)")
    comp.add_argument("--mattr", help="llvm: CPU features on/off, e.g. --mattr=-avx512f")
    comp.add_argument("--tvm-schedules", choices=("mlc", "none"), default=None,
                      help="llvm: mlc's CPU schedules (default) or TVM's default loops (none), for comparison")
    comp.add_argument("--cuda-arch", help="cuda: the GPU architecture, e.g. --cuda-arch sm_90 (default sm_80)")
    comp.add_argument("--timing-cache", metavar="FILE",
                      help="tensorrt: build with this timing cache (read, never written: the artifact gets its own "
                           "timing.cache), e.g. an earlier artifact's, to rebuild the same tactics")
    comp.add_argument("--tuning-db", metavar="DIR",
                      help="llvm/cuda: apply the tuning records of DIR (written by mlc tune); the manifest records "
                           "its hash and how many kernels were tuned, defaulted or missing")
    _pipeline_args(comp)
    _quantize_args(comp)
    _prune_args(comp)
    comp.add_argument("--verify", choices=["each", "final", "none"], default="final",
                      help="check the numbers after each pass, at the end (default), or never")
    _input_args(comp)
    comp.add_argument("--dump-ir", metavar="DIR", help="IR after each pass, e.g. --dump-ir ir/")
    comp.add_argument("--report", metavar="FILE.json", help="JSON report, e.g. --report report.json; - for stdout")
    comp.set_defaults(func=cmd_compile)

    opt = add("optimize", "write the optimized model alone (.onnx), numbers checked",
              "Run the pipeline on MODEL (portable ai.onnx ops unless --target is given) and write the\n"
              "optimized model to OUT.onnx, atomically, after checking its numbers against the original.")
    opt.add_argument("model", help="an .onnx file")
    opt.add_argument("-o", "--output", metavar="OUT.onnx", required=True, help="the optimized model, e.g. -o out.onnx")
    opt.add_argument("--force", action="store_true", help="replace an existing OUT.onnx that mlc did not write")
    _pipeline_args(opt, target_default=None)
    _quantize_args(opt)
    _prune_args(opt)
    opt.add_argument("--verify", choices=["each", "final", "none"], default="final",
                     help="check the numbers after each pass, at the end (default), or never")
    _input_args(opt)
    opt.add_argument("--report", metavar="FILE.json", help="JSON report, e.g. --report report.json; - for stdout")
    opt.set_defaults(func=cmd_optimize)

    run = add("run", "run an artifact: output statistics, optional comparison with reference outputs",
              "Run ARTIFACT on inputs from an .npz (checked against the artifact's input types) or on\n"
              "generated, seeded inputs; print per-output statistics; compare with reference outputs\n"
              "(exit 1 on mismatch); write the outputs to an .npz.")
    run.add_argument("artifact", help="an artifact folder written by mlc compile")
    run.add_argument("--inputs", metavar="IN.npz", help="arrays keyed by input name (default: generated)")
    run.add_argument("--input-shape", action="append", default=[], metavar="NAME:D,D",
                     help="shape of a generated input, e.g. --input-shape pixels:4,64 (repeatable)")
    run.add_argument("--seed", type=int, default=0, help="seed of generated inputs (default 0)")
    run.add_argument("--output", metavar="OUT.npz", help="write the outputs, keyed by output name")
    run.add_argument("--compare", metavar="REF.npz", help="reference outputs keyed by output name; exit 1 on mismatch")
    run.add_argument("--atol", type=float, default=1e-5, help="with --compare: absolute tolerance (default 1e-5)")
    run.add_argument("--rtol", type=float, default=1e-4, help="with --compare: relative tolerance (default 1e-4)")
    run.set_defaults(func=cmd_run)

    ben = add("bench", "median latency of a model or artifact against plain onnxruntime, measured interleaved",
              "Compile MODEL for each target (or take an artifact folder as it is), check each artifact's\n"
              "outputs once against the original in a default onnxruntime session, then time them all and\n"
              "that session interleaved, one call each per round, the order rotating round by round; report\n"
              "medians, p10/p90, the speed relative to plain onnxruntime and each check.")
    ben.add_argument("model", help="an .onnx file (compiled first) or an artifact folder")
    ben.add_argument("--target", default="onnxruntime",
                     help="target(s) when MODEL is an .onnx file, e.g. --target llvm or --target llvm,onnxruntime "
                          "(default onnxruntime)")
    ben.add_argument("--original", metavar="MODEL.onnx", help="the source model, for an artifact folder's baseline")
    ben.add_argument("-O", choices=["0", "1", "2", "3"], default=None, help="pipeline when compiling, e.g. -O2")
    ben.add_argument("--static-shape", action="append", default=[], metavar="NAME:D,D",
                     help="compile with an input's dims fixed (as mlc compile --static-shape) and time at them, "
                          "e.g. --static-shape pixels:1,64 (repeatable)")
    ben.add_argument("--tuning-db", metavar="DIR",
                     help="llvm/cuda: also time each TVM target with the tuning records of DIR (written by mlc "
                          "tune) applied, as a separate `tuned` variant")
    ben.add_argument("--runs", type=int, default=50, help="timed runs of each, e.g. --runs 200 (default 50)")
    ben.add_argument("--warmup", type=int, default=5, help="untimed rounds first (default 5)")
    _input_args(ben, shapes=True)
    ben.set_defaults(func=cmd_bench)

    tune = add("tune", "tune a model's TVM kernels with MetaSchedule into a tuning database folder",
               "Run the pipeline mlc compile runs for TARGET on MODEL, extract its fused TVM kernels and tune\n"
               "each with MetaSchedule (N measured candidates per kernel), storing the records in DIR (created,\n"
               "or resumed: kernels already there, from any model or an interrupted run, are skipped).\n"
               "mlc compile --tuning-db DIR applies them. Progress goes to stderr.\n\n"
               "exit codes: 0 done, 2 bad input (e.g. DIR is not an mlc tuning database), 3 target unavailable")
    tune.add_argument("model", help="an .onnx file")
    tune.add_argument("--target", choices=("llvm", "cuda"), default="llvm", help="llvm (default) or cuda")
    tune.add_argument("--tuning-db", metavar="DIR", default="mlc-tuning",
                      help="the database folder (default ./mlc-tuning)")
    tune.add_argument("--trials", type=int, default=64, metavar="N", help="candidates measured per kernel (default 64)")
    tune.add_argument("--time-budget", metavar="T",
                      help="start no new kernel after T (e.g. 30m, 2h, 90s); a later run tunes the rest")
    tune.add_argument("--rpc-tracker", metavar="HOST:PORT", help="measure on the RPC servers of this TVM tracker")
    tune.add_argument("--rpc-key", metavar="KEY", help="with --rpc-tracker: the servers' key")
    tune.add_argument("--strategy", choices=("evolutionary", "replay-trace", "replay-func"), default="evolutionary",
                      help="MetaSchedule's search strategy (default evolutionary)")
    tune.add_argument("--cost-model", choices=("xgb", "mlp", "random"), default="xgb",
                      help="MetaSchedule's cost model (default xgb)")
    tune.add_argument("-O", choices=["0", "1", "2", "3"], default=None, help="pipeline level, as for compile")
    tune.add_argument("--input-shape", "--static-shape", dest="input_shape", action="append", default=[],
                      metavar="NAME:D,D", help="fix an input's dims, as for compile (kernels with dynamic shapes "
                                               "are not tunable); compile with the same flags to apply the records")
    tune.add_argument("--mcpu", help="llvm: the CPU to tune for (default: this one)")
    tune.add_argument("--mattr", help="llvm: CPU features on/off, e.g. --mattr=-avx512f")
    tune.add_argument("--cuda-arch", help="cuda: the GPU architecture (default sm_80)")
    tune.set_defaults(func=cmd_tune)

    targets = add("targets", "list targets and whether this machine can use them",
                  "List every target, whether it can be compiled for and run on this machine, and why not.\n"
                  "With --support MODEL: which of the model's ops each target can build, and why not.")
    targets.add_argument("--support", metavar="MODEL",
                         help="check every node of MODEL (sub-graphs and local functions included) against each "
                              "target's op support table, e.g. --support models/digits_mlp.onnx")
    targets.add_argument("--target", help="only this target, e.g. --target tensorrt")
    targets.set_defaults(func=cmd_targets)
    return parser


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[int]:
    """Send everything written to stdout (Python's and native libraries') to stderr; yields a
    descriptor of the real stdout for the one JSON document."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield saved
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _print_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, indent=1, default=str) + "\n")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="mlc: %(levelname)s: %(message)s", force=True)
    func: Callable[[argparse.Namespace, Output], int] = args.func
    out = Output(args)
    to_stdout = out.json or getattr(args, "report", None) == "-"
    if to_stdout:
        out.json = True
    code = INTERNAL_ERROR
    error_line: str | None = None
    try:
        with _stdout_to_stderr() if to_stdout else contextlib.nullcontext():
            try:
                code = func(args, out)
            except MlcError as error:
                if args.verbose:
                    traceback.print_exc()
                text = str(error)
                error_line = text.splitlines()[0] if text else type(error).__name__
                print(f"mlc: error: {error_line}", file=sys.stderr)
                code = error.exit_code
            except KeyboardInterrupt:
                print("mlc: interrupted", file=sys.stderr)
                return 130
            except Exception as error:  # noqa: BLE001 - any failure here is reported, not raised
                if args.verbose:
                    traceback.print_exc()
                error_line = f"internal error: {type(error).__name__}: " + (str(error).splitlines()[0]
                                                                            if str(error) else "")
                print(f"mlc: {error_line} (run with -v for the traceback)", file=sys.stderr)
                code = INTERNAL_ERROR
    except BrokenPipeError:
        return 0
    if to_stdout:
        _print_json(out.payload if error_line is None else {"error": error_line, "exit_code": code})
    return code


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
