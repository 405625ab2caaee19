"""`mlc debug`: finds the pass, the rewrite and the tensor that break the numbers, writes a
reproducer that fails the same way, and reports in JSON that validates against its schema."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from mlc.cli import main
from mlc.pipelines import PIPELINES
from mlc.report import SCHEMA_PATH

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "models" / "digits_mlp.onnx"
PERTURB = ROOT / "tests" / "perturb_pass.py"
CLEAN = "eliminate-identity,dedupe-constants,cse,dce"


def debug(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["debug", *args])
    out = capsys.readouterr()
    return code, out.out + out.err


def replay(command: str) -> subprocess.CompletedProcess[str]:
    """Run a reproducer's one-line command the way a user would (mlc from this interpreter's venv)."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    assert shutil.which("mlc", path=env["PATH"]), "the mlc command is installed beside python"
    return subprocess.run(command, shell=True, capture_output=True, text=True, env=env, timeout=300)


def validate(report_path: Path) -> dict:
    report = json.loads(report_path.read_text())
    jsonschema.validate(report, json.loads(SCHEMA_PATH.read_text()))
    return report


def test_clean_pipeline_passes_and_reports(capsys, tmp_path) -> None:
    code, out = debug(capsys, str(DIGITS), "-O", "1", "--report", str(tmp_path / "r.json"))
    assert code == 0, out
    assert "verdict: ok" in out and "eliminate-identity" in out
    report = validate(tmp_path / "r.json")
    assert report["verdict"] == "ok"
    # -O1 for the default target: the level's passes, then onnxruntime's legalization
    assert [p["name"] for p in report["passes"]] == [*PIPELINES["O1"], "scalarize-range"]


def test_broken_gemm_is_localized_on_the_digits_model(capsys, tmp_path) -> None:
    pipeline = f"{CLEAN},perturb-weights{{op=Gemm,node=fc1,epsilon=0.01}},{CLEAN}"
    code, out = debug(capsys, str(DIGITS), "--passes", pipeline, "--load", str(PERTURB),
                      "--input-shape", "pixels:8,64", "--input-range", "pixels:0,16",
                      "--reproducer", str(tmp_path / "repro"), "--report", str(tmp_path / "r.json"))
    assert code == 1, out
    assert "first diverging pass: #5 perturb-weights{epsilon=0.01,node=fc1,op=Gemm}" in out
    assert "first breaking rewrite: #1 of 1 (rule scale-weights)" in out
    assert "first diverging tensor: %h1 = Gemm node fc1" in out
    report = validate(tmp_path / "r.json")
    assert report["verdict"] == "fail"
    assert report["localization"]["tensor"]["node"] == "fc1"
    assert [p["name"] for p in report["passes"]][-1] == "perturb-weights", "the pipeline stops at the failure"
    assert (tmp_path / "repro" / "before.txt").read_text().startswith("model ir_version=8")
    result = replay(report["localization"]["command"])
    assert result.returncode == 1, result.stdout + result.stderr
    assert "first diverging pass: #0 perturb-weights" in result.stdout
    assert "first diverging tensor: %h1 = Gemm node fc1" in result.stdout


def test_final_check_bisects_the_pipeline(capsys, tmp_path) -> None:
    pipeline = f"{CLEAN},perturb-weights{{op=Gemm,node=fc0,epsilon=0.01}},{CLEAN}"
    code, out = debug(capsys, str(DIGITS), "--passes", pipeline, "--load", str(PERTURB), "--verify", "final",
                      "--reproducer", str(tmp_path / "repro"))
    assert code == 1, out
    assert "found by bisection of the pipeline prefix" in out and "#4 perturb-weights" in out
    assert "node fc0" in out


def test_stop_after_and_verify_none(capsys) -> None:
    pipeline = f"{CLEAN},perturb-weights{{op=Gemm,epsilon=0.5}}"
    code, out = debug(capsys, str(DIGITS), "--passes", pipeline, "--load", str(PERTURB), "--stop-after", "4")
    assert code == 0 and "perturb-weights" not in out
    code, out = debug(capsys, str(DIGITS), "--passes", pipeline, "--load", str(PERTURB), "--verify", "none")
    assert code == 0 and "verdict: unchecked" in out


def test_bad_input_exits_2(capsys, tmp_path) -> None:
    code, out = debug(capsys, str(tmp_path / "missing.onnx"))
    assert code == 2 and out.count("\n") == 1 and "no such file" in out
    code, out = debug(capsys, str(DIGITS), "--passes", "no-such-pass")
    assert code == 2 and "unknown pass 'no-such-pass'" in out
    code, out = debug(capsys, str(DIGITS), "--inputs", str(tmp_path / "none.npz"))
    assert code == 2 and "no such file" in out


def test_help_explains_every_flag_with_an_example(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["debug", "--help"])
    text = capsys.readouterr().out
    for flag in ("--passes", "--disable-pass", "--pass-option", "--inputs", "--input-shape", "--input-range",
                 "--seed", "--verify", "--stop-after", "--max-rewrites", "--dump-ir", "--report", "--load"):
        assert flag in text
    assert text.count("e.g.") >= 10


# ----------------------------------------------------------------------------- ResNet-50 acceptance

@pytest.fixture(scope="session")
def resnet50() -> Path:
    """ResNet-50 with seeded random weights, built from the onnx wheel's light model (not committed)."""
    sys.path.insert(0, str(ROOT / "models"))
    import make_resnet50

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mlc-test-models"
    path = cache / "resnet50-seed0.onnx"
    if not path.exists():
        make_resnet50.build(path.with_suffix(".tmp"), seed=0)
        path.with_suffix(".tmp").replace(path)
    return path


PIPELINE_K = 6  # position of the perturbing pass in the 10-pass pipeline
TARGET = "n78"  # a Conv in stage 3 of ResNet-50


def ten_passes(epsilon: str) -> str:
    passes = ["eliminate-identity", "dedupe-constants", "cse", "dce", "eliminate-identity", "cse", "dedupe-constants",
              "dce", "eliminate-identity"]
    passes.insert(PIPELINE_K, f"perturb-weights{{node={TARGET},epsilon={epsilon},seed=7}}")
    return ",".join(passes)


def test_resnet50_perturbation_of_1e3_is_found(capsys, tmp_path, resnet50) -> None:
    code, out = debug(capsys, str(resnet50), "--passes", ten_passes("0.001"), "--load", str(PERTURB),
                      "--reproducer", str(tmp_path / "repro"), "--report", str(tmp_path / "r.json"))
    assert code == 1, out
    assert f"first diverging pass: #{PIPELINE_K} perturb-weights" in out
    assert "first breaking rewrite: #1 of 1 (rule scale-weights)" in out
    assert f"= Conv node {TARGET}" in out
    report = validate(tmp_path / "r.json")
    loc = report["localization"]
    assert (loc["pass_index"], loc["rewrites"], loc["first_bad_rewrite"]) == (PIPELINE_K, 1, 1)
    assert loc["tensor"]["node"] == TARGET and loc["tensor"]["op_type"] == "Conv"
    result = replay(loc["command"])
    assert result.returncode == 1, result.stdout + result.stderr
    assert "first diverging pass: #0 perturb-weights" in result.stdout
    assert f"= Conv node {TARGET}" in result.stdout


def test_resnet50_float_noise_of_1e7_is_not_flagged(capsys, tmp_path, resnet50) -> None:
    code, out = debug(capsys, str(resnet50), "--passes", ten_passes("1e-07"), "--load", str(PERTURB),
                      "--report", str(tmp_path / "r.json"))
    assert code == 0, out
    assert "verdict: ok" in out
    assert "FAIL" not in out
    perturbed = validate(tmp_path / "r.json")["passes"][PIPELINE_K]
    assert perturbed["changed"] and perturbed["check"]["verdict"] == "ok"
    assert perturbed["check"]["max_abs"] > 0, "the noise did change the outputs, by float-rounding amounts"


def test_a_crashing_pass_gets_a_reproducer(capsys, tmp_path) -> None:
    crash = tmp_path / "crash_pass.py"
    crash.write_text('''
from mlc.pass_api import Pass, register_pass


@register_pass
class Crash(Pass):
    name = "test-crash"
    description = "raises on purpose"

    def run(self, graph, ctx):
        raise RuntimeError("boom")
''')
    code, out = debug(capsys, str(DIGITS), "--passes", "cse,test-crash", "--load", str(crash),
                      "--reproducer", str(tmp_path / "repro"))
    assert code == 70
    assert out.count("\n") == 1, "one line, no traceback"
    assert "pass #1 test-crash (after cse) raised RuntimeError: boom" in out and "reproducer:" in out
    assert (tmp_path / "repro" / "before.onnx").exists()
    command = out.split("replay: ", 1)[1].strip()
    result = replay(command)
    assert result.returncode == 70 and "test-crash" in result.stderr
