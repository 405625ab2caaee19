"""CI slice of the differential fuzzer: fixed seeds compiled at -O3 and judged against onnxruntime.

`benchmarks/fuzz.py --minutes N` runs the long campaign; this is the few-minute part CI runs:
60 seeds through the onnxruntime target and 8 through llvm (TVM builds take seconds each), chosen
for what they hold (attention, embeddings, skip/bias GELU, conv+BN+activation, flattened Gemm,
dynamic reshapes...). Zero mismatches and zero crashes; a refusal only for an op TVM's frontend
lacks (Loop).
"""

from __future__ import annotations

import importlib.util

import pytest

from mlc.fuzzing import check_case, generate, validate

ORT_SEEDS = range(60)
LLVM_SEEDS = (48, 20, 14, 69, 93, 75, 47, 52)
EXPECTED_REFUSALS = ("cannot convert Loop",)


def _run(seed: int, target: str) -> None:
    case = generate(seed)
    assert validate(case) is None, f"seed {seed}: the generator made an invalid case: {validate(case)}"
    verdict = check_case(case, target, level=3)
    reproduce = f"python benchmarks/fuzz.py --seed {seed} --target {target}"
    if verdict.kind == "refusal":
        assert any(r in verdict.detail for r in EXPECTED_REFUSALS), f"{reproduce}: refused: {verdict.detail}"
        return
    assert verdict.kind == "ok", f"{reproduce}: {verdict.kind}: {verdict.detail} {verdict.triage}"


@pytest.mark.parametrize("seed", ORT_SEEDS)
def test_onnxruntime_slice(seed: int) -> None:
    _run(seed, "onnxruntime")


@pytest.mark.skipif(importlib.util.find_spec("tvm") is None,
                    reason="apache-tvm is not installed (pip install 'mlc[tvm]')")
@pytest.mark.parametrize("seed", LLVM_SEEDS)
def test_llvm_slice(seed: int) -> None:
    _run(seed, "llvm")
