"""Real PyTorch exports for the pass tests: the models of benchmarks/bench_real_exports.py
(transformers ViT, GPT-2, BERT; LSTM and GRU classifiers; TorchScript and dynamo exporters),
built from small configs with seeded weights and cached in ~/.cache/mlc-simplify/. Tests that use
them skip where torch or transformers is not installed.

`assert_export_numbers` runs a rewritten graph and the original under onnxruntime for several
batch and sequence sizes: a rewrite that baked one size in fails on the others."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from mlc.ir.core import Graph
from mlc.numerics.compare import FAIL, compare_outputs
from mlc.numerics.reference import run_graph
from mlc.onnx_io.importer import import_onnx
from mlc.pass_api import Numerics
from mlc.testing import run_pass

ROOT = Path(__file__).resolve().parents[2]
SIZES = ((1, 5), (3, 11))  # (batch, sequence) pairs every check runs


@functools.cache
def _bench() -> Any:
    spec = importlib.util.spec_from_file_location("bench_real_exports", ROOT / "benchmarks" / "bench_real_exports.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def export_path(name: str) -> Path:
    """The cached export `FAMILY-EXPORTER` (e.g. "vit-ts", "lstm-dynamo"), made on first use."""
    pytest.importorskip("torch")
    if not name.startswith(("lstm", "bilstm", "gru")):
        pytest.importorskip("transformers")
    pytest.importorskip("onnxscript")
    return Path(_bench().model_path(name))


def imported(name: str, passes: tuple[str, ...] = ()) -> Graph:
    """The export imported, with `passes` run in order."""
    graph = import_onnx(export_path(name))
    for spec in passes:
        run_pass(spec, graph)
    return graph


def _feeds(path: Path, batch: int, seq: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {}
    for value in session.get_inputs():
        dims = [batch if d == "batch" else seq if d == "sequence" else d for d in value.shape]
        if value.type == "tensor(int64)":
            high = 2 if value.name == "attention_mask" else 100
            array = rng.integers(0, high, dims).astype(np.int64)
            if value.name == "attention_mask":
                array[:, 0] = 1
        else:
            array = rng.standard_normal(dims).astype(np.float32)
        feeds[value.name] = array
    return feeds


def assert_export_numbers(name: str, graph: Graph, numerics: Numerics = Numerics.TOLERANCE) -> None:
    """`graph` computes what onnxruntime computes on the export, for every size in SIZES."""
    path = export_path(name)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    rng = np.random.default_rng(0)
    for batch, seq in SIZES:
        feeds = _feeds(path, batch, seq, rng)
        expected = dict(zip(names, session.run(None, feeds), strict=True))
        got = run_graph(graph, feeds)
        result = compare_outputs(expected, {k: got[k] for k in names}, numerics, "onnxruntime")
        assert result.verdict != FAIL, f"{name} batch={batch} seq={seq}: " + "; ".join(
            o.describe() for o in result.outputs if o.verdict != "ok")


def op_count(graph: Graph, op: str) -> int:
    return sum(1 for n in graph if n.op_type == op)


ALL = [f"{family}-{exporter}" for family in ("vit", "gpt2", "bert", "lstm", "bilstm", "gru")
       for exporter in ("ts", "dynamo")]
