"""The TensorRT backend: what runs without a GPU (availability line, refusal of plans built for
another compute capability or TensorRT, the engine-layer mapping `mlc debug` uses, the manifest's
record), and, where a CUDA GPU and `mlc[tensorrt]` are present, real plans against onnxruntime.
The GPU tests skip with the reason `available()` gives; nothing here fakes a build or a run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mlc.backends.base import CompileResult
from mlc.backends.cuda_device import GpuFacts, GpuProbe, current_gpu
from mlc.backends.tensorrt import (
    INSTALL,
    NOT_DETERMINISTIC,
    TensorRTBackend,
    plan_options,
    portability_refusal,
)
from mlc.backends.tensorrt_layers import first_divergence, map_layers, parse_layers, same_layers
from mlc.backends.tensorrt_profiles import Profile
from mlc.ir.parser import parse_ir
from mlc.numerics.compare import compare_array
from mlc.pass_api import Numerics
from tests.cli.helpers import DIGITS, mlc

ROOT = Path(__file__).resolve().parents[2]
AVAILABLE = TensorRTBackend().available("tensorrt")
needs_gpu = pytest.mark.skipif(not AVAILABLE.ok, reason=f"TensorRT: {AVAILABLE.reason}")
without_gpu = pytest.mark.skipif(AVAILABLE.ok, reason="this machine has TensorRT and a CUDA GPU")

BUILT = {"tensorrt": "11.4.0.106", "gpu": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0",
         "hardware_compatibility": "none"}


# ------------------------------------------------------------------ availability and refusal
@without_gpu
def test_unavailable_names_the_gpu_and_the_install() -> None:
    assert not AVAILABLE.ok
    assert AVAILABLE.reason.startswith(INSTALL)
    assert "pip install 'mlc[tensorrt]'" in AVAILABLE.reason and "CUDA GPU" in AVAILABLE.reason


@without_gpu
def test_mlc_targets_says_what_tensorrt_needs(capfd: pytest.CaptureFixture[str]) -> None:
    code, out, _ = mlc(capfd, "targets", "--json")
    assert code == 0
    row = next(t for t in json.loads(out)["targets"] if t["target"] == "tensorrt")
    assert row["available"] is False
    assert "needs a CUDA GPU and `pip install 'mlc[tensorrt]'`" in row["reason"]


@without_gpu
def test_compile_for_tensorrt_without_gpu_exits_3_in_one_line(tmp_path: Path,
                                                              capfd: pytest.CaptureFixture[str]) -> None:
    code, out, err = mlc(capfd, "compile", DIGITS, "--target", "tensorrt", "-o", tmp_path / "a")
    assert code == 3, err
    assert len(err.strip().splitlines()) == 1 and "CUDA GPU" in err and "mlc[tensorrt]" in err
    assert not (tmp_path / "a").exists()


def test_refusal_names_both_compute_capabilities() -> None:
    here = GpuProbe(GpuFacts("NVIDIA A10", "8.6"))
    line = portability_refusal(BUILT, here, "11.4.0.106")
    assert line is not None and "\n" not in line
    assert "compute capability 9.0 (NVIDIA H100 80GB HBM3)" in line
    assert "compute capability 8.6 (NVIDIA A10)" in line


def test_refusal_names_both_tensorrt_versions() -> None:
    line = portability_refusal(BUILT, GpuProbe(GpuFacts("NVIDIA H100 PCIe", "9.0")), "11.5.0.1")
    assert line is not None and "TensorRT 11.4.0.106" in line and "TensorRT 11.5.0.1" in line


def test_refusal_without_gpu_or_tensorrt() -> None:
    no_gpu = portability_refusal(BUILT, GpuProbe(None, "no CUDA GPU (cudaErrorInsufficientDriver)"), "11.4.0.106")
    assert no_gpu is not None and "no CUDA GPU (cudaErrorInsufficientDriver)" in no_gpu and "9.0" in no_gpu
    no_trt = portability_refusal(BUILT, GpuProbe(GpuFacts("NVIDIA H100 80GB HBM3", "9.0")), None)
    assert no_trt is not None and "no TensorRT" in no_trt


def test_same_compute_capability_and_version_runs() -> None:
    """Another GPU model of the same compute capability is allowed (TensorRT deserializes it)."""
    assert portability_refusal(BUILT, GpuProbe(GpuFacts("NVIDIA H100 PCIe", "9.0")), "11.4.0.106") is None


def _plan_artifact(folder: Path, requirements: dict[str, str]) -> Path:
    """An artifact as a TensorRT machine writes it, with the manifest naming `requirements`. The
    plan bytes are not a plan: `mlc run` must refuse from the manifest before TensorRT reads them."""
    from mlc.artifact import write_artifact
    from mlc.driver import artifact_manifest, import_checked
    from mlc.onnx_io.exporter import save_onnx

    graph = import_checked(DIGITS)

    def build(tmp: Path) -> dict[str, object]:
        save_onnx(graph, tmp / "model.onnx")
        (tmp / "model.plan").write_bytes(b"plan built elsewhere")
        (tmp / "timing.cache").write_bytes(b"")
        compiled = CompileResult(files=["model.onnx", "model.plan", "timing.cache"], requirements=requirements,
                                 options={"profiles": {"pixels": {"min": [1, 64], "opt": [1, 64], "max": [8, 64]}}})
        return artifact_manifest(graph, "tensorrt", TensorRTBackend(), compiled, source=DIGITS)

    return write_artifact(folder, build)


def test_mlc_run_refuses_a_plan_of_another_compute_capability(tmp_path: Path,
                                                             capfd: pytest.CaptureFixture[str]) -> None:
    """Compute capability 6.1 (Pascal) is one no GPU TensorRT 11 supports has, so this refusal
    holds on every machine: without a GPU it names the missing GPU, with one both capabilities."""
    artifact = _plan_artifact(tmp_path / "plan.tensorrt", {**BUILT, "compute_capability": "6.1",
                                                            "gpu": "NVIDIA GeForce GTX 1080"})
    code, out, err = mlc(capfd, "run", artifact, "--input-shape", "pixels:1,64")
    assert code == 3, err
    assert len(err.strip().splitlines()) == 1, err
    assert "compute capability 6.1 (NVIDIA GeForce GTX 1080) with TensorRT 11.4.0.106" in err
    gpu = current_gpu().gpu
    if gpu is not None and AVAILABLE.ok:
        assert f"compute capability {gpu.compute_capability} ({gpu.name})" in err
    else:
        assert "this machine has no" in err


# ------------------------------------------------------------------ manifest record
def test_plan_options_record_hashes_profiles_and_determinism(tmp_path: Path) -> None:
    (tmp_path / "model.plan").write_bytes(b"\x01\x02")
    profiles = {"x": Profile((1, 3), (4, 3), (8, 3))}
    fresh = plan_options(profiles, tmp_path, b"", b"cache", None)
    assert fresh["profiles"] == {"x": {"min": [1, 3], "opt": [4, 3], "max": [8, 3]}}
    assert fresh["timing_cache_source"] == "new" and fresh["timing_cache_missed"] is None
    assert fresh["plan_sha256"] == "a12871fee210fb8619291eaea194581cbd2531e4b23759d225f6806923f63222"
    assert fresh["not_deterministic"] == NOT_DETERMINISTIC and fresh["strongly_typed"] is True
    reused = plan_options(profiles, tmp_path, b"cache", b"cache+more", "old/timing.cache")
    assert reused["timing_cache_missed"] is True and reused["timing_cache_source"] == "old/timing.cache"
    assert plan_options(profiles, tmp_path, b"cache", b"cache", "c")["timing_cache_missed"] is False


def test_timing_cache_flag_needs_an_existing_file(tmp_path: Path) -> None:
    from mlc.errors import BadInputError

    with pytest.raises(BadInputError, match=r"--timing-cache .*no such file"):
        TensorRTBackend().validate_options("tensorrt", {"timing_cache": str(tmp_path / "missing.cache")})
    with pytest.raises(BadInputError, match="min <= opt <= max"):
        TensorRTBackend().validate_options("tensorrt", {"input_profiles": ["x:8..1"]})


# ------------------------------------------------------------------ layers back to our nodes
GRAPH = '''graph "g" (%x: f32[1,3,8,8]) {
  const %w = splat<f32[4,3,3,3]> 0.5
  const %b = splat<f32[4]> 0.1
  const %w2 = splat<f32[4,4,1,1]> 0.25
  %c: f32[1,4,6,6] = Conv(%x, %w, %b) name="/conv1/Conv"
  %r: f32[1,4,6,6] = Relu(%c) name="/relu/Relu"
  %c2: f32[1,4,6,6] = Conv(%r, %w2) name="/conv2/Conv"
  %s: f32[1,4,6,6] = Sigmoid(%c2) name="/act/Sigmoid"
  %m: f32[1,4,6,6] = Mul(%c2, %s) name="/act/Mul"
  %a: f32[1,4,6,6] = Add(%m, %r) name="/add/Add"
  %y: f32[1,4,6,6] = Relu(%a) name="/out/Relu"
  return %y
}'''

# The shape of IEngineInspector's JSON (detailed verbosity) for that graph: Conv+Relu fused by
# name, a point-wise chain with its metadata, a reformat layer, and a Myelin foreign node.
LAYERS = {"Layers": [
    {"Name": "Reformatting CopyNode for Input Tensor 0 to /conv1/Conv + /relu/Relu", "LayerType": "Reformat",
     "Inputs": [{"Name": "x"}], "Outputs": [{"Name": "Reformatted Input Tensor 0 to /conv1/Conv + /relu/Relu"}]},
    {"Name": "/conv1/Conv + /relu/Relu", "LayerType": "CaskConvolution", "Inputs": [{"Name": "x"}],
     "Outputs": [{"Name": "r"}], "Metadata": ""},
    {"Name": "/conv2/Conv", "LayerType": "CaskConvolution", "Outputs": [{"Name": "c2"}],
     "Metadata": "[ONNX Layer: /conv2/Conv]"},
    {"Name": "PWN(PWN(/act/Sigmoid, /act/Mul), /add/Add)", "LayerType": "PointWiseV2",
     "Outputs": [{"Name": "a"}],
     "Metadata": "[ONNX Layer: /act/Sigmoid]\x1f[ONNX Layer: /act/Mul]\x1f[ONNX Layer: /add/Add]"},
    {"Name": "{ForeignNode[/out/Relu]}", "LayerType": "Myelin", "Outputs": [{"Name": "y"}]},
], "Bindings": ["x", "y"]}


def test_layers_map_to_our_nodes_and_survivors() -> None:
    graph = parse_ir(GRAPH)
    layers = parse_layers(json.dumps(LAYERS))
    assert [layer.onnx_nodes for layer in layers[1:]] == [
        ("/conv1/Conv", "/relu/Relu"), ("/conv2/Conv",), ("/act/Sigmoid", "/act/Mul", "/add/Add"), ("/out/Relu",)]
    mapped = map_layers(layers, graph)
    assert mapped.layer_of_node["/relu/Relu"] == "/conv1/Conv + /relu/Relu"
    assert mapped.layer_of_node["/act/Mul"] == "PWN(PWN(/act/Sigmoid, /act/Mul), /add/Add)"
    assert mapped.survivors == ["r", "c2", "a", "y"]  # topological; c, s, m live inside fused layers
    assert sorted(mapped.fused_away(graph)) == ["c", "m", "s"]
    assert mapped.unmapped_layers == []


def test_layer_names_without_metadata_and_foreign_ranges() -> None:
    graph = parse_ir(GRAPH)
    layers = parse_layers({"Layers": [
        {"Name": "PWN(PWN(/act/Sigmoid, /act/Mul), /add/Add)", "Outputs": [{"Name": "a"}]},
        {"Name": "{ForeignNode[/conv1/Conv.../conv2/Conv]}", "Outputs": [{"Name": "c2"}]},
        {"Name": "/out/Relu", "Outputs": ["y"]},
        "a layer name only"]})
    assert layers[0].onnx_nodes == ("/act/Sigmoid", "/act/Mul", "/add/Add")
    mapped = map_layers(layers, graph)
    assert mapped.nodes_of_layer["{ForeignNode[/conv1/Conv.../conv2/Conv]}"] == (
        "/conv1/Conv", "/relu/Relu", "/conv2/Conv")
    assert mapped.unmapped_layers == ["a layer name only"]
    assert mapped.survivors == ["c2", "a", "y"]


def test_rebuilt_engine_with_survivors_marked_is_checked_for_the_same_fusions() -> None:
    measured = parse_layers(LAYERS)
    assert same_layers(measured, measured) == []
    split = [*measured[:1], *parse_layers({"Layers": [{"Name": "/conv1/Conv"}, {"Name": "/relu/Relu"}]}),
             *measured[2:]]
    assert same_layers(measured, split) == ["/conv1/Conv + /relu/Relu"]


def test_first_divergence_names_the_fused_layer_and_model_nodes() -> None:
    graph = parse_ir(GRAPH)
    mapped = map_layers(parse_layers(LAYERS), graph)
    rng = np.random.default_rng(0)
    reference = {name: rng.standard_normal((1, 4, 6, 6)).astype(np.float32) for name in mapped.survivors}
    engine = {name: value.copy() for name, value in reference.items()}
    engine["a"] = engine["a"] + 0.5  # the point-wise layer computes wrongly; y after it too
    engine["y"] = engine["y"] + 0.5

    def judge(name: str):  # type: ignore[no-untyped-def]
        return compare_array(name, reference[name], engine[name], Numerics.TOLERANCE)

    found = first_divergence(mapped.survivors, mapped, graph, judge)
    assert found is not None and found.tensor == "a"
    assert found.layer == "PWN(PWN(/act/Sigmoid, /act/Mul), /add/Add)"
    assert "our nodes /act/Sigmoid, /act/Mul, /add/Add" in mapped.describe_layer(found.layer, graph)
    engine["a"], engine["y"] = reference["a"].copy(), reference["y"].copy()
    assert first_divergence(mapped.survivors, mapped, graph, judge) is None


# ------------------------------------------------------------------ on a GPU
# the bundled models' batch dim is dynamic: a profile covering the batches compile checks at (2 and 3)
PROFILES = {"digits_mlp.onnx": "pixels:1,64..8,64", "digits_cnn.onnx": "image:1,1,8,8..8,1,8,8"}


@needs_gpu
@pytest.mark.parametrize("model", sorted(PROFILES))
def test_plan_matches_onnxruntime(model: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / model
    shutil.copy(ROOT / "models" / model, source)
    code, out, err = mlc(capfd, "compile", source, "--target", "tensorrt", "--input-shape", PROFILES[model],
                         "-o", tmp_path / "plan")
    assert code == 0, err
    manifest = json.loads((tmp_path / "plan" / "manifest.json").read_text())
    assert manifest["verification"]["artifact"] == "ok"
    assert {"model.plan", "model.onnx", "timing.cache", "layers.json"} <= set(manifest["files"])
    gpu = current_gpu().gpu
    assert gpu is not None and manifest["requirements"]["compute_capability"] == gpu.compute_capability


# ------------------------------------------------------------------ flags and mlc debug
def test_profile_ranges_and_timing_cache_are_tensorrt_flags(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    code, _, err = mlc(capfd, "compile", DIGITS, "--target", "onnxruntime", "--input-shape", "pixels:1,64..8,64",
                       "-o", tmp_path / "a")
    assert code == 2 and "a range is a TensorRT optimization profile" in err and len(err.strip().splitlines()) == 1
    code, _, err = mlc(capfd, "compile", DIGITS, "--target", "llvm", "--timing-cache", DIGITS, "-o", tmp_path / "b")
    assert code == 2 and "--timing-cache" in err and "only --target tensorrt" in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@without_gpu
def test_mlc_debug_tensorrt_checks_passes_and_says_the_engine_was_not_compared(
        capfd: pytest.CaptureFixture[str]) -> None:
    code, out, err = mlc(capfd, "debug", DIGITS, "--target", "tensorrt", "--report", "-")
    assert code == 0, err
    report = json.loads(out)
    assert report["verdict"] == "ok"
    assert report["engine"]["compared"] is False and "CUDA GPU" in report["engine"]["reason"]


@needs_gpu
def test_mlc_debug_tensorrt_compares_the_engine(capfd: pytest.CaptureFixture[str]) -> None:
    code, out, err = mlc(capfd, "debug", DIGITS, "--target", "tensorrt", "--input-shape",
                         PROFILES["digits_mlp.onnx"], "--report", "-")
    assert code == 0, err
    assert json.loads(out)["engine"] == {**json.loads(out)["engine"], "compared": True, "verdict": "ok"}


# ------------------------------------------------------------------ refused before TensorRT is asked
UNSUPPORTED = '''model ir_version=8 opset_import={"": 17}
graph "g" (%x: f32[8]) {
  %y: f32[?] = Unique(%x) name="/dedupe/Unique"
  return %y
}'''
DYNAMIC = '''model ir_version=8 opset_import={"": 17}
graph "g" (%x: f32[N,4]) {
  %y: f32[N,4] = Relu(%x) name="/act/Relu"
  return %y
}'''


def test_compile_refuses_unsupported_nodes_by_name_before_building(tmp_path: Path) -> None:
    """The support table answers before TensorRT is imported: one line naming our node."""
    from mlc.errors import BadInputError

    with pytest.raises(BadInputError) as refused:
        TensorRTBackend().compile(parse_ir(UNSUPPORTED), "tensorrt", {}, tmp_path)
    line = str(refused.value)
    assert "\n" not in line and "/dedupe/Unique" in line and "tensorrt" in line
    assert list(tmp_path.iterdir()) == []


def test_compile_refuses_a_dynamic_dim_without_a_profile_before_building(tmp_path: Path) -> None:
    from mlc.errors import BadInputError

    with pytest.raises(BadInputError, match=r"input 'x' dim 0 \(N\) is dynamic: give its range with --input-shape"):
        TensorRTBackend().compile(parse_ir(DYNAMIC), "tensorrt", {}, tmp_path)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ the graphs TensorRT is given
CNN = ROOT / "models" / "digits_cnn.onnx"


def test_int8_for_tensorrt_is_symmetric_qdq_with_float_biases_and_buildable(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """`--quantize int8 --target tensorrt` writes the QDQ form TensorRT takes (int8, zero point 0,
    no int32 bias), checked by the lossy gate on onnxruntime CPU and by TensorRT's support table."""
    import onnx
    from onnx import numpy_helper

    from mlc.onnx_io.importer import import_onnx
    from mlc.op_support import support_report

    out = tmp_path / "int8.onnx"
    code, _, err = mlc(capfd, "optimize", CNN, "--target", "tensorrt", "--quantize", "int8", "--calibration-data",
                       ROOT / "models" / "digits_cnn.calibration.npz", "--calibration-cache", tmp_path / "cal.json",
                       "-o", out)
    assert code == 0, err
    model = onnx.load(out)
    values = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    qdq = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert len(qdq) > 10
    for node in qdq:
        zero_point = values[node.input[2]]
        assert zero_point.dtype == np.int8 and not zero_point.any(), node.name
    assert not any(v.dtype == np.int32 for v in values.values())
    assert support_report(import_onnx(out), "tensorrt").ok


def test_fp16_for_tensorrt_is_buildable(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    import onnx

    from mlc.onnx_io.importer import import_onnx
    from mlc.op_support import support_report

    out = tmp_path / "fp16.onnx"
    code, _, err = mlc(capfd, "optimize", CNN, "--target", "tensorrt", "--precision", "fp16", "-o", out)
    assert code == 0, err
    model = onnx.load(out)
    assert {i.data_type for i in model.graph.initializer} == {onnx.TensorProto.FLOAT16}
    assert [n.op_type for n in model.graph.node].count("Cast") == 2  # at the float32 interface only
    assert support_report(import_onnx(out), "tensorrt").ok


@needs_gpu
def test_rebuild_with_the_artifacts_timing_cache_gives_the_same_plan(tmp_path: Path,
                                                                     capfd: pytest.CaptureFixture[str]) -> None:
    """Static shapes, the same GPU and TensorRT, the first build's timing cache: the same plan bytes
    (what the manifest's `not_deterministic` does not exclude), and the cache did not grow."""
    source = tmp_path / "digits_cnn.onnx"
    shutil.copy(CNN, source)
    profile = ["--input-shape", PROFILES["digits_cnn.onnx"]]
    assert mlc(capfd, "compile", source, "--target", "tensorrt", *profile, "-o", tmp_path / "first")[0] == 0
    first = json.loads((tmp_path / "first" / "manifest.json").read_text())["backend_options"]
    code, _, err = mlc(capfd, "compile", source, "--target", "tensorrt", *profile, "--timing-cache",
                       tmp_path / "first" / "timing.cache", "-o", tmp_path / "again")
    assert code == 0, err
    again = json.loads((tmp_path / "again" / "manifest.json").read_text())["backend_options"]
    assert again["timing_cache_missed"] is False
    assert again["plan_sha256"] == first["plan_sha256"]


def test_checks_run_inside_the_profile_at_its_opt_shape(capfd: pytest.CaptureFixture[str]) -> None:
    """A plan runs only inside its optimization profile: the numbers are checked at `opt`, not at
    the batches 2 and 3 that generated inputs would otherwise take."""
    code, out, err = mlc(capfd, "debug", DIGITS, "--target", "tensorrt", "--input-shape",
                         "pixels:min=1,64;opt=5,64;max=8,64", "--report", "-")
    assert code == 0, err
    assert json.loads(out)["input_sets"] == [{"pixels": {"dtype": "float32", "shape": [5, 64]}}]


@pytest.mark.parametrize("name", ["bert-dynamo", "gpt2-dynamo", "vit-ts", "lstm-dynamo"])
def test_real_exports_reach_tensorrt_buildable(name: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """Real PyTorch exports through the tensorrt pipeline (numbers checked by `mlc optimize`): every
    node is in TensorRT's table; dynamo's `x.size(i)` Squeezes without axes (refused by TensorRT's
    parser before 11.5) got explicit ones from the target's legalization."""
    from mlc.onnx_io.importer import import_onnx
    from mlc.op_support import support_report
    from tests.passes.real_exports import export_path

    source = export_path(name)
    before = support_report(import_onnx(source), "tensorrt")
    out = tmp_path / "trt.onnx"
    code, _, err = mlc(capfd, "optimize", source, "--target", "tensorrt", "-o", out)
    assert code == 0, err
    after = support_report(import_onnx(out), "tensorrt")
    assert after.ok, after.one_line(str(out))
    if name.endswith("dynamo") and name != "lstm-dynamo":
        assert not before.ok and all(n.op_type == "Squeeze" for n in before.unsupported)
