"""The Python API, mirroring the CLI: `mlc.compile`, `mlc.optimize`, `mlc.debug`, `mlc.run`,
`mlc.bench`. Each takes the options of its subcommand as keyword arguments, runs the same code
path (`mlc.driver`, `mlc.debugger`, the one pipeline runner), and raises only `mlc.MlcError`
subclasses: bad input `BadInputError` (exit code 2), a numeric break `NumericMismatchError` (1),
an unavailable target `TargetUnavailableError` (3), a fault of mlc itself `InternalError` (70).
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
             static_shapes: Mapping[str, Sequence[int]] | None) -> Any:
    from mlc.driver import PipelineRequest

    return PipelineRequest(target=target, level=None if level is None else f"O{str(level).lstrip('-Oo')}",
                           passes=passes if passes is None or isinstance(passes, str) else ",".join(passes),
                           disabled=tuple(disable), pass_options=tuple(pass_options), freeze_inputs=freeze_inputs,
                           bind_inputs=bind_inputs,
                           static_shapes={k: tuple(int(d) for d in v) for k, v in (static_shapes or {}).items()})


def _checks(verify: str, inputs: str | None, input_shapes: Mapping[str, Sequence[int]] | None, seed: int) -> Any:
    from mlc.numerics.inputs import InputSpec
    from mlc.runner import CheckOptions

    spec = InputSpec(seed=seed, shapes={k: tuple(int(d) for d in v) for k, v in (input_shapes or {}).items()})
    return CheckOptions(verify=verify, inputs_path=inputs, input_spec=spec)


@_mlc_errors_only
def compile(model: str | Path, target: str = "onnxruntime", output: str | Path | None = None, *,
            level: str | int | None = None, passes: str | Sequence[str] | None = None,
            disable: Sequence[str] = (), pass_options: Sequence[str] = (), freeze_inputs: bool = False,
            bind_inputs: str | None = None, static_shapes: Mapping[str, Sequence[int]] | None = None,
            verify: str = "final", inputs: str | None = None, input_shapes: Mapping[str, Sequence[int]] | None = None,
            seed: int = 0, mcpu: str | None = None, mattr: str | None = None, cuda_arch: str | None = None,
            force: bool = False) -> Path:
    """`mlc compile`: the artifact folder for `target` (default `MODEL.TARGET`); `output` may
    replace only an earlier mlc artifact unless `force`."""
    from mlc.driver import compile_model

    backend_options = {k: v for k, v in (("mcpu", mcpu), ("mattr", mattr), ("cuda_arch", cuda_arch)) if v}
    folder, _ = compile_model(model, _request(target, level, passes, disable, pass_options, freeze_inputs,
                                              bind_inputs, static_shapes), output,
                              checks=_checks(verify, inputs, input_shapes, seed), backend_options=backend_options,
                              force=force)
    return folder


@_mlc_errors_only
def optimize(model: str | Path, output: str | Path, *, target: str | None = None, level: str | int | None = None,
             passes: str | Sequence[str] | None = None, disable: Sequence[str] = (),
             pass_options: Sequence[str] = (), freeze_inputs: bool = False, bind_inputs: str | None = None,
             static_shapes: Mapping[str, Sequence[int]] | None = None, verify: str = "final",
             inputs: str | None = None, input_shapes: Mapping[str, Sequence[int]] | None = None, seed: int = 0,
             force: bool = False) -> Path:
    """`mlc optimize`: the optimized, checked model written to `output` (an .onnx file)."""
    from mlc.driver import optimize_model

    written, _ = optimize_model(model, _request(target, level, passes, disable, pass_options, freeze_inputs,
                                                bind_inputs, static_shapes), output,
                                checks=_checks(verify, inputs, input_shapes, seed), force=force)
    return written


@_mlc_errors_only
def debug(model: str | Path, *, target: str | None = "onnxruntime", level: str | int | None = None,
          passes: str | Sequence[str] | None = None, disable: Sequence[str] = (), pass_options: Sequence[str] = (),
          freeze_inputs: bool = False, bind_inputs: str | None = None,
          static_shapes: Mapping[str, Sequence[int]] | None = None, verify: str = "each",
          inputs: str | None = None, input_shapes: Mapping[str, Sequence[int]] | None = None, seed: int = 0,
          stop_after: int | None = None, max_rewrites: int | None = None,
          reproducer: str | None = None) -> Any:
    """`mlc debug`: the pipeline compile runs for `target`, checked pass by pass; returns a
    `mlc.debugger.DebugResult` (`verdict`, `records`, `localization`)."""
    from mlc.debugger import DebugOptions, debug_model

    request = _request(target, level, passes, disable, pass_options, freeze_inputs, bind_inputs, static_shapes)
    return debug_model(str(model), request.build(), _checks(verify, inputs, input_shapes, seed),
                       DebugOptions(stop_after=stop_after, max_rewrites=max_rewrites, reproducer_dir=reproducer,
                                    target=target))


@_mlc_errors_only
def run(artifact: str | Path, feeds: Mapping[str, np.ndarray] | None = None, *, seed: int = 0,
        input_shapes: Mapping[str, Sequence[int]] | None = None) -> dict[str, np.ndarray]:
    """`mlc run`: the artifact's outputs keyed by output name, on `feeds` (checked against the
    artifact's input types) or, when None, on generated seeded inputs."""
    from mlc.artifact import load
    from mlc.feeds import generate_feeds, role_dims

    loaded = load(artifact)
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
