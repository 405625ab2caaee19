"""Latency of a graph before and after pruning, on the targets it will run on, measured side by side.

Each graph is built into a throw-away artifact for each target (the same backend code path as
`mlc compile`, so TVM's `llvm` build is the real one) and the runners take turns: 2 untimed runs
then a block of 5 timed ones, round after round, until every variant has `runs` timings; the
median is reported. Taking turns matters on a small, shared machine: timing one variant's runs all
together, then the other's, measures the machine's mood as much as the model.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mlc.ir.core import Graph

Runner = Callable[[dict[str, np.ndarray]], Any]


def _runner(graph: Graph, target: str, folder: Path) -> Runner:
    from mlc.artifact import load
    from mlc.driver import build_artifact

    build_artifact(graph, target, folder)
    artifact = load(folder)
    return artifact.runner.run


def interleaved_medians(calls: Mapping[str, Callable[[], Any]], runs: int, block: int = 5) -> dict[str, float]:
    """Median milliseconds of each call, the calls taking turns in blocks (module docstring)."""
    samples: dict[str, list[float]] = {name: [] for name in calls}
    while min(len(s) for s in samples.values()) < runs:
        for name, call in calls.items():
            call()
            call()
            for _ in range(block):
                started = time.perf_counter()
                call()
                samples[name].append((time.perf_counter() - started) * 1e3)
    return {name: statistics.median(s) for name, s in samples.items()}


def before_after(before: Graph, after: Graph, feeds: dict[str, np.ndarray], targets: Sequence[str],
                 runs: int = 30) -> dict[str, dict[str, float]]:
    """{target: {"before_ms", "after_ms", "ratio"}} with ratio = after / before (medians)."""
    result: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="mlc-latency-") as tmp:
        for target in targets:
            calls = {}
            for name, graph in (("before", before), ("after", after)):
                run = _runner(graph, target, Path(tmp) / f"{target}-{name}")
                wanted = {v.name: feeds[v.name] for v in graph.inputs if v.const is None and v.name in feeds}
                calls[name] = (lambda r, w: (lambda: r(w)))(run, wanted)
            medians = interleaved_medians(calls, runs)
            result[target] = {"before_ms": round(medians["before"], 4), "after_ms": round(medians["after"], 4),
                              "ratio": round(medians["after"] / medians["before"], 4)}
    return result
