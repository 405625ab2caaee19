"""A fuzzing campaign: seeds one after another until a deadline, each validated, then compiled and
judged for every target; failures minimized and saved with their reproducer.

Everything heavy runs in a `Worker` child. Per seed: a `validate` job (generate, onnx checker,
onnxruntime), then one `check` job per target; a `mismatch` or `crash` is minimized (every
candidate one more `check` job) and written to `out/seed-N-TARGET/` as `original.onnx`,
`minimized.onnx` (each with its feeds `.npz`) and `verdict.json`. Refusals are grouped by their
message with names and numbers blanked, and only counted (`minimize_refusals` minimizes them too).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlc.fuzzing.case import Case
from mlc.fuzzing.generator import GeneratorConfig, generate
from mlc.fuzzing.minimize import minimize
from mlc.fuzzing.oracle import CRASH, MISMATCH, REFUSAL, Verdict, normalize_message
from mlc.fuzzing.worker import Worker


@dataclass
class Settings:
    targets: Sequence[str] = ("onnxruntime", "llvm")
    level: int = 3
    verify: str = "none"
    avoid: frozenset[str] = frozenset()
    minimize: bool = True
    minimize_refusals: bool = False
    minimize_checks: int = 100
    minimize_seconds: float = 300.0
    timeout: float = 600.0


@dataclass
class Failure:
    seed: int
    target: str
    verdict: dict[str, Any]
    nodes: int
    minimized_nodes: int | None = None
    folder: str | None = None
    avoid: tuple[str, ...] = ()  # the generator's avoided known bugs: part of what the seed means

    def reproducer(self) -> str:
        avoid = f" --avoid {','.join(self.avoid)}" if self.avoid else ""
        return f"python benchmarks/fuzz.py --seed {self.seed} --target {self.target}{avoid}"


@dataclass
class Summary:
    seeds: int = 0
    valid: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    verdicts: dict[str, Counter[str]] = field(default_factory=dict)
    refusals: dict[str, Counter[str]] = field(default_factory=dict)
    refusal_seeds: dict[str, dict[str, list[int]]] = field(default_factory=dict)  # the first few per message
    failures: list[Failure] = field(default_factory=list)
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0
    first_seed: int = 0
    last_seed: int = -1
    features: Counter[str] = field(default_factory=Counter)

    def to_json(self) -> dict[str, Any]:
        return {"seeds": self.seeds, "seed_range": [self.first_seed, self.last_seed], "valid": self.valid,
                "skipped": dict(self.skipped), "verdicts": {t: dict(c) for t, c in self.verdicts.items()},
                "refusals": {t: dict(c) for t, c in self.refusals.items()},
                "refusal_seeds": self.refusal_seeds,
                "failures": [{**f.__dict__, "reproducer": f.reproducer()} for f in self.failures],
                "cpu_seconds": round(self.cpu_seconds, 1), "wall_seconds": round(self.wall_seconds, 1),
                "features": dict(self.features)}


def run_campaign(seeds: Sequence[int] | range, settings: Settings, out: Path, *, deadline: float | None = None,
                 log: Callable[[str], None] = print) -> Summary:
    """Run `seeds` in order until `deadline` (time.monotonic()); failures saved under `out`."""
    started, cpu_start = time.monotonic(), time.process_time()
    summary = Summary(first_seed=seeds[0] if len(seeds) else 0)
    reported = started
    with Worker(settings.timeout) as worker:
        for seed in seeds:
            if deadline is not None and time.monotonic() >= deadline:
                break
            if time.monotonic() - reported >= 60:
                reported = time.monotonic()
                counts = "; ".join(f"{t} " + ", ".join(f"{k} {v}" for k, v in sorted(c.items()))
                                   for t, c in summary.verdicts.items())
                log(f"[{(reported - started) / 60:.1f} min] seed {seed}: {summary.valid} valid; {counts}")
            summary.seeds += 1
            summary.last_seed = seed
            answer = worker.call({"op": "validate", "seed": seed, "avoid": sorted(settings.avoid)})
            summary.cpu_seconds += answer.get("cpu", 0.0)
            if not answer.get("valid"):
                reason = answer.get("reason") or answer.get("error") or "?"
                summary.skipped[normalize_message(reason)] += 1
                continue
            summary.valid += 1
            summary.features.update(answer.get("features", []))
            for target in settings.targets:
                verdict = _check(worker, summary, seed, target, settings)
                summary.verdicts.setdefault(target, Counter())[verdict.kind] += 1
                if verdict.kind == REFUSAL:
                    message = normalize_message(verdict.detail)
                    summary.refusals.setdefault(target, Counter())[message] += 1
                    seeds_of = summary.refusal_seeds.setdefault(target, {}).setdefault(message, [])
                    if len(seeds_of) < 5:
                        seeds_of.append(seed)
                if verdict.kind in (MISMATCH, CRASH) or (verdict.kind == REFUSAL and settings.minimize_refusals):
                    failure = Failure(seed, target, verdict.to_json(), answer.get("nodes", 0),
                                      avoid=tuple(sorted(settings.avoid)))
                    log(f"seed {seed} {target}: {verdict.kind}: {verdict.detail}")
                    _record(worker, summary, failure, settings, out, log)
                    summary.failures.append(failure)
                    log(f"  reproduce: {failure.reproducer()}" + (f"  (saved in {failure.folder})"
                                                                   if failure.folder else ""))
    summary.wall_seconds = time.monotonic() - started
    summary.cpu_seconds += time.process_time() - cpu_start + worker.lost_cpu
    return summary


def _check(worker: Worker, summary: Summary, seed: int, target: str, settings: Settings,
           case: Case | None = None, triage: bool = True) -> Verdict:
    job: dict[str, Any] = {"op": "check", "seed": seed, "target": target, "level": settings.level,
                           "verify": settings.verify, "avoid": sorted(settings.avoid), "triage": triage}
    if case is not None:
        job.update(model=case.model_bytes(), feeds=case.feeds)
    answer = worker.call(job)
    summary.cpu_seconds += answer.get("cpu", 0.0)
    if "error" in answer:
        return Verdict(CRASH, target, f"fuzzer fault: {answer['error']}")
    return Verdict.from_json(answer["verdict"])


def _record(worker: Worker, summary: Summary, failure: Failure, settings: Settings, out: Path,
            log: Callable[[str], None]) -> None:
    case = generate(failure.seed, GeneratorConfig(avoid=settings.avoid))
    folder = out / f"seed-{failure.seed}-{failure.target}"
    case.save(folder, "original")
    failure.folder = str(folder)
    signature = Verdict.from_json(failure.verdict).signature
    smallest = case
    if settings.minimize:
        def fails(candidate: Case) -> bool:
            verdict = _check(worker, summary, failure.seed, failure.target, settings, candidate, triage=False)
            return verdict.signature == signature

        smallest = minimize(case, fails, max_checks=settings.minimize_checks, seconds=settings.minimize_seconds)
        failure.minimized_nodes = smallest.node_count
        smallest.save(folder, "minimized")
        log(f"  minimized: {case.node_count} -> {smallest.node_count} nodes")
    (folder / "verdict.json").write_text(json.dumps({**failure.verdict, "seed": failure.seed,
                                                     "reproducer": failure.reproducer(),
                                                     "minimized_nodes": failure.minimized_nodes}, indent=2) + "\n")
