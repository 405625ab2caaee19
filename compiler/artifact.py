"""The artifact: a folder with `manifest.json` beside the backend's files (DESIGN.md).

Written atomically: everything goes into a hidden temporary folder next to the destination,
which is renamed into place only when complete, so a compile killed midway leaves no artifact
folder (a stale temporary folder is removed by the next compile). The manifest holds nothing that
changes from run to run (no times, no absolute paths), so the same inputs give byte-identical
files. Loading checks every file's sha256 and whether this machine can run the target.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mlc.backends.base import Runner
from mlc.errors import BadInputError, TargetUnavailableError
from mlc.hashing import file_sha256

FORMAT_VERSION = 1
MANIFEST = "manifest.json"


def _remove_stale(parent: Path, name: str) -> None:
    for stale in parent.glob(f".{name}.tmp-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        alive = pid.isdigit() and _pid_alive(int(pid))
        if not alive:
            shutil.rmtree(stale, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_artifact(destination: Path, build: Callable[[Path], dict[str, Any]]) -> Path:
    """Call `build(tmp)` to write the files and return the manifest (without `files`), then hash
    the files, write the manifest and move the folder into place."""
    destination = Path(destination).resolve()
    parent = destination.parent
    parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(parent, destination.name)
    tmp = parent / f".{destination.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        manifest = build(tmp)
        manifest["files"] = {p.name: {"sha256": file_sha256(p), "bytes": p.stat().st_size}
                             for p in sorted(tmp.iterdir()) if p.is_file()}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        if destination.exists():
            aside = parent / f".{destination.name}.old-{os.getpid()}"
            os.rename(destination, aside)
            os.rename(tmp, destination)
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.rename(tmp, destination)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return destination


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The manifest of an artifact folder, after checking every file against its sha256."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise BadInputError(f"{folder}: not an mlc artifact (no {MANIFEST})")
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except ValueError as error:
        raise BadInputError(f"{path}: not valid JSON ({error})") from None
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BadInputError(f"{folder}: artifact format {manifest.get('format_version')!r}, "
                            f"this mlc reads {FORMAT_VERSION}")
    for name, info in manifest.get("files", {}).items():
        file = folder / name
        if not file.is_file():
            raise BadInputError(f"{folder}: file {name} is missing")
        if file_sha256(file) != info["sha256"]:
            raise BadInputError(f"{folder}: file {name} does not match its sha256 in the manifest (modified?)")
    return manifest


class Artifact:
    """A loaded artifact: `run(feeds)` executes it; `manifest` describes it."""

    def __init__(self, folder: Path, manifest: dict[str, Any], runner: Runner) -> None:
        self.folder = folder
        self.manifest = manifest
        self.runner = runner

    @property
    def input_names(self) -> list[str]:
        return [i["name"] for i in self.manifest["inputs"]]

    @property
    def output_names(self) -> list[str]:
        return [o["name"] for o in self.manifest["outputs"]]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = [n for n in self.input_names if n not in feeds and not self._has_default(n)]
        if missing:
            raise BadInputError(f"missing input {', '.join(missing)} (inputs: {', '.join(self.input_names)})")
        return self.runner.run(feeds)

    def _has_default(self, name: str) -> bool:
        return any(i["name"] == name and i.get("default") for i in self.manifest["inputs"])


def load(folder: str | Path) -> Artifact:
    """Load an artifact folder: integrity check, then the target's own check that it can run here."""
    from mlc.targets import backend_for

    folder = Path(folder)
    manifest = read_manifest(folder)
    target = manifest["target"]
    backend = backend_for(target)
    state = backend.check_runnable(target, manifest.get("requirements", {}))
    if not state.ok:
        raise TargetUnavailableError(f"{folder}: cannot run a {target} artifact here: {state.reason}")
    return Artifact(folder, manifest, backend.load(folder, manifest))
