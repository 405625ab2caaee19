"""-O2 on the real PyTorch exports of benchmarks/bench_real_exports.py: the numbers hold for several
batch and sequence sizes (the dynamic axes stay dynamic), and the node counts stay at or below
what the pipeline reached when these passes landed (onnxsim 0.8.1 / onnxslim 0.1.98 in comments)."""

from __future__ import annotations

import pytest

from mlc.ir.types import TensorType
from mlc.pass_manager import PassManager
from mlc.pipelines import build_pipeline
from tests.passes.real_exports import ALL, assert_export_numbers, imported

# model: -O2 main-graph nodes (onnxsim, onnxslim)
EXPECTED = {
    "vit-ts": 68,  # 100, 79
    "vit-dynamo": 65,  # 68, 70
    "gpt2-ts": 99,  # 221, 218
    "gpt2-dynamo": 93,  # 108, 109
    "bert-ts": 99,  # 157, 112
    "bert-dynamo": 91,  # 92, 94
    "lstm-ts": 10,  # 10, 21
    "lstm-dynamo": 10,  # 11, 17
    "bilstm-ts": 11,  # 11, 18
    "bilstm-dynamo": 11,  # 11, 16
    "gru-ts": 9,  # 9, 16
    "gru-dynamo": 9,  # 11, 14
}


@pytest.mark.parametrize("name", ALL)
def test_o2_keeps_the_numbers_and_the_counts(name: str) -> None:
    graph = imported(name)
    inputs = {v.name: v.type for v in graph.inputs}
    PassManager(build_pipeline("O2")).run(graph)
    assert len(graph) <= EXPECTED[name], (name, len(graph))
    assert {v.name: v.type for v in graph.inputs} == inputs  # the interface keeps its dynamic axes
    for value in graph.inputs:
        assert isinstance(value.type, TensorType) and any(isinstance(d, str) for d in value.type.shape or ())
    assert_export_numbers(name, graph)
