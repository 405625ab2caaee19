"""The onnxruntime backend's target-specific choices: which composites -O3 emits per execution
provider, and the session settings an artifact records and is opened with."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from mlc.backends.onnxruntime import CPU, CUDA, OnnxRuntimeBackend, open_session, session_settings
from mlc.cli import main


def _add_add_layernorm() -> onnx.ModelProto:
    """x + bias + residual -> LayerNormalization: what onnxruntime's SkipLayerNormFusion matches."""
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), n) for n in ("gamma", "beta", "bias")]
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4, 8]) for n in ("x", "residual")]
    nodes = [helper.make_node("Add", ["x", "bias"], ["biased"]),
             helper.make_node("Add", ["biased", "residual"], ["summed"]),
             helper.make_node("LayerNormalization", ["summed", "gamma", "beta"], ["y"], axis=-1)]
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8])],
                              weights)
    return helper.make_model(graph, ir_version=9, opset_imports=[helper.make_opsetid("", 17)])


def test_cpu_composites_leave_out_skip_layernorm_and_cuda_keeps_it() -> None:
    backend = OnnxRuntimeBackend()
    cpu, cuda = backend.composites(CPU), backend.composites(CUDA)
    assert "fuse-skip-layernorm" not in cpu and "fuse-skip-layernorm" in cuda
    assert "fuse-attention{form=contrib}" in cpu and cpu[-1] == "dce"


def test_ort_knows_the_optimizer_name_the_cpu_artifact_disables(tmp_path) -> None:
    """A misspelt optimizer name would leave the fusion on without a word: check that the
    session really keeps Add+Add+LayerNormalization when opened with the CPU settings, and fuses
    them into SkipLayerNormalization when opened with none disabled."""
    model = _add_add_layernorm().SerializeToString()

    def ops_after_session_optimization(settings: dict) -> list[str]:
        options = ort.SessionOptions()
        options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
        ort.InferenceSession(model, options, providers=settings["providers"],
                             disabled_optimizers=settings["disabled_optimizers"])
        return [n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node]

    settings = session_settings(CPU)
    assert settings["disabled_optimizers"][0] == "SkipLayerNormFusion"
    assert "SkipLayerNormFusion" not in session_settings(CUDA)["disabled_optimizers"]
    assert ops_after_session_optimization(settings) == ["Add", "Add", "LayerNormalization"]
    assert ops_after_session_optimization({**settings, "disabled_optimizers": []}) == ["SkipLayerNormalization"]


def test_the_artifact_records_its_session_settings_and_opens_with_them(tmp_path, monkeypatch) -> None:
    source = tmp_path / "skip.onnx"
    onnx.save(_add_add_layernorm(), str(source))
    out = tmp_path / "artifact"
    assert main(["compile", str(source), "--target", "onnxruntime", "-o", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["backend_options"] == session_settings(CPU)

    seen: list[dict] = []
    real = ort.InferenceSession

    def recording(*args, **kwargs):
        seen.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", recording)
    runner = OnnxRuntimeBackend().load(out, manifest)
    feeds = {n: np.ones((1, 4, 8), np.float32) for n in ("x", "residual")}
    assert runner.run(feeds)["y"].shape == (1, 4, 8)
    assert seen and seen[-1]["disabled_optimizers"] == session_settings(CPU)["disabled_optimizers"]


def test_a_manifest_without_disabled_optimizers_still_opens(tmp_path) -> None:
    """Artifacts written before the setting existed open with nothing disabled."""
    path = tmp_path / "m.onnx"
    onnx.save(_add_add_layernorm(), str(path))
    settings = {"graph_optimization_level": "ORT_ENABLE_ALL", "providers": ["CPUExecutionProvider"]}
    session = open_session(path, settings)
    (y,) = session.run(None, {n: np.zeros((1, 4, 8), np.float32) for n in ("x", "residual")})
    assert y.shape == (1, 4, 8)
