"""Inputs for numeric checks: the user's (`--inputs F.npz`) or generated, seeded, in each input's domain.

Generated values respect what the model does with them: an integer input used as Gather-family
indices is drawn within the indexed axis; `--input-range NAME:lo,hi` sets any input's range and
`--input-shape NAME:d,d,...` its shape. Symbolic dims are bound once per name (the same `N`
everywhere) to `default_dim` unless a given shape fixes them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mlc.errors import BadInputError
from mlc.ir.core import Graph, Value
from mlc.ir.dtypes import DType
from mlc.ir.types import TensorType

# Ops whose input at the given position holds indices into the data input's `axis` dim.
_INDEX_USES = {("Gather", 1), ("GatherElements", 1), ("GatherND", 1), ("ScatterElements", 1),
               ("ScatterND", 1), ("Embedding", 1)}


@dataclass
class InputSpec:
    seed: int = 0
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    default_dim: int = 1


def parse_shape_flags(flags: list[str]) -> dict[str, tuple[int, ...]]:
    """`NAME:1,3,224,224` → {NAME: (1, 3, 224, 224)}."""
    shapes = {}
    for flag in flags:
        name, colon, dims = flag.rpartition(":")
        try:
            shapes[name] = tuple(int(d) for d in dims.split(",") if d.strip()) if colon else ()
        except ValueError:
            raise BadInputError(f"--input-shape {flag!r}: expected NAME:D,D,...") from None
        if not colon or not name:
            raise BadInputError(f"--input-shape {flag!r}: expected NAME:D,D,...")
    return shapes


def parse_range_flags(flags: list[str]) -> dict[str, tuple[float, float]]:
    """`NAME:lo,hi` → {NAME: (lo, hi)}."""
    ranges = {}
    for flag in flags:
        name, colon, bounds = flag.rpartition(":")
        parts = bounds.split(",")
        try:
            lo, hi = float(parts[0]), float(parts[1])
        except (ValueError, IndexError):
            raise BadInputError(f"--input-range {flag!r}: expected NAME:LO,HI") from None
        if not colon or not name or len(parts) != 2 or hi < lo:
            raise BadInputError(f"--input-range {flag!r}: expected NAME:LO,HI with LO <= HI")
        ranges[name] = (lo, hi)
    return ranges


def _index_bound(value: Value) -> int | None:
    """The size of the axis an input indexes into, when a Gather-family consumer tells."""
    bounds = []
    for node, position in value.uses:
        if (node.op_type, position) not in _INDEX_USES:
            continue
        data = node.inputs[0]
        if data is None or not isinstance(data.type, TensorType) or data.type.shape is None:
            continue
        axis = int(node.attr("axis", 0))
        shape = data.type.shape
        if -len(shape) <= axis < len(shape) and isinstance(shape[axis], int):
            bounds.append(int(shape[axis]))  # type: ignore[arg-type]
    return min(bounds) if bounds else None


def make_inputs(graph: Graph, spec: InputSpec | None = None) -> dict[str, np.ndarray]:
    """One seeded array per graph input that has no default."""
    spec = spec or InputSpec()
    rng = np.random.default_rng(spec.seed)
    symbols: dict[str, int] = {}
    for value in graph.inputs:  # a given shape binds its symbols for every input (ids:4,128 sizes mask too)
        t = value.type
        given = spec.shapes.get(value.name)
        if given is not None and isinstance(t, TensorType) and t.shape is not None and len(t.shape) == len(given):
            for dim, size in zip(t.shape, given, strict=True):
                if isinstance(dim, str):
                    symbols.setdefault(dim, int(size))
    feeds: dict[str, np.ndarray] = {}
    for value in graph.inputs:
        if value.const is not None:
            continue
        t = value.type
        if not isinstance(t, TensorType):
            raise BadInputError(f"input {value.name!r} is not a tensor ({t!r}): pass it with --inputs")
        if value.name in spec.shapes:
            shape = spec.shapes[value.name]
        elif t.shape is None:
            raise BadInputError(f"input {value.name!r} has unknown rank: give --input-shape {value.name}:D,D,...")
        else:
            dims = []
            for dim in t.shape:
                if isinstance(dim, int):
                    dims.append(dim)
                elif isinstance(dim, str):
                    dims.append(symbols.setdefault(dim, spec.default_dim))
                else:
                    dims.append(spec.default_dim)
            shape = tuple(dims)
        feeds[value.name] = np.asarray(_values(value, t.dtype, shape, spec, rng))
    return feeds


def _values(value: Value, dtype: DType, shape: tuple[int, ...], spec: InputSpec,
            rng: np.random.Generator) -> np.ndarray:
    name = value.name
    if dtype == DType.BOOL:
        return np.asarray(rng.random(shape) < 0.5)
    if dtype == DType.STRING:
        return np.array(["abcdefghij"[i % 10] for i in range(int(np.prod(shape)))], dtype=object).reshape(shape)
    if dtype.is_float:
        lo, hi = spec.ranges.get(name, (-1.0, 1.0))
        return rng.uniform(lo, hi, shape).astype(dtype.numpy)
    if dtype in (DType.COMPLEX64, DType.COMPLEX128):
        lo, hi = spec.ranges.get(name, (-1.0, 1.0))
        return (rng.uniform(lo, hi, shape) + 1j * rng.uniform(lo, hi, shape)).astype(dtype.numpy)
    if name in spec.ranges:
        lo, hi = spec.ranges[name]
        return rng.integers(int(lo), int(hi) + 1, shape).astype(dtype.numpy)
    bound = _index_bound(value)
    info = np.iinfo(dtype.numpy)
    if bound is None and "mask" in name.lower():
        # attention masks are 0/1 (other values turn (1 - mask) * -inf into NaN); no row fully masked
        mask = rng.integers(0, 2, shape).astype(dtype.numpy)
        if mask.ndim:
            mask[..., 0] = 1
        return mask
    if bound is not None:
        return rng.integers(0, max(bound, 1), shape).astype(dtype.numpy)
    return rng.integers(max(info.min, 0), min(info.max, 10), shape, endpoint=True).astype(dtype.numpy)


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of an .npz file keyed by name; a missing or unreadable file is a BadInputError."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except FileNotFoundError:
        raise BadInputError(f"{path}: no such file") from None
    except (OSError, ValueError) as error:
        raise BadInputError(f"{path}: not a readable .npz file ({error})") from None


def load_inputs(path: str | Path, graph: Graph, bound: Iterable[str] = ()) -> dict[str, np.ndarray]:
    """Arrays from an .npz keyed by input name; every input without a default must be there.
    Arrays named in `bound` (inputs already bound as constants) are ignored."""
    path = Path(path)
    skipped = set(bound)
    feeds = {k: v for k, v in read_npz(path).items() if k not in skipped}
    names = {v.name for v in graph.inputs}
    unknown = sorted(set(feeds) - names)
    if unknown:
        raise BadInputError(f"{path}: {', '.join(unknown)} is not an input of the model "
                            f"(inputs: {', '.join(sorted(names))})")
    missing = [v.name for v in graph.inputs if v.const is None and v.name not in feeds]
    if missing:
        raise BadInputError(f"{path}: no value for input {', '.join(missing)}")
    return feeds
