"""The reference loads every graph a file would, and never reads anything from the working folder.

Numeric checks hand large main-graph initializers to onnxruntime from memory (`WeightCache`,
`PreparedModel`). Found on real PyTorch exports: a large `Constant` (BERT's `position_ids` buffer,
[1, 512] int64) was declared external too, under an empty name: onnxruntime then looked for its
bytes in a file `mlc-shared-weights` in the working folder ("External data path validation
failed"), or, where some node omits an optional input (whose name is ""), was handed over under
the name "" ("Failed to find existing initializer with name ."). Sub-graph and sparse
initializers had the same fate. Each cause has a minimal hand-made model below; the real exports
(TorchScript BERT and GPT-2) are checked from three working folders, one holding a file named
`mlc-shared-weights`.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import mlc
from mlc.numerics.reference import (
    ORT,
    REFERENCE,
    SHARED_LOCATION,
    PreparedModel,
    ReferenceError,
    WeightCache,
    run_model,
)

# ---------------------------------------------------------------- real exports (cached)
CACHE = Path(os.environ.get("MLC_FIXTURES", Path.home() / ".cache" / "mlc-fixtures"))
RECIPES_VERSION = 2  # bump when a recipe changes: the cache key holds it


def _transformers_model(kind: str) -> Any:
    import torch
    import transformers

    torch.manual_seed(0)
    if kind == "bert":
        config = transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                         intermediate_size=64, max_position_embeddings=512,
                                         attn_implementation="eager")
        bert = transformers.BertModel(config).eval()

        class Bert(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.m = bert

            def forward(self, input_ids: Any, attention_mask: Any) -> Any:
                return self.m(input_ids=input_ids, attention_mask=attention_mask, use_cache=False,
                              return_dict=False)[0]

        return Bert().eval()
    config = transformers.GPT2Config(vocab_size=100, n_embd=32, n_layer=1, n_head=2, n_positions=1024,
                                     attn_implementation="eager", bos_token_id=0, eos_token_id=0)
    gpt = transformers.GPT2LMHeadModel(config).eval()

    class Gpt2(torch.nn.Module):
        """Positions from a buffer (a [1, 1024] constant in a TorchScript export), the mask all ones."""

        def __init__(self) -> None:
            super().__init__()
            self.m = gpt
            self.register_buffer("positions", torch.arange(1024).unsqueeze(0), persistent=False)

        def forward(self, input_ids: Any) -> Any:
            positions = self.positions[:, :input_ids.shape[1]]
            return self.m(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), position_ids=positions,
                          use_cache=False, return_dict=False)[0]

    return Gpt2().eval()


class _Recurrent:
    """A token classifier: embedding, one LSTM / GRU layer (batch first), the last step's state."""

    @staticmethod
    def build(cell: str) -> Any:
        import torch

        torch.manual_seed(0)

        class Classifier(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.embed = torch.nn.Embedding(50, 16)
                self.rnn = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(16, 32, batch_first=True)
                self.head = torch.nn.Linear(32, 4)

            def forward(self, tokens: Any) -> Any:
                out, _ = self.rnn(self.embed(tokens))
                return self.head(out[:, -1])

        return Classifier().eval()


def _unet(upsample: str) -> Any:
    """Two pooling levels and a decoder concatenating skip connections; `scale`: nearest x2,
    `size`: bilinear to the skip connection's size (read from its shape)."""
    import torch
    from torch.nn import functional

    torch.manual_seed(0)

    def block(cin: int, cout: int) -> Any:
        return torch.nn.Sequential(torch.nn.Conv2d(cin, cout, 3, padding=1), torch.nn.ReLU())

    class UNet(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.e1, self.e2, self.mid = block(3, 8), block(8, 16), block(16, 16)
            self.d2, self.d1, self.out = block(32, 8), block(16, 8), torch.nn.Conv2d(8, 2, 1)
            self.pool = torch.nn.MaxPool2d(2)

        def up(self, x: Any, like: Any) -> Any:
            if upsample == "scale":
                return functional.interpolate(x, scale_factor=2.0, mode="nearest")
            return functional.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)

        def forward(self, image: Any) -> Any:
            a = self.e1(image)
            b = self.e2(self.pool(a))
            m = self.mid(self.pool(b))
            y = self.d2(torch.cat([self.up(m, b), b], 1))
            return self.out(self.d1(torch.cat([self.up(y, a), a], 1)))

    return UNet().eval()


def _export(name: str, path: Path) -> None:
    """`KIND_EXPORTER`: bert, gpt2 (input_ids [batch, seq], BERT's mask too), lstm, gru (tokens
    [batch, seq]), unetscale, unetsize (image [batch, 3, h, w]); ts = TorchScript at opset 17
    with dynamic_axes, dynamo = torch.export with Dims at the exporter's own opset (its opset-17
    conversion writes an opset-18 Split)."""
    import torch

    kind, exporter = name.rsplit("_", 1)
    generator = torch.Generator().manual_seed(1)
    batch, seq = torch.export.Dim("batch", max=64), torch.export.Dim("seq", max=64)
    if kind in ("bert", "gpt2"):
        model = _transformers_model(kind)
        ids = torch.randint(0, 100, (2, 8), generator=generator)
        args: tuple[Any, ...] = (ids, torch.ones(2, 8, dtype=torch.int64)) if kind == "bert" else (ids,)
        names = ["input_ids", "attention_mask"][:len(args)]
        axes: dict[str, dict[int, str]] = {n: {0: "batch", 1: "seq"} for n in [*names, "out"]}
        dims: dict[str, Any] = {n: {0: batch, 1: seq} for n in names}
    elif kind in ("lstm", "gru"):
        model = _Recurrent.build(kind)
        args, names = (torch.randint(0, 50, (2, 7), generator=generator),), ["tokens"]
        axes, dims = {"tokens": {0: "batch", 1: "seq"}, "out": {0: "batch"}}, {"tokens": {0: batch, 1: seq}}
    else:
        model = _unet(kind.removeprefix("unet"))
        args, names = (torch.randn(1, 3, 16, 16, generator=generator),), ["image"]
        axes = {"image": {0: "batch", 2: "h", 3: "w"}, "out": {0: "batch", 2: "h", 3: "w"}}
        # the decoder concatenates h with (h // 4) * 2: torch.export wants h a multiple of 4
        dims = {"image": {0: batch, 2: 4 * torch.export.Dim("h", max=64), 3: 4 * torch.export.Dim("w", max=64)}}
    if exporter == "ts":
        torch.onnx.export(model, args, str(path), input_names=names, output_names=["out"], dynamo=False,
                          dynamic_axes=axes, opset_version=17)
    else:
        torch.onnx.export(model, args, str(path), input_names=names, output_names=["out"], dynamo=True,
                          dynamic_shapes=dims, external_data=False)


def real_export(name: str) -> Path:
    """The cached ONNX export `name` (`KIND_EXPORTER`, see `_export`); skips when
    torch/transformers are missing. Written atomically: parallel or interrupted runs leave
    no half file."""
    pytest.importorskip("torch", reason="real exports need torch")
    transformers = pytest.importorskip("transformers", reason="real exports need transformers")
    import torch

    key = f"{name}-r{RECIPES_VERSION}-torch{torch.__version__}-tf{transformers.__version__}".replace("+", "_")
    path = CACHE / f"{key}.onnx"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=CACHE) as scratch:
            tmp = Path(scratch) / "model.onnx"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _export(name, tmp)
            os.replace(tmp, path)
    return path


# ---------------------------------------------------------------- hand-made reproductions
W = (np.arange(2048, dtype=np.float32).reshape(2, 1024) / 1000)  # 8 KiB: over WeightCache's 4 KiB
X = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 1024])
Y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 1024])
C = helper.make_tensor_value_info("c", TensorProto.BOOL, [])
FEEDS = {"x": np.linspace(-1, 1, 2048, dtype=np.float32).reshape(2, 1024), "c": np.array(True)}


def _model(nodes: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto], *, inits: tuple[Any, ...] = (),
           sparse: tuple[Any, ...] = ()) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, [Y], initializer=list(inits), sparse_initializer=list(sparse))
    # onnx 1.23 stamps versions onnxruntime 1.31 refuses
    return helper.make_model(graph, ir_version=10, opset_imports=[helper.make_opsetid("", 17)])


def _branch(name: str, nodes: list[onnx.NodeProto], out: str, inits: tuple[Any, ...] = ()) -> onnx.GraphProto:
    return helper.make_graph(nodes, name, [], [helper.make_tensor_value_info(out, TensorProto.FLOAT, [2, 1024])],
                             initializer=list(inits))


def _constant(name: str, array: np.ndarray) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(array, ""))  # unnamed, as exported


def _cases() -> dict[str, onnx.ModelProto]:
    half = numpy_helper.from_array(np.array(0.5, np.float32), "half")
    sparse_values = numpy_helper.from_array(np.arange(1, 1025, dtype=np.float32), "sw")
    sparse_indices = numpy_helper.from_array(np.arange(0, 2048, 2, dtype=np.int64), "")
    return {
        # the GPT-2 symptom: an unnamed large Constant declared external, looked for on disk
        "large constant": _model([_constant("w", W), helper.make_node("Add", ["x", "w"], ["y"])], [X]),
        # the BERT symptom: ... and handed over under the name "" that an omitted input also has
        "large constant and an omitted input": _model(
            [_constant("w", W), helper.make_node("Add", ["x", "w"], ["s"]),
             helper.make_node("Clip", ["s", "", "half"], ["y"])], [X], inits=(half,)),
        "sub-graph initializers": _model([helper.make_node(
            "If", ["c"], ["y"], then_branch=_branch("then", [helper.make_node("Add", ["x", "wt"], ["yt"])], "yt",
                                                    (numpy_helper.from_array(W, "wt"),)),
            else_branch=_branch("else", [helper.make_node("Sub", ["x", "we"], ["ye"])], "ye",
                                (numpy_helper.from_array(2 * W, "we"),)))], [X, C]),
        "large constant in a branch": _model([helper.make_node(
            "If", ["c"], ["y"],
            then_branch=_branch("then", [_constant("wt", W), helper.make_node("Add", ["x", "wt"], ["yt"])], "yt"),
            else_branch=_branch("else", [helper.make_node("Neg", ["x"], ["ye"])], "ye"))], [X, C]),
        "main initializer read only in a branch": _model([helper.make_node(
            "If", ["c"], ["y"], then_branch=_branch("then", [helper.make_node("Add", ["x", "w"], ["yt"])], "yt"),
            else_branch=_branch("else", [helper.make_node("Neg", ["x"], ["ye"])], "ye"))], [X, C],
            inits=(numpy_helper.from_array(W, "w"),)),
        "sparse initializer": _model([helper.make_node("Add", ["x", "sw"], ["y"])], [X], sparse=(
            helper.make_sparse_tensor(sparse_values, sparse_indices, [2, 1024]),)),
        "initializer named like a graph input": _model(
            [helper.make_node("Add", ["x", "w"], ["y"])], [X, helper.make_tensor_value_info("w", TensorProto.FLOAT,
                                                                                              [2, 1024])],
            inits=(numpy_helper.from_array(W, "w"),)),
    }


CASES = _cases()


def _from_file(model: onnx.ModelProto, folder: Path) -> np.ndarray:
    """What onnxruntime computes for the model saved to a file (what the check must agree with)."""
    path = folder / "model.onnx"
    onnx.save(model, str(path))
    options = ort.SessionOptions()
    options.log_severity_level = 4
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    wanted = {i.name for i in session.get_inputs()}
    return session.run(None, {k: v for k, v in FEEDS.items() if k in wanted})[0]


def _reference_evaluator_runs(model: onnx.ModelProto) -> bool:
    """onnx.reference on the model itself (it lacks sparse initializers: that is not ours to fix)."""
    from onnx.reference import ReferenceEvaluator

    try:
        ReferenceEvaluator(model).run(None, {i.name: FEEDS[i.name] for i in model.graph.input if i.name in FEEDS})
    except Exception:  # noqa: BLE001 - any failure: the engine cannot judge this model
        return False
    return True


def _poisoned(folder: Path) -> Path:
    """A working folder holding a file named like the shared-weights location: were it read, the
    numbers would be garbage."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / SHARED_LOCATION).write_bytes(b"\xff" * (1 << 16))
    return folder


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_reference_runs_what_a_file_runs(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = CASES[case]
    expected = _from_file(model, tmp_path)
    graph = mlc.import_onnx(model)
    engines = [ORT, REFERENCE] if _reference_evaluator_runs(model) else [ORT]
    for cwd in (tmp_path / "empty", _poisoned(tmp_path / "poisoned"), Path(__file__).parent):
        cwd.mkdir(exist_ok=True)
        monkeypatch.chdir(cwd)
        prepared = WeightCache().prepare(graph)
        for engine in engines:
            got = run_model(prepared, FEEDS, ["y"], engine)["y"]
            np.testing.assert_array_equal(got, expected, err_msg=f"{case}, {engine}, cwd {cwd.name}")


def _external(model: onnx.ModelProto) -> list[str]:
    from mlc.numerics.reference import _external_tensors

    return _external_tensors(model)


def test_only_named_main_graph_initializers_are_handed_over() -> None:
    for case, model in CASES.items():
        prepared = WeightCache().prepare(mlc.import_onnx(model))
        main = {t.name for t in prepared.proto.graph.initializer if t.data_location == TensorProto.EXTERNAL}
        assert set(_external(prepared.proto)) == main == set(prepared.names), case
        assert all(prepared.names) and len(set(prepared.names)) == len(prepared.names), case
        assert not _external(prepared.inline()), case
    # the point of the hand-over stays: a large main-graph initializer is not serialized
    prepared = WeightCache().prepare(mlc.import_onnx(CASES["main initializer read only in a branch"]))
    assert prepared.names == ["w"] and len(prepared.proto.SerializeToString()) < W.nbytes


def test_a_refused_hand_over_is_retried_inline() -> None:
    prepared = WeightCache().prepare(mlc.import_onnx(CASES["initializer named like a graph input"]))
    ghost = PreparedModel(prepared.proto, [*prepared.names, "ghost"], [*prepared.values, prepared.values[0]],
                          prepared.arrays)
    np.testing.assert_array_equal(run_model(ghost, FEEDS, ["y"])["y"], FEEDS["x"] + W)


def test_a_model_with_external_data_is_refused_not_read_from_the_working_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model([helper.make_node("Add", ["x", "w"], ["y"])], [X], inits=(numpy_helper.from_array(W, "w"),))
    onnx.external_data_helper.convert_model_to_external_data(model, location=SHARED_LOCATION, size_threshold=0)
    monkeypatch.chdir(_poisoned(tmp_path))
    for engine in (ORT, REFERENCE):
        with pytest.raises(ReferenceError, match="reads no file"):
            run_model(model, FEEDS, engine=engine)


# ---------------------------------------------------------------- real exports
def _check_from(cwd: Path, model: Path, passes: str | None) -> tuple[str, str, tuple[str, ...]]:
    os.chdir(cwd)
    result = mlc.debug(model, passes=passes)
    failures = [f"{r.spec}: {r.check.note}" for r in result.records if r.check is not None and r.check.verdict != "ok"]
    return result.verdict, result.engine, tuple(failures)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "passes"), [("bert_ts", "eliminate-noop"), ("bert_ts", "fold-constants"),
                                              ("bert_ts", None), ("gpt2_ts", None)])
def test_real_exports_check_alike_from_every_working_folder(name: str, passes: str | None, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """TorchScript BERT (`position_ids` is a [1, 512] int64 Constant) and GPT-2 (positions from a
    [1, 1024] buffer): onnxruntime is the reference after every pass, from any working folder."""
    model = real_export(name)
    monkeypatch.chdir(tmp_path)  # restored after the test
    folders = [tmp_path / "empty", _poisoned(tmp_path / "poisoned"), model.parent]
    (tmp_path / "empty").mkdir()
    seen = {_check_from(cwd, model, passes) for cwd in folders}
    assert seen == {("ok", ORT, ())}, seen


@pytest.mark.slow
def test_real_export_numbers_do_not_depend_on_the_working_folder(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    graph = mlc.import_onnx(real_export("bert_ts"))
    feeds = {"input_ids": np.arange(16, dtype=np.int64).reshape(2, 8) % 100,
             "attention_mask": (np.arange(8) < np.array([[8], [5]])).astype(np.int64)}
    results = []
    for cwd in (tmp_path, _poisoned(tmp_path / "poisoned"), Path(__file__).parent):
        monkeypatch.chdir(cwd)
        results.append(run_model(WeightCache().prepare(graph), feeds)["out"])
    assert all(np.array_equal(results[0], other) for other in results[1:])
