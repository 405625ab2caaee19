"""Lossless round-trip check on models nobody here wrote: the onnx wheel's test data.

For each case (node cases of onnx's collector, and the simple, pytorch-converted,
pytorch-operator and light models), the original model and `export_onnx(import_onnx(model))`
run under onnxruntime on the case's own inputs; the outputs must be bitwise identical wherever
onnxruntime runs the original. The cases are generated at test time by the conformance harness
in `../shared/conformance/` (never committed).

Run as a script for the counts: `python tests/onnx_io/roundtrip.py [--filter REGEX]`.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

REPO = Path(__file__).resolve().parents[2]
HARNESS = REPO.parent / "shared" / "conformance"
SUITES = ("node", "simple", "pytorch-converted", "pytorch-operator", "light")


def harness() -> tuple[Any, Any]:
    """The conformance harness modules (case discovery, value loading, the plain ORT runner)."""
    if not (HARNESS / "conformance.py").exists():
        raise FileNotFoundError(f"the conformance harness is not at {HARNESS}")
    if str(HARNESS) not in sys.path:
        sys.path.insert(0, str(HARNESS))
    import anchor_backends
    import conformance

    return conformance, anchor_backends


def cases(suites: tuple[str, ...] = SUITES) -> list[Any]:
    conformance, _ = harness()
    cache = conformance.default_cache_dir()
    conformance.ensure_data(cache)
    return conformance.discover(cache, list(suites))


@dataclass
class Outcome:
    status: str  # identical | different | not-runnable | mlc-error
    reason: str = ""
    structure: str = ""  # empty when text fixpoint and import(export(g)) == g both hold


def structural(model_path: str) -> str:
    """'' when print/parse/print is a fixpoint and import(export(g)) is structurally equal to g."""
    import mlc

    try:
        graph = mlc.import_onnx(model_path)
        mlc.verify(graph)
        text = mlc.print_ir(graph)
        again = mlc.print_ir(mlc.parse_ir(text))
        if again != text:
            return "print/parse/print is not a fixpoint"
        full = mlc.print_ir(graph, max_elements=None)
        reparsed = mlc.parse_ir(full)
        mlc.verify(reparsed)
        mlc.assert_graph_equal(graph, reparsed)
        mlc.assert_graph_equal(graph, mlc.import_onnx(mlc.export_onnx(graph)))
    except Exception as error:  # noqa: BLE001 - any failure here is reported, not raised
        return f"{type(error).__name__}: {str(error).splitlines()[0][:300] if str(error) else ''}"
    return ""


def _same(a: Any, b: Any) -> str | None:
    """None when bitwise identical, else why not."""
    if a is None or b is None:
        return None if a is None and b is None else "one output is None"
    if isinstance(a, dict):
        if not isinstance(b, dict) or a.keys() != b.keys():
            return "map keys differ"
        for key in a:
            why = _same(a[key], b[key])
            if why:
                return why
        return None
    if isinstance(a, list):
        if not isinstance(b, list) or len(a) != len(b):
            return "sequence lengths differ"
        for x, y in zip(a, b, strict=True):
            why = _same(x, y)
            if why:
                return why
        return None
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return f"{a.dtype}{a.shape} vs {b.dtype}{b.shape}"
    if a.dtype == object:
        return None if a.tolist() == b.tolist() else "string values differ"
    if np.ascontiguousarray(a).tobytes() != np.ascontiguousarray(b).tobytes():
        return "values differ bitwise"
    return None


def check(case: Any) -> Outcome:
    outcome = _check_numbers(case)
    outcome.structure = structural(os.path.join(case.path, "model.onnx"))
    return outcome


def _check_numbers(case: Any) -> Outcome:
    import mlc

    conformance, anchors = harness()
    model_path = os.path.join(case.path, "model.onnx")
    original = onnx.load(model_path)
    data_sets = sorted(glob.glob(os.path.join(case.path, "test_data_set_*")))
    feeds = []
    for data_set in data_sets:
        n_in = len(glob.glob(os.path.join(data_set, "input_*.pb")))
        feeds.append([conformance._load_value(os.path.join(data_set, f"input_{i}.pb"),
                                              original.graph.input[i].type) for i in range(n_in)])
    try:
        reference = anchors.OrtBackend.prepare(original)
        expected = [reference.run(inputs) for inputs in feeds]
    except Exception as error:  # noqa: BLE001 - any failure here is reported, not raised
        return Outcome("not-runnable", str(error).splitlines()[0][:200] if str(error) else type(error).__name__)
    try:
        graph = mlc.import_onnx(model_path)
        mlc.verify(graph)
        exported = mlc.export_onnx(graph)
    except Exception as error:  # noqa: BLE001 - any failure here is reported, not raised
        return Outcome("mlc-error", f"{type(error).__name__}: {str(error).splitlines()[0][:300]}")
    try:
        candidate = anchors.OrtBackend.prepare(exported)
        got = [candidate.run(inputs) for inputs in feeds]
    except Exception as error:  # noqa: BLE001 - any failure here is reported, not raised
        return Outcome("different", f"exported model fails in onnxruntime: {str(error).splitlines()[0][:300]}")
    for i, (want, have) in enumerate(zip(expected, got, strict=True)):
        if len(want) != len(have):
            return Outcome("different", f"data set {i}: {len(want)} vs {len(have)} outputs")
        for k, (x, y) in enumerate(zip(want, have, strict=True)):
            why = _same(x, y)
            if why:
                return Outcome("different", f"data set {i} output {k}: {why}")
    return Outcome("identical")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--filter", default="")
    parser.add_argument("--suites", default=",".join(SUITES))
    args = parser.parse_args()
    selected = [c for c in cases(tuple(args.suites.split(","))) if re.search(args.filter, c.key)]
    counts: Counter[str] = Counter()
    per_suite: dict[str, Counter[str]] = {}
    started = time.perf_counter()
    for case in selected:
        outcome = check(case)
        counts[outcome.status] += 1
        per_suite.setdefault(case.suite, Counter())[outcome.status] += 1
        if outcome.status in ("different", "mlc-error"):
            print(f"{case.key}: {outcome.status}: {outcome.reason}", flush=True)
        if outcome.structure:
            counts["structure-broken"] += 1
            print(f"{case.key}: structure: {outcome.structure}", flush=True)
    for suite, c in per_suite.items():
        print(f"{suite}: {sum(c.values())} cases, {dict(c)}")
    runnable = counts["identical"] + counts["different"] + counts["mlc-error"]
    print(f"TOTAL: {len(selected)} cases, {runnable} ORT-runnable, {counts['identical']} identical, "
          f"{counts['different']} different, {counts['mlc-error']} mlc errors, "
          f"{counts['structure-broken']} with a broken text or structural round trip "
          f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
