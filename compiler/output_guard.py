"""Where mlc may write: the checks that keep `-o` from destroying what mlc did not write.

Rule of the project: never delete or overwrite a file mlc did not write. An output path is
therefore checked *before* any expensive work, and refused with one line (`BadInputError`,
exit code 2) when writing it would

- destroy the current folder, one of its ancestors, the home folder or `/` (even with --force:
  no compile result is worth a working folder);
- destroy an input of the command (the model, its external-data files, and every other file or
  folder it reads: `--inputs`, `--bind-inputs`, calibration data, a tuning database...; see
  `protected_inputs`), whatever the path used to reach it: symbolic links are resolved and
  files compared by identity (st_dev/st_ino), so a hard link to the model is the model (even
  with --force);
- replace something mlc did not write (unless --force);
- fail anyway later (under a regular file, unwritable folder, name too long, a virtual file
  system such as /proc), so that the user learns it before a long compile rather than after.

Folders mlc writes named files into rather than replacing as a whole (`--dump-ir`,
`debug --reproducer`) are checked by `guard_output_folder`: each file there that a run would
write over must be one mlc wrote, and none may be an input.

Writers then write atomically (`write_file_atomically`, `mlc.artifact.write_artifact`) and turn
the operating system's refusal at write time into the same kind of one-line error, because
the checks above cannot foresee everything (root passes `os.access`, a disk fills up).
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import stat
import sys
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from mlc.errors import BadInputError

# What mlc's own ONNX files carry as ModelProto.producer_name.
MLC_PRODUCER_NAME = "mlc"
# The zip comment that marks an .npz file as written by mlc (see `mark_npz`).
MLC_NPZ_COMMENT = b"written by mlc"
# Bytes a final name needs beyond its own length for the temporary names mlc writes beside it
# (`.NAME.tmp-PID`, `.NAME.old-PID`, the exporter's `.NAME.XXXXXXXX.tmp`), so that a name
# that fits is not refused by the file system only when the output is finally written.
TEMP_NAME_ROOM = 16
# A report larger than this is not one of mlc's (they are a few kB); not read to find out.
_MAX_REPORT_BYTES = 64 << 20
# Top-level fields a ModelProto has (a few opsets, metadata entries, functions); a file with
# more is not read to the end to find out whether it is one.
_MAX_PROTO_FIELDS = 100_000
# File systems that show kernel state rather than hold files: `os.access` says yes to root,
# yet nothing can be created there.
# The first line of mlc's IR text form (`mlc.ir.printer.print_ir` of a main graph), which is how
# an IR dump or a reproducer's `before.txt` is told from a user's text file.
_IR_TEXT_HEAD = re.compile(rb"model (ir_version=\d+ )?opset_import=\{")
# Pass options that name a file or folder the pass reads: (pass name, option).
_PASS_INPUT_OPTIONS = frozenset({("bind-inputs", "file"), ("calibrate", "data"), ("calibrate", "cache"),
                                 ("quantize-qdq", "calibration"), ("convert-fp16", "data")})
# Command-line destinations (argparse `dest`) that name a file or folder a command reads.
_INPUT_FLAGS = ("inputs", "bind_inputs", "calibration_data", "calibration_cache", "eval_data", "tuning_db",
                "timing_cache")
_VIRTUAL_FILE_SYSTEMS = frozenset({
    "proc", "sysfs", "cgroup", "cgroup2", "devpts", "debugfs", "tracefs", "securityfs", "pstore", "bpf",
    "configfs", "fusectl", "mqueue", "efivarfs", "binfmt_misc", "nsfs", "autofs", "rpc_pipefs",
})


def show(path: str | Path) -> str:
    """A path as it goes into a one-line message: as is, unless a newline or other control
    character in it would break the line (then Python's quoted form)."""
    text = str(path)
    return text if text.isprintable() else ascii(text)


def _os_reason(error: OSError) -> str:
    return error.strerror or (errno.errorcode.get(error.errno or 0) if error.errno else None) or str(error)


# --- what mlc wrote ---------------------------------------------------------------------------


def mlc_wrote(path: Path) -> bool:
    """Whether the existing `path` is something mlc wrote, which a new output may therefore replace.

    Recognized by content, not by name, so that a user's file called `model.onnx` or a folder
    called `out` is never taken for ours: an artifact folder (its manifest), an ONNX model with
    mlc's producer name, a JSON report of mlc, an .npz file marked by `mark_npz`. Anything
    else, an empty folder included, is False (an empty folder may still be reused: see
    `replace_refusal`). Unreadable paths are False.
    """
    path = Path(path)
    try:
        if path.is_dir():
            return _is_artifact(path)
        if not path.is_file():
            return False
        suffix = path.suffix.lower()
        if suffix == ".onnx":
            return onnx_producer_name(path) == MLC_PRODUCER_NAME
        if suffix == ".json":
            return _is_report(path) or _is_calibration_table(path)
        if suffix == ".npz":
            return _is_marked_npz(path)
    except OSError:
        return False
    return False


def _is_artifact(folder: Path) -> bool:
    manifest = folder / "manifest.json"
    if not manifest.is_file() or manifest.stat().st_size > _MAX_REPORT_BYTES:
        return False
    data = _read_json(manifest)
    if not isinstance(data, dict):
        return False
    version = data.get("format_version")
    return isinstance(version, int) and not isinstance(version, bool) and "target" in data


def _is_report(path: Path) -> bool:
    if path.stat().st_size > _MAX_REPORT_BYTES:
        return False
    data = _read_json(path)
    return isinstance(data, dict) and all(key in data for key in ("schema_version", "command", "tool_versions"))


def _is_calibration_table(path: Path) -> bool:
    from mlc.quantize.cache import is_calibration_table  # cache imports this module

    return path.stat().st_size <= _MAX_REPORT_BYTES and is_calibration_table(_read_json(path))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except (ValueError, RecursionError):
        return None


def _is_marked_npz(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.comment == MLC_NPZ_COMMENT
    except (zipfile.BadZipFile, ValueError):
        return False


def _varint(stream: BinaryIO) -> int | None:
    """One protobuf base-128 varint from `stream`; None at the end of the file or when too long."""
    result = shift = 0
    while shift < 64:
        byte = stream.read(1)
        if not byte:
            return None
        result |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return result
        shift += 7
    return None


def onnx_producer_name(path: Path) -> str | None:
    """`producer_name` of the ONNX model in `path`, or None when the file is not a well-formed
    ModelProto (or has no producer name).

    Reads the protobuf wire format directly instead of `onnx.load`: ONNX types stay in
    `mlc.onnx_io` (ruff TID251), and only the top-level field headers are read, seeking over
    the graph, so asking about a 2 GB model costs a few reads, not 2 GB of memory.
    """
    producer: str | None = None
    seen_version = False
    with Path(path).open("rb") as stream:
        size = os.fstat(stream.fileno()).st_size
        for _ in range(_MAX_PROTO_FIELDS):
            if stream.tell() == size:
                return producer if seen_version else None
            key = _varint(stream)
            if key is None or key >> 3 == 0:
                return None
            field, wire = key >> 3, key & 7
            if (field in (1, 5) and wire != 0) or (field in (2, 3, 4, 6, 7, 8) and wire != 2):
                return None
            if wire == 0:
                if _varint(stream) is None:
                    return None
                seen_version |= field == 1
            elif wire in (1, 5):
                stream.seek(8 if wire == 1 else 4, os.SEEK_CUR)
            elif wire == 2:
                length = _varint(stream)
                if length is None or stream.tell() + length > size:
                    return None
                if field == 2:
                    try:
                        producer = stream.read(length).decode("utf-8")
                    except UnicodeDecodeError:
                        return None
                else:
                    stream.seek(length, os.SEEK_CUR)
            else:
                return None
            if stream.tell() > size:
                return None
    return None


def is_ir_text(path: Path) -> bool:
    """Whether `path` is a regular file holding mlc's IR text form (an `--dump-ir` or reproducer
    `.txt`): its first line is the model header `print_ir` writes. Unreadable files are False."""
    try:
        with Path(path).open("rb") as stream:
            return _IR_TEXT_HEAD.match(stream.read(256)) is not None
    except OSError:
        return False


def mark_npz(path: Path) -> None:
    """Mark an .npz file just written by `np.savez` as mlc's (its zip comment), so that a later
    run may replace it; `np.load` ignores the comment."""
    with zipfile.ZipFile(path, "a") as archive:
        archive.comment = MLC_NPZ_COMMENT


def save_npz(destination: Path, arrays: Mapping[str, np.ndarray]) -> Path:
    """Write `arrays` as a marked .npz file at `destination`, atomically.

    Goes through an open file because `np.savez` given a name appends `.npz` to one that
    does not end so (the temporary name), and would write beside the temporary file.
    """

    def write(tmp: Path) -> None:
        with tmp.open("wb") as stream:
            np.savez(stream, **arrays)  # type: ignore[arg-type]  # (numpy types **kwds as if one were allow_pickle)
        mark_npz(tmp)

    return write_file_atomically(destination, write)


# --- what a command reads ---------------------------------------------------------------------


def protected_inputs(model: str | Path, *others: str | Path | None, passes: Iterable[Any] = ()) -> list[Path]:
    """Every file or folder an output of a command must never replace nor hold: the model, the
    external-data files it names, each of `others` that is given (`--inputs`, `--eval-data`, a
    tuning database folder, a `--load`ed plugin; None, "" and "-" are skipped) and the files the
    `passes` read through their options (`bind-inputs{file=}`, `calibrate{data=,cache=}`,
    `quantize-qdq{calibration=}`, `convert-fp16{data=}`).

    Paths are kept as given (`never_replaced` resolves them and compares identities); one that
    does not exist yet (a calibration table to be written) is kept too, so that no output lands
    where the command also writes or reads it.
    """
    from mlc.onnx_io.external_data import referenced_files  # onnx is loaded only when asked

    found: dict[Path, None] = {Path(model): None}
    found.update(dict.fromkeys(referenced_files(model)))
    named = [*others, *(_pass_inputs(passes))]
    found.update(dict.fromkeys(Path(p) for p in named if p is not None and str(p) not in ("", "-")))
    return list(found)


def _pass_inputs(passes: Iterable[Any]) -> list[str]:
    """The values of the pass options that name files the pass reads."""
    files: list[str] = []
    for pass_ in passes:
        values = getattr(pass_, "values", None) or {}
        for option, value in values.items():
            if (getattr(pass_, "name", None), option) in _PASS_INPUT_OPTIONS and isinstance(value, str) and value:
                files.append(value)
    return files


def command_inputs(args: Any, passes: Iterable[Any] = ()) -> list[Path]:
    """`protected_inputs` of a parsed command line (an `argparse.Namespace` of compile, optimize
    or debug): the model and every input flag it has (`--inputs`, `--bind-inputs`,
    `--calibration-data`, `--calibration-cache`, `--eval-data`, `--tuning-db`, `--timing-cache`,
    `--load FILE.py`),
    plus what `passes` read, so that the CLI protects them all in one call."""
    flags = [getattr(args, dest, None) for dest in _INPUT_FLAGS]
    plugins = [spec for spec in getattr(args, "load", None) or [] if str(spec).endswith(".py")]
    return protected_inputs(args.model, *flags, *plugins, passes=passes)


# --- where mlc may write ----------------------------------------------------------------------


def _identity(path: Path) -> tuple[int, int] | None:
    """(st_dev, st_ino) of what `path` leads to: two paths to one file (a hard link, a bind
    mount) have the same, whatever their names."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def _resolve(path: Path, flag: str, given: str | Path) -> Path:
    """The absolute path the operating system would write, symbolic links followed.

    Not `os.path.abspath` first: it folds `link/..` by name, while the system follows the link."""
    prefix = f"{flag} {show(given)}" if flag else show(given)
    if "\0" in str(path):
        raise BadInputError(f"{prefix}: a path cannot contain a NUL character")
    try:
        return path.resolve()
    except (OSError, RuntimeError, ValueError) as error:
        reason = _os_reason(error) if isinstance(error, OSError) else str(error)
        raise BadInputError(f"{prefix}: cannot resolve the path: {reason}") from None


def _is_empty_dir(path: Path) -> bool:
    """Whether `path` is a folder with nothing in it (nothing to lose by replacing it)."""
    try:
        with os.scandir(path) as entries:
            return next(entries, None) is None
    except OSError:
        return False


def replace_refusal(path: Path, *, force: bool = False) -> str | None:
    """Why the existing `path` may not be replaced (None: it may, or it does not exist).

    An mlc output or an empty folder may be replaced (an empty folder holds nothing to lose);
    any other file or folder only with `force`; never a device, pipe or socket (replacing
    `/dev/null` as root must not be one flag away).
    """
    try:
        st = os.lstat(path)
    except OSError as error:
        if error.errno in (errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG):
            return None  # nothing there to replace (whether it can be written is another question)
        return f"cannot examine it: {_os_reason(error)}"
    if stat.S_ISLNK(st.st_mode):
        return None if force else "it is a symbolic link mlc did not write (use --force to replace it)"
    if stat.S_ISDIR(st.st_mode):
        if _is_empty_dir(path) or force or mlc_wrote(path):
            return None
        return "it is a folder that is not an mlc artifact (use --force to replace it)"
    if stat.S_ISREG(st.st_mode):
        if force or mlc_wrote(path):
            return None
        return "it is a file that mlc did not write (use --force to replace it)"
    return "it is not a regular file or folder"


def never_replaced(resolved: Path, protected: Sequence[Path] = ()) -> str | None:
    """Why `resolved` may not be written even with --force: it is, or holds, the current folder,
    the home folder, `/` or one of the protected files."""
    if resolved == Path(resolved.anchor):
        return "it is the root folder"
    target = _identity(resolved)
    guarded: list[tuple[Path, str]] = []
    try:
        guarded.append((Path.cwd().resolve(), "the current folder"))
    except OSError:
        pass  # the current folder was deleted: there is nothing left there to protect
    try:
        guarded.append((Path.home().resolve(), "your home folder"))
    except (OSError, RuntimeError):
        pass
    for item in protected:
        try:
            guarded.append((Path(item).resolve(), f"the input {show(item)}"))
        except (OSError, RuntimeError, ValueError):
            guarded.append((Path(os.path.abspath(item)), f"the input {show(item)}"))
    for path, what in guarded:
        same = resolved == path or (target is not None and target == _identity(path))
        if same:
            return f"it is {what}"
        holds = resolved in path.parents or (
            target is not None and any(target == _identity(parent) for parent in path.parents))
        if holds:
            return f"it holds {what}"
    return None


def _virtual_file_system(path: Path) -> str | None:
    """The type of the file system holding `path` when it is a virtual one (from the mount
    table; None when it is an ordinary one or cannot be told)."""
    try:
        device = os.stat(path).st_dev
        table = Path("/proc/self/mountinfo").read_text()
    except OSError:
        return None
    key = f"{os.major(device)}:{os.minor(device)}"
    for line in table.splitlines():
        fields = line.split()
        if len(fields) > 2 and fields[2] == key and " - " in line:
            kind = line.split(" - ", 1)[1].split()[0]
            return kind if kind in _VIRTUAL_FILE_SYSTEMS else None
    return None


def _limit(folder: Path, name: str, fallback: int) -> int:
    """A limit of the file system holding `folder` (`os.pathconf`), or the usual value."""
    try:
        return os.pathconf(folder, name)
    except (OSError, ValueError):
        return fallback


def _unwritable(resolved: Path) -> str | None:
    """Why `resolved` cannot be created (None: as far as can be told without writing, it can)."""
    existing = resolved.parent
    while not os.path.lexists(existing):
        existing = existing.parent
    if not existing.is_dir():
        return f"it is under {show(existing)}, which is a regular file" if existing.is_file() else \
            f"it is under {show(existing)}, which is not a folder"
    name_max = _limit(existing, "PC_NAME_MAX", 255)
    path_max = _limit(existing, "PC_PATH_MAX", 4096)
    missing = resolved.relative_to(existing).parts
    for index, name in enumerate(missing):
        size = len(os.fsencode(name))
        room = TEMP_NAME_ROOM if index == len(missing) - 1 else 0
        if size + room > name_max:
            short = show(name if len(name) <= 40 else name[:40] + "...")
            return (f"the name {short} is {size} bytes long; this file system allows {name_max}"
                    + (f" ({name_max - room} leaving room for mlc's temporary names)" if room else ""))
    if len(os.fsencode(str(resolved))) + TEMP_NAME_ROOM >= path_max:
        return f"the path is longer than this file system allows ({path_max} bytes)"
    kind = _virtual_file_system(existing)
    if kind is not None:
        return f"{show(existing)} is on the virtual file system {kind}, which cannot hold files"
    try:
        read_only = bool(os.statvfs(existing).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    if read_only:
        return f"{show(existing)} is on a read-only file system"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"no permission to create files in {show(existing)}"
    return None


def guard_output(destination: str | Path, *, protected: Sequence[Path] = (), force: bool = False,
                 flag: str = "-o") -> Path:
    """Check that mlc may write `destination` and return it resolved (symbolic links followed).

    Call it before any expensive work, with every input of the command in `protected` (the
    model and its external-data files). Raises `BadInputError` (one line, starting with
    `flag` and the path as given) when the destination is or holds the current folder, the
    home folder, `/` or a protected file (by path or by identity); when it exists and is not
    something mlc wrote (nor an empty folder) and `force` is off; or when it cannot be written.
    """
    given = destination
    resolved = _resolve(Path(destination), flag, given)
    reason = never_replaced(resolved, protected)
    if reason is not None:
        raise BadInputError(f"{flag} {show(given)}: refusing to write {show(resolved)}: {reason}")
    reason = replace_refusal(resolved, force=force)
    if reason is not None:
        raise BadInputError(f"{flag} {show(given)}: refusing to replace {show(resolved)}: {reason}")
    reason = _unwritable(resolved)
    if reason is not None:
        raise BadInputError(f"{flag} {show(given)}: cannot write {show(resolved)}: {reason}")
    return resolved


def guard_output_folder(destination: str | Path, *, writes: Callable[[str], bool], ours: Callable[[Path], bool],
                        protected: Sequence[Path] = (), flag: str) -> Path:
    """Check a folder that mlc writes named files into (`--dump-ir`, `debug --reproducer`) and
    return it resolved; call it before any work, and again just before writing.

    Unlike `guard_output` the folder is not replaced as a whole: a run writes files whose names
    `writes` accepts, over earlier ones. So the folder may be missing (it is created), empty,
    or hold only such files, each of which `ours` recognizes as mlc's and none of which is a
    protected input. Refused with one line (`BadInputError`, the flag and the path as given)
    when the folder is, or holds, the current folder, the home folder, `/` or an input; when it
    is a file; when it holds anything else (a user's file is never written over, nor mixed with
    dumps); or when it cannot be written.
    """
    given = destination
    resolved = _resolve(Path(destination), flag, given)
    prefix = f"{flag} {show(given)}"
    reason = never_replaced(resolved, protected)
    if reason is not None:
        raise BadInputError(f"{prefix}: refusing to write into {show(resolved)}: {reason}")
    try:
        st = os.stat(resolved)
    except OSError as error:
        if error.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG):
            raise BadInputError(f"{prefix}: cannot examine {show(resolved)}: {_os_reason(error)}") from None
        reason = _unwritable(resolved)
        if reason is not None:
            raise BadInputError(f"{prefix}: cannot write {show(resolved)}: {reason}") from None
        return resolved
    if not stat.S_ISDIR(st.st_mode):
        what = "a regular file" if stat.S_ISREG(st.st_mode) else "not a folder"
        raise BadInputError(f"{prefix}: refusing to write into {show(resolved)}: it is {what}; give a folder")
    try:
        names = sorted(os.listdir(resolved))
    except OSError as error:
        raise BadInputError(f"{prefix}: cannot read {show(resolved)}: {_os_reason(error)}") from None
    foreign = [name for name in names if not writes(name)]
    mine = [name for name in names if writes(name)]
    for name in mine:
        reason = never_replaced(resolved / name, protected)
        if reason is not None:
            raise BadInputError(f"{prefix}: refusing to write over {show(resolved / name)}: {reason}")
    foreign += [name for name in mine if os.path.islink(resolved / name) or not ours(resolved / name)]
    if foreign:
        listed = ", ".join(show(name) for name in sorted(foreign)[:3]) + (", ..." if len(foreign) > 3 else "")
        raise BadInputError(f"{prefix}: refusing to write into {show(resolved)}: it holds files mlc did not "
                            f"write ({listed}); give a new or empty folder")
    reason = _unwritable_folder(resolved)
    if reason is not None:
        raise BadInputError(f"{prefix}: cannot write into {show(resolved)}: {reason}")
    return resolved


def _unwritable_folder(folder: Path) -> str | None:
    """Why files cannot be created in the existing `folder` (None: as far as can be told, they can)."""
    kind = _virtual_file_system(folder)
    if kind is not None:
        return f"it is on the virtual file system {kind}, which cannot hold files"
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return "it is on a read-only file system"
    except OSError:
        pass
    if not os.access(folder, os.W_OK | os.X_OK):
        return "no permission to create files in it"
    return None


# --- writing ----------------------------------------------------------------------------------


def write_error(destination: Path, error: OSError) -> BadInputError:
    """The one-line error for an operating-system refusal while writing `destination`."""
    return BadInputError(f"{show(destination)}: cannot write: {_os_reason(error)}")


def remove_path(path: Path) -> None:
    """Remove a file or folder tree mlc wrote (temporary, or set aside to be replaced); missing
    is fine. Folders made read-only inside the tree are made writable first, so that the
    removal finishes rather than leaving litter; whatever still cannot be removed is left."""

    def retry(function: Callable[..., Any], name: str, _error: Any) -> None:
        for folder in {name, os.path.dirname(name)}:
            if folder and os.path.isdir(folder) and not os.path.islink(folder):
                os.chmod(folder, stat.S_IRWXU)
        function(name)

    try:
        if os.path.isdir(path) and not os.path.islink(path):
            if sys.version_info >= (3, 12):
                shutil.rmtree(path, onexc=retry)
            else:
                shutil.rmtree(path, onerror=retry)
        else:
            os.unlink(path)
    except OSError:
        pass


def write_file_atomically(destination: Path, write: Callable[[Path], object]) -> Path:
    """`write(tmp)` writes a temporary file `.NAME.tmp-PID` beside `destination`, which is
    flushed to disk and then replaces the destination in one rename: readers see the old file or
    the new one, never half of one, and a failed write leaves the old file untouched. What a
    killed run left beside the destination is removed first (`mlc.temp_names`).

    The destination is resolved (symbolic links followed, as `guard_output` returns it) and its
    folder created if missing. The temporary file is removed on any failure; an `OSError`
    (read-only file system, permission denied, name too long, disk full) becomes a one-line
    `BadInputError` naming the destination. Whether the destination may be replaced at all is
    for `guard_output` to say, before: this function does not ask again.
    """
    from mlc.flush import flush_file, flush_folder
    from mlc.temp_names import remove_stale, temp_path  # it imports this module

    destination = _resolve(Path(destination), "", destination)
    tmp = temp_path(destination)
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        remove_stale(destination.parent, destination.name)
        remove_path(tmp)
        write(tmp)
        flush_file(tmp)
        if destination.is_dir() and not destination.is_symlink() and _is_empty_dir(destination):
            destination.rmdir()  # an empty folder may be reused; a file cannot be renamed onto it
        os.replace(tmp, destination)
        try:
            flush_folder(destination.parent)
        except OSError:
            pass  # the rename happened; only its durability in a power cut is not confirmed
    except OSError as error:
        raise write_error(destination, error) from None
    finally:
        if os.path.lexists(tmp):
            remove_path(tmp)
    return destination
