"""models/make_transformers.py: the BERT and GPT-2 test models are valid, run with dynamic axes, rebuild
byte-identically, and hold the patterns onnxruntime's transformer optimizer (written against real
torch.onnx exports) fuses."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"layers": 2, "hidden": 64, "heads": 4, "vocab": 100, "max_positions": 32, "seed": 3}


def _load_script():
    spec = importlib.util.spec_from_file_location("make_transformers", ROOT / "models" / "make_transformers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


mt = _load_script()
BUILDERS = {"bert": mt.build_bert, "gpt": mt.build_gpt}


def _feeds(name: str, batch: int, seq: int, vocab: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    feeds = {"input_ids": rng.integers(0, vocab, (batch, seq)).astype(np.int64)}
    if name == "bert":
        mask = np.ones((batch, seq), np.int64)
        mask[-1, seq - 3:] = 0  # padding on the last row: the extended mask must not turn into NaN
        feeds["attention_mask"] = mask
        feeds["token_type_ids"] = (np.arange(seq)[None, :].repeat(batch, 0) >= seq // 2).astype(np.int64)
    return feeds


def _run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


@pytest.fixture(scope="module")
def models() -> dict[str, onnx.ModelProto]:
    return {name: build(**SMALL) for name, build in BUILDERS.items()}


@pytest.mark.parametrize("name", ["bert", "gpt"])
def test_the_model_passes_the_full_checker(models, name) -> None:
    model = models[name]
    onnx.checker.check_model(model, full_check=True)
    assert model.ir_version == 8
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]
    ops = {n.op_type for n in model.graph.node}
    # The decomposed export form: no fused op is already there for a pass to find.
    assert not ops & {"LayerNormalization", "Gelu", "FastGelu", "Attention", "MultiHeadAttention"}
    assert {"ReduceMean", "Pow", "Sqrt", "Softmax", "Shape", "Concat", "Reshape", "Transpose"} <= ops
    assert ("Erf" if name == "bert" else "Tanh") in ops
    names = {n.name for n in model.graph.node}
    assert ("/encoder/layer.0/attention/self/query/MatMul" if name == "bert"
            else "/transformer/h.0/attn/c_attn/Gemm") in names


@pytest.mark.parametrize("name", ["bert", "gpt"])
def test_the_model_runs_with_dynamic_batch_and_sequence(models, name) -> None:
    rng = np.random.default_rng(0)
    hidden, vocab = SMALL["hidden"], SMALL["vocab"]
    session = ort.InferenceSession(models[name].SerializeToString(), providers=["CPUExecutionProvider"])
    for batch, seq in [(1, 7), (2, 16)]:
        outputs = session.run(None, _feeds(name, batch, seq, vocab, rng))
        expected = [(batch, seq, hidden), (batch, hidden)] if name == "bert" else [(batch, seq, vocab)]
        assert [o.shape for o in outputs] == expected
        for o in outputs:
            assert o.dtype == np.float32 and np.isfinite(o).all() and np.abs(o).max() > 0


def test_gpt_is_causal(models) -> None:
    """A token never sees later ones: changing the last token leaves the earlier positions' logits alone."""
    ids = np.random.default_rng(1).integers(0, SMALL["vocab"], (1, 9)).astype(np.int64)
    changed = ids.copy()
    changed[0, -1] = (changed[0, -1] + 1) % SMALL["vocab"]
    (a,), (b,) = _run(models["gpt"], {"input_ids": ids}), _run(models["gpt"], {"input_ids": changed})
    np.testing.assert_array_equal(a[:, :-1], b[:, :-1])
    assert not np.array_equal(a[:, -1], b[:, -1])


def test_gpt_options_build_valid_models() -> None:
    rng = np.random.default_rng(2)
    for options in ({"attention_mask": True}, {"linear": "matmul"}):
        model = mt.build_gpt(**SMALL, **options)
        onnx.checker.check_model(model, full_check=True)
        feeds = _feeds("gpt", 2, 5, SMALL["vocab"], rng)
        if options.get("attention_mask"):
            feeds["attention_mask"] = np.array([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]], dtype=np.int64)
        (logits,) = _run(model, feeds)
        assert logits.shape == (2, 5, SMALL["vocab"]) and np.isfinite(logits).all()


def test_builds_are_deterministic_and_the_cli_writes_them(tmp_path) -> None:
    for build in BUILDERS.values():
        assert build(**SMALL).SerializeToString() == build(**SMALL).SerializeToString()
        assert build(**SMALL).SerializeToString() != build(**{**SMALL, "seed": 4}).SerializeToString()
    mt.main(["--out", str(tmp_path), "--layers", "1", "--hidden", "32", "--heads", "2", "--seed", "5"])
    cfg = {"layers": 1, "hidden": 32, "heads": 2, "seed": 5}
    for name, build in BUILDERS.items():
        assert (tmp_path / f"{name}.onnx").read_bytes() == build(**cfg).SerializeToString()


# Fused op counts for SMALL (2 layers) with onnxruntime 1.31: every layer norm, GELU and attention block.
EXPECTED_FUSIONS = {
    "bert": {"EmbedLayerNormalization": 1, "SkipLayerNormalization": 4, "Attention": 2, "BiasGelu": 2},
    "gpt": {"EmbedLayerNormalization": 1, "SkipLayerNormalization": 4, "Attention": 2, "FastGelu": 2},
}


@pytest.mark.parametrize("name", ["bert", "gpt"])
def test_onnxruntime_transformer_optimizer_fuses_the_patterns(models, name) -> None:
    optimizer = pytest.importorskip("onnxruntime.transformers.optimizer",
                                    reason="onnxruntime.transformers is not importable")
    fusion_options = pytest.importorskip("onnxruntime.transformers.fusion_options")
    model_type = "bert" if name == "bert" else "gpt2"
    options = fusion_options.FusionOptions(model_type)
    options.enable_shape_inference = False  # symbolic shape inference needs sympy, not a dependency here
    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)  # "producer not matched" warning
    # opt_level=0: only the Python fusions (opt_level >= 1 imports torch to run onnxruntime's optimizer first).
    source = onnx.ModelProto()
    source.CopyFrom(models[name])  # optimize_model rewrites a ModelProto it is given in place
    fused = optimizer.optimize_model(source, model_type=model_type, num_heads=SMALL["heads"],
                                     hidden_size=SMALL["hidden"], opt_level=0, optimization_options=options)
    stats = {op: n for op, n in fused.get_fused_operator_statistics().items() if n}
    layers = SMALL["layers"]
    assert stats.get("LayerNormalization", 0) + stats.get("SkipLayerNormalization", 0) >= 2 * layers, stats
    gelus = sum(stats.get(op, 0) for op in ("Gelu", "BiasGelu", "FastGelu", "GemmFastGelu"))
    assert gelus == layers, stats
    assert stats.get("Attention", 0) == layers, stats
    assert stats == EXPECTED_FUSIONS[name]
    assert {n.op_type for n in fused.model.graph.node} >= set(EXPECTED_FUSIONS[name])
    assert len(fused.model.graph.node) < len(models[name].graph.node) / 5

    # The fused model computes the same thing, so the decomposed patterns mean what the fused ops do.
    feeds = _feeds(name, 2, 11, SMALL["vocab"], np.random.default_rng(5))
    for want, got in zip(_run(models[name], feeds), _run(fused.model, feeds), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


# What mlc -O3 for the onnxruntime (CPU) target makes of them: every attention block, GELU and layer
# norm fused; no SkipLayerNormalization (slower than its parts on CPU, see bench_skip_layernorm.py).
MLC_O3_CPU = {
    "bert": {"EmbedLayerNormalization": 1, "Attention": 2, "BiasGelu": 2, "LayerNormalization": 4},
    "gpt": {"EmbedLayerNormalization": 1, "Attention": 2, "FastGelu": 2, "LayerNormalization": 4},
}


@pytest.mark.parametrize("name", ["bert", "gpt"])
def test_mlc_o3_fuses_every_block_and_keeps_the_numbers(name, tmp_path) -> None:
    from mlc.cli import main

    source = tmp_path / f"{name}.onnx"
    onnx.save(BUILDERS[name](**SMALL), str(source))
    out = tmp_path / "artifact"
    assert main(["compile", str(source), "-O3", "--target", "onnxruntime", "-o", str(out), "--verify", "each"]) == 0
    fused = onnx.load(str(out / "model.onnx"))
    ops: dict[str, int] = {}
    for node in fused.graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    assert {op: ops.get(op, 0) for op in MLC_O3_CPU[name]} == MLC_O3_CPU[name], ops
    assert not {"Softmax", "Transpose", "Where", "SkipLayerNormalization", "Erf", "Tanh"} & set(ops), ops
    if name == "gpt":
        assert all(onnx.helper.get_attribute_value(a) == 1 for n in fused.graph.node if n.op_type == "Attention"
                   for a in n.attribute if a.name == "unidirectional")
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    original = ort.InferenceSession(source.read_bytes(), providers=["CPUExecutionProvider"])
    feeds = _feeds(name, 2, 9, SMALL["vocab"], np.random.default_rng(4))
    for want, got in zip(original.run(None, feeds), session.run(None, feeds), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-4)
