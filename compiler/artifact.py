"""The artifact: a folder with `manifest.json` beside the backend's files (DESIGN.md).

Written atomically: everything goes into a hidden temporary folder next to the destination,
flushed to disk and swapped into place only when complete, so that a compile killed at any moment
leaves the previous artifact or the whole new one, never part of one, and concurrent compiles
into one folder leave one of theirs (the leftovers of a killed compile are removed by the next
one). A full disk is one line naming the destination, exit code 2. The manifest holds nothing that
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

from mlc.atomic_rename import exchange, rename_noreplace
from mlc.backends.base import Runner
from mlc.errors import BadInputError, NumericMismatchError, TargetUnavailableError
from mlc.flush import flush_folder, flush_tree
from mlc.hashing import file_sha256
from mlc.output_guard import never_replaced, remove_path, replace_refusal, show, write_error
from mlc.temp_names import remove_stale, temp_path

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
log = logging.getLogger("mlc.artifact")


def write_artifact(destination: Path, build: Callable[[Path], dict[str, Any]], *, force: bool = False) -> Path:
    """Call `build(tmp)` to write the files and return the manifest (without `files`), then hash
    the files, write the manifest and move the folder into place.

    Refuses (BadInputError) to replace an existing destination that mlc did not write unless it
    is an empty folder or `force` is given, and even with `force` the current folder, the home
    folder, `/` or an ancestor of one of them. Callers check with `mlc.output_guard.guard_output`
    (which also knows the command's inputs) before their expensive work; this is the last line
    of defence. The files are flushed to disk before the folder is renamed into place, and an
    existing destination is swapped with the new folder in one step (`mlc.atomic_rename`), so
    that whenever the process dies the destination holds the previous artifact or the whole new
    one. What a killed run left beside the destination is removed (`mlc.temp_names`). The
    operating system's refusals (read-only file system, permission, name too long, disk full)
    become one-line BadInputErrors naming the destination, and so does a build that failed
    because the disk filled up under it (a compiler or linker reports that in its own words).
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
    # a set-aside `.NAME.old-PID` is the only copy of the previous artifact while the destination is missing
    remove_stale(parent, destination.name, ("tmp", "old") if os.path.lexists(destination) else ("tmp",))
    tmp = temp_path(destination)
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
        flush_tree(tmp)
        _move_into_place(tmp, destination)
    except NumericMismatchError:  # the numbers, not the disk
        remove_path(tmp)
        raise
    except Exception as error:
        full = error if isinstance(error, OSError) and error.errno in _NO_ROOM else _no_room(tmp)
        remove_path(tmp)
        if full is not None:
            raise _full_error(destination, full, error) from None
        raise
    except BaseException:
        remove_path(tmp)
        raise
    return destination


# Refusals while writing the files that say the place, not mlc, is at fault.
# (Not EACCES/EPERM: build may read files of its own, and blaming the destination would mislead.)
_NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})
# Bytes that must still fit beside a failed build for the failure not to be put on a full disk.
_PROBE_BYTES = 64 << 10
# Tries to put the new folder in place while concurrent compiles keep swapping the destination.
_PLACE_ATTEMPTS = 100


def _no_room(folder: Path) -> OSError | None:
    """The operating system's refusal to write a little more into `folder` (disk full, quota,
    file size limit, read-only), or None when it can be written. Asked after a build failed: a
    compiler or linker that ran out of room says so in words of its own (`ld: final link
    failed`), which would not name the destination."""
    probe = folder / ".space-probe"
    try:
        with probe.open("wb") as stream:
            stream.write(b"\0" * _PROBE_BYTES)
            stream.flush()
            os.fsync(stream.fileno())
    except OSError as error:
        return error if error.errno in _NO_ROOM else None
    finally:
        remove_path(probe)
    return None


def _full_error(destination: Path, full: OSError, cause: BaseException) -> BadInputError:
    """`DEST: cannot write: No space left on device`, with the build's own first line when it
    was not that refusal itself (one line: it may say what needed the room)."""
    error = write_error(destination, full)
    if cause is not full:
        detail = str(cause).strip().splitlines()
        error.args = (f"{error.args[0]} ({detail[0] if detail else type(cause).__name__})",)
    return error


def _move_into_place(tmp: Path, destination: Path) -> None:
    """Put the finished folder `tmp` at `destination` so that the destination never goes missing:
    swapped in one step with what is there (then removed), or renamed into a missing path without
    replacing one that a concurrent compile put there meanwhile. Where the system cannot
    (`mlc.atomic_rename`), plain renames: the old destination set aside, the new moved in."""
    for _ in range(_PLACE_ATTEMPTS):
        try:
            if os.path.lexists(destination):
                done = exchange(tmp, destination)
            else:
                done = rename_noreplace(tmp, destination)
        except (FileNotFoundError, FileExistsError):
            if not os.path.lexists(tmp):
                raise
            continue  # a concurrent compile removed or placed the destination meanwhile: look again
        except OSError as error:
            raise write_error(destination, error) from None
        if not done:
            break
        _flush_parent(destination)
        remove_path(tmp)  # after a swap: the previous version
        if os.path.lexists(tmp):
            log.warning("%s: written, but the previous version left as %s could not be removed",
                        show(destination), show(tmp))
        return
    else:
        raise write_error(destination, OSError(errno.EBUSY, "other processes kept replacing it"))
    _move_by_renames(tmp, destination)


def _flush_parent(destination: Path) -> None:
    try:
        flush_folder(destination.parent)
    except OSError:
        pass  # the rename happened; only its durability in a power cut is not confirmed


def _move_by_renames(tmp: Path, destination: Path) -> None:
    """The fallback of `_move_into_place`: rename an existing destination aside first (put back
    if the rename fails), then the new folder into place, then remove the aside copy. Between
    the two renames the destination is missing, and the aside copy is the previous artifact."""
    if not os.path.lexists(destination):
        _rename(tmp, destination, destination)
        return
    aside = temp_path(destination, "old")
    remove_path(aside)
    _rename(destination, aside, destination)
    try:
        _rename(tmp, destination, destination)
    except BaseException:
        _rename(aside, destination, destination)
        raise
    _flush_parent(destination)
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
    """The manifest of an artifact folder, after checking every file against its sha256.

    A compile into the same folder may swap a new artifact in while this reads: the manifest of
    one and a file of the other then disagree. So when a check fails and the folder is no longer
    the one the read started with (another inode), the new one is read again."""
    folder = Path(folder)
    for _ in range(_READ_ATTEMPTS - 1):
        before = _identity(folder)
        try:
            return _read_manifest_once(folder)
        except BadInputError:
            if before is None or before == _identity(folder):
                raise
    return _read_manifest_once(folder)


# Reads of a folder that concurrent compiles keep replacing, before the last one's error stands.
_READ_ATTEMPTS = 5


def _identity(folder: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(folder)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _read_manifest_once(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    if not path.is_file():
        raise BadInputError(f"{folder}: not an mlc artifact (no {MANIFEST})")
    from mlc.artifact_check import read_checked_manifest

    # shape, plain names of regular files inside the folder, first: nothing outside is opened
    manifest = read_checked_manifest(folder)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BadInputError(f"{folder}: artifact format {manifest.get('format_version')!r}, "
                            f"this mlc reads {FORMAT_VERSION}")
    files = manifest.get("files", {})
    for name, info in files.items():
        file = folder / name
        if not file.is_file():
            raise BadInputError(f"{folder}: file {show(name)} is missing")
        if file_sha256(file) != info["sha256"]:
            raise BadInputError(f"{folder}: file {show(name)} does not match its sha256 in the manifest (modified?)")
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
    """Load an artifact folder: integrity check (manifest, hashes, model files), then the
    target's own check that it can run here."""
    from mlc.artifact_check import check_model_files
    from mlc.targets import backend_for

    folder = Path(folder)
    manifest = read_manifest(folder)
    check_model_files(folder, manifest)  # what a runtime loads passes the checks of a model given to mlc
    target = manifest["target"]
    backend = backend_for(target)
    state = backend.check_runnable(target, manifest.get("requirements", {}))
    if not state.ok:
        raise TargetUnavailableError(f"{folder}: cannot run a {target} artifact here: {state.reason}")
    return Artifact(folder, manifest, backend.load(folder, manifest))
