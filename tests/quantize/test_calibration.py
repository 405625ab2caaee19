"""Calibration: observers against numpy on known distributions, streaming equal to one pass,
degenerate tensors, calibration data (npz, folder, random) and its refusals, and a small conv
graph calibrated end to end under onnxruntime."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from mlc.errors import BadInputError
from mlc.ir.core import Graph
from mlc.numerics.reference import run_graph
from mlc.onnx_io.importer import import_onnx
from mlc.quantize.cache import graph_digest
from mlc.quantize.calibrate import CalibrationRun, calibrate, calibrated_values, method_options
from mlc.quantize.data import CalibrationData
from mlc.quantize.observers import AbsHistogram, Entropy, MinMax, Percentile, make_observer

REPO = Path(__file__).resolve().parents[2]
RNG = np.random.default_rng(1234)


# ============================================================ graphs
def conv_model(batch: int | str = "N") -> onnx.ModelProto:
    """x -> Conv(+bias) -> Relu -> MaxPool -> Add(constant) -> y, plus an int Shape branch."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(size=(4, 2, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.normal(size=(4,)).astype(np.float32), "b")]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
             helper.make_node("Constant", [], ["k"], value=numpy_helper.from_array(np.float32(0.5))),
             helper.make_node("Add", ["p", "k"], ["y"], name="add"),
             helper.make_node("Shape", ["x"], ["s"], name="shape")]
    graph = helper.make_graph(nodes, "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 2, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 4, 4, 4]),
                               helper.make_tensor_value_info("s", TensorProto.INT64, [4])], inits)
    return helper.make_model(graph, ir_version=10, opset_imports=[helper.make_opsetid("", 17)])


def two_input_model() -> onnx.ModelProto:
    nodes = [helper.make_node("Gather", ["table", "ids"], ["e"]), helper.make_node("Add", ["e", "x"], ["y"])]
    table = numpy_helper.from_array(np.arange(30, dtype=np.float32).reshape(10, 3), "table")
    graph = helper.make_graph(nodes, "two", [helper.make_tensor_value_info("ids", TensorProto.INT64, ["N"]),
                                             helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], [table])
    return helper.make_model(graph, ir_version=10, opset_imports=[helper.make_opsetid("", 17)])


def graph_of(model: onnx.ModelProto) -> Graph:
    return import_onnx(model)


def one_line(error: pytest.ExceptionInfo[BaseException], *words: str) -> str:
    text = str(error.value)
    assert "\n" not in text, text
    for word in words:
        assert word in text, (word, text)
    return text


# ============================================================ observers
def feed(observer: MinMax, array: np.ndarray, pieces: int = 7) -> MinMax:
    for chunk in np.array_split(array, pieces):
        observer.observe(chunk)
    return observer


def test_minmax_is_exact() -> None:
    x = RNG.normal(2.0, 3.0, size=(1000, 5)).astype(np.float32)
    found = feed(MinMax("t"), x).range()
    assert found is not None and (found.low, found.high) == (float(x.min()), float(x.max()))


@pytest.mark.parametrize("q", [99.0, 99.9, 99.99])
@pytest.mark.parametrize("kind", ["normal", "student", "relu"])
def test_percentile_within_a_bin_of_numpy(q: float, kind: str) -> None:
    x = {"normal": RNG.normal(size=200_000), "student": RNG.standard_t(3, size=200_000),
         "relu": np.maximum(RNG.normal(1.0, 2.0, size=200_000), 0)}[kind].astype(np.float32)
    observer = feed(Percentile("t", q), x)
    found = observer.range()
    assert found is not None
    expected = float(np.percentile(np.abs(x), q))
    width = observer.histogram.width
    assert abs(found.high - min(expected, float(x.max()))) <= width
    # the percentile of |x|, symmetric and clipped to the observed extremes (a ReLU output: [0, t])
    assert found.low == max(float(x.min()), -found.high)


def test_entropy_clips_a_heavy_tail_and_keeps_a_uniform_range() -> None:
    heavy = RNG.standard_t(2, size=200_000).astype(np.float32)
    found = feed(Entropy("t"), heavy).range()
    assert found is not None
    amax = float(np.abs(heavy).max())
    assert found.high < 0.25 * amax and found.low == -found.high
    # a threshold that still holds almost all the mass
    assert np.mean(np.abs(heavy) <= found.high) > 0.99
    uniform = RNG.uniform(-2.0, 2.0, size=200_000).astype(np.float32)
    found = feed(Entropy("u"), uniform).range()
    assert found is not None and found.high >= 0.98 * float(uniform.max()) and found.low <= 0.98 * float(uniform.min())
    positive = RNG.uniform(1.0, 3.0, size=50_000).astype(np.float32)  # no negatives: [min, t]
    found = feed(Entropy("p"), positive).range()
    assert found is not None and found.low == float(positive.min()) and found.high >= 0.98 * 3.0


def test_entropy_is_not_pulled_down_by_a_relu_spike_at_zero() -> None:
    """Half the values of a ReLU output are exactly 0; 0 is exact in any range, so the spike is
    left out of the search (with it, the threshold on this sample falls to about half the max)."""
    relu = np.maximum(np.random.default_rng(0).normal(size=20_000), 0).astype(np.float32)
    found = feed(Entropy("r"), relu).range()
    assert found is not None and found.low == 0.0 and found.high >= 0.85 * float(relu.max())


@pytest.mark.parametrize("method", ["minmax", "percentile", "entropy"])
def test_streaming_equals_one_pass(method: str) -> None:
    """Growing magnitudes force the histogram range to double several times mid-stream."""
    chunks = [RNG.normal(size=3000).astype(np.float32) * scale for scale in (0.01, 0.5, 3.0, 1.0, 40.0, 2.0)]
    streamed = make_observer(method, "t", {"percentile": 99.9})
    for chunk in chunks:
        streamed.observe(chunk)
    once = make_observer(method, "t", {"percentile": 99.9})
    once.observe(np.concatenate(chunks))
    assert streamed.range() == once.range()
    if method != "minmax":
        assert np.array_equal(streamed.histogram.counts, once.histogram.counts)  # type: ignore[attr-defined]


def test_histogram_memory_stays_bounded_and_grows_exactly() -> None:
    histogram = AbsHistogram(2048)
    histogram.add(np.array([0.0, 0.3, 0.7], np.float32), 0.7)
    assert histogram.top == 1.0
    histogram.add(np.array([1000.0], np.float32), 1000.0)
    assert histogram.top == 1024.0 and histogram.counts.size == 2048 and histogram.counts.sum() == 3
    assert histogram.width == 0.5  # 0 apart, 0.3 in bin 0, 0.7 in bin 1, 1000 in bin 2000
    assert (histogram.zeros, histogram.counts[0], histogram.counts[1], histogram.counts[2000]) == (1, 1, 1, 1)
    histogram.add(np.array([1e30, 0.0], np.float32), 1e30)  # beyond 2**11 doublings: all old values in bin 0
    assert histogram.counts[0] == 3 and histogram.counts[-1] == 0 and histogram.counts.sum() == 4
    assert histogram.zeros == 2


@pytest.mark.parametrize("method", ["minmax", "percentile", "entropy"])
@pytest.mark.parametrize("case", ["constant", "negative-constant", "zeros", "single", "float16"])
def test_degenerate_tensors_give_valid_ranges(method: str, case: str) -> None:
    values = {"constant": np.full((4, 3), 3.0, np.float32), "negative-constant": np.full((5,), -2.5, np.float32),
              "zeros": np.zeros((8, 8), np.float32), "single": np.array([[0.75]], np.float32),
              "float16": np.array([-1.5, 0.25, 4.0], np.float16)}[case]
    observer = make_observer(method, "t")
    observer.observe(values)
    found = observer.range()
    assert found is not None and np.isfinite([found.low, found.high]).all()
    assert float(values.min()) <= found.low <= found.high <= float(values.max())
    if case != "float16":
        assert (found.low, found.high) == (float(values.min()), float(values.max()))


@pytest.mark.parametrize("method", ["minmax", "percentile", "entropy"])
def test_non_finite_activations_are_one_line_naming_the_tensor(method: str) -> None:
    for bad, word in ((np.nan, "NaN"), (np.inf, "Inf"), (-np.inf, "Inf")):
        observer = make_observer(method, "conv1_out")
        observer.observe(np.ones(4, np.float32))
        with pytest.raises(BadInputError) as error:
            observer.observe(np.array([1.0, bad], np.float32))
        one_line(error, "conv1_out", word)
    empty = make_observer(method, "e")
    empty.observe(np.zeros((0, 3), np.float32))
    assert empty.range() is None
    with pytest.raises(BadInputError) as error:
        make_observer("kl", "t")
    one_line(error, "kl", "minmax")
    with pytest.raises(BadInputError):
        Percentile("t", 0.0)


# ============================================================ data
def test_npz_batches_digest_and_len(tmp_path: Path) -> None:
    graph = graph_of(conv_model())
    x = RNG.normal(size=(37, 2, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "cal.npz", x=x)
    data = CalibrationData.load(tmp_path / "cal.npz", graph)
    assert len(data) == 37 and data.groupable and data.runs(16) == 3
    batches = list(data.batches(16))
    assert [b["x"].shape[0] for b in batches] == [16, 16, 5]
    assert np.array_equal(np.concatenate([b["x"] for b in batches]), x)
    again = CalibrationData.load(tmp_path / "cal.npz", graph).digest()
    assert data.digest() == again and len(again) == 64
    # compressed, the same samples: the same digest (it is over samples, not file bytes)
    np.savez_compressed(tmp_path / "zip.npz", x=x)
    assert CalibrationData.load(tmp_path / "zip.npz", graph).digest() == again
    x2 = x.copy()
    x2[20, 1, 3, 3] += 1e-3
    np.savez(tmp_path / "other.npz", x=x2)
    assert CalibrationData.load(tmp_path / "other.npz", graph).digest() != again
    # a Fortran-order array reads the same
    np.savez(tmp_path / "fortran.npz", x=np.asfortranarray(x))
    fortran = CalibrationData.load(tmp_path / "fortran.npz", graph)
    assert np.array_equal(np.concatenate(list(b["x"] for b in fortran.batches(10))), x)
    assert fortran.digest() == again


def test_folder_streams_across_files_and_matches_one_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    graph = graph_of(conv_model())
    x = RNG.normal(size=(23, 2, 8, 8)).astype(np.float32)
    folder = tmp_path / "cal"
    folder.mkdir()
    np.savez(folder / "a.npz", x=x[:10])
    np.save(folder / "b.npy", x[10:11])  # one sample in a file
    np.savez(folder / "c.NPZ", x=x[11:])
    (folder / "README.txt").write_text("not data")
    (folder / ".hidden.npz").write_text("ignored")
    with caplog.at_level(logging.INFO, logger="mlc"):
        data = CalibrationData.load(folder, graph)
    assert len(data) == 23
    batches = list(data.batches(8))
    assert [b["x"].shape[0] for b in batches] == [8, 8, 7]
    assert np.array_equal(np.concatenate([b["x"] for b in batches]), x)
    np.savez(tmp_path / "one.npz", x=x)
    assert data.digest() == CalibrationData.load(tmp_path / "one.npz", graph).digest()


def test_folder_is_read_lazily(tmp_path: Path) -> None:
    """A NaN in the last file is only met when its batch is read: earlier batches came first."""
    graph = graph_of(conv_model())
    folder = tmp_path / "cal"
    folder.mkdir()
    np.savez(folder / "0.npz", x=np.ones((4, 2, 8, 8), np.float32))
    bad = np.ones((6, 2, 8, 8), np.float32)
    bad[3, 0, 1, 2] = np.nan
    np.savez(folder / "1.npz", x=bad)
    data = CalibrationData.load(folder, graph)
    stream = data.batches(4)
    assert next(stream)["x"].shape == (4, 2, 8, 8)
    with pytest.raises(BadInputError) as error:
        next(stream)
    one_line(error, "1.npz", "'x'", "sample 7", "index 3 in this file", "NaN")


def test_nan_and_inf_name_file_input_and_sample(tmp_path: Path) -> None:
    graph = graph_of(conv_model())
    x = RNG.normal(size=(12, 2, 8, 8)).astype(np.float32)
    x[9, 1, 0, 0] = np.inf
    x[11, 0, 0, 0] = np.nan
    np.savez(tmp_path / "cal.npz", x=x)
    data = CalibrationData.load(tmp_path / "cal.npz", graph)
    for action in (lambda: list(data.batches(5)), data.digest):
        with pytest.raises(BadInputError) as error:
            action()
        one_line(error, "cal.npz", "'x'", "sample 9", "Inf")


def test_refusals_are_one_line(tmp_path: Path) -> None:
    graph = graph_of(conv_model())
    x = RNG.normal(size=(4, 2, 8, 8)).astype(np.float32)
    cases = {
        "typo.npz": ({"X": x}, ["'X' is not an input", "inputs: x"]),
        "none.npz": ({}, ["no samples for input 'x'"]),
        "f64.npz": ({"x": x.astype(np.float64)}, ["float32", "float64"]),
        "shape.npz": ({"x": x[:, :, :4]}, ["expects 8 at axis 2"]),
        "rank.npz": ({"x": x[0, 0]}, ["rank 4"]),
        "empty.npz": ({"x": x[:0]}, ["no calibration samples"]),
    }
    for name, (arrays, words) in cases.items():
        np.savez(tmp_path / name, **arrays)
        with pytest.raises(BadInputError) as error:
            CalibrationData.load(tmp_path / name, graph)
        one_line(error, name, *words)
    (tmp_path / "junk.npz").write_text("no zip")
    with pytest.raises(BadInputError) as error:
        CalibrationData.load(tmp_path / "junk.npz", graph)
    one_line(error, "junk.npz", "not a readable .npz")
    with pytest.raises(BadInputError) as error:
        CalibrationData.load(tmp_path / "missing.npz", graph)
    one_line(error, "missing.npz", "no such file")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInputError) as error:
        CalibrationData.load(tmp_path / "empty", graph)
    one_line(error, "empty", "no calibration samples")
    with pytest.raises(BadInputError) as error:
        CalibrationData.load("random:0", graph)
    one_line(error, "random:0", "no calibration samples")
    # files of a folder must agree on the sample layout
    (tmp_path / "mixed").mkdir()
    np.savez(tmp_path / "mixed" / "a.npz", x=x)
    np.savez(tmp_path / "mixed" / "b.npz", x=x[:, None])  # stacked feeds in the second file
    with pytest.raises(BadInputError) as error:
        CalibrationData.load(tmp_path / "mixed", graph)
    one_line(error, "b.npz", "earlier files")


def test_multiple_inputs_counts_and_npy(tmp_path: Path) -> None:
    graph = graph_of(two_input_model())
    ids = RNG.integers(0, 10, size=6)
    x = RNG.normal(size=(6, 3)).astype(np.float32)
    np.savez(tmp_path / "ok.npz", ids=ids, x=x)
    data = CalibrationData.load(tmp_path / "ok.npz", graph)
    assert len(data) == 6 and [sorted(b) for b in data.batches(4)] == [["ids", "x"], ["ids", "x"]]
    np.savez(tmp_path / "counts.npz", ids=ids, x=x[:5])
    with pytest.raises(BadInputError) as error:
        CalibrationData.load(tmp_path / "counts.npz", graph)
    one_line(error, "different numbers of samples", "ids: 6", "x: 5")
    (tmp_path / "npy").mkdir()
    np.save(tmp_path / "npy" / "x.npy", x)
    with pytest.raises(BadInputError) as error:
        CalibrationData.load(tmp_path / "npy", graph)
    one_line(error, "x.npy", "one array", ".npz files keyed by input name")


def test_static_batch_takes_one_sample_per_run(tmp_path: Path) -> None:
    graph = graph_of(conv_model(batch=1))
    x = RNG.normal(size=(5, 2, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "rows.npz", x=x)  # rows along the static batch axis of size 1
    np.savez(tmp_path / "feeds.npz", x=x[:, None])  # whole feeds stacked on a new axis
    for name in ("rows.npz", "feeds.npz"):
        data = CalibrationData.load(tmp_path / name, graph)
        batches = list(data.batches(16))
        assert not data.groupable and data.runs(16) == 5 and len(batches) == 5
        assert all(b["x"].shape == (1, 2, 8, 8) for b in batches)
        assert np.array_equal(np.concatenate([b["x"] for b in batches]), x)
    static4 = import_onnx(conv_model(batch=4))
    np.savez(tmp_path / "four.npz", x=RNG.normal(size=(8, 2, 8, 8)).astype(np.float32))
    with pytest.raises(BadInputError) as error:
        CalibrationData.load(tmp_path / "four.npz", static4)
    one_line(error, "static first dim of 4", "new axis 0")


def test_random_is_seeded_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    graph = graph_of(two_input_model())
    with caplog.at_level(logging.WARNING, logger="mlc"):
        data = CalibrationData.load("random:5", graph)
    assert any("noise" in r.getMessage() and r.name == "mlc" for r in caplog.records)
    assert len(data) == 5 and data.is_random
    batches = list(data.batches(2))
    assert [b["x"].shape for b in batches] == [(2, 3), (2, 3), (1, 3)]
    ids = np.concatenate([b["ids"] for b in batches])
    assert ids.dtype == np.int64 and ids.min() >= 0 and ids.max() < 10  # indices within the table
    assert data.digest() == CalibrationData.load("random:5", graph).digest()
    assert data.digest() != CalibrationData.load("random:5", graph, seed=1).digest()
    assert len(CalibrationData.load("random", graph)) == 32


# ============================================================ calibration under onnxruntime
def test_conv_graph_end_to_end(tmp_path: Path) -> None:
    graph = graph_of(conv_model())
    x = RNG.normal(size=(40, 2, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "cal.npz", x=x)
    data = CalibrationData.load(tmp_path / "cal.npz", graph)
    names = [v.name for v in calibrated_values(graph)]
    assert names == ["x", "c", "r", "p", "y"]  # no int Shape, no Constant weight
    expected = run_graph(graph, {"x": x}, names)
    seen: list[tuple[int, int]] = []
    run = CalibrationRun()
    table = calibrate(graph, data, "minmax", {}, batch=16, progress=lambda k, n: seen.append((k, n)), run=run)
    assert seen == [(1, 3), (2, 3), (3, 3)] and run.runs == 3 and not run.skipped
    assert table.graph == graph_digest(graph) and table.data == data.digest() and table.samples == 40
    assert sorted(table.ranges) == sorted(names)
    for name in names:
        low, high = float(expected[name].min()), float(expected[name].max())
        assert table.ranges[name].low == pytest.approx(low, rel=1e-6, abs=1e-6), name
        assert table.ranges[name].high == pytest.approx(high, rel=1e-6, abs=1e-6), name
    assert table.ranges["r"].low == 0.0
    for method in ("percentile", "entropy"):
        one = calibrate(graph, data, method, {"percentile": 99.9}, batch=1)
        whole = calibrate(graph, data, method, {"percentile": 99.9}, batch=40)
        assert one.options == method_options(method, {"percentile": 99.9})
        for name in names:  # the same up to onnxruntime's batch-size rounding: within a bin
            width = max(abs(whole.ranges[name].low), abs(whole.ranges[name].high)) / 1024
            assert abs(one.ranges[name].high - whole.ranges[name].high) <= width
            assert whole.ranges[name].low <= whole.ranges[name].high <= table.ranges[name].high


def test_activation_nan_names_tensor_and_samples(tmp_path: Path) -> None:
    """A model that makes NaN (Log of a negative) on good data: the tensor and the samples."""
    nodes = [helper.make_node("Log", ["x"], ["l"]), helper.make_node("Relu", ["l"], ["y"])]
    model = helper.make_model(helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])]),
        ir_version=10, opset_imports=[helper.make_opsetid("", 17)])
    graph = graph_of(model)
    x = np.ones((10, 3), np.float32)
    x[7, 2] = -1.0
    np.savez(tmp_path / "cal.npz", x=x)
    with pytest.raises(BadInputError) as error:
        calibrate(graph, CalibrationData.load(tmp_path / "cal.npz", graph), "minmax", batch=4)
    one_line(error, "tensor 'l'", "NaN", "samples 4..7")


def test_digits_cnn_calibrates(tmp_path: Path) -> None:
    """The committed digits CNN on its 200 calibration images: every float tensor gets a range,
    ReLU outputs start at 0, entropy never widens min-max."""
    model = REPO / "models" / "digits_cnn.onnx"
    split = REPO / "models" / "digits_cnn.data.npz"
    if not model.exists() or not split.exists():
        pytest.skip("models/digits_cnn.* not committed")
    graph = import_onnx(model)
    with np.load(split) as stored:
        images = stored["calibration"].astype(np.float32) / 16.0
    np.savez(tmp_path / "cal.npz", **{graph.inputs[0].name: images})
    data = CalibrationData.load(tmp_path / "cal.npz", graph)
    minmax = calibrate(graph, data, "minmax", batch=64)
    entropy = calibrate(graph, data, "entropy", batch=64)
    names = [v.name for v in calibrated_values(graph)]
    assert sorted(minmax.ranges) == sorted(names) == sorted(entropy.ranges)
    relus = [n.outputs[0].name for n in graph if n.op_type == "Relu"]
    assert relus and all(minmax.ranges[name].low == 0.0 for name in relus)
    for name in names:
        assert minmax.ranges[name].low <= entropy.ranges[name].low <= entropy.ranges[name].high
        assert entropy.ranges[name].high <= minmax.ranges[name].high
