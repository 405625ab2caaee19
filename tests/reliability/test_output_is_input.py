"""An output path that is the input model, or its external data, or holds them, reached directly,
through a symbolic link, a hard link, a symbolic link to its folder or `..`: refused with exit 2
and one line, with and without --force, before any work; the model, its external data and
everything beside them byte-identical afterwards. For every output a command writes: `compile
-o`, `optimize -o`, `--report` of compile, optimize and debug, `--dump-ir` of compile and debug,
`debug --reproducer`.

(tests/cli/test_data_safety.py covers `compile -o` and `optimize -o` onto the model with --force
and a user's other files; this extends it to every output flag and every path form.)
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.reliability.support import ForkServer, digest, one_error_line, small_cnn

PERTURB = Path(__file__).resolve().parents[1] / "perturb_pass.py"

# How the output reaches the model or its data, as a path relative to the working folder.
FORMS = {
    "the model": "m/cnn.onnx",
    "a symbolic link to it": "link.onnx",
    "a hard link to it": "hard.onnx",
    "its path through a linked folder": "mlink/cnn.onnx",
    "its path with ..": "m/../m/cnn.onnx",
    "its folder": "m",
    "a symbolic link to its folder": "mlink",
    "its folder as m/.": "m/.",
    "its external data": "m/cnn.onnx.data",
    "a symbolic link to its data": "data-link",
    "a hard link to its data": "data-hard",
}
# Each output flag with the arguments that make the command write it (`OUT` is the output).
OUTPUTS = {
    "compile -o": ["compile", "m/cnn.onnx", "-o", "OUT"],
    "optimize -o": ["optimize", "m/cnn.onnx", "-o", "OUT"],
    "compile --report": ["compile", "m/cnn.onnx", "-o", "elsewhere/art", "--report", "OUT"],
    "optimize --report": ["optimize", "m/cnn.onnx", "-o", "elsewhere/opt.onnx", "--report", "OUT"],
    "debug --report": ["debug", "m/cnn.onnx", "--report", "OUT"],
    "compile --dump-ir": ["compile", "m/cnn.onnx", "-o", "elsewhere/art", "--dump-ir", "OUT"],
    "debug --dump-ir": ["debug", "m/cnn.onnx", "--dump-ir", "OUT"],
    "debug --reproducer": ["debug", "m/cnn.onnx", "--load", str(PERTURB), "--passes", "perturb-weights{epsilon=0.1}",
                           "--reproducer", "OUT"],
}
# What does not hold yet (files owned elsewhere); strict: it fails loudly once fixed.
KNOWN = {
    ("debug --reproducer", form): "compiler/debugger.py write_reproducer: a --reproducer that is a file "
                                  "crashes (exit 70, NotADirectoryError) after the whole debug run"
    for form in ("the model", "a symbolic link to it", "a hard link to it", "its path through a linked folder",
                 "its path with ..", "its external data", "a symbolic link to its data")
}


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A user's folder: a model with external data and a notes file in `m/`, symbolic links to
    the model, its folder and its data (hard links are made by the cases that need them: a data
    file with two links is refused on import)."""
    small_cnn(tmp_path / "m" / "cnn.onnx", external=True)
    assert (tmp_path / "m" / "cnn.onnx.data").is_file()
    (tmp_path / "m" / "notes.txt").write_text("the user's notes\n")
    (tmp_path / "link.onnx").symlink_to(tmp_path / "m" / "cnn.onnx")
    (tmp_path / "mlink").symlink_to(tmp_path / "m", target_is_directory=True)
    (tmp_path / "data-link").symlink_to(tmp_path / "m" / "cnn.onnx.data")
    (tmp_path / "elsewhere").mkdir()
    return tmp_path


HARD_LINKS = {"hard.onnx": "m/cnn.onnx", "data-hard": "m/cnn.onnx.data"}


def _refused(forkserver: ForkServer, work: Path, args: list[str]) -> str:
    def state() -> object:
        return ([digest(work / "m")] + [digest(work / name) for name in HARD_LINKS]
                + [os.readlink(work / name) for name in ("link.onnx", "mlink", "data-link")])

    before = state()
    code, out, err = forkserver.run(*args, cwd=work)
    assert code == 2, (code, out, err)
    line = one_error_line(err)
    assert state() == before, "the model, its data, a file beside them or a link changed"
    assert digest(work / "elsewhere") == {}, "refused before any work"
    return line


def _case(output: str, form: str, force: bool) -> object:
    marks = [pytest.mark.xfail(strict=True, reason=KNOWN[output, form])] if (output, form) in KNOWN else []
    return pytest.param(output, form, force, marks=marks, id=f"{output}-{form}-{'force' if force else 'plain'}")


@pytest.mark.parametrize(("output", "form", "force"), [
    _case(output, form, force) for output in OUTPUTS for form in FORMS for force in (False, True)
    if not (force and output.startswith("debug"))  # debug has no --force
    # a data file with a second link is refused on import, before a reproducer could be written
    and not (output == "debug --reproducer" and form == "a hard link to its data")
])
def test_an_output_that_is_or_holds_the_input_is_refused(forkserver, work, output, form, force) -> None:
    if FORMS[form] in HARD_LINKS:
        os.link(work / HARD_LINKS[FORMS[form]], work / FORMS[form])
    args = [FORMS[form] if a == "OUT" else a for a in OUTPUTS[output]] + (["--force"] if force else [])
    _refused(forkserver, work, args)


@pytest.mark.xfail(strict=True, reason="compiler/instruments.py IRDumper: a dump folder holding the input "
                                       "model named like a dump (NNN_name.onnx) is written over it")
def test_dump_ir_into_the_folder_of_a_model_named_like_a_dump(forkserver, tmp_path) -> None:
    """Debugging the dump of pass 3 with --dump-ir into the same folder (a natural next step)."""
    dumps = tmp_path / "ir"
    small_cnn(dumps / "003_fuse-batchnorm.onnx")
    small_cnn(dumps / "000_input.onnx", seed=1)
    before = digest(dumps)
    code, _, err = forkserver.run("debug", dumps / "000_input.onnx", "--dump-ir", dumps, cwd=tmp_path)
    assert code == 2, err
    one_error_line(err)
    assert digest(dumps) == before


@pytest.mark.xfail(strict=True, reason="compiler/debugger.py write_reproducer: replaying a reproducer with "
                                       "--reproducer set to its own folder writes over its before.onnx (the input)")
def test_replaying_a_reproducer_into_its_own_folder(forkserver, tmp_path) -> None:
    model = small_cnn(tmp_path / "m" / "cnn.onnx")
    repro = tmp_path / "repro"
    failing = ["--load", str(PERTURB), "--passes", "perturb-weights{epsilon=0.1}"]
    code, _, err = forkserver.run("debug", model, *failing, "--reproducer", repro, cwd=tmp_path)
    assert code == 1 and (repro / "before.onnx").is_file(), err
    model_file = repro / "before.onnx"
    before = digest(model_file), os.stat(model_file).st_ino, os.stat(model_file).st_mtime_ns
    forkserver.run("debug", "before.onnx", *failing, "--inputs", "inputs.npz", "--reproducer", repro, cwd=repro)
    after = digest(model_file), os.stat(model_file).st_ino, os.stat(model_file).st_mtime_ns
    assert after == before, "the model being debugged was written over (same bytes or not)"
