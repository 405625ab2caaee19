"""mlc compile / run / targets and the artifact contract, for the onnxruntime target."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import mlc
from mlc.cli import main

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "models" / "digits_mlp.onnx"
LIGHT = Path(onnx.__file__).resolve().parent / "backend" / "test" / "data" / "light"


def plain_ort(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    return session.run(None, {k: v for k, v in feeds.items() if k in names})


def test_compile_and_run_the_digits_model(tmp_path, capsys) -> None:
    out = tmp_path / "digits.ort"
    assert main(["compile", str(DIGITS), "--target", "onnxruntime", "-o", str(out)]) == 0
    assert "onnxruntime artifact" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["target"] == "onnxruntime" and manifest["verification"]["verdict"] == "ok"
    assert manifest["source"]["sha256"] and set(manifest["files"]) == {"model.onnx"}
    assert manifest["requirements"]["onnxruntime_min"] == ".".join(ort.__version__.split(".")[:2])
    sample = ROOT / "models" / "digits_mlp.sample.npz"
    assert main(["run", str(out), "--inputs", str(sample), "--output", str(tmp_path / "o.npz")]) == 0
    got = np.load(tmp_path / "o.npz")
    feeds = dict(np.load(sample))
    want = plain_ort(DIGITS, feeds)
    np.testing.assert_allclose(got["probabilities"], want[0], rtol=1e-3, atol=1e-4)
    np.testing.assert_array_equal(got["label"], want[1])
    artifact = mlc.load(out)
    np.testing.assert_array_equal(artifact.run(feeds)["label"], want[1])


@pytest.mark.parametrize("model", sorted(p.name for p in LIGHT.glob("light_*.onnx")))
def test_light_models_match_onnxruntime(tmp_path, model: str) -> None:
    path = LIGHT / model
    folder = mlc.compile(path, "onnxruntime", tmp_path / "a")
    graph = mlc.import_onnx(path)
    from mlc.numerics.inputs import make_inputs

    feeds = make_inputs(graph)
    got = mlc.load(folder).run(feeds)
    want = plain_ort(path, feeds)
    for value, expected in zip(got.values(), want, strict=True):
        np.testing.assert_allclose(value, expected, rtol=1e-3, atol=1e-4)


def test_same_inputs_give_byte_identical_artifacts(tmp_path) -> None:
    first = mlc.compile(DIGITS, "onnxruntime", tmp_path / "one")
    second = mlc.compile(DIGITS, "onnxruntime", tmp_path / "two")
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in second.iterdir()) == ["manifest.json", "model.onnx"]
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_a_modified_artifact_is_refused(tmp_path, capsys) -> None:
    folder = mlc.compile(DIGITS, "onnxruntime", tmp_path / "a")
    with open(folder / "model.onnx", "ab") as handle:
        handle.write(b"\0")
    assert main(["run", str(folder), "--inputs", str(ROOT / "models" / "digits_mlp.sample.npz")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not match its sha256" in err


def test_unavailable_target_exits_3_and_unknown_target_2(tmp_path, capsys) -> None:
    assert main(["compile", str(DIGITS), "--target", "onnxruntime-cuda", "-o", str(tmp_path / "c")]) in (0, 3)
    capsys.readouterr()
    assert main(["compile", str(DIGITS), "--target", "nope", "-o", str(tmp_path / "n")]) == 2
    assert "unknown target 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "n").exists()
    assert main(["targets"]) == 0
    assert "onnxruntime" in capsys.readouterr().out


def test_a_compile_killed_midway_leaves_no_artifact(tmp_path) -> None:
    """SIGKILL while the artifact is being written: the destination never appears half-made,
    and the next compile cleans the stale temporary folder."""
    sys.path.insert(0, str(ROOT / "models"))
    import make_resnet50

    model = make_resnet50.build(tmp_path / "resnet50.onnx")
    destination = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-m", "mlc.cli", "compile", str(model), "-o", str(destination),
                                "--verify", "none"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list(tmp_path.glob(".out.tmp-*")) and process.poll() is None:
        time.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the compile was killed before it finished"
    assert not destination.exists()
    mlc.compile(DIGITS, "onnxruntime", destination)
    assert destination.exists() and not list(tmp_path.glob(".out.tmp-*"))


def test_failing_numbers_write_no_artifact(tmp_path, capsys) -> None:
    perturb = ROOT / "tests" / "perturb_pass.py"
    from mlc.debugger import load_plugin

    load_plugin(str(perturb))
    code = main(["compile", str(DIGITS), "-o", str(tmp_path / "bad"),
                 "--passes", "cse,perturb-weights{op=Gemm,epsilon=0.05}", "--verify", "each"])
    assert code == 1
    err = capsys.readouterr().err
    assert "pass #1 perturb-weights" in err and "no artifact written" in err and "mlc debug" in err
    assert not (tmp_path / "bad").exists()


def test_bench_prints_both_rows(tmp_path, capsys) -> None:
    """Functional only: timing goals live in benchmarks/, never in tests."""
    assert main(["bench", str(DIGITS), "--runs", "3", "--warmup", "1"]) == 0
    out = capsys.readouterr().out
    assert "mlc onnxruntime" in out and "plain onnxruntime" in out and "x speed" in out
    folder = mlc.compile(DIGITS, "onnxruntime", tmp_path / "a")
    assert main(["bench", str(folder), "--runs", "2", "--warmup", "0"]) == 0
    assert "--original" in capsys.readouterr().out
