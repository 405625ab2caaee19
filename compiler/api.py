"""The Python API, mirroring the CLI: `mlc.compile`, `mlc.optimize`, `mlc.debug`, `mlc.run`,
`mlc.bench`. Each takes the options of its subcommand as keyword arguments, runs the same code
path (`mlc.driver`, `mlc.debugger`, the one pipeline runner), and raises only `mlc.MlcError`
subclasses: bad input `BadInputError` (exit code 2), a numeric break `NumericMismatchError` (1),
an unavailable target `TargetUnavailableError` (3), a fault of mlc itself `InternalError` (70).

Quantization (as `--quantize int8` and its flags): `quantize="int8"` with `calibration_data`
(an .npz keyed by input name, a folder of .npz/.npy, or "random"), `calibration_method`
(minmax | percentile | entropy), `percentile`, `calibration_batch`, `per_channel`,
`calibration_cache` (default: in mlc's cache folder), `exclude_nodes` / `exclude_ops` (lists
or comma-separated), `min_cosine` (the lossy gate, default 0.99), and `accuracy_budget` with
`eval_data` (an .npz of inputs, optionally `labels`) and optionally `metric` (a callable from
the outputs on the whole evaluation set to a score, higher is better; the budget is then the
largest drop of that score). `quantize="int8-dynamic"` (int8 MatMul/Gemm weights, activations
quantized at run time) takes `per_channel`, `exclude_nodes`, `exclude_ops` and `min_cosine`, and
refuses `calibration_data`/`calibration_cache` (nothing is calibrated).

Pruning (as `--prune` and its flags): `prune` ("channels:0.3", "magnitude:0.5", "nm:2:4", or a
list of them), `prune_scope` ("layer" | "global"), `prune_norm` ("l1" | "l2"), `prune_multiple` (channels kept
rounded to a multiple of it), `exclude_nodes`
(left unpruned), `measure_latency` (compile and optimize: latency without and with pruning in the
report), and `accuracy_budget` with `eval_data` (and `metric`): the largest ratio that meets it.
A pruned compile is not held to the 0.99 cosine gate unless `min_cosine` is given.

Precision (as `--precision`): `precision="fp16"` (compile, optimize, debug) appends `convert-fp16`:
float16 compute with the float32 interface, held to the lossy gate (`min_cosine`, default 0.99).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import numpy as np

from mlc.errors import InternalError, MlcError

P = ParamSpec("P")
R = TypeVar("R")


def _mlc_errors_only(function: Callable[P, R]) -> Callable[P, R]:
    """Anything that is not an MlcError is a fault of mlc: re-raised as InternalError (exit 70)."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return function(*args, **kwargs)
        except MlcError:
            raise
        except Exception as error:
            text = str(error).splitlines()[0] if str(error) else ""
            raise InternalError(f"internal error in mlc.{function.__name__}: {type(error).__name__}: {text}") \
                from error

    return wrapper


def _request(target: str | None, level: str | int | None, passes: str | Sequence[str] | None,
             disable: Sequence[str], pass_options: Sequence[str], freeze_inputs: bool, bind_inputs: str | None,
             static_shapes: Mapping[str, Sequence[int]] | None, model: str | Path | None = None,
             quantize: Mapping[str, Any] | None = None, prune: Mapping[str, Any] | None = None,
             precision: str = "fp32") -> Any:
    from mlc.driver import PipelineRequest

    request = PipelineRequest(target=target, level=None if level is None else f"O{str(level).lstrip('-Oo')}",
                              passes=passes if passes is None or isinstance(passes, str) else ",".join(passes),
                              disabled=tuple(disable), pass_options=tuple(pass_options),
                              freeze_inputs=freeze_inputs, bind_inputs=bind_inputs,
                              static_shapes={k: tuple(int(d) for d in v) for k, v in (static_shapes or {}).items()},
                              model=None if model is None else str(model),
                              **_quantize_fields(quantize or {}, pruning=bool(prune and prune.get("prune"))),
                              **_prune_fields(prune or {}, (quantize or {}).get("exclude_nodes")),
                              precision=precision)
    request.validate()
    return request


def _names(value: str | Sequence[str] | None) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value or ())
    return tuple(n.strip() for n in items if n.strip())


def _prune_fields(options: Mapping[str, Any], exclude_nodes: str | Sequence[str] | None) -> dict[str, Any]:
    """`prune="channels:0.3", prune_scope=..., ...` keyword arguments → PipelineRequest fields."""
    from mlc.errors import BadInputError
    from mlc.pipelines import PruneOptions

    values = options.get("prune")
    if not values:
        for key, default in (("prune_scope", "layer"), ("prune_norm", "l1"), ("prune_multiple", 1),
                             ("measure_latency", False)):
            if options.get(key, default) != default:
                raise BadInputError(f"{key} needs prune=...")
        return {}
    specs = [values] if isinstance(values, str) else list(values)
    return {"prune": PruneOptions.parse(specs, str(options.get("prune_scope", "layer")),
                                        str(options.get("prune_norm", "l1")), _names(exclude_nodes),
                                        int(options.get("prune_multiple", 1))),
            "measure_latency": bool(options.get("measure_latency", False))}


def _quantize_fields(options: Mapping[str, Any], pruning: bool = False) -> dict[str, Any]:
    """`quantize="int8", calibration_data=..., ...` keyword arguments → PipelineRequest fields."""
    from mlc.errors import BadInputError
    from mlc.pipelines import QuantizeOptions

    def names(value: str | Sequence[str] | None) -> tuple[str, ...]:
        items = value.split(",") if isinstance(value, str) else list(value or ())
        return tuple(n.strip() for n in items if n.strip())

    mode, data = options.get("quantize"), options.get("calibration_data")
    budget, eval_data = options.get("accuracy_budget"), options.get("eval_data")
    if mode is None:
        given = [k for k in ("calibration_data", "calibration_cache", "exclude_nodes", "exclude_ops")
                 if options.get(k) and not (pruning and k == "exclude_nodes")]
        if given:
            raise BadInputError(f"{given[0]} needs quantize='int8'")
        return {"accuracy_budget": None if budget is None else str(budget), "eval_data": eval_data}
    if mode == "int8-dynamic":  # data or a cache is refused by the pipeline, in one line
        data = "" if data is None else data
    calibration = None if data is None else QuantizeOptions(
        data=str(data), method=options.get("calibration_method") or "minmax",
        percentile=float(options.get("percentile", 99.99)), batch=int(options.get("calibration_batch", 16)),
        cache=None if options.get("calibration_cache") is None else str(options["calibration_cache"]),
        per_channel=bool(options.get("per_channel", True)), exclude_nodes=names(options.get("exclude_nodes")),
        exclude_ops=names(options.get("exclude_ops")))
    return {"quantize": mode, "calibration": calibration,
            "accuracy_budget": None if budget is None else str(budget),
            "eval_data": None if eval_data is None else str(eval_data)}


def _checks(verify: str, inputs: str | None, input_shapes: Mapping[str, Sequence[int]] | None, seed: int,
            min_cosine: float | None = None, budget: Any = None, pruned: bool = False) -> Any:
    from mlc.numerics.compare import DEFAULT_MIN_COSINE
    from mlc.numerics.inputs import InputSpec
    from mlc.runner import CheckOptions

    spec = InputSpec(seed=seed, shapes={k: tuple(int(d) for d in v) for k, v in (input_shapes or {}).items()})
    gate = min_cosine if min_cosine is not None else None if budget is not None or pruned else DEFAULT_MIN_COSINE
    return CheckOptions(verify=verify, inputs_path=inputs, input_spec=spec, lossy_min_cosine=gate or None)




@_mlc_errors_only
def compile(model: str | Path, target: str = "onnxruntime", output: str | Path | None = None, *,
            level: str | int | None = None, passes: str | Sequence[str] | None = None,
            disable: Sequence[str] = (), pass_options: Sequence[str] = (), freeze_inputs: bool = False,
            bind_inputs: str | None = None, static_shapes: Mapping[str, Sequence[int]] | None = None,
            verify: str = "final", inputs: str | None = None, input_shapes: Mapping[str, Sequence[int]] | None = None,
            seed: int = 0, mcpu: str | None = None, mattr: str | None = None, cuda_arch: str | None = None,
            tvm_schedules: str | None = None, tuning_db: str | Path | None = None, force: bool = False,
            quantize: str | None = None, min_cosine: float | None = None,
            metric: Callable[[dict[str, np.ndarray]], float] | None = None,
            prune: str | Sequence[str] | None = None, prune_scope: str = "layer", prune_norm: str = "l1",
            prune_multiple: int = 1, measure_latency: bool = False, precision: str = "fp32",
            **quantization: Any) -> Path:
    """`mlc compile`: the artifact folder for `target` (default `MODEL.TARGET`); `output` may
    replace only an earlier mlc artifact unless `force`. `tuning_db` (a folder `mlc.api.tune`
    wrote) applies its tuning records (TVM targets)."""
    from mlc.driver import compile_model

    backend_options = {k: v for k, v in (("mcpu", mcpu), ("mattr", mattr), ("cuda_arch", cuda_arch),
                                         ("schedules", tvm_schedules),
                                         ("tuning_db", None if tuning_db is None else str(tuning_db))) if v}
    if tuning_db is not None:
        from mlc.tuning import check_compile_target

        check_compile_target(target, tuning_db)
    request = _request(target, level, passes, disable, pass_options, freeze_inputs, bind_inputs, static_shapes,
                       model, _quantization(quantize, quantization),
                       {"prune": prune, "prune_scope": prune_scope, "prune_norm": prune_norm,
                        "prune_multiple": prune_multiple, "measure_latency": measure_latency}, precision)
    folder, _ = compile_model(model, request, output,
                              checks=_checks(verify, inputs, input_shapes, seed, min_cosine, request.accuracy_budget,
                                             request.prune is not None),
                              backend_options=backend_options, force=force, metric=metric)
    return folder


_QUANTIZE_KEYS = ("calibration_data", "calibration_method", "percentile", "calibration_batch", "calibration_cache",
                  "per_channel", "exclude_nodes", "exclude_ops", "accuracy_budget", "eval_data")


def _quantization(mode: str | None, options: Mapping[str, Any]) -> dict[str, Any]:
    from mlc.errors import BadInputError

    unknown = sorted(set(options) - set(_QUANTIZE_KEYS))
    if unknown:
        raise BadInputError(f"unexpected keyword argument {unknown[0]!r} (quantization takes: "
                            f"{', '.join(_QUANTIZE_KEYS)})")
    return {"quantize": mode, **options}


@_mlc_errors_only
def tune(model: str | Path, target: str = "llvm", tuning_db: str | Path = "mlc-tuning", *, trials: int = 64,
         time_budget: str | float | None = None, rpc_tracker: str | None = None, rpc_key: str | None = None,
         level: str | int | None = None, static_shapes: Mapping[str, Sequence[int]] | None = None,
         mcpu: str | None = None, mattr: str | None = None, cuda_arch: str | None = None,
         strategy: str = "evolutionary", cost_model: str = "xgb", keep_slower: bool = False,
         progress: Callable[[str], None] | None = None) -> Any:
    """`mlc tune`: tune the model's TVM kernels (after mlc's pipeline for `target`) with
    MetaSchedule, `trials` candidates per task, into the database folder `tuning_db` (created,
    or resumed); returns an `mlc.tuning.TuneSummary`. `time_budget`: seconds or "30m"/"2h";
    `rpc_tracker` "HOST:PORT" with `rpc_key`: measure on the RPC servers of a TVM tracker."""
    from mlc.tuning import parse_duration, parse_tracker, tune_model

    options = {k: v for k, v in (("mcpu", mcpu), ("mattr", mattr), ("cuda_arch", cuda_arch)) if v}
    return tune_model(model, target, tuning_db, trials=trials, time_budget_s=parse_duration(time_budget),
                      rpc=parse_tracker(rpc_tracker, rpc_key), backend_options=options,
                      level=None if level is None else f"O{str(level).lstrip('-Oo')}",
                      static_shapes={k: tuple(int(d) for d in v) for k, v in (static_shapes or {}).items()},
                      strategy=strategy,
                      cost_model=cost_model, keep_slower=keep_slower, progress=progress)


@_mlc_errors_only
def optimize(model: str | Path, output: str | Path, *, target: str | None = None, level: str | int | None = None,
             passes: str | Sequence[str] | None = None, disable: Sequence[str] = (),
             pass_options: Sequence[str] = (), freeze_inputs: bool = False, bind_inputs: str | None = None,
             static_shapes: Mapping[str, Sequence[int]] | None = None, verify: str = "final",
             inputs: str | None = None, input_shapes: Mapping[str, Sequence[int]] | None = None, seed: int = 0,
             force: bool = False, quantize: str | None = None, min_cosine: float | None = None,
             metric: Callable[[dict[str, np.ndarray]], float] | None = None,
             prune: str | Sequence[str] | None = None, prune_scope: str = "layer", prune_norm: str = "l1",
             prune_multiple: int = 1, measure_latency: bool = False, precision: str = "fp32",
             **quantization: Any) -> Path:
    """`mlc optimize`: the optimized, checked model written to `output` (an .onnx file)."""
    from mlc.driver import optimize_model

    request = _request(target, level, passes, disable, pass_options, freeze_inputs, bind_inputs, static_shapes,
                       model, _quantization(quantize, quantization),
                       {"prune": prune, "prune_scope": prune_scope, "prune_norm": prune_norm,
                        "prune_multiple": prune_multiple, "measure_latency": measure_latency}, precision)
    written, _ = optimize_model(model, request, output,
                                checks=_checks(verify, inputs, input_shapes, seed, min_cosine,
                                               request.accuracy_budget, request.prune is not None),
                                force=force, metric=metric)
    return written


@_mlc_errors_only
def debug(model: str | Path, *, target: str | None = "onnxruntime", level: str | int | None = None,
          passes: str | Sequence[str] | None = None, disable: Sequence[str] = (), pass_options: Sequence[str] = (),
          freeze_inputs: bool = False, bind_inputs: str | None = None,
          static_shapes: Mapping[str, Sequence[int]] | None = None, verify: str = "each",
          inputs: str | None = None, input_shapes: Mapping[str, Sequence[int]] | None = None, seed: int = 0,
          stop_after: int | None = None, max_rewrites: int | None = None,
          reproducer: str | None = None, quantize: str | None = None, min_cosine: float | None = None,
          prune: str | Sequence[str] | None = None, prune_scope: str = "layer", prune_norm: str = "l1",
          prune_multiple: int = 1, precision: str = "fp32", **quantization: Any) -> Any:
    """`mlc debug`: the pipeline compile runs for `target`, checked pass by pass; returns a
    `mlc.debugger.DebugResult` (`verdict`, `records`, `localization`, and after a lossy pass
    `doctor`: the quantization doctor's table)."""
    from mlc.debugger import DebugOptions, debug_model

    request = _request(target, level, passes, disable, pass_options, freeze_inputs, bind_inputs, static_shapes,
                       model, _quantization(quantize, quantization),
                       {"prune": prune, "prune_scope": prune_scope, "prune_norm": prune_norm,
                        "prune_multiple": prune_multiple}, precision)
    return debug_model(str(model), request.build(),
                       _checks(verify, inputs, input_shapes, seed, min_cosine, None, request.prune is not None),
                       DebugOptions(stop_after=stop_after, max_rewrites=max_rewrites, reproducer_dir=reproducer,
                                    target=target))


@_mlc_errors_only
def run(artifact: str | Path, feeds: Mapping[str, np.ndarray] | None = None, *, seed: int = 0,
        input_shapes: Mapping[str, Sequence[int]] | None = None) -> dict[str, np.ndarray]:
    """`mlc run`: the artifact's outputs keyed by output name, on `feeds` (checked against the
    artifact's input types) or, when None, on generated seeded inputs."""
    from mlc.artifact import load
    from mlc.feeds import generate_feeds, role_dims
    from mlc.runner import quiet_onnxruntime

    quiet_onnxruntime()
    loaded = load(artifact)  # as `mlc run`: names and shape, hashes, then the model files
    if feeds is None:
        feeds, _ = generate_feeds(loaded.manifest["inputs"], seed=seed, dims=role_dims(loaded.manifest["inputs"]),
                                  shapes={k: tuple(int(d) for d in v) for k, v in (input_shapes or {}).items()})
    return loaded.run(dict(feeds))


@_mlc_errors_only
def bench(model: str | Path, target: str = "onnxruntime", *, original: str | Path | None = None, runs: int = 50,
          warmup: int = 5, inputs: str | None = None, level: str | int | None = None) -> dict[str, Any]:
    """`mlc bench`: median latencies of the artifact and of plain onnxruntime, measured interleaved."""
    from mlc.benchmark import bench as run_bench

    ours, plain, used = run_bench(model, target, original=original, runs=runs, warmup=warmup, inputs_path=inputs,
                                  level=None if level is None else f"O{str(level).lstrip('-Oo')}")
    return {"target": used, "mlc": ours.__dict__, "onnxruntime": plain.__dict__ if plain else None,
            "speedup": plain.median_ms / ours.median_ms if plain else None}
