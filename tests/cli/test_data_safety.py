"""`-o`, `--output` and `--report` never destroy what mlc did not write: every refusal is exit 2
with one line naming the path, and the folder or model is byte-identical afterwards."""

from __future__ import annotations

import os
from pathlib import Path

import onnx
import pytest

from tests.cli.helpers import bundled, mlc, one_error_line, snapshot


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user's folder: the model, its sample inputs and a file of theirs; the working folder."""
    bundled(tmp_path)
    (tmp_path / "notes.txt").write_text("the user's own file\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def refused(capfd: pytest.CaptureFixture[str], folder: Path, *args: str) -> str:
    before = snapshot(folder)
    code, out, err = mlc(capfd, *args)
    assert code == 2, (code, out, err)
    line = one_error_line(err)
    assert snapshot(folder) == before, "the user's files changed"
    return line


def test_output_dot_is_the_working_folder(capfd, work) -> None:
    line = refused(capfd, work, "compile", "models/digits_mlp.onnx", "-o", ".")
    assert str(work) in line


def test_output_dot_is_refused_even_with_force(capfd, work) -> None:
    refused(capfd, work, "compile", "models/digits_mlp.onnx", "-o", ".", "--force")


def test_an_ancestor_of_the_working_folder(capfd, work, monkeypatch) -> None:
    monkeypatch.chdir(work / "models")
    refused(capfd, work, "compile", "digits_mlp.onnx", "-o", "..", "--force")


def test_a_folder_of_the_users_files(capfd, work) -> None:
    important = work / "important"
    important.mkdir()
    (important / "thesis.tex").write_text("years of work\n")
    line = refused(capfd, work, "compile", "models/digits_mlp.onnx", "-o", "important/")
    assert "important" in line and "--force" in line


def test_the_input_model_itself(capfd, work) -> None:
    line = refused(capfd, work, "compile", "models/digits_mlp.onnx", "-o", "models/digits_mlp.onnx", "--force")
    assert "digits_mlp.onnx" in line


def test_a_symbolic_link_to_the_model(capfd, work) -> None:
    (work / "link.onnx").symlink_to(work / "models" / "digits_mlp.onnx")
    refused(capfd, work, "compile", "models/digits_mlp.onnx", "-o", "link.onnx", "--force")


def test_a_hard_link_to_the_model(capfd, work) -> None:
    os.link(work / "models" / "digits_mlp.onnx", work / "hard.onnx")
    refused(capfd, work, "compile", "models/digits_mlp.onnx", "-o", "hard.onnx", "--force")


def test_the_models_own_folder(capfd, work) -> None:
    refused(capfd, work, "compile", "models/digits_mlp.onnx", "-o", str(work / "models"), "--force")


def test_the_folder_of_the_models_external_data(capfd, work) -> None:
    model = onnx.load(str(work / "models" / "digits_mlp.onnx"))
    (work / "big" / "weights").mkdir(parents=True)
    onnx.save(model, str(work / "big" / "m.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
              location="weights/w.bin", size_threshold=0)
    assert (work / "big" / "weights" / "w.bin").is_file()
    refused(capfd, work, "compile", "big/m.onnx", "-o", "big/weights", "--force")
    refused(capfd, work, "compile", "big/m.onnx", "-o", "big/weights/w.bin", "--force")


def test_an_existing_file_mlc_did_not_write(capfd, work) -> None:
    refused(capfd, work, "compile", "models/digits_mlp.onnx", "-o", "notes.txt")


def test_a_path_under_a_regular_file(capfd, work) -> None:
    line = refused(capfd, work, "compile", "models/digits_mlp.onnx", "-o", "notes.txt/out")
    assert "notes.txt" in line


def test_a_name_too_long(capfd, work) -> None:
    refused(capfd, work, "compile", "models/digits_mlp.onnx", "-o", "x" * 300)


def test_a_path_that_cannot_take_files(capfd, work) -> None:
    refused(capfd, work, "compile", "models/digits_mlp.onnx", "-o", "/proc/mlc-test/out")


def test_a_read_only_folder(capfd, work) -> None:
    locked = work / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        probe = locked / "probe"
        try:
            probe.write_text("")
        except OSError:
            pass
        else:
            probe.unlink()
            pytest.skip("this user (root?) can write into a read-only folder: nothing to refuse here")
        refused(capfd, work, "compile", "models/digits_mlp.onnx", "-o", "locked/out")
    finally:
        locked.chmod(0o755)


def test_optimize_refuses_the_model_and_a_foreign_file(capfd, work) -> None:
    refused(capfd, work, "optimize", "models/digits_mlp.onnx", "-o", "models/digits_mlp.onnx", "--force")
    refused(capfd, work, "optimize", "models/digits_mlp.onnx", "-o", "notes.txt")


def test_report_and_run_output_refuse_a_foreign_file(capfd, work) -> None:
    refused(capfd, work, "compile", "models/digits_mlp.onnx", "-o", "d.ort", "--report", "notes.txt")
    assert not (work / "d.ort").exists(), "a refused report stops before any work"
    code, out, err = mlc(capfd, "compile", "models/digits_mlp.onnx", "-o", "d.ort")
    assert code == 0, err
    refused(capfd, work, "run", "d.ort", "--inputs", "models/digits_mlp.sample.npz", "--output", "notes.txt")


def test_replacing_an_artifact_and_outputs_mlc_wrote_works_and_leaves_no_litter(capfd, work) -> None:
    for _ in range(2):
        code, out, err = mlc(capfd, "compile", "models/digits_mlp.onnx", "-o", "d.ort", "--report", "r.json")
        assert code == 0, err
        code, out, err = mlc(capfd, "optimize", "models/digits_mlp.onnx", "-o", "opt.onnx")
        assert code == 0, err
        code, out, err = mlc(capfd, "run", "d.ort", "--inputs", "models/digits_mlp.sample.npz", "--output", "o.npz")
        assert code == 0, err
    assert sorted(p.name for p in work.iterdir()) == ["d.ort", "models", "notes.txt", "o.npz", "opt.onnx", "r.json"]
    assert (work / "notes.txt").read_text() == "the user's own file\n"


def test_force_replaces_a_foreign_folder_but_never_the_model(capfd, work) -> None:
    scratch = work / "scratch"
    scratch.mkdir()
    (scratch / "old.txt").write_text("old\n")
    code, out, err = mlc(capfd, "compile", "models/digits_mlp.onnx", "-o", "scratch", "--force")
    assert code == 0, err
    assert (scratch / "manifest.json").is_file() and not (scratch / "old.txt").exists()
