"""The quantization doctor: per-tensor SQNR / max error / cosine between a float graph and its
QDQ version, worst first, and the per-node ranking the accuracy search follows."""

from __future__ import annotations

import math

import numpy as np

from mlc.onnx_io.importer import import_onnx
from mlc.quantize.doctor import diagnose, quantized_nodes, ranking
from tests.quantize.qdq_models import activation_ranges, float_chain, outlier_chain, qdq_chain


def _graphs(model, keep=()):
    x = np.random.default_rng(1).normal(0, 1, (32, 16)).astype(np.float32)
    quant = qdq_chain(model, activation_ranges(model, x), keep)
    return import_onnx(model), import_onnx(quant), {"x": x}


def test_well_behaved_chain_has_high_sqnr_everywhere() -> None:
    rng = np.random.default_rng(0)
    model = float_chain([rng.normal(0, 0.5, (16, 16)).astype(np.float32) for _ in range(3)])
    float_graph, quant_graph, feeds = _graphs(model)
    report = diagnose(float_graph, quant_graph, feeds)
    assert sorted(quantized_nodes(quant_graph, float_graph)) == ["mm1", "mm2", "mm3"]
    roles = {(t.name, t.role) for t in report.tensors}
    assert {("x", "input"), ("W1", "weight"), ("h1", "output"), ("h1", "input"), ("y", "output")} <= roles
    assert all(t.sqnr_db > 25 and t.cosine > 0.995 for t in report.tensors), report.lines()
    sqnrs = [t.sqnr_db for t in report.tensors]
    assert sqnrs == sorted(sqnrs), "worst first"
    assert report.to_json()["tensors"][0]["sqnr_db"] == sqnrs[0]


def test_outlier_activation_is_found_and_its_reader_ranked_first() -> None:
    model, _ = outlier_chain()
    float_graph, quant_graph, feeds = _graphs(model)
    report = diagnose(float_graph, quant_graph, feeds)
    worst = report.tensors[0]
    # what mm2 reads of h1 after the u8 round trip: the ordinary values are crushed by the outlier's scale
    assert worst.sqnr_db < 10, report.lines()
    assert ranking(report)[0] == "mm2", [(n.node, n.introduced) for n in report.nodes]
    h1_read = next(t for t in report.tensors if t.name == "h1" and t.role == "input")
    h2 = next(t for t in report.tensors if t.name == "h2" and t.role == "output")
    assert h2.sqnr_db < 10 and h2.max_abs > 0.1
    assert h1_read.max_abs > 1.0  # a u8 step of the outlier's range
    lines = "\n".join(report.lines())
    assert "most error introduced by: mm2" in lines and "SQNR dB" in lines


def test_keeping_the_reader_in_float_repairs_the_output() -> None:
    model, _ = outlier_chain()
    float_graph, quant_graph, feeds = _graphs(model, keep=["mm2"])
    report = diagnose(float_graph, quant_graph, feeds)
    assert "mm2" not in quantized_nodes(quant_graph, float_graph)
    y = next(t for t in report.tensors if t.name == "y" and t.role == "output")
    assert y.sqnr_db > 20 and y.cosine > 0.99


def test_nothing_shared_is_a_note_not_a_crash() -> None:
    rng = np.random.default_rng(0)
    model = float_chain([rng.normal(0, 0.5, (16, 16)).astype(np.float32)])
    graph = import_onnx(model)
    report = diagnose(graph, graph.clone(), {"x": np.ones((2, 16), np.float32)})
    assert not report.tensors and report.notes and "no quantized node" in report.lines()[0]
    assert math.isfinite(len(report.to_json()["notes"]))
