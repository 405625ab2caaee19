"""int8 quantization against onnxruntime's own quantizer: accuracy, latency, node counts (issue 13).

    . .venv/bin/activate && pip install -e '.[test,tvm,models]'
    python benchmarks/bench_quantize.py                          # digits CNN, tv_resnet18, bert; ~10 min on 2 cores
    python benchmarks/bench_quantize.py --models digits --runs 40 --markdown /tmp/q.md

Run by hand, never in CI. Results go, as markdown with the command, date, CPU (model name and whether
`avx512_vnni` is among /proc/cpuinfo's flags) and package versions, to `--markdown` (default
`benchmarks/results/quantize.md`).

Models and data:

* `digits`: `models/digits_cnn.onnx` with its committed splits (`models/digits_cnn.data.npz`: 200
  calibration images, 600 test images with labels; see models/make_digits_cnn.py). Metric: top-1
  accuracy on the test split, on onnxruntime and on TVM (`llvm`).
* `resnet18`: `~/.cache/mlc-zoo/tv_resnet18-ts.onnx` (`python -m models.zoo.build`). It has no data
  set of its own, so calibration (200) and evaluation (`--eval`, default 500) images are seeded
  synthetic ones in the model's input shape (3x`--image-size`x`--image-size`, default 224): smooth
  random fields (four octaves of bilinearly upsampled uniform noise, each image stretched to
  [0,1]) normalized with ImageNet's mean and std; calibration seed 0, evaluation seed 1. Metric:
  agreement with fp32 (top-1 agreement, mean and min per-sample cosine of the logits).
* `bert`: `~/.cache/mlc-zoo/bert-ts.onnx` (2 layers, hidden 64, vocab 1000, 128 positions). Seeded
  samples like `bert.inputs.npz`: token ids uniform in [1, 1000), a padded tail (length uniform in
  [seq/4, seq], padding id 0 and mask 0), token types 0 then 1 from a random split point; seq
  `--seq` (default 128); calibration seed 0, evaluation seed 1. Metric: per-sample cosine with fp32
  of `last_hidden_state` and `pooler_output` (top-1 agreement is not defined for an encoder).

Variants (all run under one onnxruntime CPU session type with default options):

* `fp32`: the model as exported.
* `ort static <method>`: onnxruntime's `quantize_static` (QDQ, per-channel, activations QUInt8, weights
  QInt8, reduce_range off: its documented choice for x86 with VNNI) with the same calibration
  samples and method (MinMax / Percentile at 99.99 / Entropy, onnxruntime's default bins), on the
  output of `quant_pre_process` (onnxruntime warns when a model is not pre-processed and recommends
  it: symbolic shape inference, its graph optimizer, onnx shape inference).
* `ort dynamic` (bert only): `quantize_dynamic` (weights QInt8, onnxruntime's defaults otherwise) on
  the pre-processed model.
* Latency: fp32 and the onnxruntime anchors run in a default session; mlc's variants in the session
  an mlc `onnxruntime` artifact opens (its manifest's settings: on CPU SkipLayerNormFusion off).
* `mlc -O2 fp32`: `mlc optimize -O2` without quantization (what mlc's rewrites alone are worth).
* `mlc int8-dynamic` (bert only): `mlc.optimize(..., quantize="int8-dynamic")` (pass `quantize-dynamic`:
  int8 per-column MatMul/Gemm weights, activations quantized at run time; no calibration data), for
  `--target onnxruntime`; compared with `ort dynamic`, its anchor, in accuracy and speed.
* `mlc int8 <method>`: mlc's quantization of the original model. Through `mlc.optimize(...,
  quantize="int8", ...)` when the installed mlc has it, else through the passes directly
  (`-O2`'s passes, then `calibrate{data,method,percentile,cache}` and `quantize-qdq{calibration}`,
  with `verify=none` since a lossy pass is not judged element-wise), for `--target onnxruntime`
  (the .onnx is timed in the same onnxruntime session type as the others) and, for the digits
  model, compiled with `mlc.compile(..., "llvm")` and run with `mlc.run`. The report says which.

Against the anchor, a top-1 difference comes with the paired count of samples only one of the
two gets right and the exact McNemar p-value: on 600 digits one image is 0.17 points.

Latency: resnet18 one image, bert one sequence, digits a batch of 64 test images (one 8x8 image runs
in about 20 us, which times onnxruntime's per-call overhead rather than any kernel), the median of
`--runs` timed runs per variant, all variants in one process taking turns in blocks of 5 timed runs
after 2 untimed ones (as bench_zoo.py: on 2 cores single interleaved runs time the other session's
spinning threads). The speed table also counts the int8 kernels (QLinearConv, QGemm, MatMulInteger, ...)
in the graph onnxruntime actually runs after its own optimizations (`optimized_model_filepath`): the
evidence that its QDQ fusions fired. Only the min-max variants are timed: the calibration method changes scales, not
the graph. Node counts: main-graph nodes, with QuantizeLinear + DequantizeLinear counted apart.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import math
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from _machine import versions as machine_versions

ROOT = Path(__file__).resolve().parents[1]
ZOO = Path.home() / ".cache" / "mlc-zoo"
DEFAULT_MARKDOWN = ROOT / "benchmarks" / "results" / "quantize.md"
METHODS = ("minmax", "percentile", "entropy")
PERCENTILE = 99.99
CAL_SAMPLES = 200
DIGITS_TIMING_BATCH = 64  # one 8x8 image takes ~20 us: session overhead, not the kernels
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return (lines[0][:200] if lines else type(error).__name__)


# ------------------------------------------------------------------------------------------------ data


@dataclass
class Case:
    """One model: its file, calibration feeds (stacked on axis 0), evaluation feeds, a batch-1 feed for timing."""

    name: str
    model: Path
    calibration: dict[str, np.ndarray]
    evaluation: dict[str, np.ndarray]
    timing: dict[str, np.ndarray]
    labels: np.ndarray | None = None  # digits: accuracy instead of agreement
    notes: list[str] = field(default_factory=list)


def _bilinear_matrix(size: int, cells: int) -> np.ndarray:
    """[size, cells] weights that upsample `cells` grid values to `size` samples linearly."""
    positions = np.linspace(0.0, cells - 1.0, size)
    low = np.clip(np.floor(positions).astype(int), 0, cells - 2)
    frac = positions - low
    matrix = np.zeros((size, cells), dtype=np.float32)
    matrix[np.arange(size), low] = 1.0 - frac
    matrix[np.arange(size), low + 1] = frac
    return matrix


def smooth_images(count: int, channels: int, size: int, seed: int) -> np.ndarray:
    """Seeded natural-looking (smooth, multi-scale) images, ImageNet-normalized, f32[count, channels, size, size]."""
    rng = np.random.default_rng(seed)
    images = np.zeros((count, channels, size, size), dtype=np.float32)
    for cells, weight in ((4, 1.0), (8, 0.5), (16, 0.25), (32, 0.125)):
        matrix = _bilinear_matrix(size, cells + 1)
        grid = rng.random((count, channels, cells + 1, cells + 1), dtype=np.float32)
        images += weight * np.einsum("hi,ncij,wj->nchw", matrix, grid, matrix, optimize=True)
    low = images.min(axis=(1, 2, 3), keepdims=True)
    high = images.max(axis=(1, 2, 3), keepdims=True)
    images = (images - low) / (high - low)
    return ((images - IMAGENET_MEAN[:channels, None, None]) / IMAGENET_STD[:channels, None, None]).astype(np.float32)


def token_samples(count: int, seq: int, vocab: int, seed: int) -> dict[str, np.ndarray]:
    """Seeded BERT feeds like the zoo's: ids, a padded tail with mask 0, two segments."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, vocab, size=(count, seq), dtype=np.int64)
    lengths = rng.integers(max(1, seq // 4), seq + 1, size=count)
    splits = (rng.random(count) * lengths).astype(np.int64) + 1
    position = np.arange(seq)[None, :]
    mask = (position < lengths[:, None]).astype(np.int64)
    types = ((position >= splits[:, None]) & (mask == 1)).astype(np.int64)
    return {"input_ids": np.where(mask == 1, ids, 0), "attention_mask": mask, "token_type_ids": types}


def digits_case() -> Case:
    data = np.load(ROOT / "models" / "digits_cnn.data.npz")

    def pixels(levels: np.ndarray) -> np.ndarray:  # as models/make_digits_cnn.load_pixels
        return levels.astype(np.float32) / np.float32(16.0)

    test = pixels(data["test"])
    return Case("digits", ROOT / "models" / "digits_cnn.onnx", {"image": pixels(data["calibration"])},
                {"image": test}, {"image": test[:DIGITS_TIMING_BATCH]}, labels=data["test_labels"].astype(np.int64),
                notes=[f"digits: {len(data['calibration'])} calibration / {len(test)} test images "
                       "(models/digits_cnn.data.npz)"])


def resnet_case(size: int, evaluation: int) -> Case:
    cal = smooth_images(CAL_SAMPLES, 3, size, seed=0)
    ev = smooth_images(evaluation, 3, size, seed=1)
    return Case("resnet18", ZOO / "tv_resnet18-ts.onnx", {"image": cal}, {"image": ev}, {"image": ev[:1]},
                notes=[f"resnet18: synthetic smooth random images 3x{size}x{size}, ImageNet-normalized, "
                       f"{CAL_SAMPLES} calibration (seed 0) / {evaluation} evaluation (seed 1)"])


def bert_case(seq: int, evaluation: int) -> Case:
    vocab = 1000
    model = onnx.load(str(ZOO / "bert-ts.onnx"), load_external_data=False)
    for init in model.graph.initializer:
        if init.name.endswith("word_embeddings.weight"):
            vocab = int(init.dims[0])
    ev = token_samples(evaluation, seq, vocab, seed=1)
    return Case("bert", ZOO / "bert-ts.onnx", token_samples(CAL_SAMPLES, seq, vocab, seed=0), ev,
                {k: v[:1] for k, v in ev.items()},
                notes=[f"bert: synthetic token ids (vocab {vocab}, seq {seq}, padded tails, two segments), "
                       f"{CAL_SAMPLES} calibration (seed 0) / {evaluation} evaluation (seed 1)"])


# ---------------------------------------------------------------------------------------- onnxruntime


def session(path: Path, as_artifact: bool = False) -> Any:
    """A default onnxruntime session (fp32 and the anchors), or with `as_artifact` the session an
    mlc `onnxruntime` artifact opens for this model: the settings its manifest records
    (`mlc.backends.onnxruntime.session_settings`: on CPU onnxruntime's SkipLayerNormFusion is
    off, its kernel being slower than the ops it replaces: benchmarks/results/runtime.md)."""
    import onnxruntime as ort

    if as_artifact:
        from mlc.backends.onnxruntime import CPU, open_session, session_settings

        return open_session(path, session_settings(CPU))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_batched(path: Path, feeds: dict[str, np.ndarray], batch: int = 50) -> list[np.ndarray]:
    """All outputs of the model on `feeds`, in batches (bounded memory), concatenated on axis 0."""
    sess = session(path)
    names = [i.name for i in sess.get_inputs()]
    count = len(next(iter(feeds.values())))
    parts: list[list[np.ndarray]] = []
    for start in range(0, count, batch):
        parts.append(sess.run(None, {n: feeds[n][start:start + batch] for n in names}))
    return [np.concatenate([p[i] for p in parts]) for i in range(len(parts[0]))]


class Reader:
    """onnxruntime CalibrationDataReader over stacked samples, in equal batches of at most 16: onnxruntime
    1.31's histogram collector (percentile, entropy) fails on a shorter last batch ("inhomogeneous shape")."""

    def __init__(self, feeds: dict[str, np.ndarray], batch: int = 16) -> None:
        count = len(next(iter(feeds.values())))
        batch = max(b for b in range(1, batch + 1) if count % b == 0)
        self._batches: Iterator[dict[str, np.ndarray]] = iter(
            [{k: v[s:s + batch] for k, v in feeds.items()} for s in range(0, count, batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def ort_preprocess(model: Path, out: Path) -> tuple[Path, str]:
    """`quant_pre_process` as onnxruntime recommends; where its symbolic shape inference gives up (bert-ts:
    "Incomplete symbolic shape inference"), again without that step (its optimizer and onnx's shape
    inference still run). Returns the file and what was done."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with contextlib.chdir(out.parent):  # a failing symbolic inference leaves temporary files in the cwd
        try:
            quant_pre_process(str(model), str(out))
            return out, "quant_pre_process (default steps)"
        except Exception as error:  # noqa: BLE001 - onnxruntime raises a bare Exception here
            quant_pre_process(str(model), str(out), skip_symbolic_shape=True)
            return out, f"quant_pre_process with skip_symbolic_shape=True (the default failed: {first_line(error)})"


def ort_static(pre: Path, out: Path, feeds: dict[str, np.ndarray], method: str) -> Path:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class _Reader(Reader, CalibrationDataReader):
        pass

    calibrate = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                 "entropy": CalibrationMethod.Entropy}[method]
    quantize_static(str(pre), str(out), _Reader(feeds), quant_format=QuantFormat.QDQ, per_channel=True,
                    reduce_range=False, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=calibrate, extra_options={"CalibPercentile": PERCENTILE})
    return out


def ort_dynamic(pre: Path, out: Path) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(pre), str(out), weight_type=QuantType.QInt8)
    return out


# ------------------------------------------------------------------------------------------------ mlc


def mlc_mode() -> str:
    """How mlc's int8 is reached with the installed mlc: its API, the passes directly, or not at all."""
    import mlc
    from mlc.pass_api import registered_passes

    if "quantize" in inspect.signature(mlc.optimize).parameters:
        return "api"
    if {"calibrate", "quantize-qdq"} <= set(registered_passes()):
        return "passes"
    return "unavailable"


def _quant_passes(cal: Path, method: str, cache: Path) -> str:
    from mlc.pipelines import PIPELINES

    options = f"data={cal},method={method},cache={cache}"
    if method == "percentile":
        options += f",percentile={PERCENTILE}"
    return ",".join([*PIPELINES["O2"], "calibrate{" + options + "}", "quantize-qdq{calibration=" + str(cache) + "}"])


def mlc_int8(model: Path, cal: Path, method: str, cache: Path, out: Path, target: str) -> Path:
    """mlc's int8 model: `out` (.onnx) for onnxruntime, an artifact folder for `llvm`."""
    import mlc

    mode = mlc_mode()
    if mode == "api":
        kwargs: dict[str, Any] = {"quantize": "int8", "calibration_data": str(cal), "calibration_method": method,
                                  "calibration_cache": str(cache)}
        if method == "percentile":
            kwargs["percentile"] = PERCENTILE
        if target == "onnxruntime":
            return mlc.optimize(model, out, target=target, force=True, **kwargs)  # type: ignore[call-arg]
        return mlc.compile(model, target, out, force=True, **kwargs)  # type: ignore[call-arg]
    if mode == "passes":
        passes = _quant_passes(cal, method, cache)
        if target == "onnxruntime":
            return mlc.optimize(model, out, target=target, passes=passes, verify="none", force=True)
        return mlc.compile(model, target, out, passes=passes, verify="none", force=True)
    raise RuntimeError("mlc has no int8 quantization yet (no quantize= in mlc.optimize, no calibrate/quantize-qdq "
                       "passes)")


def mlc_int8_dynamic(model: Path, out: Path) -> Path:
    """mlc's dynamic int8 model for onnxruntime (no calibration)."""
    import mlc

    return mlc.optimize(model, out, target="onnxruntime", force=True, quantize="int8-dynamic")  # type: ignore[call-arg]


def mlc_o2(model: Path, out: Path) -> Path:
    import mlc

    return mlc.optimize(model, out, target="onnxruntime", level=2, force=True)


def llvm_outputs(model_or_artifact: Path, feeds: dict[str, np.ndarray], compiled: bool) -> list[np.ndarray]:
    """Outputs of TVM llvm on `feeds`: compile the .onnx first unless it is already an artifact."""
    import mlc

    folder = model_or_artifact
    if not compiled:
        folder = mlc.compile(model_or_artifact, "llvm", model_or_artifact.with_suffix(".llvm"), force=True)
    got = mlc.run(folder, feeds)
    return list(got.values())


# --------------------------------------------------------------------------------------------- metrics


def count_nodes(path: Path) -> tuple[int, int]:
    """(main-graph nodes, of them QuantizeLinear/DequantizeLinear)."""
    model = onnx.load(str(path), load_external_data=False)
    qdq = sum(1 for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear"))
    return len(model.graph.node), qdq


INT8_KERNELS = ("QLinear", "QGemm", "MatMulInteger", "ConvInteger", "DynamicQuantizeMatMul", "QAttention",
                "QEmbedLayerNormalization", "NhwcMaxPool")


def int8_kernels(path: Path) -> tuple[int, int]:
    """(int8 kernels, all nodes) in the graph onnxruntime runs after its own optimizations: whether its QDQ
    fusions picked the integer kernels (QLinearConv, QGemm, MatMulInteger, ...), which is where the speed is."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="bench-quantize-ort-") as tmp:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        model = onnx.load(options.optimized_model_filepath, load_external_data=False)
    nodes = model.graph.node
    return sum(1 for n in nodes if n.op_type.startswith(INT8_KERNELS)), len(nodes)


def cosines(got: np.ndarray, ref: np.ndarray) -> np.ndarray:
    a = got.reshape(len(got), -1).astype(np.float64)
    b = ref.reshape(len(ref), -1).astype(np.float64)
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)


def quality(case: Case, outputs: list[np.ndarray], reference: list[np.ndarray]) -> dict[str, Any]:
    """Accuracy (with labels) or agreement with fp32: top-1 on the first output, cosine on every output."""
    row: dict[str, Any] = {}
    if case.labels is not None:
        row["hits"] = outputs[0].argmax(axis=1) == case.labels
        row["accuracy"] = float(np.mean(row["hits"]))
    elif case.name != "bert":
        row["hits"] = outputs[0].argmax(axis=1) == reference[0].argmax(axis=1)
        row["top1"] = float(np.mean(row["hits"]))
    row["cosine"] = [(float(c.mean()), float(c.min())) for c in map(cosines, outputs, reference)]
    return row


def latencies(paths: dict[str, Path], feed: dict[str, np.ndarray], runs: int, block: int = 5) -> dict[str, float]:
    """Median ms per variant, every variant in this process taking turns in blocks of `block` timed runs."""
    sessions = {name: session(path, as_artifact=name.startswith("mlc")) for name, path in paths.items()}
    calls: dict[str, Callable[[], Any]] = {}
    for name, sess in sessions.items():
        wanted = {i.name: feed[i.name] for i in sess.get_inputs()}
        calls[name] = (lambda s, w: (lambda: s.run(None, w)))(sess, wanted)
    from mlc.prune.latency import interleaved_medians

    return interleaved_medians(calls, runs, block)


# ------------------------------------------------------------------------------------------------- run


def bench_case(case: Case, tmp: Path, methods: list[str], runs: int, llvm: bool) -> dict[str, Any]:
    """Every variant of one model: quality rows, latency and node rows."""
    log(f"== {case.name}: {case.model}")
    result: dict[str, Any] = {"name": case.name, "quality": [], "speed": [], "errors": [], "notes": case.notes}
    cal = tmp / f"{case.name}.cal.npz"
    np.savez(cal, **case.calibration)
    reference = run_batched(case.model, case.evaluation)
    result["quality"].append({"variant": "fp32", "target": "onnxruntime", **quality(case, reference, reference)})
    timed: dict[str, Path] = {"fp32": case.model}
    if llvm:
        try:
            got = llvm_outputs(case.model, case.evaluation, compiled=False)
            result["quality"].append({"variant": "fp32", "target": "llvm", **quality(case, got, reference)})
        except Exception as error:  # noqa: BLE001 - a failing compile is a result
            result["errors"].append(f"fp32 on llvm: {first_line(error)}")

    started = time.perf_counter()
    pre, how = ort_preprocess(case.model, tmp / f"{case.name}.pre.onnx")
    result["notes"].append(f"{case.name}: onnxruntime anchor on {how}")
    log(f"   {how}: {time.perf_counter() - started:.1f} s")
    if case.name == "bert":
        path = ort_dynamic(pre, tmp / f"{case.name}.ort_dynamic.onnx")
        got = run_batched(path, case.evaluation)
        result["quality"].append({"variant": "ort dynamic", "target": "onnxruntime", **quality(case, got, reference)})
        timed["ort dynamic"] = path
    for method in methods:
        started = time.perf_counter()
        try:
            path = ort_static(pre, tmp / f"{case.name}.ort_{method}.onnx", case.calibration, method)
        except Exception as error:  # noqa: BLE001 - the anchor failing is a result
            result["errors"].append(f"ort static {method}: {first_line(error)}")
            continue
        log(f"   ort quantize_static {method}: {time.perf_counter() - started:.1f} s")
        got = run_batched(path, case.evaluation)
        result["quality"].append({"variant": f"ort static {method}", "target": "onnxruntime",
                                  **quality(case, got, reference)})
        if method == "minmax":
            timed["ort static minmax"] = path
        if llvm:
            try:
                got = llvm_outputs(path, case.evaluation, compiled=False)
                result["quality"].append({"variant": f"ort static {method}", "target": "llvm",
                                          **quality(case, got, reference)})
            except Exception as error:  # noqa: BLE001
                result["errors"].append(f"ort static {method} on llvm: {first_line(error)}")

    try:
        timed["mlc -O2 fp32"] = mlc_o2(case.model, tmp / f"{case.name}.mlc_o2.onnx")
    except Exception as error:  # noqa: BLE001
        result["errors"].append(f"mlc -O2: {first_line(error)}")
    if case.name == "bert":
        started = time.perf_counter()
        try:
            path = mlc_int8_dynamic(case.model, tmp / f"{case.name}.mlc_dynamic.onnx")
            log(f"   mlc int8-dynamic: {time.perf_counter() - started:.1f} s")
            got = run_batched(path, case.evaluation)
            result["quality"].append({"variant": "mlc int8-dynamic", "target": "onnxruntime",
                                      **quality(case, got, reference)})
            timed["mlc int8-dynamic"] = path
        except Exception as error:  # noqa: BLE001 - an mlc without the mode is a result
            result["errors"].append(f"mlc int8-dynamic: {first_line(error)}")
    mode = mlc_mode()
    result["mlc_mode"] = mode
    if mode != "unavailable":
        for method in methods:
            cache = tmp / f"{case.name}.{method}.calibration.json"
            started = time.perf_counter()
            try:
                path = mlc_int8(case.model, cal, method, cache, tmp / f"{case.name}.mlc_{method}.onnx", "onnxruntime")
                log(f"   mlc int8 {method}: {time.perf_counter() - started:.1f} s")
                got = run_batched(path, case.evaluation)
                result["quality"].append({"variant": f"mlc int8 {method}", "target": "onnxruntime",
                                          **quality(case, got, reference)})
                if method == "minmax":
                    timed["mlc int8 minmax"] = path
            except Exception as error:  # noqa: BLE001
                result["errors"].append(f"mlc int8 {method}: {first_line(error)}")
                log(traceback.format_exc())
            if llvm:
                try:
                    folder = mlc_int8(case.model, cal, method, cache, tmp / f"{case.name}.mlc_{method}.llvm", "llvm")
                    got = llvm_outputs(folder, case.evaluation, compiled=True)
                    result["quality"].append({"variant": f"mlc int8 {method}", "target": "llvm",
                                              **quality(case, got, reference)})
                except Exception as error:  # noqa: BLE001
                    result["errors"].append(f"mlc int8 {method} on llvm: {first_line(error)}")
                    log(traceback.format_exc())

    log(f"   timing {len(timed)} variants, {runs} runs each")
    medians = latencies(timed, case.timing, runs)
    for name, path in timed.items():
        nodes, qdq = count_nodes(path)
        kernels, ort_nodes = int8_kernels(path)
        result["speed"].append({"variant": name, "ms": medians[name], "speedup": medians["fp32"] / medians[name],
                                "nodes": nodes, "qdq": qdq, "int8_kernels": kernels, "ort_nodes": ort_nodes})
    return result


# ------------------------------------------------------------------------------------------------ report


def cpu_description() -> tuple[str, bool]:
    name, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and name in ("", platform.machine(), platform.processor()):
                name = value.strip()
            if key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    return name, "avx512_vnni" in flags


def versions() -> str:
    return machine_versions(ROOT)


def _fmt_quality(row: dict[str, Any]) -> list[str]:
    metric = (f"{100 * row['accuracy']:.2f} %" if "accuracy" in row
              else f"{100 * row['top1']:.1f} %" if "top1" in row else "—")
    cos = " / ".join(f"{mean:.5f} (min {low:.4f})" for mean, low in row["cosine"])
    return [row["variant"], row["target"], metric, cos]


def paired(ours: np.ndarray, anchor: np.ndarray) -> str:
    """The samples only one of two variants gets right, with the exact two-sided McNemar p-value
    (a binomial test on those discordant samples): how much a top-1 difference can be chance."""
    only_ours, only_anchor = int(np.sum(ours & ~anchor)), int(np.sum(~ours & anchor))
    n, k = only_ours + only_anchor, min(only_ours, only_anchor)
    p = min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n) if n else 1.0
    return f"paired: {only_ours} right only for mlc, {only_anchor} only for the anchor, McNemar p={p:.2f}"


def summary(results: list[dict[str, Any]]) -> list[str]:
    """The issue's acceptance lines, computed from the rows: digits within 0.5 points of fp32 per method and target,
    ours against the anchor (accuracy or agreement, and speed under onnxruntime)."""
    lines: list[str] = []
    for r in results:
        rows = {(q["variant"], q["target"]): q for q in r["quality"]}
        key = "accuracy" if r["name"] == "digits" else "top1" if r["name"] != "bert" else None
        for (variant, target), q in rows.items():
            if not variant.startswith("mlc int8 "):
                continue
            method = variant.removeprefix("mlc int8 ")
            anchor = rows.get((f"ort static {method}", target))
            parts = []
            if key == "accuracy":
                delta = 100 * (q[key] - rows[("fp32", target)][key])
                parts.append(f"{delta:+.2f} pt vs fp32 ({'within' if abs(delta) <= 0.5 else 'OUTSIDE'} 0.5)")
            if anchor is not None and key is not None:
                diff = 100 * (q[key] - anchor[key])
                parts.append(f"{diff:+.2f} pt vs ort static {method} ({'ok' if diff >= 0 else 'BELOW'}; "
                             f"{paired(q['hits'], anchor['hits'])})")
            elif anchor is not None:
                diff = min(c[0] for c in q["cosine"]) - min(c[0] for c in anchor["cosine"])
                parts.append(f"worst output's mean cosine {diff:+.5f} vs ort static {method} "
                             f"({'ok' if diff >= 0 else 'BELOW'})")
            if r["name"] == "bert" and ("ort dynamic", target) in rows:
                diff = (min(c[0] for c in q["cosine"])
                        - min(c[0] for c in rows[("ort dynamic", target)]["cosine"]))
                parts.append(f"{diff:+.5f} vs ort dynamic ({'ok' if diff >= 0 else 'BELOW'})")
            lines.append(f"* {r['name']} {variant} on {target}: " + "; ".join(parts))
        dynamic, anchor = rows.get(("mlc int8-dynamic", "onnxruntime")), rows.get(("ort dynamic", "onnxruntime"))
        if dynamic is not None and anchor is not None:
            diff = min(c[0] for c in dynamic["cosine"]) - min(c[0] for c in anchor["cosine"])
            lines.append(f"* {r['name']} mlc int8-dynamic on onnxruntime: worst output's mean cosine {diff:+.5f} vs "
                         f"ort dynamic ({'ok' if diff >= 0 else 'BELOW'})")
        speed = {s["variant"]: s for s in r["speed"]}
        if "mlc int8-dynamic" in speed and "ort dynamic" in speed:
            ratio = speed["ort dynamic"]["ms"] / speed["mlc int8-dynamic"]["ms"]
            lines.append(f"* {r['name']} speed: mlc int8-dynamic {speed['mlc int8-dynamic']['speedup']:.2f}x over "
                         f"fp32, ort dynamic {speed['ort dynamic']['speedup']:.2f}x; ours/anchor median ratio "
                         f"{ratio:.3f} ({'at least as fast' if ratio >= 1 else 'SLOWER'})")
        if "mlc int8 minmax" in speed:
            for anchor_name in ("ort static minmax", "ort dynamic"):
                if anchor_name in speed:
                    ratio = speed[anchor_name]["ms"] / speed["mlc int8 minmax"]["ms"]
                    lines.append(f"* {r['name']} speed: mlc int8 {speed['mlc int8 minmax']['speedup']:.2f}x over fp32, "
                                 f"{anchor_name} {speed[anchor_name]['speedup']:.2f}x; ours/anchor median ratio "
                                 f"{ratio:.3f} ({'at least as fast' if ratio >= 1 else 'SLOWER'})")
    return lines


def markdown(results: list[dict[str, Any]], command: str, seconds: float) -> str:
    cpu, vnni = cpu_description()
    lines = [
        "# int8 quantization: mlc vs onnxruntime's quantizer",
        "",
        f"`{command}` — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {seconds:.0f} s.",
        "",
        f"CPU: {cpu}, {__import__('os').cpu_count()} cores visible; avx512_vnni in /proc/cpuinfo flags: "
        f"**{'yes' if vnni else 'no'}**. {versions()}.",
        "",
        "What runs is described in `benchmarks/bench_quantize.py`'s docstring. Data:",
        "",
    ]
    lines += [f"* {note}" for r in results for note in r["notes"]]
    modes = {r.get("mlc_mode", "unavailable") for r in results}
    lines += ["", "mlc int8 reached through: " + ", ".join(sorted(modes)) + (
        " (**mlc's quantization passes are not available in this checkout: only fp32 and the onnxruntime anchor "
        "are measured**)" if modes == {"unavailable"} else ""), ""]
    checks = summary(results)
    if checks:
        lines += ["## Summary against the issue's acceptance", "", *checks, ""]
    for r in results:
        lines += [f"## {r['name']}", ""]
        metric = "top-1 accuracy (test)" if r["name"] == "digits" else (
            "top-1 agreement with fp32" if r["name"] != "bert" else "top-1")
        outputs = "cosine with fp32, per output: mean (min)"
        lines += [f"| variant | target | {metric} | {outputs} |", "|---|---|---:|---|"]
        lines += ["| " + " | ".join(_fmt_quality(q)) + " |" for q in r["quality"]]
        lines += ["", "| variant (onnxruntime) | median ms | speedup vs fp32 | nodes | of them Q/DQ "
                  "| onnxruntime's optimized graph: int8 kernels / nodes |", "|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {s['variant']} | {s['ms']:.3f} | {s['speedup']:.2f}x | {s['nodes']} | {s['qdq']} "
                  f"| {s['int8_kernels']} / {s['ort_nodes']} |" for s in r["speed"]]
        if r["errors"]:
            lines += ["", "Failures:", ""] + [f"* {e}" for e in r["errors"]]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["digits", "resnet18", "bert"],
                        choices=["digits", "resnet18", "bert"])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--runs", type=int, default=100, help="timed runs per variant (default 100)")
    parser.add_argument("--eval", type=int, default=500, help="evaluation samples of the zoo models (default 500)")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--no-llvm", action="store_true", help="skip the digits model on TVM llvm")
    parser.add_argument("--markdown", type=Path, default=DEFAULT_MARKDOWN)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    builders = {"digits": digits_case, "resnet18": lambda: resnet_case(args.image_size, args.eval),
                "bert": lambda: bert_case(args.seq, args.eval)}
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-quantize-") as tmp:
        for name in args.models:
            case = builders[name]()
            results.append(bench_case(case, Path(tmp), args.methods, args.runs,
                                      llvm=(name == "digits" and not args.no_llvm)))
    given = sys.argv[1:] if argv is None else argv
    command = " ".join(["python benchmarks/bench_quantize.py", *given])
    text = markdown(results, command, time.perf_counter() - started)
    print(text)
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    args.markdown.write_text(text + "\n")
    log(f"wrote {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
