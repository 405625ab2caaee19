"""Inputs for numeric checks: the user's (`--inputs F.npz`) or generated, seeded, in each input's domain.

Generated values respect what the model does with them: an integer input used as Gather-family
indices is drawn within the indexed axis; `--input-range NAME:lo,hi` sets any input's range and
`--input-shape NAME:d,d,...` its shape. Symbolic dims are bound once per name (the same `N`
everywhere): to a given shape's dims, else to `InputSpec.dims`, else to `default_dim`.

Checks at dims of 1 prove little (softmax over one element, batch-coupled bugs at batch 1), so the
checks draw their dims from `candidate_specs`: each dynamic dim gets a role (batch, sequence,
spatial, other) from its name or, for generic names (`s0`, `unk__3`, `?`), from its position, and
each attempt gives every role a size well above 1 (batch 2, sequence 16, spatial 64, ...; then
other sizes for the second shape set and for models that cannot run at the first).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mlc.errors import BadInputError
from mlc.ir.core import Graph, Value
from mlc.ir.dtypes import DType
from mlc.ir.types import Dim, TensorType

# Ops whose input at the given position holds indices into the data input's `axis` dim.
_INDEX_USES = {("Gather", 1), ("GatherElements", 1), ("GatherND", 1), ("ScatterElements", 1),
               ("ScatterND", 1), ("Embedding", 1)}


@dataclass
class InputSpec:
    seed: int = 0
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    default_dim: int = 1
    dims: dict[str, int] = field(default_factory=dict)  # symbol, or "input:axis" for an unnamed dim -> size


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
        if any(d <= 0 for d in shapes[name]):
            raise BadInputError(f"--input-shape {flag}: dims must be positive")
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
            shape = concrete_dims(value.name, t.shape, symbols.setdefault, spec.dims, spec.default_dim)
        feeds[value.name] = np.asarray(_values(value, t.dtype, shape, spec, rng))
    return feeds


def concrete_dims(input_name: str, declared: Sequence[Dim], bind: Callable[[str, int], int],
                  dims: Mapping[str, int], default_dim: int) -> tuple[int, ...]:
    """Sizes for one input's declared dims: a static dim as declared; a symbol through `bind(symbol,
    proposed size)`, which returns the size the symbol already has (the same wherever it appears)
    or takes the proposed one (`dims[symbol]`, else `default_dim`); an unknown dim from
    `dims["input:axis"]`, else `default_dim`."""
    sizes: list[int] = []
    for axis, dim in enumerate(declared):
        if isinstance(dim, int):
            sizes.append(dim)
        elif isinstance(dim, str):
            sizes.append(bind(dim, dims.get(dim, default_dim)))
        else:
            sizes.append(dims.get(f"{input_name}:{axis}", default_dim))
    return tuple(sizes)


# ===================================================================== dims for the checks
_BATCH = re.compile(r"batch|^(n|b|bs|bsz|num_samples|num_images)$", re.I)
_SPATIAL = re.compile(r"height|width|^(h|w|x|y|hw|size|img_size|image_size|.*_h|.*_w)$", re.I)
_SEQUENCE = re.compile(r"seq|len|time|frame|token|step|position|past|total|context|^(s|t|l|ctx)$", re.I)
_GENERIC = re.compile(r"^(s\d+|unk__\d+|dim_?\d*|d\d+|[a-z]?\d+|\?)$", re.I)
# sizes per role, attempt by attempt: the first two runnable attempts are the two shape sets checked
ROLE_SIZES: dict[str, tuple[int, ...]] = {
    "batch": (2, 3, 2, 4, 1, 1, 1),
    "sequence": (16, 7, 32, 8, 4, 2, 1),
    "spatial": (64, 32, 96, 128, 224, 16, 1),
    "other": (4, 3, 8, 2, 6, 1, 1),
}


def _position_role(rank: int, axis: int) -> str:
    if axis == 0:
        return "batch"
    if rank >= 4 and axis >= 2:
        return "spatial"
    if rank in (2, 3):
        return "sequence"
    return "other"


def dynamic_dims(graph: Graph, fixed: Mapping[str, Sequence[int]] | None = None) -> dict[str, tuple[str, str]]:
    """The graph inputs' dims that are not fixed: key (the symbol, or `input:axis` for an unnamed
    dim) -> (role, where: `input[axis]` of its first use). Inputs with a given shape are left out."""
    found: dict[str, tuple[str, str]] = {}
    fixed = fixed or {}
    for value in graph.inputs:
        t = value.type
        if value.const is not None or value.name in fixed or not isinstance(t, TensorType) or t.shape is None:
            continue
        for axis, dim in enumerate(t.shape):
            if isinstance(dim, int):
                continue
            key = dim if isinstance(dim, str) else f"{value.name}:{axis}"
            if key in found:
                continue
            name = dim if isinstance(dim, str) and not _GENERIC.match(dim) else ""
            role = ("batch" if _BATCH.search(name) else "spatial" if _SPATIAL.search(name)
                    else "sequence" if _SEQUENCE.search(name) else "") if name else ""
            found[key] = (role or _position_role(len(t.shape), axis), f"{value.name}[{axis}]")
    return found


def candidate_specs(graph: Graph, spec: InputSpec) -> Iterator[InputSpec]:
    """Input specs to try for the checks, best first: every dynamic dim sized by its role, attempt
    by attempt (dims the user fixed with a shape stay fixed). Specs giving the same shapes as an
    earlier one are skipped; a model without dynamic dims gets exactly one."""
    dynamic = dynamic_dims(graph, spec.shapes)
    seen: set[tuple[tuple[str, int], ...]] = set()
    for attempt in range(len(ROLE_SIZES["batch"])):
        dims = {key: ROLE_SIZES[role][attempt] for key, (role, _) in dynamic.items()}
        dims.update(spec.dims)
        signature = tuple(sorted(dims.items()))
        if signature in seen:
            continue
        seen.add(signature)
        yield InputSpec(seed=spec.seed, shapes=dict(spec.shapes), ranges=dict(spec.ranges),
                        default_dim=spec.default_dim, dims=dims)
        if not dynamic:
            return


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
