"""calibrate: writes the table, reuses it without running onnxruntime when its keys match,
recalibrates when they do not, never changes the graph, and never overwrites a file it did not
write."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import mlc.quantize.calibrate as calibrate_module
from mlc.errors import BadInputError
from mlc.ir.printer import print_ir
from mlc.onnx_io.importer import import_onnx
from mlc.pass_api import registered_passes
from mlc.quantize.cache import graph_digest, load_table
from mlc.quantize.data import CalibrationData
from mlc.testing import run_pass
from tests.quantize.test_calibration import conv_model


@pytest.fixture
def calibration(tmp_path: Path) -> Path:
    x = np.random.default_rng(3).normal(size=(20, 2, 8, 8)).astype(np.float32)
    path = tmp_path / "cal.npz"
    np.savez(path, x=x)
    return path


def spec(data: Path | str, cache: Path, **options: object) -> str:
    extra = "".join(f",{key}={value}" for key, value in options.items())
    return f"calibrate{{data={data},cache={cache}{extra}}}"


def test_declaration() -> None:
    cls = registered_passes()["calibrate"]
    assert cls.numerics.value == "exact"
    assert [o.name for o in cls.options] == ["data", "method", "percentile", "batch", "cache"]
    assert cls().values == {"data": "", "method": "minmax", "percentile": 99.99, "batch": 16, "cache": ""}


def test_writes_then_reuses_without_running(tmp_path: Path, calibration: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "tables" / "conv.json"
    graph = import_onnx(conv_model())
    before = print_ir(graph)
    graph, ctx = run_pass(spec(calibration, cache, batch=8), graph)
    assert print_ir(graph) == before and ctx.rewrites == 0  # the graph is not changed
    assert (ctx.stats["runs"], ctx.stats["reused"], ctx.stats["samples"], ctx.stats["tensors"]) == (3, 0, 20, 5)
    table = load_table(cache)
    assert table.graph == graph_digest(graph) and table.method == "minmax" and table.samples == 20
    assert table.data == CalibrationData.load(calibration, graph).digest()
    assert any("written to" in r for r in ctx.remarks)
    written = cache.read_bytes()

    def no_onnxruntime(*args: object, **kwargs: object) -> None:
        raise AssertionError("onnxruntime ran although the table was reusable")

    monkeypatch.setattr(calibrate_module, "reference_session", no_onnxruntime)
    for batch in (8, 3):  # the batch size is not part of the key: the ranges do not depend on it
        _, again = run_pass(spec(calibration, cache, batch=batch), graph)
        assert again.stats["reused"] == 1 and again.stats["runs"] == 0 and again.stats["tensors"] == 5
    assert cache.read_bytes() == written
    # another method (or percentile) is another table: calibrated again, replacing ours
    monkeypatch.undo()
    _, other = run_pass(spec(calibration, cache, method="percentile", percentile=99.9), graph)
    assert other.stats["reused"] == 0 and other.stats["runs"] == 2
    assert any("another method (minmax)" in r for r in other.remarks)
    assert load_table(cache).options["percentile"] == 99.9


def test_other_data_or_graph_recalibrates(tmp_path: Path, calibration: Path) -> None:
    cache = tmp_path / "t.json"
    graph = import_onnx(conv_model())
    run_pass(spec(calibration, cache), graph)
    first = load_table(cache)
    changed = tmp_path / "cal2.npz"
    np.savez(changed, x=np.random.default_rng(4).normal(size=(20, 2, 8, 8)).astype(np.float32))
    _, ctx = run_pass(spec(changed, cache), graph)
    assert ctx.stats["reused"] == 0 and any("another calibration set" in r for r in ctx.remarks)
    second = load_table(cache)
    assert second.data != first.data and second.ranges != first.ranges
    other_graph = import_onnx(conv_model(batch="B"))
    _, ctx = run_pass(spec(changed, cache), other_graph)
    assert ctx.stats["reused"] == 0 and any("another graph" in r for r in ctx.remarks)


def test_never_overwrites_what_mlc_did_not_write(tmp_path: Path, calibration: Path) -> None:
    graph = import_onnx(conv_model())
    for name, content in (("notes.json", '{"ranges": {}}'), ("notes.txt", "my notes"), ("model.onnx", "\x08\x07")):
        path = tmp_path / name
        path.write_text(content)
        with pytest.raises(BadInputError) as error:
            run_pass(spec(calibration, path), graph)
        text = str(error.value)
        assert "\n" not in text and name in text and "not an mlc calibration table" in text
        assert path.read_text() == content
    folder = tmp_path / "folder"
    folder.mkdir()
    with pytest.raises(BadInputError) as error:
        run_pass(spec(calibration, folder), graph)
    assert "folder" in str(error.value) and "\n" not in str(error.value)


def test_replaces_its_own_stale_or_broken_table_whatever_the_suffix(tmp_path: Path, calibration: Path) -> None:
    graph = import_onnx(conv_model())
    cache = tmp_path / "conv.calibration"  # not .json: recognized by content
    run_pass(spec(calibration, cache, method="entropy"), graph)
    _, ctx = run_pass(spec(calibration, cache, method="entropy"), graph)
    assert ctx.stats["reused"] == 1
    broken = json.loads(cache.read_text())
    broken["format"] = 99
    cache.write_text(json.dumps(broken))
    _, ctx = run_pass(spec(calibration, cache, method="entropy"), graph)
    assert ctx.stats["reused"] == 0 and ctx.stats["runs"] == 2
    assert load_table(cache).method == "entropy"


def test_refusals_are_one_line(tmp_path: Path, calibration: Path) -> None:
    graph = import_onnx(conv_model())
    cases = [
        (f"calibrate{{cache={tmp_path / 't.json'}}}", "data is required"),
        (f"calibrate{{data={calibration}}}", "cache is required"),
        (spec(calibration, tmp_path / "t.json", method="kl"), "'kl'"),
        (spec(calibration, tmp_path / "t.json", method="percentile", percentile=0), "(0, 100]"),
        (spec(calibration, tmp_path / "t.json", batch=0), "at least 1"),
        (spec(tmp_path / "nothing.npz", tmp_path / "t.json"), "no such file"),
    ]
    for text, words in cases:
        with pytest.raises(BadInputError) as error:
            run_pass(text, graph)
        assert "\n" not in str(error.value) and words in str(error.value), str(error.value)
    assert not (tmp_path / "t.json").exists()
    bad = tmp_path / "bad.npz"
    x = np.ones((6, 2, 8, 8), np.float32)
    x[4, 0, 0, 0] = np.nan
    np.savez(bad, x=x)
    with pytest.raises(BadInputError) as error:
        run_pass(spec(bad, tmp_path / "t.json"), graph)
    assert "bad.npz" in str(error.value) and "sample 4" in str(error.value)
    assert not (tmp_path / "t.json").exists()


def test_random_data_is_remarked(tmp_path: Path) -> None:
    graph = import_onnx(conv_model())
    _, ctx = run_pass(spec("random:4", tmp_path / "t.json", batch=2), graph)
    assert ctx.stats["samples"] == 4 and ctx.stats["runs"] == 2
    assert any("noise" in r for r in ctx.remarks)
