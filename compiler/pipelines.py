"""Named pipelines, defined in this one place (`mlc passes` lists them).

-O0 runs nothing; -O1 folds constants and removes what does nothing or is dead; -O2 adds shape
simplification and the fusions into standard ai.onnx ops (portable to every target); -O3 adds
the target's own composite ops (onnxruntime's contrib kernels), which the driver asks the backend for.
"""

from __future__ import annotations

from collections.abc import Sequence

from mlc.errors import BadInputError
from mlc.pass_api import Pass, parse_pass_spec, split_pass_list

_CLEANUP = ["eliminate-identity", "eliminate-noop", "fold-constants", "inline-constant-if"]
_FUSIONS = ["simplify-shapes", "unflatten-gemm", "merge-layout-ops", "fuse-pad", "fuse-batchnorm", "fuse-conv-affine",
            "fuse-matmul-add", "fuse-layernorm", "fuse-gelu", "fold-residual-bias"]
_FINISH = ["dedupe-constants", "cse", "dce"]

PIPELINES: dict[str, list[str]] = {
    "O0": [],
    "O1": [*_CLEANUP, *_FINISH],
    "O2": [*_CLEANUP, *_FUSIONS, *_FINISH],
    "O3": [*_CLEANUP, *_FUSIONS, *_FINISH],  # + the target's composites (Backend.composites), added by the driver
}
DEFAULT_LEVEL = "O1"


def build_pipeline(level: str | None = None, passes: str | None = None,
                   disabled: Sequence[str] = (), options: Sequence[str] = ()) -> list[Pass]:
    """See _build; options prefixed with `?` (from flags like --fold-limit) apply only where their
    pass is in the pipeline."""
    return _build(level, passes, disabled, options)


def _build(level: str | None, passes: str | None, disabled: Sequence[str], options: Sequence[str]) -> list[Pass]:
    """Passes from `--passes a,b{opt=v},c` or a level (`O0`..`O3`), minus `--disable-pass`,
    with `--pass-option NAME.OPTION=VALUE` applied to every pass of that name."""
    if passes is not None and level is not None:
        raise BadInputError("give either -O<level> or --passes, not both")
    if passes is not None:
        specs = split_pass_list(passes)
    else:
        key = (level or DEFAULT_LEVEL).lstrip("-").upper()
        if key not in PIPELINES:
            raise BadInputError(f"unknown pipeline {level!r}; known: {', '.join('-' + k for k in PIPELINES)}")
        specs = list(PIPELINES[key])
    for name in disabled:
        if not any(s.partition("{")[0] == name for s in specs):
            raise BadInputError(f"--disable-pass {name}: not in the pipeline ({', '.join(specs) or 'empty'})")
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
