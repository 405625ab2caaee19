"""The artifact: a folder with `manifest.json` beside the backend's files (DESIGN.md).

Written atomically: everything goes into a hidden temporary folder next to the destination,
which is renamed into place only when complete, so a compile killed midway leaves no artifact
folder (a stale temporary folder is removed by the next compile). The manifest holds nothing that
changes from run to run (no times, no absolute paths), so the same inputs give byte-identical
files. Loading checks every file's sha256 and whether this machine can run the target.
"""

from __future__ import annotations

import errno
import json
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mlc.backends.base import Runner
from mlc.errors import BadInputError, TargetUnavailableError
from mlc.hashing import file_sha256
from mlc.output_guard import never_replaced, remove_path, replace_refusal, show, write_error

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
log = logging.getLogger("mlc.artifact")


def _remove_stale(parent: Path, name: str, *, replaced: bool) -> None:
    """Remove what a killed compile left beside the destination: its temporary folder
    `.NAME.tmp-PID` and, once the destination exists again (`replaced`), the previous version
    it had set aside `.NAME.old-PID` (while the destination is missing, that is the only copy
    of the previous artifact, so it stays). Only names of processes that are gone; names are
    matched exactly, not as glob patterns (a destination may be called `[a]` or `*`)."""
    kinds = ("tmp", "old") if replaced else ("tmp",)
    try:
        entries = [entry.name for entry in os.scandir(parent)]
    except OSError:
        return
    for entry in entries:
        for kind in kinds:
            prefix = f".{name}.{kind}-"
            pid = entry[len(prefix):]
            if entry.startswith(prefix) and pid.isdigit() and not _pid_alive(int(pid)):
                remove_path(parent / entry)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def write_artifact(destination: Path, build: Callable[[Path], dict[str, Any]], *, force: bool = False) -> Path:
    """Call `build(tmp)` to write the files and return the manifest (without `files`), then hash
    the files, write the manifest and move the folder into place.

    Refuses (BadInputError) to replace an existing destination that mlc did not write unless it
    is an empty folder or `force` is given, and even with `force` the current folder, the home
    folder, `/` or an ancestor of one of them. Callers check with `mlc.output_guard.guard_output`
    (which also knows the command's inputs) before their expensive work; this is the last line
    of defence. An existing destination is renamed aside, the new folder renamed into place, then
    the aside copy removed, so that no `.NAME.old-PID` or `.NAME.tmp-PID` is left behind. The
    operating system's refusals (read-only file system, permission, name too long, disk full)
    become one-line BadInputErrors naming the destination.
    """
    destination = Path(destination).resolve()
    parent = destination.parent
    refusal = never_replaced(destination) or replace_refusal(destination, force=force)
    if refusal is not None:
        raise BadInputError(f"{show(destination)}: refusing to replace it: {refusal}")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise write_error(destination, error) from None
    _remove_stale(parent, destination.name, replaced=os.path.lexists(destination))
    tmp = parent / f".{destination.name}.tmp-{os.getpid()}"
    remove_path(tmp)
    try:
        tmp.mkdir()
    except OSError as error:
        raise write_error(destination, error) from None
    try:
        manifest = build(tmp)
        manifest["files"] = {p.name: {"sha256": file_sha256(p), "bytes": p.stat().st_size}
                             for p in sorted(tmp.iterdir()) if p.is_file()}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        _move_into_place(tmp, destination)
    except OSError as error:
        remove_path(tmp)
        if error.errno in _NO_ROOM:
            raise write_error(destination, error) from None
        raise
    except BaseException:
        remove_path(tmp)
        raise
    return destination


# Refusals while writing the files that say the place, not mlc, is at fault.
# (Not EACCES/EPERM: build may read files of its own, and blaming the destination would mislead.)
_NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})


def _move_into_place(tmp: Path, destination: Path) -> None:
    """Rename the finished folder `tmp` to `destination`; an existing destination is set aside
    first and put back if the rename fails, and removed once the new one is in place."""
    if not os.path.lexists(destination):
        _rename(tmp, destination, destination)
        return
    aside = destination.parent / f".{destination.name}.old-{os.getpid()}"
    remove_path(aside)
    _rename(destination, aside, destination)
    try:
        _rename(tmp, destination, destination)
    except BaseException:
        os.rename(aside, destination)
        raise
    remove_path(aside)
    if os.path.lexists(aside):
        log.warning("%s: written, but the previous version set aside as %s could not be removed",
                    show(destination), show(aside))


def _rename(source: Path, target: Path, destination: Path) -> None:
    """`os.rename`, its refusal reported as one line about `destination` (the path the user gave)."""
    try:
        os.rename(source, target)
    except OSError as error:
        raise write_error(destination, error) from None


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

    @property
    def quantization(self) -> dict[str, Any] | None:
        return quantization_of(self.manifest)

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Outputs keyed by name. The feeds are checked against the manifest's input types first
        (names, dtype, rank, fixed dims: `x: expected f32[N,32], got float64[5,31]`, exit 2), so
        that a backend never sees them wrong; what the backend still refuses is one line, exit 2."""
        from mlc.feeds import check_feeds, run_backend

        checked, unused = check_feeds(self.manifest["inputs"], feeds)
        if unused:
            log.warning("ignoring %s: not inputs of the artifact (inputs: %s)", ", ".join(unused),
                        ", ".join(self.input_names))
        return run_backend(self.runner.run, checked, target=str(self.manifest["target"]))


def quantization_of(manifest: Mapping[str, Any]) -> dict[str, Any] | None:
    """What an int8 artifact's manifest says of its quantization: mode, method, calibration data,
    the nodes kept in float (the user's `exclude_nodes` and the accuracy search's `keep_float`)
    and `reproduce`, the flags that rebuild it without searching; None for a float artifact."""
    record = manifest.get("options", {}).get("quantization")
    return dict(record) if isinstance(record, dict) else None


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
