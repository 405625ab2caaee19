"""Pipelines, built in this one place for a target (`mlc passes` lists them).

-O0 runs nothing; -O1 folds constants and removes what does nothing or is dead; -O2 adds shape
simplification and the fusions into standard ai.onnx ops (portable to every target); -O3 adds
the target's own composite ops (onnxruntime's contrib kernels). The import-time specializations a
user asks for (freezing defaults, binding shape inputs, fixing dims) come first, as passes, and the
target's legalizations come last. `compile`, `debug`, `optimize`, the conformance backends and the
Python API all call `build_pipeline`, so `mlc debug --target T` runs exactly what `mlc compile
--target T` runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mlc.errors import BadInputError, did_you_mean
from mlc.pass_api import Pass, parse_pass_spec, split_pass_list

_CLEANUP = ["eliminate-identity", "eliminate-noop", "fold-constants", "inline-constant-if"]
# simplify-shapes makes values constant that fold-constants could not fold before (Shape of dims it
# derives: a Swin block's pads, masks built from static spatial dims), hence folding once more and
# removing what became a no-op (a Pad by zeros)
_FUSIONS = ["simplify-shapes", "fold-constants", "eliminate-noop", "simplify-slices", "drop-zero-states",
            "unflatten-gemm", "merge-layout-ops",
            "fuse-pad", "fuse-batchnorm", "fuse-conv-affine", "fuse-matmul-add", "fuse-layernorm", "fuse-gelu",
            "fold-residual-bias"]
_FINISH = ["dedupe-constants", "cse", "dce"]

PIPELINES: dict[str, list[str]] = {
    "O0": [],
    "O1": [*_CLEANUP, *_FINISH],
    "O2": [*_CLEANUP, *_FUSIONS, *_FINISH],
    "O3": [*_CLEANUP, *_FUSIONS, *_FINISH],  # + the target's composites (Backend.composites)
}
DEFAULT_LEVEL = "O2"  # of every command: compile, debug, optimize, bench, the conformance backends


def normalize_level(level: str | None) -> str:
    """`-O2`, `O2`, `o2` or `2` → `O2`; None → the default level."""
    key = (level or DEFAULT_LEVEL).lstrip("-").upper()
    key = key if key.startswith("O") else "O" + key
    if key not in PIPELINES:
        raise BadInputError(f"unknown pipeline {level!r}; known: {', '.join('-' + k for k in PIPELINES)}")
    return key


def specialization_specs(freeze_inputs: bool = False, bind_inputs: str | None = None,
                         static_shapes: Mapping[str, Sequence[int]] | None = None) -> list[str]:
    """The passes that specialize a model to what the user fixed at compile time, in the order
    they apply: defaults frozen, shape inputs bound to values, input dims fixed."""
    specs = ["freeze-inputs"] if freeze_inputs else []
    if bind_inputs:
        specs.append("bind-inputs{file=" + str(bind_inputs) + "}")
    if static_shapes:
        text = ";".join(f"{name}:" + "x".join(str(d) for d in dims) for name, dims in sorted(static_shapes.items()))
        specs.append("fix-input-shapes{shapes=" + text + "}")
    return specs


def build_pipeline(level: str | None = None, passes: str | None = None,
                   disabled: Sequence[str] = (), options: Sequence[str] = (), *,
                   target: str | None = None, freeze_inputs: bool = False, bind_inputs: str | None = None,
                   static_shapes: Mapping[str, Sequence[int]] | None = None) -> list[Pass]:
    """The one pipeline builder: specializations, then `-O<level>` or `--passes` (minus
    `--disable-pass`, with `--pass-option`s), then for a `target` its composites (at -O3) and its
    legalizations. Options prefixed with `?` (from flags like --fold-limit) apply only where their
    pass is in the pipeline. Without a target the pipeline is the portable one (no -O3)."""
    if passes is not None and level is not None:
        raise BadInputError("give either -O<level> or --passes, not both")
    specs = specialization_specs(freeze_inputs, bind_inputs, static_shapes)
    specs += split_pass_list(passes) if passes is not None else PIPELINES[normalize_level(level)]
    if target is not None:
        from mlc.targets import backend_for  # targets imports the backends lazily

        backend = backend_for(target)
        if passes is None and normalize_level(level) == "O3":
            specs += backend.composites(target)
        specs += backend.legalization(target)
    elif passes is None and normalize_level(level) == "O3":
        raise BadInputError("-O3 adds a target's own composite ops: give --target (e.g. --target onnxruntime)")
    return _configure(specs, disabled, options)


def _configure(specs: list[str], disabled: Sequence[str], options: Sequence[str]) -> list[Pass]:
    """The passes of `specs` minus `--disable-pass`, with `--pass-option NAME.OPTION=VALUE`
    applied to every pass of that name."""
    for name in disabled:
        if not any(s.partition("{")[0] == name for s in specs):
            names = ", ".join(dict.fromkeys(s.partition("{")[0] for s in specs)) or "empty"
            raise BadInputError(f"--disable-pass {name}: not in the pipeline ({names})"
                                + did_you_mean(name, [s.partition("{")[0] for s in specs]))
    built = [parse_pass_spec(s) for s in specs if s.partition("{")[0] not in set(disabled)]
    for option in options:
        optional = option.startswith("?")
        target, dot, rest = option.lstrip("?").partition(".")
        key, eq, value = rest.partition("=")
        if not dot or not eq:
            raise BadInputError(f"--pass-option {option!r}: expected PASS.OPTION=VALUE")
        matching = [p for p in built if p.name == target]
        if not matching and optional:
            continue
        if not matching:
            raise BadInputError(f"--pass-option {option!r}: pass {target!r} is not in the pipeline")
        for pass_ in matching:
            declared = {o.name: o for o in pass_.options}
            if key not in declared:
                raise BadInputError(f"--pass-option {option!r}: {target} has options {', '.join(declared) or 'none'}")
            pass_.values[key] = declared[key].parse(value)
    return built
