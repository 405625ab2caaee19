"""Calibration data: the samples calibration runs the model on, streamed batch by batch.

What is accepted (`CalibrationData.load(source, graph)`):

* **an `.npz` file** keyed by graph input name. Every input without a default has an array;
  a key that is not an input is refused (a typo would otherwise calibrate on nothing).
* **a folder**: its `*.npz` and `*.npy` files (suffix in any case; hidden files, sub-folders and
  other files are ignored), read in name order as consecutive chunks of one set. Each `.npz`
  is keyed like the single file; a `.npy` holds the array of the model's only input, so it is
  accepted only for a model with one input. A file may hold one sample or a stack.
* **`random`** or **`random:N`**: N (default 32) seeded samples drawn from the input types
  (floats uniform in [-1, 1], indices within the axis they index; `mlc.numerics.inputs`). It is
  allowed with a warning: the ranges it gives are those of noise, not of real data.

How an array holds samples, for an input declared with rank r:

* rank r: rows along axis 0 (the model's batch axis) are the samples. When that axis is dynamic,
  up to `batch` rows go into one run; when it is a static 1, one row per run; a static size
  above 1 must be stored the other way.
* rank r + 1: axis 0 stacks whole feeds of the declared shape, one sample per run.

Every sample of an input has the same shape and the input's exact dtype (no cast is implied:
a float64 array for a float32 input is refused with what to save instead). All inputs hold the
same number of samples. Files are read incrementally (the header first, then rows as the
batches need them, from inside the `.npz`'s zip stream), so a folder or a large file is never
held in memory whole: a batch's rows are all that is. NaN or Inf in a float input is a one-line
`BadInputError` naming the file, the input and the first bad sample.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from mlc.errors import BadInputError
from mlc.ir.core import Graph, Value
from mlc.ir.types import TensorType
from mlc.numerics.inputs import ROLE_SIZES, InputSpec, dynamic_dims, make_inputs
from mlc.output_guard import show

log = logging.getLogger("mlc")

RANDOM = "random"
DEFAULT_RANDOM_SAMPLES = 32
_RANDOM_SPEC = re.compile(r"random(?::(\d+))?")
_DIGEST_CHUNK = 64  # samples read at a time while hashing


@dataclass(frozen=True)
class _Layout:
    """How one input's samples are stored: `rows` (rank r, rows along the batch axis) or stacked
    whole feeds (rank r + 1); `shape` is one sample's shape as stored (without axis 0);
    `batched`: rows on a dynamic batch axis, so several go into one run."""

    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    rows: bool
    batched: bool = False

    def feed(self, block: np.ndarray) -> np.ndarray:
        """The feed for a block of samples (several only when `rows`)."""
        return block if self.rows else block[0]


@dataclass
class _Source:
    """One file (or the random generator) and the samples it holds."""

    path: Path | None
    count: int
    members: dict[str, str]  # input name -> npz member name ('' for a .npy file)


class _Reader:
    """Reads consecutive samples of one array of a file: the header, then rows on demand."""

    def __init__(self, stream: IO[bytes], shown: str, count: int, dtype: np.dtype, fortran: bool,
                 shape: tuple[int, ...]) -> None:
        self.stream, self.shown, self.dtype, self.shape = stream, shown, dtype, shape
        self.sample_bytes = dtype.itemsize * math.prod(shape)
        self.whole: np.ndarray | None = None
        self.position = 0
        if fortran:  # rows are not contiguous in a Fortran-order file: read it whole (one file only)
            data = np.frombuffer(stream.read(), dtype=dtype)
            self.whole = data.reshape((count, *shape), order="F")

    def read(self, n: int) -> np.ndarray:
        if self.whole is not None:
            block = np.ascontiguousarray(self.whole[self.position:self.position + n])
        else:
            raw = self.stream.read(n * self.sample_bytes)
            if len(raw) != n * self.sample_bytes:
                raise BadInputError(f"{self.shown}: the file ends early (truncated array)")
            block = np.frombuffer(raw, dtype=self.dtype).reshape((n, *self.shape))
        self.position += n
        return block


def _read_header(stream: IO[bytes], shown: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """shape, Fortran order and dtype of a .npy stream, leaving it at the first byte of data."""
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
    except (ValueError, OSError, EOFError) as error:
        raise BadInputError(f"{shown}: not a .npy array ({str(error).splitlines()[0] if str(error) else error!r})") \
            from None
    if dtype.hasobject:
        raise BadInputError(f"{shown}: holds Python objects (pickled); calibration data must be numeric arrays")
    return tuple(int(d) for d in shape), bool(fortran), dtype


def _npz_headers(path: Path) -> dict[str, tuple[tuple[int, ...], bool, np.dtype]]:
    """Key -> (shape, fortran, dtype) of every array of an .npz, reading headers only."""
    found: dict[str, tuple[tuple[int, ...], bool, np.dtype]] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                key = member[:-4] if member.endswith(".npy") else member
                with archive.open(member) as stream:
                    found[key] = _read_header(stream, f"{show(path)}: array {key!r}")
    except (zipfile.BadZipFile, OSError) as error:
        raise BadInputError(f"{show(path)}: not a readable .npz file ({error})") from None
    return found


def _npy_header(path: Path) -> tuple[tuple[int, ...], bool, np.dtype]:
    try:
        with path.open("rb") as stream:
            return _read_header(stream, show(path))
    except OSError as error:
        raise BadInputError(f"{show(path)}: cannot read: {error.strerror}") from None


def _layout_for(value: Value, shape: tuple[int, ...], dtype: np.dtype, shown: str) -> _Layout:
    """How an array of `shape` holds samples of input `value` (see the module docstring)."""
    t = value.type
    assert isinstance(t, TensorType)
    try:
        declared_dtype = t.dtype.numpy
    except TypeError:
        raise BadInputError(f"{shown}: input {value.name!r} has type {t.dtype.short_name}, "
                            "which numpy cannot hold") from None
    if dtype != declared_dtype:
        raise BadInputError(f"{shown}: input {value.name!r} is {declared_dtype.name}, the array is {dtype.name} "
                            f"(save it as {declared_dtype.name})")
    if not shape:
        raise BadInputError(f"{shown}: input {value.name!r}: a scalar holds no samples; stack them on axis 0")
    declared = t.shape
    if declared is None:
        return _Layout(value.name, dtype, shape[1:], rows=True, batched=True)
    rank = len(declared)
    if len(shape) == rank + 1:
        dims, rows = shape[1:], False
    elif len(shape) == rank and rank > 0:
        dims, rows = shape[1:], True
        if isinstance(declared[0], int) and declared[0] != 1:
            raise BadInputError(f"{shown}: input {value.name!r} has a static first dim of {declared[0]}: stack "
                                f"whole feeds on a new axis 0 (shape [S,{','.join(map(str, shape))}])")
    else:
        raise BadInputError(f"{shown}: input {value.name!r} has rank {rank}, the array {list(shape)}: expected rank "
                            f"{rank} (samples along the batch axis) or {rank + 1} (feeds stacked on axis 0)")
    wanted = declared[1:] if rows else declared
    for axis, (dim, size) in enumerate(zip(wanted, dims, strict=True)):
        if isinstance(dim, int) and dim != size:
            raise BadInputError(f"{shown}: input {value.name!r}: a sample has shape {list(dims)}, the model "
                                f"expects {dim} at axis {axis + (1 if rows else 0)}")
    return _Layout(value.name, dtype, dims, rows, batched=rows and not isinstance(declared[0], int))


def _first_bad(block: np.ndarray) -> tuple[int, str] | None:
    """(index of the first sample holding NaN or Inf, which) in a float block, else None."""
    if block.dtype.kind not in "fc" or block.size == 0:
        return None
    finite = np.isfinite(block.reshape(block.shape[0], -1)).all(axis=1)
    if bool(finite.all()):
        return None
    index = int(np.argmin(finite))
    return index, "NaN" if bool(np.isnan(block[index]).any()) else "Inf"


class CalibrationData:
    """Calibration samples keyed by graph input name; see the module docstring for what is
    accepted. `len()` is the number of samples, `batches(size)` streams feeds, `digest()`
    identifies the set for a calibration table."""

    def __init__(self, description: str, layouts: list[_Layout], sources: list[_Source],
                 arrays: Mapping[str, np.ndarray] | None = None, random_spec: tuple[Graph, int] | None = None) -> None:
        self.description = description
        self.layouts = layouts
        self.sources = sources
        self._arrays = arrays
        self._random = random_spec
        self.samples = sum(s.count for s in sources)
        self._digest: str | None = None
        if self.samples == 0:
            raise BadInputError(f"{description}: no calibration samples")

    # ------------------------------------------------------------------ construction
    @classmethod
    def load(cls, source: str | Path, graph: Graph, *, seed: int = 0) -> CalibrationData:
        """From an .npz, a folder of .npz/.npy, or `random[:N]` (see the module docstring)."""
        text = str(source)
        match = _RANDOM_SPEC.fullmatch(text)
        if match and not Path(text).exists():
            count = int(match.group(1)) if match.group(1) else DEFAULT_RANDOM_SAMPLES
            return cls.random(graph, count, seed=seed)
        path = Path(source)
        if path.is_dir():
            return cls._folder(path, graph)
        if not path.exists():
            raise BadInputError(f"{show(path)}: no such file or folder (calibration data: an .npz, a folder of "
                                ".npz/.npy, or random)")
        return cls._from_files(show(path), [path], graph)

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], graph: Graph,
                    description: str = "calibration arrays") -> CalibrationData:
        """From arrays in memory, keyed and laid out as in an .npz (the Python API)."""
        fed = _fed_inputs(graph)
        _check_names(description, set(arrays), fed)
        layouts = [_layout_for(fed[name], tuple(np.shape(arrays[name])), np.asarray(arrays[name]).dtype, description)
                   for name in fed]
        counts = {layout.name: int(np.shape(arrays[layout.name])[0]) for layout in layouts}
        _check_counts(description, counts)
        count = next(iter(counts.values()), 0)
        kept = {name: np.ascontiguousarray(arrays[name]) for name in fed}
        return cls(description, layouts, [_Source(None, count, {n: n for n in fed})], arrays=kept)

    @classmethod
    def random(cls, graph: Graph, count: int = DEFAULT_RANDOM_SAMPLES, *, seed: int = 0) -> CalibrationData:
        """`count` seeded samples from the input types, with the warning that they are noise."""
        log.warning("calibrating on random data: the ranges are those of noise, not of real inputs; give real "
                    "samples (an .npz keyed by input name) for a model worth quantizing")
        fed = _fed_inputs(graph)
        example = _random_sample(graph, seed, 0)
        layouts = []
        for name, value in fed.items():
            t = value.type
            assert isinstance(t, TensorType)
            array = example[name]
            rows = t.shape is not None and len(t.shape) > 0 and not isinstance(t.shape[0], int)
            layouts.append(_Layout(name, array.dtype, array.shape[1:] if rows else array.shape, rows, rows))
        return cls(f"random:{count}", layouts, [_Source(None, count, {n: n for n in fed})], random_spec=(graph, seed))

    @classmethod
    def _folder(cls, folder: Path, graph: Graph) -> CalibrationData:
        try:
            entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
        except OSError as error:
            raise BadInputError(f"{show(folder)}: cannot list the folder: {error.strerror}") from None
        files = [p for p in entries if p.is_file() and p.suffix.lower() in (".npz", ".npy")]
        ignored = len(entries) - len(files)
        if ignored:
            log.info("%s: %d entries that are not .npz/.npy files ignored", show(folder), ignored)
        if not files:
            raise BadInputError(f"{show(folder)}: no calibration samples (no .npz or .npy file in the folder)")
        return cls._from_files(show(folder), files, graph)

    @classmethod
    def _from_files(cls, description: str, files: list[Path], graph: Graph) -> CalibrationData:
        fed = _fed_inputs(graph)
        layouts: dict[str, _Layout] = {}
        sources: list[_Source] = []
        for path in files:
            shown = show(path)
            if path.suffix.lower() == ".npy":
                if len(fed) != 1:
                    raise BadInputError(f"{shown}: a .npy file holds one array, the model has inputs "
                                        f"{', '.join(fed) or 'none'}: use .npz files keyed by input name")
                headers = {next(iter(fed)): _npy_header(path)}
                members = {next(iter(fed)): ""}
            else:
                headers = _npz_headers(path)
                _check_names(shown, set(headers), fed)
                members = {name: name + ".npy" for name in fed}
            counts: dict[str, int] = {}
            for name, value in fed.items():
                shape, _fortran, dtype = headers[name]
                layout = _layout_for(value, shape, dtype, shown)
                if name in layouts and layouts[name] != layout:
                    before = layouts[name]
                    raise BadInputError(f"{shown}: input {name!r} samples are {dtype.name}{list(layout.shape)}"
                                        f"{'' if layout.rows else ' (stacked feeds)'}, earlier files hold "
                                        f"{before.dtype.name}{list(before.shape)}"
                                        f"{'' if before.rows else ' (stacked feeds)'}")
                layouts[name] = layout
                counts[name] = shape[0]
            _check_counts(shown, counts)
            sources.append(_Source(path, next(iter(counts.values()), 0), members))
        return cls(description, [layouts[name] for name in fed], sources)

    # ------------------------------------------------------------------ reading
    def __len__(self) -> int:
        return self.samples

    @property
    def is_random(self) -> bool:
        return self._random is not None

    @property
    def groupable(self) -> bool:
        """Whether several samples go into one run (every input holds rows on a dynamic batch axis)."""
        return all(layout.batched for layout in self.layouts)

    def runs(self, size: int) -> int:
        """How many feeds `batches(size)` yields."""
        return math.ceil(self.samples / size) if self.groupable else self.samples

    def batches(self, size: int) -> Iterator[dict[str, np.ndarray]]:
        """Feeds of up to `size` samples each (one sample each when the model takes one per run),
        in order, read from the files as they are needed."""
        if size < 1:
            raise BadInputError(f"calibration batch size {size}: must be at least 1")
        pending: list[dict[str, np.ndarray]] = []
        held = 0
        for block in self._blocks(size if self.groupable else 1):
            if not self.groupable:
                yield {layout.name: layout.feed(block[layout.name]) for layout in self.layouts}
                continue
            count = len(next(iter(block.values())))
            while count:
                take = min(size - held, count)
                pending.append({name: array[:take] for name, array in block.items()})
                block = {name: array[take:] for name, array in block.items()}
                held, count = held + take, count - take
                if held == size:
                    yield self._join(pending)
                    pending, held = [], 0
        if pending:
            yield self._join(pending)

    def _join(self, blocks: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        if len(blocks) == 1:
            return blocks[0]
        return {layout.name: np.concatenate([b[layout.name] for b in blocks]) for layout in self.layouts}

    def _blocks(self, size: int) -> Iterator[dict[str, np.ndarray]]:
        """Consecutive blocks of at most `size` samples, never spanning two files, checked for
        NaN and Inf."""
        start = 0
        for source in self.sources:
            with ExitStack() as stack:
                read = self._open(source, stack)
                done = 0
                while done < source.count:
                    n = min(size, source.count - done)
                    block = read(done, n)
                    for layout in self.layouts:
                        bad = _first_bad(block[layout.name])
                        if bad is not None:
                            index, what = bad
                            where = self.description if source.path is None else show(source.path)
                            inside = f" (index {done + index} in this file)" if len(self.sources) > 1 else ""
                            raise BadInputError(f"{where}: input {layout.name!r}: sample {start + done + index}"
                                                f"{inside} holds {what}")
                    yield block
                    done += n
            start += source.count

    def _open(self, source: _Source, stack: ExitStack) -> Any:
        """A function (offset, n) -> {input: block of n samples} reading `source` in order."""
        if self._random is not None:
            graph, seed = self._random
            return lambda offset, n: self._random_block(graph, seed, offset, n)
        if source.path is None:
            arrays = self._arrays
            assert arrays is not None
            return lambda offset, n: {layout.name: arrays[layout.name][offset:offset + n] for layout in self.layouts}
        path = source.path
        readers: dict[str, _Reader] = {}
        try:
            archive = None if path.suffix.lower() == ".npy" else stack.enter_context(zipfile.ZipFile(path))
            for layout in self.layouts:
                member = source.members[layout.name]
                stream = stack.enter_context(path.open("rb") if archive is None else archive.open(member))
                shown = show(path) if archive is None else f"{show(path)}: array {layout.name!r}"
                shape, fortran, dtype = _read_header(stream, shown)
                readers[layout.name] = _Reader(stream, shown, shape[0], dtype, fortran, shape[1:])
        except (zipfile.BadZipFile, OSError) as error:
            raise BadInputError(f"{show(path)}: cannot read ({error})") from None

        def read(offset: int, n: int) -> dict[str, np.ndarray]:
            try:
                return {name: reader.read(n) for name, reader in readers.items()}
            except (zipfile.BadZipFile, OSError, EOFError) as error:
                raise BadInputError(f"{show(path)}: cannot read ({error})") from None

        return read

    def _random_block(self, graph: Graph, seed: int, offset: int, n: int) -> dict[str, np.ndarray]:
        samples = [_random_sample(graph, seed, offset + i) for i in range(n)]
        block = {}
        for layout in self.layouts:
            parts = [s[layout.name] for s in samples]
            block[layout.name] = np.concatenate(parts) if layout.rows else np.stack(parts)
        return block

    def digest(self) -> str:
        """sha256 over the inputs' names, dtypes, sample shapes and layout, the number of samples
        and every sample's bytes in order (the same however the set is split into files). Computed
        once per instance (it reads every sample)."""
        if self._digest is not None:
            return self._digest
        header = json.dumps({"samples": self.samples, "inputs": [
            {"name": layout.name, "dtype": layout.dtype.str, "shape": list(layout.shape), "rows": layout.rows}
            for layout in self.layouts]}, sort_keys=True)
        hashers = {layout.name: hashlib.sha256() for layout in self.layouts}
        for block in self._blocks(_DIGEST_CHUNK):
            for name, array in block.items():
                hashers[name].update(np.ascontiguousarray(array).tobytes())
        total = hashlib.sha256(header.encode())
        for layout in self.layouts:
            total.update(hashers[layout.name].digest())
        self._digest = total.hexdigest()
        return self._digest


def _fed_inputs(graph: Graph) -> dict[str, Value]:
    """The graph inputs the data must feed (those without a default), by name; all tensors."""
    fed: dict[str, Value] = {}
    for value in graph.inputs:
        if value.const is not None:
            continue
        if not isinstance(value.type, TensorType):
            raise BadInputError(f"input {value.name!r} is not a tensor: calibration feeds tensors only")
        fed[value.name] = value
    return fed


def _check_names(shown: str, keys: set[str], fed: Mapping[str, Value]) -> None:
    unknown = sorted(keys - set(fed))
    if unknown:
        raise BadInputError(f"{shown}: {', '.join(map(repr, unknown))} is not an input of the model "
                            f"(inputs: {', '.join(fed) or 'none'})")
    missing = [name for name in fed if name not in keys]
    if missing:
        raise BadInputError(f"{shown}: no samples for input {', '.join(map(repr, missing))}")


def _check_counts(shown: str, counts: Mapping[str, int]) -> None:
    if len(set(counts.values())) > 1:
        listed = ", ".join(f"{name}: {count}" for name, count in counts.items())
        raise BadInputError(f"{shown}: the inputs hold different numbers of samples ({listed})")


def _random_sample(graph: Graph, seed: int, index: int) -> dict[str, np.ndarray]:
    """Sample `index` of the random set: one feed with every dynamic batch axis at 1 and the
    other dynamic dims at the sizes the numeric checks use first (sequence 16, spatial 64...)."""
    dims: dict[str, int] = {}
    for key, (role, where) in dynamic_dims(graph).items():
        dims[key] = 1 if where.endswith("[0]") else ROLE_SIZES[role][0]
    feeds = make_inputs(graph, InputSpec(seed=seed * 1_000_003 + index, dims=dims))
    return {name: np.ascontiguousarray(array) for name, array in feeds.items()}


__all__ = ["DEFAULT_RANDOM_SAMPLES", "RANDOM", "CalibrationData"]
