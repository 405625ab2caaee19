"""The CLI's contract: debug replays compile's pipeline for every target; `--json` on every
subcommand prints one JSON document and nothing else; the error paths users hit are one line and
exit 2 (never 70); run, inspect and optimize do what their help says."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from mlc.pipelines import build_pipeline
from mlc.targets import TARGETS, availability
from tests.cli.helpers import DIGITS, SAMPLE, bundled, mlc, one_error_line

PERTURB = Path(__file__).resolve().parents[1] / "perturb_pass.py"


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mlc.cli import main

    folder = tmp_path_factory.mktemp("artifact") / "digits.ort"
    assert main(["compile", str(DIGITS), "-o", str(folder), "-q"]) == 0
    return folder


# ----------------------------------------------------------------- one pipeline for compile and debug
@pytest.mark.parametrize("target", list(TARGETS))
def test_debug_runs_exactly_the_passes_compile_runs(capfd, tmp_path, target) -> None:
    d_code, d_out, d_err = mlc(capfd, "debug", DIGITS, "--target", target, "-O3", "--json")
    c_code, c_out, c_err = mlc(capfd, "compile", DIGITS, "--target", target, "-O3", "-o", tmp_path / "a", "--json")
    if not availability(target).ok:
        assert c_code == 3, c_err  # cannot be compiled here: exit 3, one line naming the target
        assert target in one_error_line(c_err)
        if d_code == 3:  # not even importable: debug says the same
            assert one_error_line(d_err) == one_error_line(c_err)
            return
        specs = json.loads(d_out)["pipeline"]
        assert specs == [p.spec() for p in build_pipeline("O3", target=target)]
        return
    assert (c_code, d_code) == (0, 0), (c_err, d_err)
    compiled, debugged = json.loads(c_out), json.loads(d_out)
    assert [p["spec"] for p in compiled["passes"]] == [p["spec"] for p in debugged["passes"]]
    assert compiled["pipeline"] == debugged["pipeline"] == [p.spec() for p in build_pipeline("O3", target=target)]
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert [p["spec"] for p in manifest["passes"]] == compiled["pipeline"]


def test_specializations_are_passes_in_the_pass_log(capfd, tmp_path) -> None:
    code, out, err = mlc(capfd, "debug", DIGITS, "--input-shape", "pixels:8,64", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["pipeline"][0] == "fix-input-shapes{shapes=pixels:8x64}"
    assert report["inputs"]["pixels"]["shape"] == [8, 64]  # the check ran at the fixed shape
    code, out, err = mlc(capfd, "compile", DIGITS, "--input-shape", "pixels:8,64", "-o", tmp_path / "s", "--json")
    assert code == 0, err
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["inputs"][0]["type"] == "f32[8,64]"
    assert manifest["passes"][0]["name"] == "fix-input-shapes" and manifest["passes"][0]["changed"]


@pytest.mark.parametrize(("flag", "expected"), [
    ("nope:8,64", "no such input"), ("pixels:8", "is declared"), ("pixels:0,64", "dims must be positive"),
    ("pixels:8,63", "is declared"), ("pixels", "expected NAME:D,D")])
def test_input_shape_on_compile_is_validated(capfd, tmp_path, flag, expected) -> None:
    code, out, err = mlc(capfd, "compile", DIGITS, "--input-shape", flag, "-o", tmp_path / "v")
    assert code == 2
    assert expected in one_error_line(err)
    assert not (tmp_path / "v").exists()


def test_static_shape_is_an_alias_of_input_shape(capfd, tmp_path) -> None:
    code, out, err = mlc(capfd, "compile", DIGITS, "--static-shape", "pixels:5,64", "-o", tmp_path / "s", "--json")
    assert code == 0, err
    assert json.loads(out)["pipeline"][0] == "fix-input-shapes{shapes=pixels:5x64}"


def test_a_failing_compile_names_a_debug_command_that_replays_it(capfd, tmp_path) -> None:
    import shlex

    import mlc as api
    from mlc.debugger import load_plugin

    load_plugin(str(PERTURB))
    with pytest.raises(api.NumericMismatchError) as info:
        api.compile(DIGITS, "onnxruntime", tmp_path / "x", passes="cse,perturb-weights{op=Gemm,epsilon=0.01},dce")
    assert not (tmp_path / "x").exists()
    message = str(info.value)
    command = message[message.index("localize it: ") + len("localize it: "):].rstrip(")")
    args = shlex.split(command)
    assert args[:3] == ["mlc", "debug", str(DIGITS)] and "--load" in args
    code, out, err = mlc(capfd, *args[1:], "--reproducer", tmp_path / "repro")
    assert code == 1, err
    assert "first diverging pass: #1 perturb-weights" in out


# ----------------------------------------------------------------- --json everywhere
JSON_COMMANDS = {
    "inspect model": lambda a: ["inspect", DIGITS],
    "inspect artifact": lambda a: ["inspect", a],
    "passes": lambda a: ["passes", "--target", "llvm"],
    "targets": lambda a: ["targets"],
    "debug": lambda a: ["debug", DIGITS, "--print-ir-after-change"],
    "compile": lambda a: ["compile", DIGITS, "-o", a.parent / "json.ort"],
    "optimize": lambda a: ["optimize", DIGITS, "-o", a.parent / "json.onnx"],
    "run": lambda a: ["run", a, "--inputs", SAMPLE],
    "run generated": lambda a: ["run", a, "--input-shape", "pixels:3,64"],
    "bench": lambda a: ["bench", a, "--original", DIGITS, "--runs", "3", "--warmup", "1"],
}


@pytest.mark.parametrize("name", list(JSON_COMMANDS))
def test_json_is_the_only_thing_on_stdout(capfd, artifact, name) -> None:
    args = JSON_COMMANDS[name](artifact)
    for placement in (["--json", *args], [*args, "--json"]):
        code, out, err = mlc(capfd, *placement)
        assert code == 0, err
        json.loads(out)  # the whole of stdout is one JSON document


def test_json_errors_are_json_too(capfd) -> None:
    code, out, err = mlc(capfd, "compile", "missing.onnx", "--json")
    assert code == 2
    assert json.loads(out) == {"error": one_error_line(err).removeprefix("mlc: error: "), "exit_code": 2}


def test_report_dash_writes_the_report_to_stdout(capfd, tmp_path) -> None:
    code, out, err = mlc(capfd, "compile", DIGITS, "-o", tmp_path / "r.ort", "--report", "-")
    assert code == 0, err
    report = json.loads(out)
    assert report["command"] == "compile" and not (Path.cwd() / "-").exists()


def test_version_verbose_and_quiet_anywhere(capfd, tmp_path) -> None:
    with pytest.raises(SystemExit) as info:
        mlc(capfd, "--version")
    assert info.value.code == 0
    assert capfd.readouterr().out.startswith("mlc 0.")
    code, out, err = mlc(capfd, "compile", DIGITS, "-o", tmp_path / "q.ort", "-q")
    assert (code, out) == (0, "")
    code, out, err = mlc(capfd, "inspect", "missing.onnx", "-v")
    assert code == 2 and "Traceback" in err  # -v after the subcommand turns on tracebacks


# ----------------------------------------------------------------- errors: one line, exit 2
def _typed_model(path: Path) -> Path:
    """x: f32[batch,3,32,32] -> Relu: a lowercase symbolic first dim."""
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 32, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3, 32, 32])])
    onnx.save(helper.make_model(graph, ir_version=10, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_run_checks_feeds_against_the_manifest(capfd, artifact, tmp_path) -> None:
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, pixels=np.zeros((5, 31)))
    code, out, err = mlc(capfd, "run", artifact, "--inputs", wrong)
    assert code == 2
    assert one_error_line(err) == "mlc: error: pixels: expected f32[N,64], got float64[5,31]"
    extra = tmp_path / "extra.npz"
    np.savez(extra, pixels=np.zeros((2, 64), np.float32), unused=np.zeros(1))
    code, out, err = mlc(capfd, "run", artifact, "--inputs", extra)
    assert code == 0 and "unused" in err and "warning" in err


def test_run_writes_into_a_new_folder_and_refuses_proc(capfd, artifact, tmp_path) -> None:
    code, out, err = mlc(capfd, "run", artifact, "--inputs", SAMPLE, "--output", tmp_path / "new" / "x.npz")
    assert code == 0, err
    assert set(np.load(tmp_path / "new" / "x.npz").files) == {"probabilities", "label"}
    code, out, err = mlc(capfd, "run", artifact, "--inputs", SAMPLE, "--output", "/proc/x.npz")
    assert code == 2
    assert "/proc/x.npz" in one_error_line(err)


def test_run_statistics_compare_and_generated_inputs(capfd, artifact, tmp_path) -> None:
    code, out, err = mlc(capfd, "run", artifact, "--inputs", SAMPLE, "--output", tmp_path / "ref.npz")
    assert code == 0 and "probabilities" in out and "mean" in out
    code, out, err = mlc(capfd, "run", artifact, "--inputs", SAMPLE, "--compare", tmp_path / "ref.npz")
    assert code == 0 and "ok" in out
    reference = dict(np.load(tmp_path / "ref.npz"))
    reference["probabilities"] = reference["probabilities"] + 0.5
    np.savez(tmp_path / "bad.npz", **reference)
    code, out, err = mlc(capfd, "run", artifact, "--inputs", SAMPLE, "--compare", tmp_path / "bad.npz")
    assert code == 1 and "MISMATCH" in out
    code, out, err = mlc(capfd, "run", artifact, "--input-shape", "pixels:4,64", "--json")
    payload = json.loads(out)
    assert payload["generated"] and payload["inputs"]["pixels"]["shape"] == [4, 64]
    assert payload["outputs"][0]["shape"] == [4, 10]


def test_inspect_prints_lowercase_symbolic_dims_and_summarizes_artifacts(capfd, artifact, tmp_path) -> None:
    code, out, err = mlc(capfd, "inspect", _typed_model(tmp_path / "t.onnx"))
    assert code == 0 and "f32[batch,3,32,32]" in out
    code, out, err = mlc(capfd, "inspect", artifact)
    assert code == 0, err
    for expected in ("target onnxruntime", "pixels", "f32[N,64]", "fold-constants", "numbers: ok"):
        assert expected in out, expected


def test_did_you_mean_for_targets_passes_and_options(capfd) -> None:
    code, out, err = mlc(capfd, "compile", DIGITS, "--target", "llvn")
    assert code == 2 and "did you mean llvm" in one_error_line(err)
    code, out, err = mlc(capfd, "debug", DIGITS, "--passes", "cse,dec")
    assert code == 2 and "did you mean dce" in one_error_line(err)
    with pytest.raises(SystemExit) as info:
        mlc(capfd, "compile", DIGITS, "--fold-limt", "5")
    assert info.value.code == 2
    assert "--fold-limit" in capfd.readouterr().err


def test_a_mistyped_mcpu_is_refused_with_the_nearest_names(capfd, tmp_path) -> None:
    pytest.importorskip("tvm", reason="the llvm target needs apache-tvm (pip install 'mlc[tvm]')")
    code, out, err = mlc(capfd, "compile", DIGITS, "--target", "llvm", "--mcpu", "skylak", "-o", tmp_path / "a")
    assert code == 2
    line = one_error_line(err)
    assert "skylak" in line and "skylake" in line
    assert not (tmp_path / "a").exists()


def test_a_cuda_artifact_says_it_was_not_run(capfd, tmp_path) -> None:
    pytest.importorskip("tvm", reason="the cuda target needs apache-tvm (pip install 'mlc[tvm]')")
    from mlc.backends.tvm import TvmBackend

    if TvmBackend().check_runnable("cuda", {"cuda_arch": "sm_80"}).ok:
        pytest.skip("this machine has a GPU: the cuda artifact is run and checked here")
    code, out, err = mlc(capfd, "compile", DIGITS, "--target", "cuda", "-o", tmp_path / "c")
    assert code == 0, err
    assert "artifact not run here (" in out and "numbers ok" in out


def test_optimize_writes_a_checked_model_that_runs_like_the_original(capfd, tmp_path) -> None:
    import onnxruntime as ort

    model = bundled(tmp_path)
    code, out, err = mlc(capfd, "optimize", model, "-o", tmp_path / "opt.onnx", "-O", "2")
    assert code == 0, err
    assert "numbers ok" in out
    feeds = dict(np.load(SAMPLE))
    want = ort.InferenceSession(str(DIGITS)).run(None, feeds)
    got = ort.InferenceSession(str(tmp_path / "opt.onnx")).run(None, feeds)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-6)
    code, out, err = mlc(capfd, "optimize", model, "-o", tmp_path / "o3.onnx", "-O", "3")
    assert code == 2 and "--target" in one_error_line(err)


def test_a_reproducer_never_lands_in_the_working_folder(capfd, tmp_path, monkeypatch) -> None:
    import re
    import shutil
    import tempfile

    from mlc.debugger import load_plugin

    load_plugin(str(PERTURB))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    code, out, err = mlc(capfd, "debug", DIGITS, "--passes", "cse,perturb-weights{op=Gemm,epsilon=0.01}")
    assert code == 1, err
    assert list(work.iterdir()) == [], "nothing written into the working folder"
    folder = Path(re.search(r"reproducer: (\S+)", out).group(1))
    try:
        assert folder.is_relative_to(Path(tempfile.gettempdir()).resolve()) and (folder / "before.onnx").is_file()
    finally:
        shutil.rmtree(folder)
