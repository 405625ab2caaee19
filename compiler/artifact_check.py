"""Checks of an artifact folder before `mlc run` or `mlc inspect` trusts anything in it.

An artifact may come from elsewhere (copied, downloaded, tampered with): its `manifest.json`
names the files to hash and the types to feed, and its model files reach a runtime. Before the
manifest's files are opened, this checks that the manifest is a JSON object of the expected
shape and that every file it lists is a plain name of a regular file inside the folder (not
`../../outside/file`, not an absolute path, not a symbolic link), so that nothing outside the
folder is opened or hashed. Before a runtime loads the artifact, its ONNX files pass the same
checks as a model given to `mlc compile` (an absurd attribute value that kills onnxruntime with
a signal is refused here, as it is on import).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from mlc.errors import BadInputError

MANIFEST = "manifest.json"
_MAX_MANIFEST_BYTES = 64 << 20


def _plain_name(name: str) -> bool:
    return (bool(name) and name not in (".", "..", MANIFEST) and "/" not in name and "\\" not in name
            and "\0" not in name)


def _regular(folder: Path, name: str, what: str) -> os.stat_result:
    """lstat of `folder/name`, which must be a regular file (not a link, not a folder)."""
    try:
        info = os.lstat(folder / name)
    except FileNotFoundError:
        raise BadInputError(f"{folder}: {what} {name} is missing") from None
    except OSError as error:
        raise BadInputError(f"{folder}: {what} {name} cannot be read: {error.strerror or error}") from None
    if stat.S_ISLNK(info.st_mode):
        raise BadInputError(f"{folder}: {what} {name} is a symbolic link; an artifact holds its own files")
    if not stat.S_ISREG(info.st_mode):
        raise BadInputError(f"{folder}: {what} {name} is not a regular file")
    return info


def read_checked_manifest(folder: str | Path) -> dict[str, Any]:
    """The manifest of `folder`, checked for shape and for file names inside the folder (not yet
    for the files' sha256: `mlc.artifact.read_manifest` does that next)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BadInputError(f"{folder}: not an mlc artifact folder")
    info = _regular(folder, MANIFEST, "manifest")
    if info.st_size > _MAX_MANIFEST_BYTES:
        raise BadInputError(f"{folder / MANIFEST}: {info.st_size} bytes, too large for a manifest")
    try:
        manifest = json.loads((folder / MANIFEST).read_bytes())
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise BadInputError(f"{folder / MANIFEST}: not valid JSON ({str(error).splitlines()[0][:120]})") from None
    if not isinstance(manifest, dict):
        raise BadInputError(f"{folder / MANIFEST}: the manifest is a JSON {type(manifest).__name__}, not an object")
    files = manifest.get("files", {})
    if not isinstance(files, dict):
        raise BadInputError(f"{folder / MANIFEST}: 'files' is not an object of file names")
    for name, entry in files.items():
        if not _plain_name(name):
            raise BadInputError(f"{folder / MANIFEST}: lists the file {name!r}, which is not a file name inside "
                                "the artifact folder; not opened")
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
            raise BadInputError(f"{folder / MANIFEST}: file {name} has no sha256")
        _regular(folder, name, "file")
    from mlc.targets import TARGETS

    target = manifest.get("target")
    if not isinstance(target, str) or target not in TARGETS:
        raise BadInputError(f"{folder / MANIFEST}: target {target!r} is not one mlc knows "
                            f"({', '.join(TARGETS)})")
    for key in ("inputs", "outputs"):
        items = manifest.get(key)
        if not isinstance(items, list) or not all(
                isinstance(i, dict) and isinstance(i.get("name"), str) and isinstance(i.get("type"), str)
                for i in items):
            raise BadInputError(f"{folder / MANIFEST}: '{key}' is not a list of {{name, type}} entries")
    return manifest


def check_model_files(folder: str | Path, manifest: dict[str, Any]) -> None:
    """Every `.onnx` file of the artifact passes the checks a model given to mlc passes."""
    from mlc.onnx_io.importer import import_onnx

    for name in manifest.get("files", {}):
        if name.endswith(".onnx"):
            import_onnx(Path(folder) / name)


__all__ = ["check_model_files", "read_checked_manifest"]
