"""`--quantize int8` on compile / optimize / debug and the Python API: the pipeline it builds,
its flag errors (exit 2, one line naming the flag), the lossy gate (exit 1), the accuracy-budget
search end to end with the real calibrate and quantize-qdq passes, and its reproducibility."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import onnx
import pytest

import mlc
from mlc.errors import BadInputError
from mlc.pipelines import QuantizeOptions, build_pipeline, default_calibration_cache
from mlc.report import SCHEMA_PATH
from tests.cli.helpers import ROOT, exit_of
from tests.cli.helpers import mlc as run_mlc
from tests.quantize.qdq_models import outlier_chain

pytestmark = pytest.mark.usefixtures("cache_home")

CNN = ROOT / "models" / "digits_cnn.onnx"


@pytest.fixture
def outlier(tmp_path: Path) -> dict[str, Path]:
    model, _ = outlier_chain()
    onnx.save(model, tmp_path / "outlier.onnx")
    rng = np.random.default_rng(3)
    np.savez(tmp_path / "cal.npz", x=rng.normal(0, 1, (64, 16)).astype(np.float32))
    np.savez(tmp_path / "eval.npz", x=rng.normal(0, 1, (200, 16)).astype(np.float32))
    return {"model": tmp_path / "outlier.onnx", "cal": tmp_path / "cal.npz", "eval": tmp_path / "eval.npz"}


_exit_of = exit_of


def test_pipeline_puts_calibration_and_qdq_between_the_level_and_the_legalizations(digits, cache_home) -> None:
    options = QuantizeOptions(data=str(digits["cal"]), method="percentile", percentile=99.9,
                              exclude_nodes=("/stem/Conv",), exclude_ops=("Gemm",))
    plain = [p.name for p in build_pipeline("O1", target="llvm")]
    passes = build_pipeline("O1", target="llvm", quantize="int8", calibration=options, model=CNN)
    names = [p.name for p in passes]
    level = [p.name for p in build_pipeline("O1")]
    assert names == [*level, "calibrate", "quantize-qdq", *plain[len(level):]]
    calibrate, qdq = passes[len(level)], passes[len(level) + 1]
    cache = Path(calibrate.option("cache"))
    assert cache.parent == cache_home / "mlc" / "calibration" and qdq.option("calibration") == str(cache)
    assert cache == default_calibration_cache(CNN, options, build_pipeline("O1") and
                                              [p.spec() for p in build_pipeline("O1")])
    assert (calibrate.option("method"), calibrate.option("percentile")) == ("percentile", 99.9)
    assert (qdq.option("exclude_nodes"), qdq.option("exclude_ops")) == ("/stem/Conv", "Gemm")
    other = build_pipeline("O1", target="llvm", quantize="int8", calibration=QuantizeOptions(data=str(digits["cal"])),
                           model=CNN)
    assert other[len(level)].option("cache") != str(cache), "another method is another table"
    given = build_pipeline(passes="cse", quantize="int8", model=CNN,
                           calibration=QuantizeOptions(data="random", cache=str(digits["cal"].parent / "t.json"),
                                                       per_channel=False))
    assert [p.spec() for p in given][1:] == [f"calibrate{{cache={digits['cal'].parent / 't.json'},data=random}}",
                                             f"quantize-qdq{{calibration={digits['cal'].parent / 't.json'},"
                                             "per_channel=False}"]


@pytest.mark.parametrize(("extra", "flag"), [
    (["--quantize", "int4", "--calibration-data", "{cal}"], "--quantize"),
    (["--quantize", "int8", "--calibration-data", "{cal}", "--calibration-method", "kl"], "--calibration-method"),
    (["--quantize", "int8"], "--calibration-data"),
    (["--quantize", "int8", "--calibration-data", "{missing}"], "--calibration-data"),
    (["--calibration-data", "{cal}"], "--calibration-data"),
    (["--quantize", "int8", "--calibration-data", "{cal}", "--accuracy-budget", "0.5"], "--eval-data"),
    (["--quantize", "int8", "--calibration-data", "{cal}", "--accuracy-budget", "fast", "--eval-data", "{eval}"],
     "--accuracy-budget"),
    (["--quantize", "int8", "--calibration-data", "{cal}", "--accuracy-budget", "1", "--eval-data", "{missing}"],
     "--eval-data"),
    (["--accuracy-budget", "1", "--eval-data", "{eval}"], "--accuracy-budget"),
    (["--quantize", "int8", "--calibration-data", "{cal}", "--percentile", "140"], "--percentile"),
    (["--quantize", "int8", "--calibration-data", "{cal}", "--min-cosine", "2"], "--min-cosine"),
])
def test_flag_errors_exit_2_with_one_line_naming_the_flag(capfd, tmp_path, digits, extra, flag) -> None:
    args = [a.format(cal=digits["cal"], eval=digits["eval"], missing=tmp_path / "missing.npz") for a in extra]
    for command in (["compile", str(CNN), "-o", str(tmp_path / "out")], ["optimize", str(CNN), "-o",
                                                                         str(tmp_path / "o.onnx")]):
        code, out, err = _exit_of(capfd, *command, *args)
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1 and flag in lines[0] and "Traceback" not in err, err
        assert not (tmp_path / "out").exists() and not (tmp_path / "o.onnx").exists()


def test_compile_int8_end_to_end_with_report_manifest_and_cache_reuse(capfd, tmp_path, digits, cache_home) -> None:
    out, report = tmp_path / "cnn.ort", tmp_path / "r.json"
    code, stdout, err = run_mlc(capfd, "compile", CNN, "--target", "onnxruntime", "--quantize", "int8",
                                "--calibration-data", digits["cal"], "-o", out, "--report", report)
    assert code == 0, err
    assert "int8: output cosine 0.99" in stdout and "SQNR" in stdout
    data = json.loads(report.read_text())
    jsonschema.validate(data, json.loads(SCHEMA_PATH.read_text()))
    quant = data["quantization"]
    assert quant["summary"].startswith("int8: output cosine") and quant["keep_float"] == []
    tensors = quant["doctor"]["tensors"]
    assert tensors and [t["sqnr_db"] for t in tensors] == sorted(t["sqnr_db"] for t in tensors)
    assert all(t["sqnr_db"] > 20 for t in tensors), "the digits CNN quantizes cleanly"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["options"]["quantization"]["method"] == "minmax"
    model = onnx.load(out / "model.onnx")
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert any(t.data_type == onnx.TensorProto.INT8 for t in model.graph.initializer)
    tables = list((cache_home / "mlc" / "calibration").iterdir())
    assert len(tables) == 1 and not list(tmp_path.glob("*.json"))[1:], "the table goes to the cache folder only"
    stamp = tables[0].stat().st_mtime_ns
    code, _, err = run_mlc(capfd, "compile", CNN, "--target", "onnxruntime", "--quantize", "int8",
                           "--calibration-data", digits["cal"], "-o", out)
    assert code == 0, err
    assert tables[0].stat().st_mtime_ns == stamp, "the next compile reuses the table"
    evaluation = np.load(digits["eval"])
    got = mlc.load(out).run({"image": evaluation["image"]})
    accuracy = float(np.mean(np.asarray(next(iter(got.values()))).argmax(-1) == evaluation["labels"]))
    assert accuracy > 0.97


def test_lossy_gate_fails_an_outlier_model_and_the_budget_search_repairs_it(capfd, tmp_path, outlier) -> None:
    base = ["compile", outlier["model"], "--target", "onnxruntime", "--quantize", "int8",
            "--calibration-data", outlier["cal"]]
    code, _, err = run_mlc(capfd, *base, "-o", tmp_path / "a")
    assert code == 1 and "lossy gate" in err and "cosine" in err and not (tmp_path / "a").exists(), err
    code, _, err = run_mlc(capfd, *base, "--min-cosine", "0", "-o", tmp_path / "b")
    assert code == 0, err
    code, stdout, err = run_mlc(capfd, *base, "--accuracy-budget", "0.999", "--eval-data", outlier["eval"],
                                "-o", tmp_path / "c", "--report", tmp_path / "r.json")
    assert code == 0, err
    search = json.loads((tmp_path / "r.json").read_text())["quantization"]["search"]
    assert search["met"] and "mm2" in search["keep_float"] and search["quantized_score"] < 0.9
    assert search["final_score"] >= 0.999 and search["budget"]["kind"] == "cosine"
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())["options"]["quantization"]
    assert manifest["keep_float"] == search["keep_float"]
    assert "--exclude-nodes" in manifest["reproduce"] and "kept in float: " in stdout
    # the flags the report shows rebuild the very same model without searching
    flags = manifest["reproduce"].split()
    code, _, err = run_mlc(capfd, "compile", outlier["model"], "--target", "onnxruntime", *flags,
                           "-o", tmp_path / "d")
    assert code == 0, err
    assert (tmp_path / "d" / "model.onnx").read_bytes() == (tmp_path / "c" / "model.onnx").read_bytes()


def test_random_calibration_warns(capfd, tmp_path, outlier) -> None:
    model, _ = outlier_chain(outlier=1.0)
    onnx.save(model, tmp_path / "plain.onnx")
    code, _, err = run_mlc(capfd, "optimize", tmp_path / "plain.onnx", "--quantize", "int8",
                           "--calibration-data", "random", "-o", tmp_path / "q.onnx")
    assert code == 0, err
    assert "warning" in err.lower() and "random" in err
    assert any(n.op_type == "QuantizeLinear" for n in onnx.load(tmp_path / "q.onnx").graph.node)


def test_debug_shows_the_doctor_table(capfd, tmp_path, outlier) -> None:
    code, stdout, err = run_mlc(capfd, "debug", outlier["model"], "--quantize", "int8", "--calibration-data",
                                outlier["cal"], "--min-cosine", "0", "--reproducer", tmp_path / "repro")
    assert code == 0, err
    assert "quantization doctor:" in stdout and "most error introduced by: mm2" in stdout


def test_api_metric_callback_and_errors(tmp_path, outlier) -> None:
    reference = mlc.load(mlc.compile(outlier["model"], "onnxruntime", tmp_path / "f")).run(
        dict(np.load(outlier["eval"])))

    def negative_mse(outputs: dict[str, np.ndarray]) -> float:
        return -float(np.mean((outputs["y"] - reference["y"]) ** 2))

    folder = mlc.compile(outlier["model"], "onnxruntime", tmp_path / "q", quantize="int8",
                         calibration_data=str(outlier["cal"]), accuracy_budget=1.0, eval_data=str(outlier["eval"]),
                         metric=negative_mse)
    record = mlc.load(folder).quantization
    assert record is not None and "mm2" in record["keep_float"] and record["search"]["budget"]["kind"] == "metric"
    with pytest.raises(BadInputError, match="--calibration-data"):
        mlc.compile(outlier["model"], "onnxruntime", tmp_path / "x", quantize="int8")
    with pytest.raises(BadInputError, match="needs quantize='int8'"):
        mlc.optimize(outlier["model"], tmp_path / "x.onnx", calibration_data=str(outlier["cal"]))


@pytest.mark.parametrize("case", ["constant-activation", "single-sample", "nan", "inf"])
def test_degenerate_calibration_gives_a_valid_graph_or_one_line(capfd, tmp_path, case) -> None:
    """A constant activation (min == max: Relu of a negative constant plus x*0) and a single
    calibration sample compile to a valid int8 graph that runs; NaN or Inf in the data is exit 2
    in one line naming the file, the input and the sample."""
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.random.default_rng(0).normal(0, 1, (8, 8)).astype(np.float32), "w")
    zero = numpy_helper.from_array(np.zeros((1, 8), np.float32), "zero")
    shift = numpy_helper.from_array(np.full((1, 8), -3.0, np.float32), "shift")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]),
             helper.make_node("Mul", ["x", "zero"], ["z"]),          # always 0
             helper.make_node("Add", ["z", "shift"], ["c"]),         # always -3
             helper.make_node("Relu", ["c"], ["dead"]),              # always 0: min == max
             helper.make_node("MatMul", ["dead", "w"], ["d"]),
             helper.make_node("Add", ["h", "d"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8])],
                              [weight, zero, shift])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "m.onnx")
    rng = np.random.default_rng(1)
    samples = rng.normal(0, 1, (1 if case == "single-sample" else 32, 8)).astype(np.float32)
    if case in ("nan", "inf"):
        samples[5, 2] = np.nan if case == "nan" else np.inf
    np.savez(tmp_path / "cal.npz", x=samples)
    code, _, err = _exit_of(capfd, "compile", str(tmp_path / "m.onnx"), "--target", "onnxruntime",
                            "-o", str(tmp_path / "out"), "--quantize", "int8",
                            "--calibration-data", str(tmp_path / "cal.npz"))
    if case in ("nan", "inf"):
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1, err
        assert "cal.npz" in lines[0] and "'x'" in lines[0] and "sample 5" in lines[0], lines[0]
        assert not (tmp_path / "out").exists()
        return
    assert code == 0, err
    quantized = onnx.load(tmp_path / "out" / "model.onnx")
    onnx.checker.check_model(quantized)
    scales = [numpy_helper.to_array(t) for t in quantized.graph.initializer if "scale" in t.name]
    assert scales and all(np.all(np.isfinite(s)) and np.all(s > 0) for s in scales)
    feeds = {"x": rng.normal(0, 1, (4, 8)).astype(np.float32)}
    got = mlc.run(tmp_path / "out", feeds)["y"]
    assert np.all(np.isfinite(got)) and got.shape == (4, 8)
