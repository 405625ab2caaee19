"""`mlc run` on an artifact whose manifest was tampered with: exit 2, one line, and no file outside
the artifact folder opened, not even to hash it (issue 16 found `../../outside/file` opened and
hashed before the refusal)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.reliability.support import ForkServer, one_error_line, read_events, small_cnn


@pytest.fixture(scope="module")
def artifact(forkserver: ForkServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tampered")
    model = small_cnn(root / "model" / "cnn.onnx")
    code, _, err = forkserver.run("compile", model, "-o", root / "art", cwd=root)
    assert code == 0, err
    return root / "art"


@pytest.mark.parametrize("entry", [
    "../outside/secret.bin", "../../outside/secret.bin", "OUTSIDE_ABSOLUTE", "sub/../../outside/secret.bin",
    "..", ".", "", "a\\..\\b", "manifest.json",
])
def test_a_manifest_naming_files_outside_is_refused_before_reading_them(forkserver, artifact, tmp_path, entry):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.bin").write_bytes(b"not mlc's")
    folder = tmp_path / "case" / "art"
    folder.parent.mkdir()
    shutil.copytree(artifact, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    name = str(outside / "secret.bin") if entry == "OUTSIDE_ABSOLUTE" else entry
    manifest["files"][name] = {"sha256": "0" * 64, "bytes": 9}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    log = tmp_path / "events.log"
    code, _, err = forkserver.run("run", folder, cwd=tmp_path, hooks={"watch": str(outside), "reads": True,
                                                                        "log": str(log)})
    assert code == 2, err
    one_error_line(err, "manifest.json")
    assert read_events(log) == [], "a file outside the artifact was opened"


@pytest.mark.parametrize("files", [[], "model.onnx", {"model.onnx": "abc"}, {"model.onnx": {"bytes": 1}}])
def test_a_malformed_files_entry_is_one_line(forkserver, artifact, tmp_path, files) -> None:
    folder = tmp_path / "art"
    shutil.copytree(artifact, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"] = files
    (folder / "manifest.json").write_text(json.dumps(manifest))
    code, _, err = forkserver.run("run", folder, cwd=tmp_path)
    assert code == 2, err
    one_error_line(err, "manifest.json")


def test_the_python_api_load_refuses_a_file_that_is_a_link_outside(artifact, tmp_path) -> None:
    """`mlc.load` (what embedding code calls) checks as `mlc run` does: a model file replaced by
    a symbolic link to a file outside the folder is refused before it is hashed or loaded."""
    import mlc
    from mlc.errors import BadInputError

    folder = tmp_path / "art"
    shutil.copytree(artifact, folder)
    outside = tmp_path / "outside.onnx"
    name = next(n for n in json.loads((folder / "manifest.json").read_text())["files"] if n.endswith(".onnx"))
    (folder / name).rename(outside)
    (folder / name).symlink_to(outside)
    with pytest.raises(BadInputError, match="is a symbolic link"):
        mlc.load(folder)
    (folder / name).unlink()
    outside.rename(folder / name)
    assert mlc.load(folder).run  # the untampered artifact loads
