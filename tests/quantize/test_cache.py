"""Calibration tables: JSON round trip, reuse keys, refusal of what is not one, and mlc may
replace its own table (and nothing else)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlc.errors import BadInputError
from mlc.output_guard import mlc_wrote
from mlc.quantize.cache import CalibrationTable, TensorRange, graph_digest, load_table, save_table
from mlc.testing import as_graph

TEXT = '''graph "g" (%x: f32[2,3]) {
  %y: f32[2,3] = Relu(%x)
  return %y
}'''


def _table() -> CalibrationTable:
    return CalibrationTable(method="percentile", graph=graph_digest(as_graph(TEXT)), data="d" * 64, samples=200,
                            ranges={"x": TensorRange(-1.5, 2.25), "y": TensorRange(0.0, 2.25)},
                            options={"percentile": 99.99})


def test_round_trip_and_reuse_keys(tmp_path: Path) -> None:
    table = _table()
    path = save_table(table, tmp_path / "cal.json")
    again = load_table(path)
    assert again == table
    assert again.matches(table.graph, table.data, "percentile", {"percentile": 99.99})
    assert not again.matches(table.graph, table.data, "percentile", {"percentile": 99.9})
    assert not again.matches(graph_digest(as_graph(TEXT.replace("Relu", "Neg"))), table.data, "percentile",
                             {"percentile": 99.99})
    assert mlc_wrote(path)


def test_what_is_not_a_table_is_refused_in_one_line(tmp_path: Path) -> None:
    cases = {"junk.json": "{not json", "other.json": json.dumps({"ranges": {}}),
             "bad.json": json.dumps({**_table().to_json(), "ranges": {"x": {"min": 3.0, "max": 1.0}}})}
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(BadInputError) as error:
            load_table(tmp_path / name)
        assert name in str(error.value) and "\n" not in str(error.value)
        assert not mlc_wrote(tmp_path / name) or name == "bad.json"  # a broken table of ours is still ours
    with pytest.raises(ValueError):
        TensorRange(float("nan"), 1.0)
