"""External tensor data, resolved by our own code (never by `onnx.load`'s).

A model is untrusted input: its `external_data` entries may point anywhere. We only read files
that lie inside the model's folder, named by a relative path without `..`, that are regular files
reached without symbolic links and have a single hard link (a hard link could alias any file of
the machine), and we check offset + length against the file's size before touching it.
Weights are memory-mapped on first use, never copied into the process.
"""

from __future__ import annotations

import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import BinaryIO

import numpy as np

from mlc.errors import BadInputError
from mlc.ir.dtypes import DType


@dataclass(frozen=True)
class ExternalRef:
    """Where one tensor's bytes live: a checked file path, an offset and a length, and the file's
    identity when it was checked (device, inode), which the read must find again."""

    path: Path
    offset: int
    length: int
    device: int = 0
    inode: int = 0


def unpacked(dtype: DType, packed: np.ndarray, count: int) -> np.ndarray:
    """Sub-byte types (int4, uint4, float4, int2, uint2) are packed low nibble first in ONNX."""
    bits = dtype.bits
    per_byte = 8 // bits
    mask = (1 << bits) - 1
    parts = [(packed >> (bits * k)) & mask for k in range(per_byte)]
    codes = np.stack(parts, axis=-1).reshape(-1)[:count].astype(np.uint8)
    if dtype in (DType.INT4, DType.INT2):
        sign = 1 << (bits - 1)
        signed = np.where(codes & sign, codes.astype(np.int16) - (1 << bits), codes).astype(np.int8)
        return signed.astype(dtype.numpy)
    if dtype.is_float:
        return codes.view(dtype.numpy)
    return codes.astype(dtype.numpy)


def resolve(model_path: str, base_dir: Path | None, tensor_name: str, entries: dict[str, str],
            model_file: Path | None = None) -> ExternalRef:
    """Check one tensor's external_data entries; raise BadInputError naming the tensor otherwise.
    `model_file`: the model's own file, which cannot hold its weights' data."""
    where = f"{model_path}: tensor {tensor_name!r}"
    if base_dir is None:
        raise BadInputError(f"{where}: external data needs the model's folder; import it from a file path")
    location = entries.get("location", "")
    if not location:
        raise BadInputError(f"{where}: external data without a location")
    if "\0" in location:
        raise BadInputError(f"{where}: external data location contains a NUL byte")
    posix, windows = PurePosixPath(location), PureWindowsPath(location)
    if posix.is_absolute() or windows.is_absolute() or windows.drive:
        raise BadInputError(f"{where}: external data location {location!r} is an absolute path")
    parts = [p for p in location.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise BadInputError(f"{where}: external data location {location!r} leaves the model's folder ('..')")
    if not parts:
        raise BadInputError(f"{where}: external data location {location!r} names no file")
    base = base_dir.resolve()
    current = base
    for part in parts:
        current = current / part
        try:
            info = os.lstat(current)
        except FileNotFoundError:
            raise BadInputError(f"{where}: external data file {location!r} does not exist") from None
        except OSError as error:  # a name too long, a file where a folder should be, no permission
            shown = location if len(location) <= 80 else location[:60] + f"...({len(location)} characters)"
            raise BadInputError(f"{where}: external data file {shown!r} cannot be read: "
                                f"{error.strerror or error}") from None
        if stat.S_ISLNK(info.st_mode):
            raise BadInputError(f"{where}: external data path {location!r} goes through a symbolic link")
    if not stat.S_ISREG(info.st_mode):
        raise BadInputError(f"{where}: external data {location!r} is not a regular file")
    if info.st_nlink > 1:
        raise BadInputError(f"{where}: external data file {location!r} has {info.st_nlink} hard links; "
                            "copy it to a file of its own")
    if model_file is not None:
        try:
            own = os.stat(model_file)
        except OSError:
            own = None
        if own is not None and (own.st_dev, own.st_ino) == (info.st_dev, info.st_ino):
            raise BadInputError(f"{where}: external data location {location!r} is the model file itself")
    try:
        offset = int(entries.get("offset", "0") or 0)
        length = int(entries["length"]) if entries.get("length") not in (None, "") else None
    except ValueError:
        raise BadInputError(f"{where}: external data offset/length are not integers") from None
    if offset > info.st_size:
        raise BadInputError(f"{where}: external data offset {offset} is past the end of "
                            f"{location!r} ({info.st_size} bytes)")
    if length is None:
        length = info.st_size - offset
    if offset < 0 or length < 0:
        raise BadInputError(f"{where}: negative external data offset or length")
    if offset + length > info.st_size:
        raise BadInputError(f"{where}: external data offset {offset} + length {length} is past the end of "
                            f"{location!r} ({info.st_size} bytes)")
    return ExternalRef(current, offset, length, info.st_dev, info.st_ino)


def check_size(model_path: str, tensor_name: str, ref: ExternalRef, dtype: DType, shape: tuple[int, ...]) -> None:
    """The length must hold exactly the tensor's packed bytes."""
    if dtype == DType.STRING:
        raise BadInputError(f"{model_path}: tensor {tensor_name!r}: string tensors cannot use external data")
    count = math.prod(int(d) for d in shape)
    expected = (count * dtype.bits + 7) // 8
    if ref.length != expected:
        raise BadInputError(f"{model_path}: tensor {tensor_name!r}: external data holds {ref.length} bytes, "
                            f"its type {dtype.short_name}{list(shape)} needs {expected}")


def loader(ref: ExternalRef, dtype: DType, shape: tuple[int, ...]):
    """A function that memory-maps the bytes (read-only) as a numpy array of the tensor's type."""

    def load() -> np.ndarray:
        count = math.prod(int(d) for d in shape)
        if ref.length == 0:
            return np.zeros(shape, dtype=dtype.numpy)
        with _reopen(ref) as file:
            if dtype.bits < 8:
                packed = np.memmap(file, dtype=np.uint8, mode="r", offset=ref.offset, shape=(ref.length,))
                return unpacked(dtype, np.asarray(packed), count).reshape(shape)
            mapped = np.memmap(file, dtype=dtype.numpy.newbyteorder("<"), mode="r", offset=ref.offset,
                               shape=(count,))
        return mapped.reshape(shape)

    return load


def _reopen(ref: ExternalRef) -> BinaryIO:
    """The checked file, opened again for its bytes: without following a symbolic link, and only
    if it is still the very file that was checked (same device and inode, one link, long enough).
    A file swapped between the check and the read (for a link to a file outside, say) is refused."""
    shown = ref.path.name
    try:
        fd = os.open(ref.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as error:
        raise BadInputError(f"{ref.path}: external data file {shown!r} cannot be opened again: "
                            f"{error.strerror or error} (changed since it was checked?)") from None
    info = os.fstat(fd)
    problem = ""
    if not stat.S_ISREG(info.st_mode):
        problem = "is no longer a regular file"
    elif ref.inode and (info.st_dev, info.st_ino) != (ref.device, ref.inode):
        problem = "was replaced by another file"
    elif info.st_nlink > 1:
        problem = f"now has {info.st_nlink} hard links"
    elif info.st_size < ref.offset + ref.length:
        problem = f"shrank to {info.st_size} bytes"
    if problem:
        os.close(fd)
        raise BadInputError(f"{ref.path}: external data file {shown!r} {problem} after it was checked; not read")
    return os.fdopen(fd, "rb")


def referenced_files(model_path: str | Path) -> list[Path]:
    """The external-data files a model file names (resolved, existing ones only): outputs must
    never replace them. Unreadable models name none (the import reports them)."""
    import onnx
    from onnx.external_data_helper import _get_all_tensors

    path = Path(model_path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - not a model: nothing it references; import gives the error
        return []
    files: dict[Path, None] = {}
    folder = path.resolve().parent
    for tensor in _get_all_tensors(model):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        entries = {e.key: e.value for e in tensor.external_data}
        try:  # only files the import would read: nothing outside the folder is even looked at
            files[resolve(str(path), folder, tensor.name, entries).path] = None
        except BadInputError:
            continue
    return list(files)
