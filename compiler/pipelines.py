"""Pipelines, built in this one place for a target (`mlc passes` lists them).

-O0 runs nothing; -O1 folds constants and removes what does nothing or is dead; -O2 adds shape
simplification and the fusions into standard ai.onnx ops (portable to every target); -O3 adds
the target's own composite ops (onnxruntime's contrib kernels). The import-time specializations a
user asks for (freezing defaults, binding shape inputs, fixing dims) come first, as passes, and the
target's legalizations come last. `compile`, `debug`, `optimize`, the conformance backends and the
Python API all call `build_pipeline`, so `mlc debug --target T` runs exactly what `mlc compile
--target T` runs.

`--quantize int8` appends `calibrate{...}` and `quantize-qdq{...}` after the level's passes (or
the `--passes` list) and before the target's legalizations: calibration observes the graph the
target will get, and the legalizations see the QDQ graph. The two passes meet through the
calibration table file, by default in mlc's cache folder (`$XDG_CACHE_HOME/mlc/calibration/`,
else `~/.cache/mlc/calibration/`), named by the model file's sha256, the calibration data's
digest, the method and the passes before calibration, so the next compile of the same model
with the same data reuses it and nothing is ever written beside the user's files.

`--prune KIND:ARGS` (repeatable) appends its passes after the level's and before quantization, so
that calibration observes the pruned graph: `channels:R` → `prune-channels{ratio=R}` (structured:
whole output channels removed, every consumer rewritten), `magnitude:S` → `prune-magnitude{sparsity=S}`
(the smallest weights zeroed), `nm:N:M` → `prune-magnitude{pattern=N:M}`. Structured pruning always
runs first, whatever the order of the flags: it removes input slices of the consumers' weights, which
would break an N:M pattern laid down before it. `--prune-scope`, `--prune-norm` and `--exclude-nodes`
become those passes' options.

`--precision fp16` appends `convert-fp16` after the level's passes and `--prune`'s (so that the
statistics and ranges it looks at are those of the graph the target gets, pruned) and before the
target's composites and legalizations (which then see the float16 types and casts, as TensorRT's
strongly typed builder must). It is refused with `--quantize`: the QDQ graph's
QuantizeLinear/DequantizeLinear of opset 13 take float32 only, so every int8 op would sit between
casts that stop the backends from fusing it into an int8 kernel.

`--quantize int8-dynamic` appends `quantize-dynamic{...}` in the same place instead: weights int8,
activations quantized at run time (onnxruntime's DynamicQuantizeMatMul/MatMulIntegerToFloat), so
there is nothing to calibrate and `--calibration-data`/`--calibration-cache` are refused (one line,
exit 2) rather than silently unused.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from mlc.errors import BadInputError, InternalError, did_you_mean
from mlc.pass_api import Pass, parse_pass_spec, split_pass_list

_CLEANUP = ["eliminate-identity", "eliminate-noop", "fold-constants", "inline-constant-if"]
# simplify-shapes makes values constant that fold-constants could not fold before (Shape of dims it
# derives: a Swin block's pads, masks built from static spatial dims), hence folding once more and
# removing what became a no-op (a Pad by zeros). prune-zero-channels (exact) runs once BatchNorm and
# per-channel affines are folded into the Conv weights, so a channel they zero (or leave zero) is seen
_FUSIONS = ["simplify-shapes", "fold-constants", "eliminate-noop", "simplify-slices", "drop-zero-states",
            "unflatten-gemm", "merge-layout-ops",
            "fuse-pad", "fuse-batchnorm", "fuse-conv-affine", "prune-zero-channels",
            "fuse-matmul-add", "fuse-layernorm", "fuse-gelu", "fold-residual-bias"]
_FINISH = ["dedupe-constants", "cse", "dce"]

class TargetPasses(Protocol):
    """What a target adds to its pipeline (a backend answers; `mlc.backends.base.Backend`)."""

    def composites(self, target: str) -> list[str]: ...

    def legalization(self, target: str) -> list[str]: ...

    def quantization_options(self, target: str) -> dict[str, str]: ...


# target -> its TargetPasses: installed by the package root (`mlc/__init__.py`) from `mlc.targets`,
# a layer above this one, which this module therefore never imports.
_target_passes: Callable[[str], TargetPasses] | None = None


def set_target_passes(resolver: Callable[[str], TargetPasses]) -> None:
    """Install how a target name finds the passes its backend adds (called by the package root)."""
    global _target_passes
    _target_passes = resolver


def _passes_of(target: str) -> TargetPasses:
    if _target_passes is None:
        raise InternalError("pipelines: no target resolver installed (mlc/__init__.py installs it)")
    return _target_passes(target)


PIPELINES: dict[str, list[str]] = {
    "O0": [],
    "O1": [*_CLEANUP, *_FINISH],
    "O2": [*_CLEANUP, *_FUSIONS, *_FINISH],
    "O3": [*_CLEANUP, *_FUSIONS, *_FINISH],  # + the target's composites (Backend.composites)
}
DEFAULT_LEVEL = "O2"  # of every command: compile, debug, optimize, bench, the conformance backends


PRECISIONS = ("fp32", "fp16")
DEFAULT_PRECISION = "fp32"
QUANTIZE_MODES = ("int8", "int8-dynamic")
DYNAMIC_MODE = "int8-dynamic"
CALIBRATION_METHODS = ("minmax", "percentile", "entropy")


@dataclass(frozen=True)
class QuantizeOptions:
    """The options of `--quantize int8`: how to calibrate and what to keep in float (of
    `int8-dynamic`: only per_channel and the exclusions; `data` is then "")."""

    data: str  # a .npz keyed by input name, a folder of .npz/.npy, or "random"; "" for int8-dynamic
    method: str = "minmax"
    percentile: float = 99.99
    batch: int = 16
    cache: str | None = None  # the calibration table; None: the default in mlc's cache folder
    per_channel: bool = True
    exclude_nodes: tuple[str, ...] = ()
    exclude_ops: tuple[str, ...] = ()
    keep_float: tuple[str, ...] = ()  # written by the accuracy-budget search

    def validate(self) -> None:
        """One-line refusals naming the flag (exit 2)."""
        if self.method not in CALIBRATION_METHODS:
            raise BadInputError(f"--calibration-method {self.method}: expected one of "
                                f"{', '.join(CALIBRATION_METHODS)}" + did_you_mean(self.method, CALIBRATION_METHODS))
        if not 0.0 < self.percentile <= 100.0:
            raise BadInputError(f"--percentile {self.percentile:g}: expected a value in (0, 100]")
        if self.batch < 1:
            raise BadInputError(f"--calibration-batch {self.batch}: expected at least 1")
        if not is_random(self.data) and not Path(self.data).exists():
            raise BadInputError(f"--calibration-data {self.data}: no such file or folder "
                                "(an .npz keyed by input name, a folder of .npz/.npy, or `random`)")
        self.validate_names()

    def validate_names(self) -> None:
        """Names that cannot travel in a pass spec (`+`, `,`, braces)."""
        for flag, names in (("--exclude-nodes", self.exclude_nodes), ("--exclude-ops", self.exclude_ops)):
            bad = [n for n in names if not n or any(c in n for c in "+{},")]
            if bad:
                raise BadInputError(f"{flag} {bad[0]!r}: a name may not be empty or hold '+', ',', '{{' or '}}'")


PRUNE_KINDS = ("channels", "magnitude", "nm")
PRUNE_SCOPES = ("layer", "global")
PRUNE_NORMS = ("l1", "l2")


@dataclass(frozen=True)
class PruneSpec:
    """One `--prune` value: `channels:R`, `magnitude:S` (R, S in [0, 1)) or `nm:N:M`."""

    kind: str
    ratio: float | None = None  # channels, magnitude
    n: int | None = None  # nm
    m: int | None = None

    def text(self) -> str:
        return f"nm:{self.n}:{self.m}" if self.kind == "nm" else f"{self.kind}:{self.ratio:g}"

    @property
    def pass_name(self) -> str:
        return "prune-channels" if self.kind == "channels" else "prune-magnitude"

    def with_ratio(self, ratio: float) -> PruneSpec:
        return PruneSpec(self.kind, ratio, self.n, self.m)


def parse_prune(text: str) -> PruneSpec:
    """`channels:0.3`, `magnitude:0.5`, `nm:2:4`; one line naming the flag otherwise."""
    kind, _, rest = text.strip().partition(":")
    shown = f"--prune {text}"
    if kind not in PRUNE_KINDS:
        raise BadInputError(f"{shown}: expected channels:RATIO, magnitude:SPARSITY or nm:N:M"
                            + did_you_mean(kind, PRUNE_KINDS))
    if kind == "nm":
        n_text, _, m_text = rest.partition(":")
        if not (n_text.isdigit() and m_text.isdigit()) or not 0 < int(n_text) < int(m_text):
            raise BadInputError(f"{shown}: expected nm:N:M with 0 < N < M, e.g. nm:2:4")
        return PruneSpec(kind, n=int(n_text), m=int(m_text))
    try:
        ratio = float(rest)
    except ValueError:
        raise BadInputError(f"{shown}: {rest!r} is not a number (e.g. {kind}:0.5)") from None
    if not 0.0 <= ratio < 1.0:
        raise BadInputError(f"{shown}: the ratio must be in [0, 1)")
    return PruneSpec(kind, ratio=ratio)


@dataclass(frozen=True)
class PruneOptions:
    """The pruning flags: what to prune (`--prune`, in the order the passes run), how channels and
    weights are ranked, and which nodes are left whole."""

    specs: tuple[PruneSpec, ...]
    scope: str = "layer"
    norm: str = "l1"
    exclude_nodes: tuple[str, ...] = ()
    multiple: int = 1  # channels kept per group rounded to a multiple of this (prune-channels)

    @staticmethod
    def parse(values: Sequence[str], scope: str = "layer", norm: str = "l1",
              exclude_nodes: Sequence[str] = (), multiple: int = 1) -> PruneOptions:
        specs = [parse_prune(v) for v in values]
        kinds = [s.kind for s in specs]
        repeated = sorted({k for k in kinds if kinds.count(k) > 1})
        if repeated:
            raise BadInputError(f"--prune {repeated[0]}: given twice")
        if "magnitude" in kinds and "nm" in kinds:
            raise BadInputError("--prune magnitude and nm: both zero weights of the same layers; give one")
        specs.sort(key=lambda s: PRUNE_KINDS.index(s.kind))  # channels first (module docstring)
        options = PruneOptions(tuple(specs), scope, norm, tuple(exclude_nodes), multiple)
        options.validate()
        return options

    def validate(self) -> None:
        if self.scope not in PRUNE_SCOPES:
            raise BadInputError(f"--prune-scope {self.scope}: expected {' or '.join(PRUNE_SCOPES)}")
        if self.norm not in PRUNE_NORMS:
            raise BadInputError(f"--prune-norm {self.norm}: expected {' or '.join(PRUNE_NORMS)}")
        if self.multiple < 1:
            raise BadInputError(f"--prune-multiple {self.multiple}: expected at least 1")
        bad = [n for n in self.exclude_nodes if not n or any(c in n for c in "+{},")]
        if bad:
            raise BadInputError(f"--exclude-nodes {bad[0]!r}: a name may not be empty or hold '+', ',', '{{' or '}}'")

    def searchable(self) -> PruneSpec | None:
        """The spec whose ratio an accuracy budget searches: structured channels, else magnitude."""
        return next((s for s in self.specs if s.kind == "channels"), None) or \
            next((s for s in self.specs if s.kind == "magnitude"), None)

    def with_ratio(self, spec: PruneSpec, ratio: float) -> PruneOptions:
        return replace(self, specs=tuple(s.with_ratio(ratio) if s == spec else s for s in self.specs))

    def args(self) -> list[str]:
        """The flags that rebuild these options."""
        args = [a for s in self.specs for a in ("--prune", s.text())]
        args += ["--prune-scope", self.scope] if self.scope != "layer" else []
        args += ["--prune-norm", self.norm] if self.norm != "l1" else []
        args += ["--prune-multiple", str(self.multiple)] if self.multiple != 1 else []
        return args


def pruning_specs(options: PruneOptions) -> list[str]:
    """The prune passes' specs, in `options.specs` order."""
    specs = []
    for spec in options.specs:
        values = {"scope": options.scope}
        if spec.kind == "channels":
            values |= {"ratio": f"{spec.ratio:g}", "norm": options.norm}
            if options.multiple != 1:
                values["multiple"] = str(options.multiple)
        elif spec.kind == "magnitude":
            values["sparsity"] = f"{spec.ratio:g}"
        else:
            values["pattern"] = f"{spec.n}:{spec.m}"
        if options.exclude_nodes:
            values["exclude_nodes"] = "+".join(options.exclude_nodes)
        specs.append(f"{spec.pass_name}{{{','.join(f'{k}={v}' for k, v in values.items())}}}")
    return specs


def is_random(data: str) -> bool:
    """`random` or `random:N`: seeded samples drawn from the input types (calibration warns)."""
    name, _, count = data.partition(":")
    return name == "random" and (not count or count.isdigit())


def cache_folder() -> Path:
    """mlc's cache folder for calibration tables (XDG_CACHE_HOME respected)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mlc" / "calibration"


def data_digest(data: str) -> str:
    """sha256 of the calibration data as given: a file's bytes, a folder's files (names and
    bytes, sorted), or the word `random`."""
    from mlc.hashing import file_sha256

    path = Path(data)
    if is_random(data) or not path.exists():
        return hashlib.sha256(data.encode()).hexdigest()
    if path.is_file():
        return file_sha256(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode() + b"\0" + file_sha256(file).encode())
    return digest.hexdigest()


def default_calibration_cache(model: str | Path, options: QuantizeOptions, before: Sequence[str] = ()) -> Path:
    """`<cache>/<model sha256>-<data digest>-<method>[-p<percentile>]-<passes before>.json`."""
    from mlc.hashing import file_sha256

    method = options.method + (f"-p{options.percentile:g}" if options.method == "percentile" else "")
    passes = hashlib.sha256("\n".join(before).encode()).hexdigest()[:8]
    name = f"{file_sha256(model)[:16]}-{data_digest(options.data)[:12]}-{method}-{passes}.json"
    return cache_folder() / name


def quantization_specs(options: QuantizeOptions, cache: str | Path,
                       target_options: Mapping[str, str] | None = None) -> list[str]:
    """`calibrate{...}` and `quantize-qdq{...}` for these options and this calibration table, with
    the QDQ form the target needs (`Backend.quantization_options`: TensorRT's symmetric int8)."""
    calibrate = {"data": options.data, "method": options.method, "cache": str(cache)}
    if options.method == "percentile":
        calibrate["percentile"] = f"{options.percentile:g}"
    if options.batch != 16:
        calibrate["batch"] = str(options.batch)
    quantize = {"calibration": str(cache), **dict(target_options or {})}
    if not options.per_channel:
        quantize["per_channel"] = "false"
    for key, names in (("exclude_nodes", options.exclude_nodes), ("exclude_ops", options.exclude_ops),
                       ("keep_float", options.keep_float)):
        if names:
            quantize[key] = "+".join(names)
    return [f"{name}{{{','.join(f'{k}={v}' for k, v in values.items())}}}"
            for name, values in (("calibrate", calibrate), ("quantize-qdq", quantize))]


def dynamic_quantization_spec(options: QuantizeOptions) -> str:
    """`quantize-dynamic{...}` for these options (no calibration: ranges are measured at run time)."""
    values = {} if options.per_channel else {"per_channel": "false"}
    for key, names in (("exclude_nodes", options.exclude_nodes), ("exclude_ops", options.exclude_ops),
                       ("keep_float", options.keep_float)):
        if names:
            values[key] = "+".join(names)
    return "quantize-dynamic" + (f"{{{','.join(f'{k}={v}' for k, v in values.items())}}}" if values else "")


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
                   static_shapes: Mapping[str, Sequence[int]] | None = None, quantize: str | None = None,
                   calibration: QuantizeOptions | None = None, model: str | Path | None = None,
                   prune: PruneOptions | None = None, precision: str | None = None) -> list[Pass]:
    """The one pipeline builder: specializations, then `-O<level>` or `--passes` (minus
    `--disable-pass`, with `--pass-option`s), then `--prune`'s passes, then `--quantize`'s calibration and QDQ passes
    (for `int8-dynamic`, `quantize-dynamic`), or `convert-fp16` for `precision` fp16, then for a
    `target` its composites (at -O3) and
    its legalizations. Options prefixed with `?` (from flags like --fold-limit) apply only where
    their pass is in the pipeline. Without a target the pipeline is the portable one (no -O3). The calibration table is
    `calibration.cache`, else the default for `model` (`default_calibration_cache`)."""
    if passes is not None and level is not None:
        raise BadInputError("give either -O<level> or --passes, not both")
    specs = specialization_specs(freeze_inputs, bind_inputs, static_shapes)
    specs += split_pass_list(passes) if passes is not None else PIPELINES[normalize_level(level)]
    if prune is not None and prune.specs:
        prune.validate()
        specs += pruning_specs(prune)
    if (precision or DEFAULT_PRECISION) not in PRECISIONS:
        raise BadInputError(f"--precision {precision}: expected {' or '.join(PRECISIONS)}"
                            + did_you_mean(str(precision), PRECISIONS))
    if precision == "fp16":
        if quantize is not None:
            raise BadInputError(f"--precision fp16 with --quantize {quantize}: int8 QuantizeLinear/DequantizeLinear "
                                "take float32 (opset 13), so casts would wrap every int8 op and stop its fusion; "
                                "give one of the two")
        if not any(spec.partition("{")[0] == "convert-fp16" for spec in specs):  # `--passes` may name it already
            specs.append("convert-fp16")
    if quantize == DYNAMIC_MODE:
        dynamic = calibration or QuantizeOptions(data="")
        if dynamic.data or dynamic.cache:
            flag = "--calibration-data" if dynamic.data else "--calibration-cache"
            raise BadInputError(f"{flag}: --quantize int8-dynamic measures activation ranges at run time and "
                                "calibrates nothing; drop the flag, or use --quantize int8 (static, calibrated)")
        dynamic.validate_names()
        specs.append(dynamic_quantization_spec(dynamic))
    elif quantize is not None:
        if quantize not in QUANTIZE_MODES:
            raise BadInputError(f"--quantize {quantize}: expected {' or '.join(QUANTIZE_MODES)}")
        if calibration is None:
            raise BadInputError(f"--quantize {quantize} needs --calibration-data (an .npz keyed by input name, "
                                "a folder of .npz/.npy, or `random`)")
        calibration.validate()
        cache = calibration.cache
        if cache is None:
            if model is None:
                raise BadInputError("--quantize: the default calibration table is named by the model; give "
                                    "--calibration-cache FILE")
            cache = str(default_calibration_cache(model, calibration, specs))
        if target is not None:
            specs += quantization_specs(calibration, cache, _passes_of(target).quantization_options(target))
        else:
            specs += quantization_specs(calibration, cache)
    elif calibration is not None:
        raise BadInputError("--calibration-data and the other quantization flags need --quantize int8")
    if target is not None:
        backend = _passes_of(target)
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
