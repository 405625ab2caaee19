"""`mlc bench`: latency of compiled artifacts against plain onnxruntime on the same inputs.

Plain onnxruntime means the original model in a default session (all of ORT's own graph
optimizations on), the baseline a user would otherwise deploy. MODEL is compiled once per target
(and, with a tuning database, once more per TVM target with its records applied); every artifact
and plain onnxruntime then run in one interleaved loop, one call each per round, so that noise
from a shared machine hits all alike. The order within a round rotates from round to round (and
reverses every other cycle), so that no variant always runs first, or always right after the same
other one, whose caches it would inherit. Medians, p10/p90 and the ratio to plain onnxruntime are
reported.

A faster artifact that computes other numbers is no win: before any timing, each artifact's
outputs on the timed feeds are compared once with plain onnxruntime's, at the tolerance compile's
own artifact check uses, and the verdict is reported next to its timing.
"""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from mlc.artifact import Artifact, load
from mlc.errors import BadInputError, did_you_mean
from mlc.feeds import check_feeds, generate_feeds, role_dims
from mlc.numerics.inputs import InputSpec, candidate_specs, make_inputs, read_npz
from mlc.onnx_io.importer import import_onnx

TVM_TARGETS = ("llvm", "cuda")  # the targets a tuning database applies to (mlc.tuning.TARGETS)
PLAIN = "plain onnxruntime"

Stage = Callable[[str], Any]  # a progress reporter: stage("compiling") returns a context manager


@dataclass
class BenchResult:
    label: str
    median_ms: float
    p10_ms: float
    p90_ms: float
    runs: int


def _summary(label: str, samples: list[float]) -> BenchResult:
    ms = sorted(s * 1e3 for s in samples)
    return BenchResult(label, statistics.median(ms), ms[len(ms) // 10], ms[(len(ms) * 9) // 10], len(ms))


@dataclass
class VariantCheck:
    """An artifact's outputs against plain onnxruntime's on the timed feeds, checked once."""

    verdict: str  # ok | fail | inconclusive (the reference holds NaN/Inf where they differ)
    max_abs_err: float
    detail: str = ""  # the worst output, described, when it failed

    @property
    def ok(self) -> bool:
        return self.verdict != "fail"

    def text(self) -> str:
        if self.verdict == "fail":
            return f"FAILED max abs err {self.max_abs_err:.3g}"
        return "ok" if self.verdict == "ok" else "inconclusive"

    def to_json(self) -> dict[str, Any]:
        finite = bool(np.isfinite(self.max_abs_err))
        return {"ok": self.ok, "verdict": self.verdict, "max_abs_err": float(self.max_abs_err) if finite else None,
                "detail": self.detail or None}


@dataclass
class Variant:
    """One timed artifact: what it was built for and how, its timing and its check."""

    label: str
    target: str
    tuned: bool
    timing: BenchResult
    check: VariantCheck | None  # None: no plain onnxruntime baseline to check against
    tuning: dict[str, Any] | None = None  # the manifest's record of the database (hash and counts)
    inputs: dict[str, str] = field(default_factory=dict)  # the artifact's input types: static or dynamic dims

    def to_json(self, plain: BenchResult | None) -> dict[str, Any]:
        return {"label": self.label, "target": self.target, "tuned": self.tuned,
                "median_ms": self.timing.median_ms, "p10_ms": self.timing.p10_ms, "p90_ms": self.timing.p90_ms,
                "runs": self.timing.runs,
                "speed_vs_onnxruntime": plain.median_ms / self.timing.median_ms if plain else None,
                "check": self.check.to_json() if self.check else None, "inputs": dict(self.inputs),
                **({"tuning_db": self.tuning} if self.tuning is not None else {})}


@dataclass
class BenchReport:
    model: str
    targets: list[str]
    variants: list[Variant]
    plain: BenchResult | None
    cpu: str
    feeds: dict[str, list[int]] = field(default_factory=dict)  # the timed input shapes
    warmup: int = 0


def cpu_line() -> str:
    """`AMD EPYC 9B14, 2 cores, AVX-512`: the model name, the cores this process may use and the
    vector ISA that decides kernel speed here (what a timing is only comparable under)."""
    name, flags = platform.machine() or "unknown CPU", set[str]()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and name == (platform.machine() or "unknown CPU"):
                name = value.strip()
            if key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    isa = "AVX-512 + VNNI" if "avx512_vnni" in flags else "AVX-512" if "avx512f" in flags else \
        "AVX2" if "avx2" in flags else "no AVX2" if flags else platform.machine()
    return f"{name}, {cores} core{'s' if cores != 1 else ''}, {isa}"


def parse_targets(text: str | Sequence[str]) -> list[str]:
    """`llvm,onnxruntime` → ["llvm", "onnxruntime"]: known targets, each once, at least one."""
    from mlc.targets import TARGETS

    names = [t.strip() for t in (text.split(",") if isinstance(text, str) else text)]
    if not names or any(not n for n in names):
        raise BadInputError(f"--target {','.join(names)!r}: expected one target or a comma-separated list, e.g. "
                            "--target llvm,onnxruntime")
    for name in names:
        if name not in TARGETS:
            raise BadInputError(f"--target {name}: unknown target{did_you_mean(name, TARGETS)} "
                                f"(known: {', '.join(TARGETS)})")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise BadInputError(f"--target {','.join(names)}: {', '.join(repeated)} given twice (each target is "
                            "compiled and timed once)")
    return names


def round_order(count: int, round_index: int) -> list[int]:
    """The order the `count` variants run in during round `round_index`.

    Rounds rotate the order by one, so that over `count` rounds each variant runs once in each
    position; every other cycle of `count` rounds runs the rotation reversed, so that each variant
    also follows a different neighbour (whose cache and frequency state it inherits) in turn."""
    if count <= 0:
        return []
    shift = round_index % count
    order = [(shift + i) % count for i in range(count)]
    return order[::-1] if (round_index // count) % 2 else order


def _tuned_label(target: str, record: dict[str, Any]) -> str:
    missing = int(record.get("missing", 0))
    return (f"mlc {target} tuned ({record.get('tuned', 0)} tuned, {record.get('defaulted', 0)} defaulted"
            + (f", {missing} missing)" if missing else ")"))


def _static_shape_conflicts(static: dict[str, tuple[int, ...]], shapes: dict[str, tuple[int, ...]]) -> None:
    for name, dims in static.items():
        if name in shapes and tuple(shapes[name]) != tuple(dims):
            raise BadInputError(f"--input-shape {name}:{','.join(map(str, shapes[name]))} contradicts --static-shape "
                                f"{name}:{','.join(map(str, dims))}: the artifact accepts only the static shape")


def _check_artifact(artifact: Artifact, feeds: dict[str, np.ndarray], expected: dict[str, Any],
                    selections: Any) -> VariantCheck:
    """The artifact's outputs on `feeds` against plain onnxruntime's, through the comparison every
    check of mlc uses, at compile's artifact tolerance (the lossy gate for a quantized or pruned
    artifact, as compile judges those)."""
    from mlc.numerics.compare import compare_outputs
    from mlc.pass_api import Numerics

    lossy = any(p.get("numerics") == Numerics.LOSSY.value for p in artifact.manifest.get("passes", []))
    got = artifact.run(feeds)
    result = compare_outputs(expected, got, Numerics.LOSSY if lossy else Numerics.TOLERANCE, "onnxruntime",
                             selections)
    worst = result.worst
    detail = "; ".join(o.describe() for o in result.outputs if o.verdict == "fail") or \
        (worst.describe() if worst is not None and result.verdict != "ok" else "")
    return VariantCheck(result.verdict, result.max_abs, detail)


def bench_variants(model_or_dir: str | Path, targets: str | Sequence[str] = "onnxruntime", *,
                   original: str | Path | None = None, runs: int = 50, warmup: int = 5,
                   inputs_path: str | None = None, spec: InputSpec | None = None, level: str | None = None,
                   static_shapes: dict[str, tuple[int, ...]] | None = None,
                   tuning_db: str | Path | None = None, stage: Stage | None = None) -> BenchReport:
    """Compile MODEL for each target (an artifact folder is timed as it is), check each artifact
    against plain onnxruntime once, then time them all and plain onnxruntime interleaved."""
    import onnxruntime as ort

    from mlc.driver import PipelineRequest, compile_model
    from mlc.numerics.selection import selection_outputs
    from mlc.runner import CheckOptions

    stage = stage or (lambda _text: nullcontext())
    names = parse_targets(targets)
    static = dict(static_shapes or {})
    spec = spec or InputSpec()
    if runs < 1:
        raise BadInputError(f"--runs {runs}: give at least 1 timed run")
    if warmup < 0:
        raise BadInputError(f"--warmup {warmup}: give 0 or more")
    path = Path(model_or_dir)
    if path.is_dir():
        for flag, given in (("--target", len(names) > 1), ("--tuning-db", tuning_db is not None),
                            ("--static-shape", bool(static))):
            if given:
                raise BadInputError(f"{flag}: {path} is an artifact folder, already compiled; give the .onnx model "
                                    f"to compile {'it for each target' if flag == '--target' else 'with ' + flag}")
    elif not path.exists():
        raise BadInputError(f"{path}: no such file or artifact folder")
    tvm_targets = [t for t in names if t in TVM_TARGETS]
    if tuning_db is not None:
        if not tvm_targets:
            raise BadInputError(f"--tuning-db is for the TVM targets ({' or '.join(TVM_TARGETS)}); --target "
                                f"{','.join(names)} has none")
        if not Path(tuning_db).is_dir():
            raise BadInputError(f"--tuning-db {tuning_db}: no such folder (create one with mlc tune)")
        from mlc.targets import backend_for

        backend_for(tvm_targets[0]).validate_options(tvm_targets[0], {"tuning_db": str(tuning_db)})
    _static_shape_conflicts(static, spec.shapes)
    spec = InputSpec(seed=spec.seed, shapes={**spec.shapes, **static}, ranges=dict(spec.ranges),
                     default_dim=spec.default_dim, dims=dict(spec.dims))

    with tempfile.TemporaryDirectory(prefix="mlc-bench-") as tmp:
        # (label, target, tuned, artifact, tuning record)
        built: list[tuple[str, str, bool, Artifact, dict[str, Any] | None]] = []
        if path.is_dir():
            artifact = load(path)
            target = str(artifact.manifest["target"])
            built.append((f"mlc {target}", target, bool(artifact.manifest.get("backend_options", {}).get("tuning_db")),
                          artifact, artifact.manifest.get("backend_options", {}).get("tuning_db")))
            baseline = Path(original) if original is not None else None
        else:
            baseline = path
            # compile's own checks: seeded, the user's value ranges; fixed dims come as a pass
            checks = CheckOptions(verify="final", inputs_path=inputs_path,
                                  input_spec=InputSpec(seed=spec.seed, ranges=dict(spec.ranges)))
            for index, target in enumerate(names):
                options: list[dict[str, Any]] = [{}]
                if tuning_db is not None and target in TVM_TARGETS:
                    options.append({"tuning_db": str(tuning_db)})
                for number, backend_options in enumerate(options):
                    tuned = bool(backend_options)
                    with stage(f"compiling for {target}{' with the tuning database' if tuned else ''}"):
                        request = PipelineRequest(target=target, level=level, static_shapes=static)
                        folder, _ = compile_model(path, request, Path(tmp) / f"{index}-{number}-{target}",
                                                  checks=checks, backend_options=backend_options or None)
                    artifact = load(folder)
                    record = artifact.manifest.get("backend_options", {}).get("tuning_db") if tuned else None
                    label = _tuned_label(target, record or {}) if tuned else f"mlc {target}"
                    built.append((label, target, tuned, artifact, record))

        graph = import_onnx(baseline) if baseline is not None else None
        if inputs_path:
            feeds = read_npz(inputs_path)
        elif graph is not None:  # the first shape set the checks use: dims above 1 by role
            feeds = make_inputs(graph, next(candidate_specs(graph, spec)))
        else:
            inputs = built[0][3].manifest["inputs"]
            feeds, _ = generate_feeds(inputs, seed=spec.seed, shapes=spec.shapes, dims=role_dims(inputs))

        calls: list[Callable[[], Any]] = []
        checked_feeds: list[dict[str, np.ndarray]] = []
        for _, _, _, artifact, _ in built:
            wanted = set(artifact.input_names)
            checked, _ = check_feeds(artifact.manifest["inputs"], {k: v for k, v in feeds.items() if k in wanted})
            checked_feeds.append(checked)
            calls.append(partial(artifact.runner.run, checked))

        verdicts: list[VariantCheck | None] = [None] * len(built)
        if baseline is not None and graph is not None:
            session_options = ort.SessionOptions()
            session_options.log_severity_level = 4  # fatal only: errors reach us as exceptions, logs never stderr
            session = ort.InferenceSession(str(baseline), session_options, providers=["CPUExecutionProvider"])
            plain_feeds = {k: v for k, v in feeds.items() if k in {i.name for i in session.get_inputs()}}
            output_names = [o.name for o in session.get_outputs()]
            expected = dict(zip(output_names, session.run(None, plain_feeds), strict=True))
            selections = selection_outputs(graph)
            with stage("checking each artifact against plain onnxruntime"):
                verdicts = [_check_artifact(artifact, checked_feeds[i], expected, selections)
                          for i, (_, _, _, artifact, _) in enumerate(built)]
            calls.append(partial(session.run, None, plain_feeds))
        else:  # an artifact run once untimed, so that a backend's refusal is one line, not a timing
            for (_, _, _, artifact, _), checked in zip(built, checked_feeds, strict=True):
                artifact.run(checked)

        samples: list[list[float]] = [[] for _ in calls]
        with stage(f"timing {len(calls)} variants interleaved, {runs} runs each"):
            for round_index in range(warmup):
                for i in round_order(len(calls), round_index):
                    calls[i]()
            for round_index in range(runs):
                for i in round_order(len(calls), round_index):
                    started = time.perf_counter()
                    calls[i]()
                    samples[i].append(time.perf_counter() - started)

        variants = [Variant(label, target, tuned, _summary(label, samples[i]), verdicts[i], record,
                            {v["name"]: v["type"] for v in artifact.manifest["inputs"] if not v.get("default")})
                    for i, (label, target, tuned, artifact, record) in enumerate(built)]
        plain = _summary(PLAIN, samples[-1]) if len(calls) > len(built) else None
        shown = feeds if graph is not None else checked_feeds[0]
        return BenchReport(str(model_or_dir), [v.target for v in variants] if path.is_dir() else names, variants,
                           plain, cpu_line(), {k: list(np.shape(v)) for k, v in shown.items()}, warmup)


def bench(model_or_dir: str | Path, target: str = "onnxruntime", *, original: str | Path | None = None,
          runs: int = 50, warmup: int = 5, inputs_path: str | None = None, spec: InputSpec | None = None,
          level: str | None = None) -> tuple[BenchResult, BenchResult | None, str]:
    """One target: (artifact timing, plain onnxruntime timing or None, the artifact's target), the
    shape `mlc.api.bench` returns."""
    report = bench_variants(model_or_dir, target, original=original, runs=runs, warmup=warmup,
                            inputs_path=inputs_path, spec=spec, level=level)
    first = report.variants[0]
    return first.timing, report.plain, first.target
