"""The accuracy-budget search: plain min-max misses the budget on a graph with an outlier
activation; the search keeps the one node that reads it in float, meets the budget, lists it."""

from __future__ import annotations

import numpy as np
import pytest

from mlc.errors import BadInputError
from mlc.onnx_io.importer import import_onnx
from mlc.quantize.search import Budget, EvalData, Evaluator, load_eval_data, parse_budget, search_keep_float
from tests.quantize.qdq_models import activation_ranges, float_chain, outlier_chain, qdq_chain


def _setup(samples: int = 200, labels: bool = True, model=None):
    model = model if model is not None else outlier_chain()[0]
    rng = np.random.default_rng(3)
    calibration = rng.normal(0, 1, (64, 16)).astype(np.float32)
    ranges = activation_ranges(model, calibration)
    float_graph = import_onnx(model)
    x = rng.normal(0, 1, (samples, 16)).astype(np.float32)
    data = EvalData({"x": x})
    if labels:
        from mlc.quantize.search import run_batched

        data.labels = run_batched(float_graph, data.feeds)["y"].argmax(-1).astype(np.int64)
    quantizations: list[list[str]] = []

    def quantize(keep):
        quantizations.append(list(keep))
        return import_onnx(qdq_chain(model, ranges, keep))

    return float_graph, quantize, data, quantizations


def test_search_keeps_the_outlier_reader_in_float_and_meets_the_budget() -> None:
    float_graph, quantize, data, tried = _setup()
    evaluator = Evaluator(float_graph, data, parse_budget("2"))
    assert evaluator.budget == Budget("points", 2.0) and evaluator.float_score == 100.0
    all_int8 = evaluator.score(quantize([]))
    assert not evaluator.met(all_int8) and all_int8 < 60, "plain min-max must miss the budget"
    result = search_keep_float(float_graph, quantize, evaluator)
    assert result.met and result.keep_float == ["mm2"], result.trials
    assert result.final_score >= 98.0 and result.quantized_score == all_int8
    assert result.ranked[0] == "mm2"
    assert result.exclude_flag() == "--exclude-nodes mm2"
    as_json = result.to_json()
    assert as_json["keep_float"] == ["mm2"] and as_json["reproduce"] == "--exclude-nodes mm2"
    assert as_json["trials"][0]["keep_float"] == [] and as_json["trials"][0]["met"] is False
    assert "met" in result.describe() and "mm2" in result.describe()


def test_a_tighter_budget_keeps_more_and_every_smaller_set_tried_misses() -> None:
    float_graph, quantize, data, _ = _setup()
    evaluator = Evaluator(float_graph, data, parse_budget("points:0.5"))
    result = search_keep_float(float_graph, quantize, evaluator)
    assert result.met and result.keep_float[0] == "mm2" and float(100.0 - result.final_score) <= 0.5
    for trial in result.trials:
        if set(trial["keep_float"]) < set(result.keep_float):
            assert not trial["met"], trial


def test_cosine_budget_without_labels() -> None:
    float_graph, quantize, data, _ = _setup(labels=False)
    evaluator = Evaluator(float_graph, data, parse_budget("0.999"))
    assert evaluator.budget.kind == "cosine"
    result = search_keep_float(float_graph, quantize, evaluator)
    assert result.met and "mm2" in result.keep_float and result.final_score >= 0.999
    assert result.quantized_score < 0.9


def test_a_budget_met_by_plain_int8_keeps_nothing_in_float() -> None:
    rng = np.random.default_rng(0)
    model = float_chain([rng.normal(0, 0.5, (16, 16)).astype(np.float32) for _ in range(3)])
    float_graph, quantize, data, tried = _setup(model=model)
    evaluator = Evaluator(float_graph, data, parse_budget("cosine:0.99"))
    result = search_keep_float(float_graph, quantize, evaluator)
    assert result.met and result.keep_float == [] and len(tried) == 1


def test_metric_callback_budget() -> None:
    float_graph, quantize, data, _ = _setup(labels=False)

    def negative_mse(outputs):
        return -float(np.mean((outputs["y"] - reference["y"]) ** 2))

    from mlc.quantize.search import run_batched

    reference = run_batched(float_graph, data.feeds)
    evaluator = Evaluator(float_graph, data, parse_budget("1.0"), metric=negative_mse)
    assert evaluator.budget.kind == "metric" and evaluator.float_score == 0.0
    result = search_keep_float(float_graph, quantize, evaluator)
    assert result.met and result.keep_float == ["mm2"]


def test_budget_parsing_and_eval_data_errors(tmp_path) -> None:
    assert parse_budget("points:0.25") == Budget("points", 0.25)
    for bad in ("fast", "points:x", "speed:1", "-1", "nan"):
        with pytest.raises(BadInputError, match="--accuracy-budget"):
            parse_budget(bad)
    with pytest.raises(BadInputError, match="in \\(0, 1\\]"):
        Budget("auto", 2.0).resolve(has_labels=False, has_metric=False)
    with pytest.raises(BadInputError, match="no `labels`"):
        Budget("points", 1.0).resolve(has_labels=False, has_metric=False)
    model, _ = outlier_chain()
    graph = import_onnx(model)
    np.savez(tmp_path / "no_x.npz", z=np.zeros((3, 16), np.float32))
    with pytest.raises(BadInputError, match="no array for input 'x'"):
        load_eval_data(tmp_path / "no_x.npz", graph)
    np.savez(tmp_path / "bad_labels.npz", x=np.zeros((3, 16), np.float32), labels=np.zeros(2, np.int64))
    with pytest.raises(BadInputError, match="one integer per sample"):
        load_eval_data(tmp_path / "bad_labels.npz", graph)
    np.savez(tmp_path / "ok.npz", x=np.zeros((3, 16), np.float32), labels=np.arange(3))
    data = load_eval_data(tmp_path / "ok.npz", graph)
    assert data.samples == 3 and list(data.labels) == [0, 1, 2]
