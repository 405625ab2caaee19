"""An output path that is the input model, or its external data, or holds them, reached directly,
through a symbolic link, a hard link, a symbolic link to its folder or `..`: refused with exit 2
and one line, with and without --force, before any work; the model, its external data and
everything beside them byte-identical afterwards. For every output a command writes: `compile
-o`, `optimize -o`, `--report` of compile, optimize and debug, `--dump-ir` of compile and debug,
`debug --reproducer`. Also: a reproducer that is a file (refused before the run), folders of
earlier dumps and reproducers (reused, except over an input), and outputs onto the other inputs
of a command (`--inputs`...), which the CLI and driver do not protect yet (expected failures).

(tests/cli/test_data_safety.py covers `compile -o` and `optimize -o` onto the model with --force
and a user's other files; this extends it to every output flag and every path form.)
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
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
KNOWN: dict[tuple[str, str], str] = {}


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


FAILING = ["--load", str(PERTURB), "--passes", "perturb-weights{epsilon=0.1}"]


@pytest.mark.parametrize("kind", ["a user's file", "a file mlc wrote", "a symbolic link to a file"])
def test_a_reproducer_that_is_a_file_is_refused_before_the_run(forkserver, tmp_path, kind) -> None:
    """Was exit 70 (NotADirectoryError) after the whole debug run; now one line before any work:
    the dump folder, written from the first pass on, is never created."""
    model = small_cnn(tmp_path / "m" / "cnn.onnx")
    target = tmp_path / "notes.txt"
    target.write_text("the user's notes\n")
    if kind == "a file mlc wrote":
        target = tmp_path / "x.npz"
        from mlc.output_guard import save_npz

        save_npz(target, {"x": np.zeros(3, np.float32)})
    given = target
    if kind == "a symbolic link to a file":
        given = tmp_path / "link"
        given.symlink_to(target)
    before = digest(tmp_path / "m"), digest(target)
    code, out, err = forkserver.run("debug", model, *FAILING, "--dump-ir", tmp_path / "ir", "--reproducer", given,
                                    cwd=tmp_path)
    assert code == 2, (code, out, err)
    assert "regular file" in one_error_line(err, "--reproducer")
    assert (digest(tmp_path / "m"), digest(target)) == before
    assert not (tmp_path / "ir").exists(), "refused after the run had started"


def test_a_reproducer_replaces_an_earlier_one_but_never_its_inputs_file(forkserver, tmp_path) -> None:
    """An earlier reproducer folder may be reused (its files are mlc's); not when the new run
    reads that folder's inputs.npz (`--inputs`), nor when the folder holds a user's file."""
    model = small_cnn(tmp_path / "m" / "cnn.onnx")
    repro = tmp_path / "repro"
    for _ in range(2):
        code, _, err = forkserver.run("debug", model, *FAILING, "--reproducer", repro, cwd=tmp_path)
        assert code == 1 and (repro / "inputs.npz").is_file(), err
    before = digest(repro)
    code, _, err = forkserver.run("debug", model, *FAILING, "--inputs", repro / "inputs.npz", "--reproducer", repro,
                                  cwd=tmp_path)
    assert code == 2, err
    assert "inputs.npz" in one_error_line(err, "--reproducer")
    assert digest(repro) == before
    (repro / "notes.txt").write_text("mine\n")
    code, _, err = forkserver.run("debug", model, *FAILING, "--reproducer", repro, cwd=tmp_path)
    assert code == 2, err
    assert "notes.txt" in one_error_line(err, "--reproducer")
    assert digest(repro) == {**before, "notes.txt": digest(repro / "notes.txt")["."]}


def test_dumps_replace_earlier_dumps_but_never_the_model_debugged(forkserver, tmp_path) -> None:
    """`debug --dump-ir DIR` twice works (dumps are mlc's); debugging one of those dumps with the
    same DIR would write over it: refused by identity, though the file is mlc's."""
    model = small_cnn(tmp_path / "m" / "cnn.onnx")
    dumps = tmp_path / "ir"
    for _ in range(2):
        code, _, err = forkserver.run("debug", model, "--passes", "eliminate-identity", "--dump-ir", dumps,
                                      cwd=tmp_path)
        assert code == 0, err
    assert {"000_input.onnx", "000_input.txt", "001_eliminate-identity.onnx"} <= set(digest(dumps))
    before = digest(dumps)
    code, _, err = forkserver.run("debug", dumps / "001_eliminate-identity.onnx", "--passes", "eliminate-identity",
                                  "--dump-ir", dumps, cwd=tmp_path)
    assert code == 2, err
    assert "001_eliminate-identity.onnx" in one_error_line(err, "--dump-ir")
    assert digest(dumps) == before


def test_every_input_a_command_reads_is_protected(tmp_path) -> None:
    """`command_inputs` (the output_guard side of the CLI's checks): an output that is any input
    file or folder of the command line, or sits above one, is refused even with --force."""
    from mlc.cli import build_parser
    from mlc.errors import BadInputError
    from mlc.output_guard import command_inputs, guard_output

    inputs = {"--inputs": "i.npz", "--bind-inputs": "b.npz", "--calibration-data": "cal",
              "--calibration-cache": "c.json", "--eval-data": "e.npz", "--tuning-db": "db"}
    small_cnn(tmp_path / "m.onnx")
    for name in inputs.values():
        (tmp_path / name).write_bytes(b"user data")
    args = build_parser().parse_args(["compile", str(tmp_path / "m.onnx"), "--quantize", "int8",
                                      "--accuracy-budget", "1%",
                                      *[x for flag, name in inputs.items() for x in (flag, str(tmp_path / name))]])
    protected = command_inputs(args)
    for name in [*inputs.values(), "m.onnx"]:
        with pytest.raises(BadInputError, match="it is the input"):
            guard_output(tmp_path / name, protected=protected, force=True)
    with pytest.raises(BadInputError, match="it holds the input"):
        guard_output(tmp_path, protected=protected, force=True)
    assert guard_output(tmp_path / "new", protected=protected, force=True) == (tmp_path / "new").resolve()


def test_the_files_passes_read_are_inputs(tmp_path) -> None:
    from mlc.driver import PipelineRequest
    from mlc.output_guard import protected_inputs

    passes = PipelineRequest(passes="cse", bind_inputs=str(tmp_path / "b.npz")).build()
    assert Path(tmp_path / "b.npz") in protected_inputs(tmp_path / "m.onnx", None, "-", passes=passes)


# An output onto another input of the command: `x.npz` is an .npz mlc wrote (as `mlc run
# --output` does), so that only the protection of inputs can keep an output off it (--report has
# no --force).
ONTO_AN_INPUT = {
    "compile -o": ["compile", "m/cnn.onnx", "--inputs", "x.npz", "-o", "x.npz", "--force"],
    "optimize -o": ["optimize", "m/cnn.onnx", "--inputs", "x.npz", "-o", "x.npz", "--force"],
    "compile --report": ["compile", "m/cnn.onnx", "--inputs", "x.npz", "-o", "elsewhere/art", "--report", "x.npz"],
    "debug --report": ["debug", "m/cnn.onnx", "--inputs", "x.npz", "--report", "x.npz"],
    "compile --dump-ir": ["compile", "ir/001_eliminate-identity.onnx", "--passes", "eliminate-identity",
                          "-o", "elsewhere/art", "--dump-ir", "ir"],
}


@pytest.mark.parametrize("case", list(ONTO_AN_INPUT))
def test_an_output_onto_another_input_of_the_command_is_refused(forkserver, tmp_path, case) -> None:
    """`compile m.onnx --inputs x.npz -o x.npz --force` must not replace the user's inputs, nor
    `compile --dump-ir DIR` the dump it compiles."""
    from mlc.output_guard import save_npz

    small_cnn(tmp_path / "m" / "cnn.onnx")
    save_npz(tmp_path / "x.npz", {"x": np.ones((1, 3, 16, 16), np.float32)})
    (tmp_path / "elsewhere").mkdir()
    code, _, err = forkserver.run("debug", tmp_path / "m" / "cnn.onnx", "--passes", "eliminate-identity",
                                  "--dump-ir", tmp_path / "ir", cwd=tmp_path)
    assert code == 0, err
    before = digest(tmp_path / "x.npz"), digest(tmp_path / "ir"), os.stat(tmp_path / "x.npz").st_mtime_ns
    code, out, err = forkserver.run(*ONTO_AN_INPUT[case], cwd=tmp_path)
    assert code == 2, (code, out, err)
    one_error_line(err)
    after = digest(tmp_path / "x.npz"), digest(tmp_path / "ir"), os.stat(tmp_path / "x.npz").st_mtime_ns
    assert after == before
    assert digest(tmp_path / "elsewhere") == {}


def test_the_api_protects_every_file_the_request_reads(tmp_path) -> None:
    """`mlc.driver.compile_model` (the Python API's path) protects what the CLI does: the model,
    --inputs, --bind-inputs, --eval-data, the calibration data and table, the tuning database."""
    from mlc.driver import PipelineRequest, protected_paths
    from mlc.pipelines import QuantizeOptions
    from mlc.runner import CheckOptions

    model = small_cnn(tmp_path / "m" / "cnn.onnx")
    request = PipelineRequest(bind_inputs="b.npz", eval_data="eval", calibration=QuantizeOptions(data="cal", cache="t"))
    found = protected_paths(model, request, CheckOptions(inputs_path="x.npz"), {"tuning_db": "db"})
    assert found == [model, *map(Path, ("x.npz", "b.npz", "eval", "cal", "t", "db"))]
    assert protected_paths(model, PipelineRequest(calibration=QuantizeOptions(data="random"))) == [model]
