"""Acceptance: lossless round trip on every model of the onnx wheel's test data.

For each suite, every case that onnxruntime runs must give bitwise-identical outputs after
import → export, and every case must keep print/parse/print a fixpoint and
import(export(g)) structurally equal to g. The counts are printed (pytest -s shows them).
"""

from __future__ import annotations

import os
from collections import Counter

import onnx
import pytest

from tests.onnx_io import roundtrip

# Floors that keep the test honest: if discovery silently finds nothing, the test fails.
MIN_RUNNABLE = {"node": 1400, "simple": 15, "pytorch-converted": 55, "pytorch-operator": 20, "light": 9}


def _cases(suite: str) -> list:
    try:
        return roundtrip.cases((suite,))
    except FileNotFoundError as missing:
        pytest.skip(f"conformance harness not found: {missing}")


@pytest.mark.parametrize("suite", roundtrip.SUITES)
def test_round_trip_is_lossless(suite: str) -> None:
    counts: Counter[str] = Counter()
    problems = []
    for case in _cases(suite):
        outcome = roundtrip.check(case)
        counts[outcome.status] += 1
        if outcome.status in ("different", "mlc-error"):
            problems.append(f"{case.key}: {outcome.status}: {outcome.reason}")
        if outcome.structure:
            problems.append(f"{case.key}: structure: {outcome.structure}")
    runnable = counts["identical"] + counts["different"] + counts["mlc-error"]
    print(f"\n{suite}: {sum(counts.values())} cases, {runnable} ORT-runnable, {counts['identical']} identical")
    assert not problems, "\n".join(problems[:50])
    assert runnable >= MIN_RUNNABLE[suite]


def test_the_check_catches_a_changed_export(monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison is strict: one flipped exponent bit in an exported weight is reported."""
    import mlc

    real_export = mlc.export_onnx

    def perturbed(graph):  # type: ignore[no-untyped-def]
        model = real_export(graph)
        for tensor in model.graph.initializer:
            if tensor.data_type == onnx.TensorProto.FLOAT and tensor.raw_data:
                raw = bytearray(tensor.raw_data)
                raw[3] ^= 0x20  # an exponent bit of the first weight
                tensor.raw_data = bytes(raw)
                break
        return model

    case = next(c for c in _cases("pytorch-converted") if c.name == "test_Linear_no_bias")
    assert roundtrip.check(case).status == "identical"
    monkeypatch.setattr(mlc, "export_onnx", perturbed)
    outcome = roundtrip.check(case)
    assert outcome.status == "different", outcome
    assert os.path.exists(case.path)
