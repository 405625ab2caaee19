"""LSTM / GRU / RNN on the llvm target through tvm_rnn's loop kernel: the sequence and batch dims
stay dynamic, and the artifact matches onnxruntime at several lengths and batch sizes. One model
holds many recurrences (directions, layouts, optional inputs, linear_before_reset, a bias that is
an input) so that one compile checks them all; onnxruntime has no layout=1, so its reference is
the same graph with those nodes in layout 0 between Transposes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import mlc
from mlc.cli import main

tvm = pytest.importorskip("tvm", reason="apache-tvm is not installed (pip install 'mlc[tvm]')")

F = TensorProto.FLOAT
IN, HID = 4, 5
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
ATOL, RTOL = 1e-4, 1e-3


def _weights(rng: np.random.Generator, name: str, shape: tuple[int, ...]) -> onnx.TensorProto:
    return numpy_helper.from_array((rng.standard_normal(shape) / 2).astype(np.float32), name)


# Each case: (name, op, direction, layout, attributes, optional inputs: bias / h0 / c0 / peepholes,
# each "const", "input" or absent).
CASES = [
    ("lstm_bi", "LSTM", "bidirectional", 0, {}, {"B": "const", "h0": "input", "c0": "input", "P": "const"}),
    ("lstm_l1", "LSTM", "forward", 1, {}, {"B": "const"}),
    ("gru_rev", "GRU", "reverse", 0, {"linear_before_reset": 1}, {}),
    ("gru_bi0", "GRU", "bidirectional", 0, {}, {"B": "input", "h0": "input"}),
    ("gru_l1", "GRU", "bidirectional", 1, {"linear_before_reset": 1}, {"B": "const", "h0": "input"}),
    ("rnn_fw", "RNN", "forward", 0, {}, {"B": "const", "h0": "input"}),
]


def _graph(reference: bool) -> onnx.ModelProto:
    """The test model (reference=False) or onnxruntime's twin of it (layout 1 as Transposes)."""
    rng = np.random.default_rng(0)
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    inputs = [helper.make_tensor_value_info("x0", F, ["seq", "batch", IN]),
              helper.make_tensor_value_info("x1", F, ["batch", "seq", IN])]
    outputs: list[onnx.ValueInfoProto] = []
    for name, op, direction, layout, attrs, optional in CASES:
        dirs, width = 2 if direction == "bidirectional" else 1, GATES[op] * HID
        inits += [_weights(rng, f"{name}_W", (dirs, width, IN)), _weights(rng, f"{name}_R", (dirs, width, HID))]
        names = [f"x{layout}", f"{name}_W", f"{name}_R", "", ""]
        state = [dirs, "batch", HID] if layout == 0 else ["batch", dirs, HID]
        for slot, key, shape in ((3, "B", [dirs, 2 * width]), (5, "h0", state), (6, "c0", state),
                                 (7, "P", [dirs, 3 * HID])):
            kind = optional.get(key)
            if kind is None:
                continue
            names += [""] * (slot + 1 - len(names))
            names[slot] = f"{name}_{key}"
            if kind == "const":
                inits.append(_weights(rng, names[slot], tuple(shape)))  # type: ignore[arg-type]
            else:
                inputs.append(helper.make_tensor_value_info(names[slot], F, shape))
        while names[-1] == "":
            names.pop()
        outs = [f"{name}_Y", f"{name}_Yh"] + ([f"{name}_Yc"] if op == "LSTM" else [])
        outputs += [helper.make_tensor_value_info(o, F, None) for o in outs]
        if reference and layout == 1:  # onnxruntime: the same node in layout 0 between Transposes
            moved = [n if not n or n.endswith(("_W", "_R", "_B", "_P")) else f"{name}_{n}_t" for n in names]
            nodes += [helper.make_node("Transpose", [n], [m], perm=[1, 0, 2]) for n, m in zip(names, moved, strict=True)
                      if n != m]
            nodes.append(helper.make_node(op, moved, [f"{o}_t" for o in outs], hidden_size=HID,
                                          direction=direction, **attrs))
            nodes += [helper.make_node("Transpose", [f"{o}_t"], [o], perm=[2, 0, 1, 3] if i == 0 else [1, 0, 2])
                      for i, o in enumerate(outs)]
        else:
            nodes.append(helper.make_node(op, names, outs, name=name, hidden_size=HID, direction=direction,
                                          layout=layout, **attrs))
    graph = helper.make_graph(nodes, "rnns", inputs, outputs, initializer=inits)
    return helper.make_model(graph, ir_version=10, opset_imports=[helper.make_opsetid("", 17)])


def _feeds(model: onnx.ModelProto, seq: int, batch: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seq * 10 + batch)
    sizes = {"seq": seq, "batch": batch}
    feeds = {}
    for value in model.graph.input:
        shape = [d.dim_value or sizes[d.dim_param] for d in value.type.tensor_type.shape.dim]
        feeds[value.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def _ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in model.graph.output], session.run(None, feeds), strict=True))


def _assert_close(got: dict[str, np.ndarray], ref: dict[str, np.ndarray], where: str) -> None:
    assert set(got) == set(ref)
    for name, expected in ref.items():
        assert got[name].shape == expected.shape, (where, name)
        error = np.max(np.abs(got[name] - expected) / (ATOL + RTOL * np.abs(expected)))
        assert error <= 1, f"{where} {name}: error {error:.3g}"


def test_recurrences_over_dynamic_sequences_match_onnxruntime(tmp_path: Path) -> None:
    model = _graph(reference=False)
    path = tmp_path / "rnns.onnx"
    onnx.save(model, str(path))
    folder = mlc.compile(path, "llvm", tmp_path / "out")
    artifact = mlc.load(folder)
    reference = _graph(reference=True)
    for seq, batch in ((5, 2), (11, 3), (1, 1)):
        feeds = _feeds(model, seq, batch)
        _assert_close(artifact.run(feeds), _ort(reference, feeds), f"seq {seq} batch {batch}")


def _activations_model(activations: list[str] | None, sequence_lens: bool = False,
                       x_shape: tuple[int | str, ...] = ("seq", "batch", IN)) -> onnx.ModelProto:
    """One GRU, with the given activations (None: the defaults) and optionally a sequence_lens input."""
    rng = np.random.default_rng(1)
    inits = [_weights(rng, "W", (1, 3 * HID, IN)), _weights(rng, "R", (1, 3 * HID, HID))]
    attrs: dict = {"activations": activations} if activations else {}
    names = ["x", "W", "R"] + (["", "lens"] if sequence_lens else [])
    inputs = [helper.make_tensor_value_info("x", F, list(x_shape))]
    if sequence_lens:
        inputs.append(helper.make_tensor_value_info("lens", TensorProto.INT32, ["batch"]))
    node = helper.make_node("GRU", names, ["y"], name="gru", hidden_size=HID, **attrs)
    graph = helper.make_graph([node], "g", inputs, [helper.make_tensor_value_info("y", F, None)],
                              initializer=inits)
    return helper.make_model(graph, ir_version=10, opset_imports=[helper.make_opsetid("", 17)])


def test_what_the_kernel_lacks_is_refused_in_one_line_then_unrolled_for_a_fixed_length(tmp_path: Path,
                                                                                       capsys) -> None:
    path = tmp_path / "relu.onnx"
    onnx.save(_activations_model(["Relu", "Tanh"]), str(path))
    code = main(["compile", str(path), "--target", "llvm", "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "GRU 'gru' runs over a dynamic sequence (input x dim 0 (seq)) and activations Relu, Tanh" in err
    assert "--static-shape x:<seq>,<batch>,4" in err
    folder = mlc.compile(path, "llvm", tmp_path / "out", static_shapes={"x": (6, 2, IN)})
    feeds = {"x": np.linspace(-2, 2, 6 * 2 * IN, dtype=np.float32).reshape(6, 2, IN)}
    _assert_close(mlc.load(folder).run(feeds), _ort(_activations_model(["Relu", "Tanh"]), feeds), "relu")

    onnx.save(_activations_model(None, sequence_lens=True), str(path))
    code = main(["compile", str(path), "--target", "llvm", "-o", str(tmp_path / "out2")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "sequence_lens is given" in err, err


def test_the_frontend_table_is_patched_only_inside_the_block() -> None:
    from tvm.relax.frontend.onnx import onnx_frontend

    from mlc.backends.tvm_rnn import recurrent_converters

    assert "LSTM" not in onnx_frontend._get_convert_map()
    with recurrent_converters():
        assert {"LSTM", "GRU", "RNN"} <= set(onnx_frontend._get_convert_map())
    assert "GRU" not in onnx_frontend._get_convert_map()


def test_cuda_refuses_a_dynamic_recurrence_and_llvm_keeps_fixed_ones_for_the_kernel() -> None:
    from mlc.backends.tvm import TvmBackend, needs_fixed_shapes
    from mlc.onnx_io.importer import import_onnx
    from mlc.testing import run_pass

    graph = import_onnx(_activations_model(None))
    assert needs_fixed_shapes(graph, "llvm") is None
    refusal = needs_fixed_shapes(graph, "cuda")
    assert refusal is not None and "runs on llvm only" in refusal and "--static-shape x:" in refusal
    spec = next(s for s in TvmBackend().legalization("llvm") if s.startswith("legalize-rnn"))
    assert spec == "legalize-rnn{keep_ops=LSTM+GRU+RNN}"
    assert all(not s.startswith("legalize-rnn{") for s in TvmBackend().legalization("cuda"))
    for activations, kept in ((None, True), (["Relu", "Tanh"], False)):
        fixed = import_onnx(_activations_model(activations, x_shape=(6, 2, IN)))
        after, ctx = run_pass(spec, fixed)
        assert any(n.op_type == "GRU" for n in after.all_nodes()) == kept
        assert ctx.stats["kept"] == int(kept)
