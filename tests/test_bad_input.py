"""Bad input to `mlc inspect MODEL`: exit code 2 and exactly one line on stderr naming the problem.

Every case is a model file (or a missing path) that `mlc inspect` must refuse without a traceback:
unreadable or non-ONNX bytes, a truncated protobuf, a graph with a cycle, a read of an undefined
value, a value defined twice, and external data that would make mlc read outside the model's
folder (`..`, absolute paths, symbolic links, hard links) or past the end of a data file.
The external-data cases share one layout (model in `tmp_path/model/`, a sibling folder
`tmp_path/outside/` holding a file it must never read); a positive control imports a valid model
in that same layout, so that the refusals cannot pass for the wrong reason.

Output is read with `capfd` (file-descriptor level), so anything native code writes to stderr
also counts against the one-line rule.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import mlc
from mlc.cli import main

DIGITS = Path(__file__).resolve().parent.parent / "models" / "digits_mlp.onnx"
WEIGHTS = np.arange(4, dtype=np.float32) * 1.5 - 2.0  # the external tensor 'w': f32[4], 16 bytes


# ===================================================================== helpers
def _model(nodes: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto],
           initializers: list[onnx.TensorProto] = ()) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "bad", inputs, outputs, list(initializers))
    return helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", 17)])


def _f32(name: str) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [4])


def _write(path: Path, model: onnx.ModelProto) -> Path:
    """Raw bytes, no checks (onnx.save could validate or rewrite external data)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    return path


def _inspect_fails(capfd: pytest.CaptureFixture[str], path: Path, *expected: str) -> str:
    """Run `mlc inspect path` in-process; assert exit 2 and one error line holding every `expected`."""
    code = main(["inspect", str(path)])
    out, err = capfd.readouterr()
    assert code == 2, (code, out, err)
    assert err.strip().count("\n") == 0, err
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err, err
    assert err.startswith("mlc: error: "), err
    assert out == "", out
    for text in expected:
        assert text in err, (text, err)
    return err


# ===================================================================== unreadable files
def test_missing_path(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nowhere" / "missing.onnx"
    _inspect_fails(capfd, path, "missing.onnx", "no such file")


def test_text_file(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "notes.onnx"
    path.write_text("this is not a model\nbut a text file\n")
    _inspect_fails(capfd, path, "notes.onnx", "not an ONNX model")


def test_random_bytes(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "noise.onnx"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    _inspect_fails(capfd, path, "noise.onnx", "not an ONNX model")


def _truncated(tmp_path: Path) -> Path:
    data = DIGITS.read_bytes()
    path = tmp_path / "half.onnx"
    path.write_bytes(data[: len(data) // 2])
    return path


def test_truncated_protobuf(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    _inspect_fails(capfd, _truncated(tmp_path), "half.onnx", "not an ONNX model")


def test_truncated_protobuf_console_script(tmp_path: Path) -> None:
    """The real command in a fresh process: exit status 2 and one stderr line, nothing else."""
    path = _truncated(tmp_path)
    result = subprocess.run([sys.executable, "-m", "mlc.cli", "inspect", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result
    assert result.stderr.count("\n") == 1 and result.stderr.endswith("\n"), result.stderr
    assert result.stderr.startswith("mlc: error: ") and "half.onnx" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


# ===================================================================== malformed graphs
def test_cycle(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    nodes = [helper.make_node("Add", ["x", "b"], ["a"], name="first"),
             helper.make_node("Relu", ["a"], ["b"], name="second")]
    path = _write(tmp_path / "cycle.onnx", _model(nodes, [_f32("x")], [_f32("b")]))
    _inspect_fails(capfd, path, "cycle.onnx", "cycle", "first(Add)", "second(Relu)")


def test_undefined_value(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    nodes = [helper.make_node("Add", ["x", "ghost"], ["y"], name="adder")]
    path = _write(tmp_path / "undefined.onnx", _model(nodes, [_f32("x")], [_f32("y")]))
    _inspect_fails(capfd, path, "undefined.onnx", "'adder'", "'ghost'", "not defined")


def test_duplicate_node_outputs(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="one"),
             helper.make_node("Neg", ["x"], ["y"], name="two")]
    path = _write(tmp_path / "twice.onnx", _model(nodes, [_f32("x")], [_f32("y")]))
    _inspect_fails(capfd, path, "twice.onnx", "'y'", "defined twice", "'two'")


def test_node_output_shadows_graph_input(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    nodes = [helper.make_node("Relu", ["x"], ["x"], name="shadow")]
    path = _write(tmp_path / "shadow.onnx", _model(nodes, [_f32("x")], [_f32("x")]))
    _inspect_fails(capfd, path, "shadow.onnx", "'x'", "defined twice", "'shadow'")


# ===================================================================== external data
def _external_model(tmp_path: Path, location: str, offset: int | None = 0, length: int | None = 16) -> Path:
    """tmp_path/model/m.onnx whose one initializer 'w' (f32[4]) lives at `location`, entries set by hand."""
    tensor = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4], data_location=TensorProto.EXTERNAL)
    tensor.external_data.add(key="location", value=location)
    if offset is not None:
        tensor.external_data.add(key="offset", value=str(offset))
    if length is not None:
        tensor.external_data.add(key="length", value=str(length))
    nodes = [helper.make_node("Add", ["x", "w"], ["y"], name="add")]
    return _write(tmp_path / "model" / "m.onnx", _model(nodes, [_f32("x")], [_f32("y")], [tensor]))


def _data_file(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(WEIGHTS.tobytes())
    return path


def test_external_data_control(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """The valid model in the layout the refusals use: imports, gives the written values, inspects."""
    _data_file(tmp_path / "outside" / "w.bin")  # present, as in the negative cases, but not named
    _data_file(tmp_path / "model" / "w.bin")
    path = _external_model(tmp_path, "w.bin")
    graph = mlc.import_onnx(path)
    np.testing.assert_array_equal(graph.initializers["w"].const.numpy(), WEIGHTS)
    assert main(["inspect", str(path)]) == 0
    assert capfd.readouterr().err == ""


def test_external_data_dotdot(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    _data_file(tmp_path / "outside" / "w.bin")
    path = _external_model(tmp_path, "../outside/w.bin")
    _inspect_fails(capfd, path, "m.onnx", "'w'", "'..'")


def test_external_data_dotdot_behind_subfolder(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    _data_file(tmp_path / "outside" / "w.bin")
    (tmp_path / "model" / "sub").mkdir(parents=True)
    path = _external_model(tmp_path, "sub/../../outside/w.bin")
    _inspect_fails(capfd, path, "m.onnx", "'w'", "'..'")


def test_external_data_absolute(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    target = _data_file(tmp_path / "outside" / "w.bin")
    path = _external_model(tmp_path, str(target.resolve()))
    _inspect_fails(capfd, path, "m.onnx", "'w'", "absolute")


@pytest.mark.parametrize("where", ["outside", "inside", "folder"])
def test_external_data_symlink(tmp_path: Path, capfd: pytest.CaptureFixture[str], where: str) -> None:
    """A link to a file outside, to a file inside (both refused), or a linked folder on the way."""
    outside = _data_file(tmp_path / "outside" / "w.bin")
    folder = tmp_path / "model"
    folder.mkdir()
    if where == "outside":
        (folder / "w.bin").symlink_to(outside)
        location = "w.bin"
    elif where == "inside":
        _data_file(folder / "real.bin")
        (folder / "w.bin").symlink_to("real.bin")
        location = "w.bin"
    else:
        (folder / "data").symlink_to(outside.parent, target_is_directory=True)
        location = "data/w.bin"
    path = _external_model(tmp_path, location)
    _inspect_fails(capfd, path, "m.onnx", "'w'", "symbolic link")


def test_external_data_hard_link(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    outside = _data_file(tmp_path / "outside" / "w.bin")
    (tmp_path / "model").mkdir()
    os.link(outside, tmp_path / "model" / "w.bin")
    assert os.stat(tmp_path / "model" / "w.bin").st_nlink > 1
    path = _external_model(tmp_path, "w.bin")
    _inspect_fails(capfd, path, "m.onnx", "'w'", "hard links")


@pytest.mark.parametrize("length", [16, None], ids=["with-length", "no-length"])
def test_external_data_offset_past_end(tmp_path: Path, capfd: pytest.CaptureFixture[str],
                                       length: int | None) -> None:
    _data_file(tmp_path / "model" / "w.bin")
    path = _external_model(tmp_path, "w.bin", offset=64, length=length)
    _inspect_fails(capfd, path, "m.onnx", "'w'", "past the end")


def test_external_data_offset_plus_length_past_end(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    _data_file(tmp_path / "model" / "w.bin")
    path = _external_model(tmp_path, "w.bin", offset=8, length=16)
    _inspect_fails(capfd, path, "m.onnx", "'w'", "past the end", "8 + length 16")
