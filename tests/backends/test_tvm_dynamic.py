"""The llvm target on dynamic dims: compiled with symbolic dims where TVM can follow them (after
legalize-tvm-shapes), refused in one line naming the input, the dim and `--static-shape` where a
model needs fixed shapes; checked on real PyTorch exports and on small hand-made models, at shapes
the compile's own check did not use."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import mlc
from mlc.cli import main
from tests.test_reference_robustness import real_export

tvm = pytest.importorskip("tvm", reason="apache-tvm is not installed (pip install 'mlc[tvm]')")


def _ort(model: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def _assert_runs_like_onnxruntime(model: Path, folder: Path, feeds_list: list[dict[str, np.ndarray]]) -> None:
    artifact = mlc.load(folder)
    for feeds in feeds_list:
        got = list(artifact.run(feeds).values())
        for value, expected in zip(got, _ort(model, feeds), strict=True):
            assert value.shape == expected.shape
            np.testing.assert_allclose(value, expected, rtol=1e-4, atol=1e-5,
                                       err_msg=str({k: v.shape for k, v in feeds.items()}))


def _save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


def _model(nodes: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto],
           inits: list[onnx.TensorProto]) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=inits)
    return helper.make_model(graph, ir_version=10, opset_imports=[helper.make_opsetid("", 17)])


def _ids(batch: int, seq: int, vocab: int = 100) -> np.ndarray:
    return (np.arange(batch * seq, dtype=np.int64).reshape(batch, seq) * 7) % vocab


# ---------------------------------------------------------------- hand-made (no torch)
def _masked_attention_scores() -> onnx.ModelProto:
    """What BERT/GPT-2 exports do around the mask: positions = Range(0, seq), a causal mask from
    them added to scores [B, S, S], then a Reshape with -1. Before legalize-tvm-shapes TVM gave the
    Range a fresh length, lost the sum's shape and refused the Reshape."""
    f = TensorProto.FLOAT
    scalar = numpy_helper.from_array
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Gather", ["shape", "one"], ["seq"], axis=0),
        helper.make_node("Range", ["zero", "seq", "one"], ["pos"]),
        helper.make_node("Unsqueeze", ["pos", "axis0"], ["row"]),
        helper.make_node("Unsqueeze", ["pos", "axis1"], ["col"]),
        helper.make_node("Greater", ["row", "col"], ["future"]),
        helper.make_node("Where", ["future", "minus", "zero_f"], ["mask"]),
        helper.make_node("MatMul", ["x", "w"], ["q"]),
        helper.make_node("Transpose", ["q"], ["kt"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["q", "kt"], ["scores"]),
        helper.make_node("Add", ["scores", "mask"], ["masked"]),
        helper.make_node("Softmax", ["masked"], ["p"], axis=-1),
        helper.make_node("MatMul", ["p", "q"], ["mixed"]),
        helper.make_node("Shape", ["x"], ["bs"], end=2),
        helper.make_node("Concat", ["bs", "heads"], ["split"], axis=0),
        helper.make_node("Reshape", ["mixed", "split"], ["y"]),
    ]
    inits = [scalar(np.array(0, np.int64), "zero"), scalar(np.array(1, np.int64), "one"),
             scalar(np.array([0], np.int64), "axis0"), scalar(np.array([1], np.int64), "axis1"),
             scalar(np.array(-1e4, np.float32), "minus"), scalar(np.array(0.0, np.float32), "zero_f"),
             scalar((np.arange(64, dtype=np.float32).reshape(8, 8) % 5 - 2) / 8, "w"),
             scalar(np.array([-1, 4], np.int64), "heads")]
    return _model(nodes, [helper.make_tensor_value_info("x", f, ["batch", "seq", 8])],
                  [helper.make_tensor_value_info("y", f, ["batch", "seq", 2, 4])], inits)


def test_a_mask_over_a_dynamic_sequence_compiles_with_symbolic_dims(tmp_path: Path) -> None:
    model = _save(_masked_attention_scores(), tmp_path / "m.onnx")
    folder = mlc.compile(model, "llvm", tmp_path / "out")
    rng = np.random.default_rng(0)
    _assert_runs_like_onnxruntime(model, folder, [{"x": rng.standard_normal(s).astype(np.float32)}
                                                  for s in ((1, 1, 8), (2, 5, 8), (3, 17, 8))])


def _upsampling(scale: float, dims: tuple[str, str] = ("h", "w")) -> onnx.ModelProto:
    f = TensorProto.FLOAT
    nodes = [helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="nearest")]
    inits = [numpy_helper.from_array(np.array([1, 1, scale, scale], np.float32), "scales")]
    return _model(nodes, [helper.make_tensor_value_info("x", f, ["n", 2, *dims])],
                  [helper.make_tensor_value_info("y", f, None)], inits)


def test_an_upsampling_of_derived_dims_compiles(tmp_path: Path) -> None:
    """torch.export names dims like `4*h`; TVM parsed that as an expression it cannot bind."""
    model = _save(_upsampling(2.0, ("4*h", "4*w")), tmp_path / "m.onnx")
    folder = mlc.compile(model, "llvm", tmp_path / "out")
    rng = np.random.default_rng(0)
    _assert_runs_like_onnxruntime(model, folder, [{"x": rng.standard_normal(s).astype(np.float32)}
                                                  for s in ((1, 2, 4, 8), (2, 2, 12, 4))])


def test_bindable_dims_renames_expressions_only() -> None:
    from mlc.backends.tvm_build import bindable_dims

    proto = _upsampling(2.0, ("4*h", "w"))
    renamed = bindable_dims(proto)
    dims = [d.dim_param or d.dim_value for d in renamed.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["n", 2, "d_4_h", "w"]


def test_a_non_integer_scale_of_a_dynamic_dim_resizes_by_the_scale(tmp_path: Path) -> None:
    """TVM resizes by out / in (4 / 3 for h = 3), the spec by the scale (1.5): legalize-tvm-shapes
    computes the rows itself (TVM's own Resize passed the compile's check at h = 64 and was wrong
    at h = 3)."""
    model = _save(_upsampling(1.5), tmp_path / "m.onnx")
    folder = mlc.compile(model, "llvm", tmp_path / "out")
    rng = np.random.default_rng(0)
    _assert_runs_like_onnxruntime(model, folder, [{"x": rng.standard_normal(s).astype(np.float32)}
                                                  for s in ((1, 2, 3, 5), (2, 2, 8, 2), (1, 2, 1, 7))])


def test_dims_tvm_cannot_follow_are_named_with_the_static_shapes_that_fix_them(tmp_path: Path, capsys) -> None:
    """Arithmetic on a dim (a Range over h // 2): TVM's frontend takes no Div of a shape; its
    one-line failure names the dynamic dims and the --static-shape options that fold it away."""
    f = TensorProto.FLOAT
    nodes = [helper.make_node("Shape", ["x"], ["h"], start=1, end=2),
             helper.make_node("Div", ["h", "two"], ["half"]),
             helper.make_node("Squeeze", ["half"], ["n"]),
             helper.make_node("Range", ["zero", "n", "one"], ["r"]),
             helper.make_node("Cast", ["r"], ["rf"], to=f),
             helper.make_node("Unsqueeze", ["rf", "axis0"], ["row"]),
             helper.make_node("Add", ["row", "y"], ["sum"]),
             helper.make_node("Reshape", ["sum", "flat"], ["out"])]
    inits = [numpy_helper.from_array(np.array(v, np.int64), n)
             for n, v in (("two", [2]), ("zero", 0), ("one", 1), ("axis0", [0]), ("flat", [-1]))]
    model = _save(_model(nodes, [helper.make_tensor_value_info("x", f, ["n", "h"]),
                                 helper.make_tensor_value_info("y", f, [1, "q"])],
                         [helper.make_tensor_value_info("out", f, None)], inits), tmp_path / "m.onnx")
    np.savez(tmp_path / "in.npz", x=np.ones((1, 8), np.float32), y=np.ones((1, 4), np.float32))
    code = main(["compile", str(model), "--target", "llvm", "-o", str(tmp_path / "out"), "--inputs",
                 str(tmp_path / "in.npz")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "TVM failed" in err and "input x dims 0 (n), 1 (h); input y dim 1 (q)" in err
    assert "--static-shape x:<n>,<h> --static-shape y:1,<q>" in err
    code = main(["compile", str(model), "--target", "llvm", "-o", str(tmp_path / "out"),
                 "--static-shape", "x:1,8", "--static-shape", "y:1,4"])
    assert code == 0, capsys.readouterr().err


def _lstm() -> onnx.ModelProto:
    f = TensorProto.FLOAT
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array((rng.standard_normal(s) / 4).astype(np.float32), n)
               for n, s in (("W", (1, 32, 4)), ("R", (1, 32, 8)), ("B", (1, 64)))]
    nodes = [helper.make_node("LSTM", ["x", "W", "R", "B"], ["", "h"], hidden_size=8, name="rnn")]
    return _model(nodes, [helper.make_tensor_value_info("x", f, ["seq", "batch", 4])],
                  [helper.make_tensor_value_info("h", f, [1, "batch", 8])], weights)


def test_an_lstm_over_a_dynamic_sequence_runs_in_a_loop_kernel(tmp_path: Path) -> None:
    """Before tvm_rnn: refused (TVM had no loop and legalize-rnn unrolls only fixed lengths)."""
    model = _save(_lstm(), tmp_path / "m.onnx")
    folder = mlc.compile(model, "llvm", tmp_path / "out")
    _assert_runs_like_onnxruntime(model, folder, [
        {"x": np.linspace(-1, 1, 60, dtype=np.float32).reshape(5, 3, 4)},
        {"x": np.linspace(-2, 1, 72, dtype=np.float32).reshape(9, 2, 4)}])


# ---------------------------------------------------------------- real exports
DYNAMIC = {  # export -> shapes to run at beyond the compile's own check (batch 2 / 3, sequence 16 / 7)
    "bert_dynamo": [(1, 5), (4, 33)],
    "gpt2_dynamo": [(1, 1), (5, 21)],
    "gpt2_ts": [(1, 2), (3, 40)],
    "unetscale_dynamo": [(1, 3, 16, 24), (2, 3, 8, 40)],
    "unetsize_ts": [(1, 3, 30, 18), (1, 3, 16, 24)],
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(DYNAMIC))
def test_real_dynamic_exports_compile_with_symbolic_dims(name: str, tmp_path: Path) -> None:
    """Before: bert_dynamo, gpt2_dynamo, gpt2_ts failed in TVM (Reshape of an input of unknown
    shape, Slice of an unknown rank: Range lengths); the UNets in TVM's Resize converter."""
    model = real_export(name)
    folder = mlc.compile(model, "llvm", tmp_path / "out")
    feeds_list = []
    for shape in DYNAMIC[name]:
        if name.startswith("unet"):
            feeds_list.append({"image": np.random.default_rng(0).standard_normal(shape).astype(np.float32)})
            continue
        feeds = {"input_ids": _ids(*shape)}
        if name.startswith("bert"):
            mask = np.ones(shape, np.int64)
            mask[:, shape[1] // 2 + 1:] = 0
            feeds["attention_mask"] = mask
        feeds_list.append(feeds)
    _assert_runs_like_onnxruntime(model, folder, feeds_list)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lstm_dynamo", "gru_ts"])
def test_real_recurrent_exports_compile_over_a_dynamic_sequence(name: str, tmp_path: Path) -> None:
    model = real_export(name)
    folder = mlc.compile(model, "llvm", tmp_path / "out")
    _assert_runs_like_onnxruntime(model, folder, [{"tokens": _ids(2, 7, vocab=50)}, {"tokens": _ids(3, 12, vocab=50)}])
