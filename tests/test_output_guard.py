"""Output paths never destroy what mlc did not write (mlc.output_guard, mlc.artifact.write_artifact).

Every refusal is checked twice: the error (BadInputError, exit code 2, one line naming the path)
and the bytes on disk, snapshotted before and compared after, since a refusal that deletes the
folder first would still raise.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from mlc.artifact import FORMAT_VERSION, read_manifest, write_artifact
from mlc.errors import BadInputError
from mlc.output_guard import (
    MLC_NPZ_COMMENT,
    MLC_PRODUCER_NAME,
    guard_output,
    mark_npz,
    mlc_wrote,
    onnx_producer_name,
    save_npz,
    write_file_atomically,
)

ROOT = Path(__file__).resolve().parents[1]


def snapshot(root: Path) -> dict[str, Any]:
    """Every entry under `root`: file bytes, link targets, folders (so a new or lost entry shows)."""
    state: dict[str, Any] = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            state[key] = ("link", os.readlink(path))
        elif path.is_dir():
            state[key] = ("dir",)
        else:
            state[key] = ("file", path.read_bytes())
    return state


def refused(action: Callable[[], object], *names: str) -> str:
    """Run `action`, expect a one-line BadInputError (exit 2) that names each of `names`."""
    with pytest.raises(BadInputError) as info:
        action()
    message = str(info.value)
    assert info.value.exit_code == 2
    assert "\n" not in message and message.strip() == message, message
    for name in names:
        assert name in message, (name, message)
    return message


def make_model(path: Path, producer: str = "pytorch", external: bool = False) -> Path:
    weight = numpy_helper.from_array(np.arange(600, dtype=np.float32).reshape(20, 30), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 20])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 30])], [weight])
    model = helper.make_model(graph, producer_name=producer, opset_imports=[helper.make_opsetid("", 17)])
    path.parent.mkdir(parents=True, exist_ok=True)
    if external:
        onnx.save(model, path, save_as_external_data=True, location=path.name + ".data", size_threshold=0)
    else:
        onnx.save(model, path)
    return path


def make_artifact(folder: Path, marker: str = "old") -> Path:
    def build(tmp: Path) -> dict[str, Any]:
        (tmp / "model.onnx").write_text(marker)
        return {"format_version": FORMAT_VERSION, "target": "onnxruntime", "inputs": [], "outputs": []}

    return write_artifact(folder, build)


def litter(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name or ".old-" in p.name)


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user's folder: the model, its external data, notes; the current folder is `work/run`."""
    root = tmp_path / "work"
    make_model(root / "models" / "m.onnx", external=True)
    (root / "notes.txt").write_text("my notes\n")
    (root / "important").mkdir()
    (root / "important" / "thesis.tex").write_text("do not lose\n")
    (root / "run").mkdir()
    (root / "run" / "log.txt").write_text("log\n")
    monkeypatch.chdir(root / "run")
    return root


def model_of(work: Path) -> list[Path]:
    model = work / "models" / "m.onnx"
    return [model, model.with_name("m.onnx.data")]


# --- refusals that --force does not lift ---------------------------------------------------


@pytest.mark.parametrize("force", [False, True])
@pytest.mark.parametrize("given", [".", "./", "..", "../..", "/"])
def test_the_current_folder_its_ancestors_and_root_are_refused(work: Path, given: str, force: bool) -> None:
    before = snapshot(work)
    refused(lambda: guard_output(given, protected=model_of(work), force=force), f"-o {given}:")
    assert snapshot(work) == before


def test_the_current_folder_by_absolute_path_is_refused(work: Path) -> None:
    before = snapshot(work)
    message = refused(lambda: guard_output(Path.cwd(), force=True), str(work / "run"))
    assert "current folder" in message
    refused(lambda: guard_output(work, force=True), str(work))
    assert snapshot(work) == before


def test_write_artifact_refuses_the_current_folder_even_when_forced(work: Path) -> None:
    (work / "run" / "manifest.json").write_text(json.dumps({"format_version": 1, "target": "onnxruntime"}))
    before = snapshot(work)
    refused(lambda: make_artifact(Path(".")), str(work / "run"))
    refused(lambda: write_artifact(Path(".."), lambda tmp: {}, force=True), str(work))
    assert snapshot(work) == before and litter(work) == []


@pytest.mark.parametrize("force", [False, True])
def test_the_input_model_is_refused(work: Path, force: bool) -> None:
    model, data = model_of(work)
    before = snapshot(work)
    message = refused(lambda: guard_output(model, protected=[model, data], force=force), str(model))
    assert "input" in message
    refused(lambda: guard_output("../models/m.onnx", protected=[model], force=force), "-o ../models/m.onnx")
    refused(lambda: guard_output(data, protected=[model, data], force=force), str(data))
    assert snapshot(work) == before


@pytest.mark.parametrize("force", [False, True])
def test_a_symbolic_link_to_the_model_is_refused(work: Path, force: bool) -> None:
    model, _ = model_of(work)
    (work / "run" / "link.onnx").symlink_to(model)
    (work / "run" / "linkdir").symlink_to(model.parent)
    before = snapshot(work)
    refused(lambda: guard_output("link.onnx", protected=[model], force=force), "link.onnx", str(model))
    refused(lambda: guard_output("linkdir", protected=[model], force=force), "linkdir")
    # and the other way round: the model given through a link, the destination by its real path
    refused(lambda: guard_output(model, protected=[Path("link.onnx")], force=force), str(model))
    assert snapshot(work) == before


@pytest.mark.parametrize("force", [False, True])
def test_a_hard_link_to_the_model_is_the_model(work: Path, force: bool) -> None:
    model, _ = model_of(work)
    os.link(model, work / "important" / "same.onnx")
    before = snapshot(work)
    message = refused(lambda: guard_output(work / "important" / "same.onnx", protected=[model], force=force),
                      str(work / "important" / "same.onnx"))
    assert "input" in message
    assert snapshot(work) == before


@pytest.mark.parametrize("force", [False, True])
def test_the_folder_of_the_model_or_of_its_external_data_is_refused(work: Path, tmp_path: Path,
                                                                    force: bool) -> None:
    model, data = model_of(work)
    weights = tmp_path / "weights"
    weights.mkdir()
    moved = weights / data.name
    os.replace(data, moved)
    before, before_weights = snapshot(work), snapshot(weights)
    refused(lambda: guard_output(model.parent, protected=[model, moved], force=force), str(model.parent))
    message = refused(lambda: guard_output(weights, protected=[model, moved], force=force), str(weights))
    assert "holds" in message and data.name in message
    assert snapshot(work) == before and snapshot(weights) == before_weights


def test_dot_dot_after_a_link_is_followed_as_the_system_follows_it(work: Path) -> None:
    """`link/../x` is `x` beside the link's target, not beside the link: checked where it is written."""
    model, _ = model_of(work)
    (work / "run" / "deep").symlink_to(work / "models" / "sub", target_is_directory=True)
    (work / "models" / "sub").mkdir()
    before = snapshot(work)
    refused(lambda: guard_output("deep/../m.onnx", protected=[model], force=True), str(model))
    refused(lambda: write_file_atomically(Path("deep/../m.onnx"), lambda tmp: tmp.write_text("x"))
            if guard_output("deep/../m.onnx", protected=[model]) else None, "input")
    assert snapshot(work) == before


def test_write_artifact_refuses_to_replace_the_model_folder(work: Path) -> None:
    """The last line of defence: without a guard, a folder that is not an artifact survives."""
    before = snapshot(work)
    refused(lambda: make_artifact(work / "models"), str(work / "models"))
    assert snapshot(work) == before and litter(work) == []


# --- refusals that --force lifts -----------------------------------------------------------


def test_a_folder_that_is_not_an_artifact_is_refused(work: Path) -> None:
    before = snapshot(work)
    message = refused(lambda: guard_output(work / "important"), str(work / "important"))
    assert "not an mlc artifact" in message and "--force" in message
    refused(lambda: make_artifact(work / "important"), str(work / "important"))
    refused(lambda: guard_output(work / "important" / "thesis.tex"), "thesis.tex")
    assert snapshot(work) == before and litter(work) == []


def test_an_existing_file_mlc_did_not_write_is_refused(work: Path) -> None:
    (work / "run" / "report.json").write_text(json.dumps({"mine": True}))
    (work / "run" / "out.npz").write_bytes(b"PK\x05\x06" + b"\0" * 18)
    np.savez(work / "run" / "arrays.npz", a=np.zeros(2))
    (work / "run" / "other.onnx").write_bytes(model_of(work)[0].read_bytes())
    before = snapshot(work)
    for name in ("../notes.txt", "report.json", "out.npz", "arrays.npz", "other.onnx"):
        message = refused(lambda name=name: guard_output(name), f"-o {name}:")
        assert "mlc did not write" in message
        refused(lambda name=name: write_artifact(Path(name), lambda tmp: {}), name.lstrip("./"))
    assert snapshot(work) == before and litter(work / "run") == []


def test_force_replaces_what_mlc_did_not_write(work: Path) -> None:
    assert guard_output(work / "notes.txt", force=True) == work / "notes.txt"
    assert guard_output(work / "important", force=True) == work / "important"
    folder = write_artifact(work / "important", lambda tmp: {"format_version": FORMAT_VERSION,
                                                             "target": "onnxruntime"}, force=True)
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json"] and litter(work) == []
    write_file_atomically(work / "notes.txt", lambda tmp: tmp.write_text("new\n"))
    assert (work / "notes.txt").read_text() == "new\n" and litter(work) == []


def test_devices_are_refused_even_when_forced() -> None:
    refused(lambda: guard_output("/dev/null", force=True), "/dev/null")


# --- what cannot be written is refused up front --------------------------------------------


def test_a_path_under_a_regular_file_is_refused(work: Path) -> None:
    before = snapshot(work)
    message = refused(lambda: guard_output(work / "notes.txt" / "out"), str(work / "notes.txt" / "out"))
    assert "regular file" in message
    refused(lambda: guard_output(work / "notes.txt" / "a" / "b", force=True), "regular file")
    refused(lambda: make_artifact(work / "notes.txt" / "out"), str(work / "notes.txt" / "out"))
    refused(lambda: write_file_atomically(work / "notes.txt" / "o.npz", lambda tmp: None), "o.npz")
    assert snapshot(work) == before


def _really_writable(folder: Path) -> bool:
    probe = folder / ".probe"
    try:
        probe.write_text("")
    except OSError:
        return False
    probe.unlink()
    return True


def test_a_read_only_folder_is_refused(work: Path) -> None:
    locked = work / "important"
    locked.chmod(0o555)
    try:
        if _really_writable(locked):
            pytest.skip("running as root: a read-only mode bit does not stop this user from writing")
        before = snapshot(work)
        message = refused(lambda: guard_output(locked / "out"), str(locked / "out"))
        assert "permission" in message.lower()
        refused(lambda: make_artifact(locked / "out"), str(locked / "out"), "Permission denied")
        refused(lambda: write_file_atomically(locked / "o.npz", lambda tmp: tmp.write_text("x")),
                str(locked / "o.npz"), "Permission denied")
        assert snapshot(work) == before
    finally:
        locked.chmod(0o755)


def test_a_folder_without_write_permission_is_refused_up_front(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same check as above where access() is what says no (root would skip the test above)."""
    import mlc.output_guard

    monkeypatch.setattr(mlc.output_guard.os, "access", lambda path, mode: Path(path) != work / "important")
    before = snapshot(work)
    message = refused(lambda: guard_output(work / "important" / "out"), str(work / "important" / "out"))
    assert "no permission" in message and str(work / "important") in message
    assert guard_output(work / "run" / "out") == work / "run" / "out"
    assert snapshot(work) == before


def test_an_operating_system_refusal_at_write_time_is_one_line(work: Path) -> None:
    """What the checks cannot foresee (root passes access(), a disk fills up) still gives one line
    and no temporary litter."""
    destination = work / "run" / "o.npz"

    def read_only(tmp: Path) -> None:
        tmp.write_text("partial")
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    refused(lambda: write_file_atomically(destination, read_only), str(destination), "Read-only file system")
    assert not destination.exists() and litter(work / "run") == []

    def disk_full(tmp: Path) -> dict[str, Any]:
        (tmp / "model.onnx").write_text("partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    refused(lambda: write_artifact(work / "run" / "a", disk_full), str(work / "run" / "a"), "No space left")
    assert not (work / "run" / "a").exists() and litter(work / "run") == []


def test_a_name_too_long_for_the_file_system_is_refused(work: Path) -> None:
    name = "n" * 300
    before = snapshot(work)
    message = refused(lambda: guard_output(name), f"-o {name}:")
    assert "255" in message or "allows" in message
    refused(lambda: guard_output(work / name / "inner"), "allows")
    # names that fit, but not with mlc's temporary suffix beside them, are refused too
    refused(lambda: guard_output("n" * 250), "temporary")
    refused(lambda: make_artifact(Path(name)), name, "File name too long")
    refused(lambda: write_file_atomically(Path(name), lambda tmp: tmp.write_text("x")), name)
    assert snapshot(work) == before


def test_a_virtual_file_system_is_refused() -> None:
    if not Path("/proc/self").exists():
        pytest.skip("no /proc on this system")
    refused(lambda: guard_output("/proc/mlc-test/x"), "/proc/mlc-test/x")
    refused(lambda: guard_output("/proc/mlc-test/x", force=True), "/proc/mlc-test/x")
    refused(lambda: make_artifact(Path("/proc/mlc-test/x")), "/proc/mlc-test/x")
    assert not Path("/proc/mlc-test").exists()


def test_a_path_with_a_newline_gives_one_line(work: Path) -> None:
    (work / "run" / "a\nb").write_text("mine")
    before = snapshot(work)
    refused(lambda: guard_output("a\nb"), "'a\\nb'")
    refused(lambda: guard_output("a\0b"), "NUL")
    assert snapshot(work) == before


# --- what may be written -------------------------------------------------------------------


def test_replacing_an_mlc_artifact_leaves_no_litter(work: Path) -> None:
    destination = work / "run" / "art"
    make_artifact(destination, "old")
    assert mlc_wrote(destination)
    assert guard_output("art", protected=model_of(work)) == destination
    make_artifact(destination, "new")
    assert (destination / "model.onnx").read_text() == "new"
    assert read_manifest(destination)["target"] == "onnxruntime"
    assert litter(work / "run") == []


def test_a_failed_build_keeps_the_previous_artifact(work: Path) -> None:
    destination = work / "run" / "art"
    make_artifact(destination, "old")
    before = snapshot(work)

    def broken(tmp: Path) -> dict[str, Any]:
        (tmp / "model.onnx").write_text("half")
        raise RuntimeError("backend failed")

    with pytest.raises(RuntimeError):
        write_artifact(destination, broken)
    assert snapshot(work) == before and litter(work / "run") == []


def test_stale_leftovers_of_a_killed_compile_are_removed(work: Path) -> None:
    destination = work / "run" / "art"
    make_artifact(destination, "old")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for kind in ("tmp", "old"):
        (work / "run" / f".art.{kind}-{dead.pid}").mkdir()
        (work / "run" / f".art.{kind}-{dead.pid}" / "model.onnx").write_text("stale")
    (work / "run" / ".other.tmp-1").mkdir()  # another destination's: not touched
    make_artifact(destination, "new")
    assert litter(work / "run") == [".other.tmp-1"]


def test_a_set_aside_artifact_is_kept_while_the_destination_is_missing(work: Path) -> None:
    """Killed between "rename aside" and "rename into place": the aside copy is the only one left."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    aside = work / "run" / f".art.old-{dead.pid}"
    make_artifact(aside, "previous")
    make_artifact(work / "run" / "art", "new")
    assert aside.exists()


def test_an_empty_folder_may_be_used(work: Path) -> None:
    (work / "run" / "empty").mkdir()
    assert not mlc_wrote(work / "run" / "empty")
    assert guard_output("empty") == work / "run" / "empty"
    make_artifact(work / "run" / "empty")
    assert mlc_wrote(work / "run" / "empty") and litter(work / "run") == []
    (work / "run" / "e2").mkdir()
    write_file_atomically(work / "run" / "e2", lambda tmp: tmp.write_text("x"))
    assert (work / "run" / "e2").read_text() == "x"


def test_a_new_path_in_new_folders_is_fine(work: Path) -> None:
    assert guard_output("a/b/c", protected=model_of(work)) == work / "run" / "a" / "b" / "c"
    assert not (work / "run" / "a").exists()  # the guard writes nothing
    make_artifact(work / "run" / "a" / "b" / "c")
    save_npz(work / "run" / "x" / "y.npz", {"a": np.ones(2)})
    assert mlc_wrote(work / "run" / "x" / "y.npz")


# --- what mlc wrote ------------------------------------------------------------------------


def test_npz_marked_by_mlc_is_recognized_and_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "o.npz"
    np.savez(path, a=np.arange(5), b=np.eye(2))
    assert not mlc_wrote(path)
    mark_npz(path)
    with zipfile.ZipFile(path) as archive:
        assert archive.comment == MLC_NPZ_COMMENT
    assert mlc_wrote(path)
    with np.load(path) as loaded:
        np.testing.assert_array_equal(loaded["a"], np.arange(5))
        np.testing.assert_array_equal(loaded["b"], np.eye(2))
    save_npz(path, {"c": np.zeros(3)})
    assert mlc_wrote(path) and sorted(np.load(path).files) == ["c"] and litter(tmp_path) == []


def test_mlc_wrote_recognizes_only_mlc_outputs(tmp_path: Path) -> None:
    ours = make_model(tmp_path / "ours.onnx", producer=MLC_PRODUCER_NAME)
    theirs = make_model(tmp_path / "theirs.onnx", producer="pytorch")
    assert mlc_wrote(ours) and not mlc_wrote(theirs)
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(ours.read_bytes()[:-5])
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x12\x03mlc" + b"\xff" * 10)
    renamed = tmp_path / "ours.bin"
    renamed.write_bytes(ours.read_bytes())
    assert not mlc_wrote(truncated) and not mlc_wrote(garbage) and not mlc_wrote(renamed)
    report = tmp_path / "r.json"
    report.write_text(json.dumps({"schema_version": 1, "command": "debug", "tool_versions": {}}))
    other = tmp_path / "o.json"
    other.write_text(json.dumps({"schema_version": 1, "command": "debug"}))
    broken = tmp_path / "b.json"
    broken.write_text("{")
    assert mlc_wrote(report) and not mlc_wrote(other) and not mlc_wrote(broken)
    for manifest, expected in ((None, False), ("{", False), ({"format_version": "1", "target": "x"}, False),
                               ({"format_version": True, "target": "x"}, False),
                               ({"format_version": 1}, False), ({"format_version": 1, "target": "x"}, True)):
        folder = tmp_path / f"f{len(list(tmp_path.iterdir()))}"
        folder.mkdir()
        if manifest is not None:
            text = manifest if isinstance(manifest, str) else json.dumps(manifest)
            (folder / "manifest.json").write_text(text)
        assert mlc_wrote(folder) is expected, manifest
    assert not mlc_wrote(tmp_path / "missing")


def test_the_producer_name_is_read_as_onnx_reads_it(tmp_path: Path) -> None:
    paths = sorted((ROOT / "models").glob("*.onnx")) + sorted((ROOT / "tests").rglob("*.onnx"))[:20]
    paths.append(make_model(tmp_path / "ext.onnx", producer="mlc", external=True))
    for path in paths:
        proto = onnx.load(path, load_external_data=False)
        assert (onnx_producer_name(path) or "") == proto.producer_name, path
