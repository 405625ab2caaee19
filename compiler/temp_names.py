"""The temporary names mlc writes beside an output, and the removal of those a killed run left.

An output `NAME` is written as `.NAME.tmp-PID` beside it and renamed into place when complete;
an artifact folder being replaced may be set aside as `.NAME.old-PID` (where the system cannot
swap two folders in one step, see `mlc.atomic_rename`). The ONNX exporter, asked to write
`.NAME.tmp-PID`, writes its own temporary `..NAME.tmp-PID.XXXXXXXX.tmp` first. A run killed by
SIGKILL, the out-of-memory killer or a cancelled CI job cannot remove these, so the next run that
writes `NAME` removes those of processes that are gone: names matched exactly (a destination may be
called `[a]` or `*`), never a live process's (a concurrent run's work in progress).
"""

from __future__ import annotations

import os
from pathlib import Path

from mlc.output_guard import remove_path


def temp_path(destination: Path, kind: str = "tmp") -> Path:
    """`.NAME.KIND-PID` beside `destination`: this process's temporary (`tmp`) or set-aside
    (`old`) copy of it."""
    return destination.parent / f".{destination.name}.{kind}-{os.getpid()}"


def pid_alive(pid: int) -> bool:
    """Whether a process `pid` exists (a zombie, not yet reaped by its parent, counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _owner(entry: str, name: str, kinds: tuple[str, ...]) -> int | None:
    """The process id in `entry` when it is one of the temporary names of output `name`."""
    for kind in kinds:
        prefix = f".{name}.{kind}-"
        if entry.startswith(prefix) and entry[len(prefix):].isdigit():
            return int(entry[len(prefix):])
    exporter = f"..{name}.tmp-"  # the exporter's own temporary file for `.NAME.tmp-PID`
    if entry.startswith(exporter) and entry.endswith(".tmp"):
        pid = entry[len(exporter):].split(".", 1)[0]
        if pid.isdigit():
            return int(pid)
    return None


def remove_stale(parent: Path, name: str, kinds: tuple[str, ...] = ("tmp",)) -> list[str]:
    """Remove from `parent` the temporary names of output `name` (of the given kinds, and the
    exporter's) whose process is gone; returns the names removed. Nothing else is touched,
    not even `.NAME.tmp-PID.data` (an external-data file an ONNX model may name)."""
    try:
        entries = sorted(entry.name for entry in os.scandir(parent))
    except OSError:
        return []
    removed = []
    for entry in entries:
        pid = _owner(entry, name, kinds)
        if pid is not None and pid != os.getpid() and not pid_alive(pid):
            remove_path(parent / entry)
            removed.append(entry)
    return removed
