"""Feeds of an artifact run (`mlc run`): check the user's arrays, generate seeded ones, summarize and
compare the outputs, and turn a backend's refusal into one line.

An artifact runs without its model: all mlc knows of the inputs is the manifest's list of
`{"name", "type", "default"}`, where `type` is the text of `mlc.ir.printer.format_type`. The
feeds are checked against those types here, BEFORE any backend sees them, because each backend
fails differently on a wrong feed (onnxruntime with a multi-line status, TVM with a C++ backtrace or,
worse, silently reading a float64 buffer as float32). A mismatch is one line in the type syntax
the user sees in `mlc inspect`: `x: expected f32[N,32], got float64[5,31]`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np

from mlc.errors import BadInputError, MlcError, TextParseError
from mlc.ir.dtypes import DType
from mlc.ir.parser import parse_type
from mlc.ir.printer import format_type
from mlc.ir.types import TensorType, Type
from mlc.numerics.inputs import concrete_dims, read_npz

__all__ = [
    "BackendRunError",
    "check_feeds",
    "compare_outputs_to",
    "generate_feeds",
    "output_stats",
    "parse_manifest_type",
    "read_reference_npz",
    "run_backend",
]


class BackendRunError(MlcError):
    """The backend's runtime refused or failed a run that mlc's own checks let through.

    Exit code 2 like any bad input: in practice it is a feed the manifest's types could not rule
    out (a value out of range, a dim the compiled code was specialized to), not a bug of mlc.
    """

    exit_code = 2


# ===================================================================== manifest types
def parse_manifest_type(text: str) -> Type | None:
    """The IR type a manifest's `type` text denotes (None for `?`, an unknown type).

    Reuses the textual IR's parser so that every spelling `format_type` prints (quoted dim names,
    `?` dims, `[*]` for an unknown rank, `seq<...>`) reads back the same. A text that does not
    parse means a damaged manifest: BadInputError.
    """
    try:
        return parse_type(text)
    except TextParseError as error:
        raise BadInputError(f"manifest type {text!r} does not parse: {error}") from None


def _shape_text(shape: Sequence[int]) -> str:
    return "[" + ",".join(str(int(d)) for d in shape) + "]"


def _got(array: np.ndarray) -> str:
    return f"{array.dtype.name}{_shape_text(array.shape)}"


def _dtype_matches(declared: DType, actual: np.dtype) -> bool:
    """Exact element type: no cast is ever implied, except that numpy's str/bytes/object arrays all
    count as ONNX strings (numpy has no single string dtype)."""
    try:
        return DType.from_numpy(actual) == declared
    except TypeError:
        return False


def _bind_dims(name: str, t: TensorType, shape: Sequence[int], symbols: dict[str, tuple[int, str]]) -> str | None:
    """Check `shape` against `t`'s rank, fixed dims and symbols, binding new symbols to `(size, name)`.

    Returns None when it fits, else the text that goes after `expected <type>` (empty, or
    ` with N=5 (from ids)` when a symbol bound by an earlier input disagrees). Symbols are bound only
    when the whole shape fits, so a rejected feed leaves no half-bound state behind.
    """
    if t.shape is None:
        return None
    if len(shape) != len(t.shape):
        return ""
    new: dict[str, tuple[int, str]] = {}
    for dim, size in zip(t.shape, shape, strict=True):
        if isinstance(dim, int):
            if dim != size:
                return ""
        elif isinstance(dim, str):
            bound = symbols.get(dim) or new.get(dim)
            if bound is None:
                new[dim] = (int(size), name)
            elif bound[0] != size:
                return f" with {dim}={bound[0]} (from {bound[1]})"
    symbols.update(new)
    return None


def check_feeds(inputs: list[dict[str, Any]], feeds: Mapping[str, np.ndarray], *,
                source: str = "inputs") -> tuple[dict[str, np.ndarray], list[str]]:
    """Validate the user's feeds against the manifest's inputs; return (feeds to run, unused keys).

    Every input without a default must be fed; each fed tensor must have exactly the declared
    element type (never cast: a float64 array fed as f32 is usually a user mistake that a cast
    would hide), the declared rank and fixed dims, and a symbolic dim must have one size across all
    inputs (the compiled code assumes `N` is the same everywhere). The first problem raises
    BadInputError in one line; `source` (the file the feeds came from) prefixes the missing-input
    message. Keys that name no input are returned sorted, for the caller to warn about: an extra
    array in an .npz file is harmless but often a misspelled name. Inputs of a non-tensor or
    unknown type are passed through unchecked.
    """
    names = [str(i["name"]) for i in inputs]
    missing = [i["name"] for i in inputs if not i.get("default") and i["name"] not in feeds]
    if missing:
        raise BadInputError(f"{source}: missing input {', '.join(missing)} (inputs: {', '.join(names)})")
    symbols: dict[str, tuple[int, str]] = {}
    checked: dict[str, np.ndarray] = {}
    for info in inputs:
        name = info["name"]
        if name not in feeds:
            continue
        t = parse_manifest_type(info["type"])
        if not isinstance(t, TensorType):
            checked[name] = feeds[name]
            continue
        array = np.asarray(feeds[name])
        if not _dtype_matches(t.dtype, array.dtype):
            raise BadInputError(f"{name}: expected {format_type(t)}, got {_got(array)}")
        problem = _bind_dims(name, t, array.shape, symbols)
        if problem is not None:
            raise BadInputError(f"{name}: expected {format_type(t)}{problem}, got {_got(array)}")
        checked[name] = array
    known = set(names)
    unused = sorted(k for k in feeds if k not in known)
    return checked, unused


# ===================================================================== generated feeds
def _generate(dtype: DType, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Seeded values of one input: floats in [-1, 1), integers in [0, 10], bools half true."""
    if dtype == DType.BOOL:
        return np.asarray(rng.random(shape) < 0.5)
    if dtype == DType.STRING:
        count = int(np.prod(shape, dtype=np.int64))
        return np.array(["abcdefghij"[i % 10] for i in range(count)], dtype=object).reshape(shape)
    if dtype in (DType.COMPLEX64, DType.COMPLEX128):
        return (rng.uniform(-1.0, 1.0, shape) + 1j * rng.uniform(-1.0, 1.0, shape)).astype(dtype.numpy)
    if dtype.is_float:
        lo = 0.0 if dtype == DType.FLOAT8E8M0 else -1.0  # e8m0 has no sign bit
        return np.asarray(rng.uniform(lo, 1.0, shape).astype(dtype.numpy))
    high = min(int(ml_dtypes.iinfo(dtype.numpy).max), 10)  # int4/int2 cannot hold 10
    return np.asarray(rng.integers(0, high, shape, endpoint=True).astype(dtype.numpy))


def role_dims(inputs: list[dict[str, Any]]) -> dict[str, int]:
    """The sizes the checks' first shape set gives the manifest's dynamic dims (batch 2, sequence
    16, height/width 64, ...: `mlc.numerics.inputs.ROLE_SIZES`), keyed like `InputSpec.dims`, so
    that `mlc run` and `mlc bench` run where `mlc compile` checked, not at dims of 1."""
    from mlc.ir.core import Graph, Value
    from mlc.numerics.inputs import ROLE_SIZES, dynamic_dims

    graph = Graph("manifest")
    for item in inputs:
        if not item.get("default"):
            graph.add_input(Value(str(item["name"]), parse_manifest_type(str(item["type"]))))
    return {key: ROLE_SIZES[role][0] for key, (role, _) in dynamic_dims(graph).items()}


def generate_feeds(inputs: list[dict[str, Any]], *, seed: int = 0, shapes: dict[str, tuple[int, ...]] | None = None,
                   default_dim: int = 1, dims: Mapping[str, int] | None = None,
                   ) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Seeded feeds for every input without a default, from the manifest types alone; returns the
    feeds and the size each symbolic dim was bound to (for the CLI to say which shapes it ran).

    `mlc run` without `--inputs` must still run something meaningful: a symbolic dim gets one size
    for all inputs (`N` in `x` and `mask` agree, or the run fails), `default_dim` unless a shape in
    `shapes` fixes it; a `?` dim gets `default_dim` (it is not in the returned bindings). Given
    shapes are checked against the declared ranks and fixed dims and bind their symbols first, so
    `shapes={"x": (8, 32)}` also makes every other `N` 8. `dims` sizes symbols (and unnamed dims,
    keyed `input:axis`) that no shape fixes, before `default_dim` (see `role_dims`). The same seed
    gives the same arrays.
    """
    dims = dict(dims or {})
    shapes = dict(shapes or {})
    by_name = {str(i["name"]): i for i in inputs}
    names = ", ".join(by_name)
    for name in shapes:
        if name not in by_name:
            raise BadInputError(f"a shape is given for {name}, which is not an input (inputs: {names})")
        if by_name[name].get("default"):
            raise BadInputError(f"a shape is given for {name}, which has a default value: "
                                "to override it, pass its value with --inputs")
    types = {name: parse_manifest_type(info["type"]) for name, info in by_name.items() if not info.get("default")}
    symbols: dict[str, tuple[int, str]] = {}
    for name, shape in shapes.items():
        if any(int(d) < 0 for d in shape):
            raise BadInputError(f"the shape given for {name}, {_shape_text(shape)}, has a negative dim")
        t = types[name]
        if not isinstance(t, TensorType):
            continue  # refused below, with the reason
        problem = _bind_dims(name, t, shape, symbols)
        if problem is not None:
            raise BadInputError(f"{name}: expected {format_type(t)}{problem}, got shape {_shape_text(shape)}")
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for name, t in types.items():
        if not isinstance(t, TensorType):
            raise BadInputError(f"input {name} is of type {format_type(t)}, which mlc cannot generate: "
                                "pass its value with --inputs")
        if name in shapes:
            shape = tuple(int(d) for d in shapes[name])
        elif t.shape is None:
            raise BadInputError(f"input {name} has unknown rank ({format_type(t)}): give its shape")
        else:
            shape = concrete_dims(name, t.shape, lambda symbol, size, first=name: symbols.setdefault(
                symbol, (size, first))[0], dims, default_dim)
        feeds[name] = _generate(t.dtype, shape, rng)
    return feeds, {symbol: size for symbol, (size, _) in symbols.items()}


# ===================================================================== output summaries
def _json_number(value: Any) -> int | float | str | bool:
    """A Python scalar json.dumps writes as strict JSON: NaN and infinities become strings."""
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, float):
        return value if np.isfinite(value) else str(value)
    if isinstance(value, complex):
        return str(value)
    return str(value)


def _numeric(array: np.ndarray) -> np.ndarray | None:
    """The array as something numpy can reduce (bool as 0/1, 8- and 4-bit floats widened), or None
    for strings and complex numbers, which have no min/max/mean worth printing."""
    kind = array.dtype.kind
    if kind == "b":
        return array.astype(np.uint8)
    if kind in "iu":
        return array
    if kind == "f":
        return array
    try:
        if DType.from_numpy(array.dtype).is_float:
            return array.astype(np.float32)
        if DType.from_numpy(array.dtype) in (DType.INT4, DType.UINT4, DType.INT2, DType.UINT2):
            return array.astype(np.int8)
    except TypeError:
        return None
    return None


def output_stats(outputs: Mapping[str, np.ndarray], first: int = 5) -> list[dict[str, Any]]:
    """A JSON-serializable summary of each output: name, dtype, shape, min/max/mean, NaN/Inf counts
    and the first `first` values.

    What a user needs to tell a healthy run from a broken one without dumping the arrays: a NaN
    count, a collapsed range or an all-zero output is visible at a glance. min/max/mean are over the
    finite values (None for strings, complex, empty arrays or no finite value); `nan` and `inf` are
    counts for float outputs and None for others; non-finite values in `first` are the strings
    `nan`, `inf` and `-inf` so that the result is strict JSON.
    """
    stats = []
    for name, value in outputs.items():
        array = np.asarray(value)
        numeric = _numeric(array)
        is_float = numeric is not None and numeric.dtype.kind == "f"
        entry: dict[str, Any] = {"name": name, "dtype": array.dtype.name, "shape": [int(d) for d in array.shape],
                                 "min": None, "max": None, "mean": None, "nan": None, "inf": None}
        if numeric is not None:
            values = numeric.reshape(-1)
            if is_float:
                entry["nan"] = int(np.isnan(values).sum())
                entry["inf"] = int(np.isinf(values).sum())
                values = values[np.isfinite(values)]
            if values.size:
                entry["min"] = values.min().item()
                entry["max"] = values.max().item()
                entry["mean"] = float(values.mean(dtype=np.float64))
        head = (numeric if numeric is not None and array.dtype.kind not in "biuf" else array).reshape(-1)[:first]
        entry["first"] = [_json_number(v.item() if isinstance(v, np.generic) else v) for v in head]
        stats.append(entry)
    return stats


# ===================================================================== comparison with a reference
def read_reference_npz(path: str | Path) -> dict[str, np.ndarray]:
    """The reference outputs of `mlc run --reference REF.npz`, keyed by output name."""
    return read_npz(path)


def _scalar(array: np.ndarray, index: tuple[int, ...]) -> Any:
    value = array[index]
    return _json_number(value.item() if isinstance(value, np.generic) else value)


def _compare_one(name: str, got: np.ndarray, ref: np.ndarray, atol: float, rtol: float) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "ok": True, "dtype": got.dtype.name, "shape": [int(d) for d in got.shape],
                             "max_abs": None, "max_rel": None, "mismatched": 0, "worst_index": None,
                             "expected": None, "got": None, "note": ""}
    notes = []
    if got.dtype != ref.dtype:
        notes.append(f"dtype {got.dtype.name}, reference {ref.dtype.name}")
    if got.shape != ref.shape:
        notes.append(f"shape {_shape_text(got.shape)}, reference {_shape_text(ref.shape)}")
        entry.update(ok=False, mismatched=None, note="; ".join(notes))
        return entry
    a, b = _numeric(got), _numeric(ref)
    if a is None or b is None:
        # strings, complex: no ordering, so no max_rel; complex within tolerance, the rest exact
        if got.dtype.kind == "c" and ref.dtype.kind == "c":
            close = np.isclose(got, ref, rtol=rtol, atol=atol, equal_nan=True)
        elif (got.dtype.kind in "USO") == (ref.dtype.kind in "USO"):
            close = np.broadcast_to(np.asarray(got == ref, dtype=bool), got.shape)
        else:
            close = np.zeros(got.shape, dtype=bool)
        excess = np.where(close, -np.inf, 1.0)
    else:
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        close = np.isclose(a64, b64, rtol=rtol, atol=atol, equal_nan=True)
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            diff = np.abs(a64 - b64)
            if a.dtype.kind in "iu" and b.dtype.kind in "iu":
                # integers float64 cannot tell apart (beyond 2**53): their exact difference decides
                lost = (a != b) & (a64 == b64)
                if lost.any():
                    diff[lost] = [abs(int(x) - int(y)) for x, y in zip(a[lost], b[lost], strict=True)]
                    close[lost] = diff[lost] <= atol + rtol * np.abs(b64[lost])
            finite = np.isfinite(a64) & np.isfinite(b64)
            if finite.any():
                entry["max_abs"] = float(diff[finite].max())
                nonzero = finite & (b64 != 0)
                entry["max_rel"] = float((diff[nonzero] / np.abs(b64[nonzero])).max()) if nonzero.any() else 0.0
            # how far past the tolerance each failing element is; a non-finite disagreement is the worst
            excess = np.where(finite, diff - (atol + rtol * np.abs(b64)), np.inf)
        excess = np.where(close, -np.inf, excess)
        if close.all():
            excess = np.where(finite, diff, -np.inf)  # all pass: point at the largest difference
    entry["mismatched"] = int((~close).sum())
    if entry["mismatched"] or notes:
        entry["ok"] = False
    if entry["mismatched"] or np.isfinite(excess).any():
        index = tuple(int(i) for i in np.unravel_index(int(np.argmax(excess)), got.shape))
        shown_got, shown_ref = (got, ref) if a is None or b is None else (a, b)
        entry.update(worst_index=list(index), expected=_scalar(shown_ref, index), got=_scalar(shown_got, index))
    entry["note"] = "; ".join(notes)
    return entry


def compare_outputs_to(outputs: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray], *,
                       atol: float, rtol: float) -> list[dict[str, Any]]:
    """Compare a run's outputs with reference arrays (`mlc run --reference REF.npz`), one entry per
    name on either side.

    Plain numpy `allclose` semantics, |got - expected| <= atol + rtol * |expected|, NaN equal to
    NaN at the same position: the user chose the tolerances, so no scaling by the output's
    magnitude (unlike `mlc.numerics.compare`, whose tolerances follow a pass contract). A dtype or
    shape difference, or a name on one side only, fails the entry with the reason in `note`.
    Each entry: name, ok, dtype, shape, max_abs and max_rel (over positions finite on both sides),
    mismatched (element count), worst_index (the element furthest past the tolerance, or of the
    largest difference when all pass), expected and got there, note.
    """
    results = []
    for name, value in outputs.items():
        if name not in reference:
            got = np.asarray(value)
            results.append({"name": name, "ok": False, "dtype": got.dtype.name,
                            "shape": [int(d) for d in got.shape], "max_abs": None, "max_rel": None,
                            "mismatched": None, "worst_index": None, "expected": None, "got": None,
                            "note": "not in the reference"})
            continue
        results.append(_compare_one(name, np.asarray(value), np.asarray(reference[name]), atol, rtol))
    for name in reference:
        if name not in outputs:
            results.append({"name": name, "ok": False, "dtype": None, "shape": None, "max_abs": None,
                            "max_rel": None, "mismatched": None, "worst_index": None, "expected": None,
                            "got": None, "note": "in the reference but not an output of the run"})
    return results


# ===================================================================== running a backend
def _one_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines()]
    text = " | ".join(line for line in lines if line)
    return text or type(error).__name__


def run_backend(run: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]], feeds: dict[str, np.ndarray], *,
                target: str) -> dict[str, np.ndarray]:
    """Call a backend's `run(feeds)`, turning whatever its library raises into BackendRunError.

    Backend libraries raise their own classes (onnxruntime's `Fail`/`InvalidArgument`, TVM's
    `TVMError`, plain RuntimeError/ValueError) with multi-line messages; the CLI would report them
    as an internal error of mlc with a traceback. The run is refused by the runtime, not broken in
    mlc, so it becomes one line with exit code 2, the backend's whole message kept (newlines as
    ` | `) and the original chained as the cause for `-v`. mlc's own errors, MemoryError and
    KeyboardInterrupt/SystemExit pass through unchanged.
    """
    try:
        return run(feeds)
    except (MlcError, MemoryError):
        raise
    except Exception as error:
        raise BackendRunError(f"the {target} runtime refused the run: {_one_line(error)}") from error
