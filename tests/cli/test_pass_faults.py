"""A pass that leaves a graph the reference can no longer load is a bug of that pass: compile
exits 70 naming it (also when only the end is checked), and debug names the pass and the rewrite
and writes a reproducer, as it does for numeric breaks."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlc.debugger import load_plugin
from tests.cli.helpers import DIGITS, mlc, one_error_line

PLUGIN = Path(__file__).resolve().parents[1] / "unloadable_pass.py"


@pytest.fixture(autouse=True)
def plugin() -> None:
    load_plugin(str(PLUGIN))


@pytest.mark.parametrize("verify", ["final", "each"])
def test_compile_blames_the_pass_with_exit_70(capfd, tmp_path, verify) -> None:
    code, out, err = mlc(capfd, "compile", DIGITS, "-o", tmp_path / "a", "--verify", verify,
                         "--passes", "cse,break-loading,dce")
    assert code == 70, err
    line = one_error_line(err)
    assert "pass #1 break-loading" in line and "cannot run" in line and "mlc debug" in line
    assert not (tmp_path / "a").exists()


def test_debug_names_the_pass_and_the_rewrite(capfd, tmp_path) -> None:
    code, out, err = mlc(capfd, "debug", DIGITS, "--passes", "cse,break-loading{skip=1},dce",
                         "--reproducer", tmp_path / "repro")
    assert code == 70, out + err
    assert "first diverging pass: #1 break-loading{skip=1}" in out
    assert "first breaking rewrite: #1 of 1 (rule rename-op)" in out
    assert "cannot run the graph" in out
    assert (tmp_path / "repro" / "before.onnx").is_file()


def test_debug_bisects_to_it_when_only_the_end_is_checked(capfd, tmp_path) -> None:
    code, out, err = mlc(capfd, "debug", DIGITS, "--passes", "cse,dce,break-loading,cse,dce", "--verify", "final",
                         "--reproducer", tmp_path / "repro")
    assert code == 70, out + err
    assert "first diverging pass: #2 break-loading (found by bisection of the pipeline prefix)" in out
    assert "first breaking rewrite: #1 of 2 (rule rename-op)" in out
