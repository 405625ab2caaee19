"""Optimization profiles for TensorRT engines, derived from a graph's inputs and the user's flags.

A TensorRT engine built from a network with dynamic dims needs, for every input, the smallest,
the most frequent and the largest shape it will be run with (an optimization profile): kernels
are chosen for `opt` and valid from `min` to `max`. mlc derives them from what the graph says
and what the user gives, and refuses, in one line naming the input and the dim, what would
otherwise surface as a TensorRT builder error:

    --input-shape x:1,3,224,224..8,3,224,224            min..max (opt = max)
    --input-shape x:min=1,3,224,224;opt=4,3,224,224;max=8,3,224,224

* a static dim of the graph is that number in all three shapes; a flag that says otherwise is
  refused;
* a symbolic dim needs a flag; the same symbolic name (`N`, `batch`) in several inputs must get
  the same range in each, since TensorRT cannot make them agree at run time otherwise;
* `min <= opt <= max` in every dim, all positive, the rank the graph declares.

This module reads mlc's IR only (no TensorRT import), so that every path of it is tested on
machines without a GPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mlc.errors import BadInputError
from mlc.ir.core import Graph
from mlc.ir.types import TensorType

_FLAG = "--input-shape"


@dataclass(frozen=True)
class Profile:
    """The shapes of one input: kernels are tuned for `opt`, valid from `min` to `max`."""

    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    def to_json(self) -> dict[str, list[int]]:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}


def _dims(text: str, flag: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(d) for d in text.split(",") if d.strip())
    except ValueError:
        raise BadInputError(f"{_FLAG} {flag!r}: {text!r} is not a list of dims D,D,...") from None
    if any(d <= 0 for d in dims):
        raise BadInputError(f"{_FLAG} {flag!r}: dims must be positive")
    return dims


def parse_profile_flag(flag: str) -> tuple[str, Profile]:
    """`NAME:D,D..D,D`, `NAME:min=..;opt=..;max=..` or `NAME:D,D` (one shape) → (NAME, Profile)."""
    name, colon, spec = flag.rpartition(":")
    if not colon or not name or not spec:
        raise BadInputError(f"{_FLAG} {flag!r}: expected NAME:MIN..MAX or NAME:min=D,D;opt=D,D;max=D,D")
    if "=" in spec:
        parts: dict[str, tuple[int, ...]] = {}
        for item in spec.split(";"):
            key, equals, value = item.partition("=")
            key = key.strip().lower()
            if not equals or key not in ("min", "opt", "max") or key in parts:
                raise BadInputError(f"{_FLAG} {flag!r}: expected min=D,D;opt=D,D;max=D,D (each once)")
            parts[key] = _dims(value, flag)
        if "min" not in parts or "max" not in parts:
            raise BadInputError(f"{_FLAG} {flag!r}: min= and max= are both needed")
        profile = Profile(parts["min"], parts.get("opt", parts["max"]), parts["max"])
    elif ".." in spec:
        low, _, high = spec.partition("..")
        low_dims, high_dims = _dims(low, flag), _dims(high, flag)
        profile = Profile(low_dims, high_dims, high_dims)
    else:
        dims = _dims(spec, flag)
        profile = Profile(dims, dims, dims)
    if not (len(profile.min) == len(profile.opt) == len(profile.max)):
        raise BadInputError(f"{_FLAG} {flag!r}: min, opt and max have different ranks")
    for i, (a, b, c) in enumerate(zip(profile.min, profile.opt, profile.max, strict=True)):
        if not a <= b <= c:
            raise BadInputError(f"{_FLAG} {flag!r}: dim {i} needs min <= opt <= max, got {a}, {b}, {c}")
    return name, profile


def parse_profile_flags(flags: Sequence[str]) -> dict[str, Profile]:
    found: dict[str, Profile] = {}
    for flag in flags:
        name, profile = parse_profile_flag(flag)
        if name in found:
            raise BadInputError(f"{_FLAG} {flag!r}: input {name!r} is given twice")
        found[name] = profile
    return found


def derive_profiles(graph: Graph, flags: Sequence[str] = ()) -> dict[str, Profile]:
    """One profile per runtime input of `graph` (initializers listed as inputs excluded), from its
    declared type and the `--input-shape` flags; refused in one line where they disagree."""
    given = parse_profile_flags(flags)
    inputs = [v for v in graph.inputs if v.const is None]
    names = {v.name for v in inputs}
    unknown = sorted(set(given) - names)
    if unknown:
        raise BadInputError(f"{_FLAG} {unknown[0]}: not an input of the model (inputs: {', '.join(sorted(names))})")
    profiles: dict[str, Profile] = {}
    symbols: dict[str, tuple[int, int, int, str]] = {}  # symbolic dim -> (min, opt, max, where first seen)
    for value in inputs:
        t = value.type
        if not isinstance(t, TensorType) or t.shape is None:
            if value.name not in given:
                raise BadInputError(f"input {value.name!r} has no known rank: give {_FLAG} {value.name}:MIN..MAX")
            profiles[value.name] = given[value.name]
            continue
        declared = t.shape
        profile = given.get(value.name)
        if profile is None:
            symbolic = [(i, d) for i, d in enumerate(declared) if not isinstance(d, int)]
            if symbolic:
                i, d = symbolic[0]
                shown = d if isinstance(d, str) else "?"
                raise BadInputError(f"input {value.name!r} dim {i} ({shown}) is dynamic: give its range with "
                                    f"{_FLAG} {value.name}:MIN..MAX (e.g. "
                                    f"{','.join('1' if not isinstance(x, int) else str(x) for x in declared)}.."
                                    f"{','.join('8' if not isinstance(x, int) else str(x) for x in declared)})")
            static = tuple(int(d) for d in declared)  # type: ignore[arg-type]
            profiles[value.name] = Profile(static, static, static)
            continue
        if len(profile.min) != len(declared):
            raise BadInputError(f"{_FLAG} {value.name}: {len(profile.min)} dims given, the input has "
                                f"{len(declared)} ({t.shape_text()})")
        for i, d in enumerate(declared):
            triple = (profile.min[i], profile.opt[i], profile.max[i])
            if isinstance(d, int):
                if triple != (d, d, d):
                    raise BadInputError(f"{_FLAG} {value.name}: dim {i} is {d} in the model, the flag gives "
                                        f"{'..'.join(map(str, sorted(set(triple))))}")
            elif isinstance(d, str):
                seen = symbols.get(d)
                if seen is None:
                    symbols[d] = (*triple, value.name)
                elif seen[:3] != triple:
                    raise BadInputError(f"{_FLAG} {value.name}: dim {i} ({d}) is {triple[0]}..{triple[2]} "
                                        f"(opt {triple[1]}), but {d} of input {seen[3]!r} is {seen[0]}..{seen[2]} "
                                        f"(opt {seen[1]}): one symbolic dim takes one range")
        profiles[value.name] = profile
    return profiles


__all__ = ["Profile", "derive_profiles", "parse_profile_flag", "parse_profile_flags"]
