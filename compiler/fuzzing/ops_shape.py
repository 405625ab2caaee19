"""Layout and shape actions: Reshape, Transpose, Squeeze/Unsqueeze, Flatten, Concat, Split, Slice,
Gather, Expand, Tile, Pad, and the Shape/Size/ConstantOfShape/Range computations of dynamic models.

Where a dim is symbolic the action writes what exporters write: a Reshape copies it with 0 (or
reads it with Shape), an Expand or Tile keeps it with 1, a Slice takes it whole, reversed, its
first element or all but the first.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mlc.fuzzing.builder import BOOL, Builder, Dim, Skip, Tensor, concrete
from mlc.fuzzing.operands import derived, dim_product, float_operand, int_operand, normalize_axis

INT64_MAX = np.iinfo(np.int64).max
INT64_MIN = np.iinfo(np.int64).min


def _any_tensor(b: Builder, min_rank: int = 0, max_rank: int = 6) -> Tensor:
    if b.chance(0.8):
        return float_operand(b, min_rank=min_rank, max_rank=max_rank)
    found = b.operands(lambda t: min_rank <= t.rank <= max_rank and t.size > 0)
    if found:
        return b.pick(found)  # type: ignore[no-any-return]
    return float_operand(b, min_rank=min_rank, max_rank=max_rank)


def _out(b: Builder, x: Tensor, dims: tuple[Dim, ...], **changes: object) -> dict[str, object]:
    return b.like(x, dims=dims, shape=concrete(dims, b.symbols), exact=x.exact, **changes)


def factorize(b: Builder, total: int, parts: int) -> list[int]:
    """`total` as a product of `parts` random factors (1s allowed)."""
    out = [1] * parts
    if parts == 0:
        return out
    n, p = total, 2
    primes: list[int] = []
    while n > 1 and p * p <= n:
        while n % p == 0:
            primes.append(p)
            n //= p
        p += 1
    if n > 1:
        primes.append(n)
    for prime in primes:
        out[int(b.rng.integers(parts))] *= prime
    return out


def reshape(b: Builder) -> None:
    """Reshape with 0 (copy) for symbolic leading dims, -1 sometimes; now and then a no-op
    Reshape, or a target computed from Shape at run time (simplify-shapes)."""
    x = _any_tensor(b)
    sym = [i for i, d in enumerate(x.dims) if isinstance(d, str)]
    k = max(sym) + 1 if sym else 0
    suffix_total = int(np.prod(x.shape[k:], dtype=np.int64))
    if b.chance(0.12):
        new = [int(d) for d in x.shape[k:]]
        b.feature("noop-reshape")
    else:
        parts = int(b.rng.integers(0 if suffix_total == 1 else 1, 4))
        new = factorize(b, suffix_total, parts)
    target: list[int] = [0 if isinstance(d, str) or b.chance(0.3) else int(d) for d in x.dims[:k]]
    target += new
    if new and b.chance(0.35):
        target[k + int(b.rng.integers(len(new)))] = -1
    dims: tuple[Dim, ...] = (*x.dims[:k], *new)
    if k and b.opset >= 15 and b.chance(0.35):
        b.feature("dynamic-reshape")
        (s,) = b.node("Shape", [x], [{"dtype": np.dtype(np.int64), "shape": (k,), "dims": (k,), "bound": 64.0,
                                      "exact": True}], pool=False, start=0, end=k)
        tail = b.ints([t for t in target[k:]])
        (shape,) = b.node("Concat", [s, tail], [{"dtype": np.dtype(np.int64), "shape": (len(target),),
                                                 "dims": (len(target),), "bound": 64.0, "exact": True}],
                          pool=False, axis=0)
    else:
        shape = b.ints(target)
    b.node("Reshape", [x, shape], [_out(b, x, dims)])


def transpose(b: Builder) -> None:
    """A random permutation (or the default reverse), often followed by another Transpose
    (merged, or cancelled when it is the inverse)."""
    x = _any_tensor(b, min_rank=2)
    perm = [int(p) for p in b.rng.permutation(x.rank)]
    if b.chance(0.1):
        perm = list(range(x.rank))
        b.feature("identity-transpose")
    attrs = {} if b.chance(0.15) else {"perm": perm}
    if not attrs:
        perm = list(range(x.rank))[::-1]
    (y,) = b.node("Transpose", [x], [_out(b, x, tuple(x.dims[p] for p in perm))], **attrs)
    if b.chance(0.35):
        b.feature("transpose-chain")
        second = [int(i) for i in np.argsort(perm)] if b.chance(0.5) else [int(p) for p in b.rng.permutation(x.rank)]
        b.node("Transpose", [y], [_out(b, y, tuple(y.dims[p] for p in second))], perm=second)


def unsqueeze(b: Builder) -> None:
    _unsqueeze(b)


def _unsqueeze(b: Builder) -> Tensor:
    x = _any_tensor(b, max_rank=4)
    count = int(b.rng.integers(1, 3))
    rank = x.rank + count
    axes = sorted(int(a) for a in b.rng.choice(rank, size=count, replace=False))
    dims: list[Dim] = list(x.dims)
    for a in axes:
        dims.insert(a, 1)
    written = [a - rank if b.chance(0.3) else a for a in axes]
    (y,) = b.node("Unsqueeze", [x, b.ints(written)], [_out(b, x, tuple(dims))])
    return y


def squeeze(b: Builder) -> None:
    x = b.choose(lambda t: any(d == 1 for d in t.dims) and t.size > 0, lambda: _unsqueeze(b))
    ones = [i for i, d in enumerate(x.dims) if d == 1]
    if not x.symbolic and b.chance(0.25):
        b.node("Squeeze", [x], [_out(b, x, tuple(d for d in x.dims if d != 1))])  # every 1-dim
        return
    axes = sorted(int(a) for a in b.rng.choice(ones, size=int(b.rng.integers(1, len(ones) + 1)), replace=False))
    written = [a - x.rank if b.chance(0.3) else a for a in axes]
    b.node("Squeeze", [x, b.ints(written)], [_out(b, x, tuple(d for i, d in enumerate(x.dims) if i not in axes))])


def flatten(b: Builder) -> None:
    x = _any_tensor(b, min_rank=1)
    axis = int(b.rng.integers(-x.rank, x.rank + 1))
    a = normalize_axis(axis, x.rank)
    dims = (dim_product(b, x.dims[:a]), dim_product(b, x.dims[a:]))
    b.node("Flatten", [x], [_out(b, x, dims)], axis=axis)


def concat(b: Builder) -> None:
    """Concat of x with itself, a constant or a new input of the same dims off the axis."""
    x = _any_tensor(b, min_rank=1)
    axis = int(b.rng.integers(-x.rank, x.rank))
    a = normalize_axis(axis, x.rank)
    others = [d for i, d in enumerate(x.dims) if i != a]
    parts = [x]
    for _ in range(int(b.rng.integers(0 if b.chance(0.1) else 1, 3))):
        roll = b.rng.random()
        size = int(b.rng.integers(1, 4))
        dims = tuple(size if i == a else d for i, d in enumerate(x.dims))
        if roll < 0.3:
            parts.append(x)
        elif roll < 0.65 and not any(isinstance(d, str) for d in others):
            shape = concrete(dims, b.symbols)
            values = b.rng.uniform(-x.bound, x.bound, size=shape) if x.dtype != BOOL else b.rng.random(shape) < 0.5
            if x.is_int:
                values = np.round(values)
            parts.append(b.const(np.asarray(values, dtype=x.dtype)))
        else:
            parts.append(b.input(x.dtype, dims, bound=min(x.bound, 3.0) if x.is_float else x.bound))
    if len(parts) == 1:
        b.feature("single-concat")
    sizes = [p.dims[a] for p in parts]
    total = int(sum(concrete(sizes, b.symbols)))
    dim = total if all(isinstance(s, int) for s in sizes) else derived(b, total, "cat", *sizes)
    out = _out(b, x, tuple(dim if i == a else d for i, d in enumerate(x.dims)),
               bound=max(p.bound for p in parts))
    out["exact"] = all(p.exact for p in parts)
    b.node("Concat", parts, [out], axis=axis)


def split(b: Builder) -> None:
    x = b.choose(lambda t: any(isinstance(d, int) and d >= 2 for d in t.dims) and t.size > 0,
                 lambda: float_operand(b, min_rank=1, static=True, extra=lambda t: max(t.shape, default=0) >= 2))
    axis = int(b.pick([i for i, d in enumerate(x.dims) if isinstance(d, int) and d >= 2]))
    d = int(x.shape[axis])
    written = axis - x.rank if b.chance(0.3) else axis
    if b.opset >= 18 and b.chance(0.4):
        n = int(b.rng.integers(2, d + 1))
        chunk = -(-d // n)
        sizes = [chunk] * (d // chunk) + ([d % chunk] if d % chunk else [])
        if len(sizes) != n:
            raise Skip("num_outputs does not divide")
        outs = [_out(b, x, tuple(s if i == axis else dd for i, dd in enumerate(x.dims))) for s in sizes]
        b.node("Split", [x], outs, axis=written, num_outputs=n)
        return
    if b.chance(0.3) and b.opset < 18:
        n = b.pick([k for k in range(1, d + 1) if d % k == 0])
        sizes = [d // n] * n
        if n == 1:
            b.feature("single-split")
        outs = [_out(b, x, tuple(s if i == axis else dd for i, dd in enumerate(x.dims))) for s in sizes]
        b.node("Split", [x], outs, axis=written)
        return
    n = int(b.rng.integers(1, min(d, 3) + 1))
    cuts = sorted(int(c) for c in b.rng.choice(np.arange(1, d), size=n - 1, replace=False)) if n > 1 else []
    sizes = [hi - lo for lo, hi in zip([0, *cuts], [*cuts, d], strict=True)]
    outs = [_out(b, x, tuple(s if i == axis else dd for i, dd in enumerate(x.dims))) for s in sizes]
    b.node("Split", [x, b.ints(sizes)], outs, axis=written)


def slice_length(start: int, end: int, step: int, dim: int) -> int:
    """Elements a Slice takes from an axis of `dim` elements, by ONNX's clamping rules (which are
    not Python's: a start before the beginning with a negative step clamps to 0, not to empty)."""
    start = start + dim if start < 0 else start
    end = end + dim if end < 0 else end
    if step > 0:
        start, end = min(max(start, 0), dim), min(max(end, 0), dim)
        return max(0, -(-(end - start) // step))
    start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
    return max(0, -(-(start - end) // -step))


def _slice_axis(b: Builder, dim: Dim, size: int) -> tuple[int, int, int, Dim]:
    """(start, end, step, output dim) for one sliced axis."""
    if isinstance(dim, str):
        start, end, step = b.pick([(0, INT64_MAX, 1), (0, 1, 1), (1, INT64_MAX, 1), (-1, INT64_MIN, -1),
                                   (0, -1, 1)])
        length = slice_length(start, end, step, size)
        if (start, end, step) == (0, INT64_MAX, 1) or step == -1:
            return start, end, step, dim
        if (start, end) == (0, 1):
            return start, end, step, 1
        if length == 0:
            raise Skip("an empty slice of a symbolic dim")
        return start, end, step, derived(b, length, "slice", dim, start, end)
    step = int(b.pick([1, 1, 1, 2, -1, -2, 3]))
    start = int(b.rng.integers(-size - 1, size + 2))
    end = int(b.rng.integers(-size - 1, size + 2))
    if b.chance(0.15):
        end = INT64_MAX if step > 0 else INT64_MIN
    length = slice_length(start, end, step, size)
    if length == 0 and not b.chance(0.03):
        start, end, step = 0, size, 1
        length = size
    return start, end, step, length


def slice_(b: Builder) -> None:
    x = _any_tensor(b, min_rank=1)
    count = int(b.rng.integers(1, x.rank + 1))
    axes = sorted(int(a) for a in b.rng.choice(x.rank, size=count, replace=False))
    if b.chance(0.1):
        b.feature("noop-slice")
        spec = [(0, INT64_MAX if b.chance(0.5) else int(x.shape[a]), 1, x.dims[a]) for a in axes]
    else:
        spec = [_slice_axis(b, x.dims[a], int(x.shape[a])) for a in axes]
    dims = list(x.dims)
    for a, (_, _, _, d) in zip(axes, spec, strict=True):
        dims[a] = d
    if 0 in dims:
        b.feature("empty-tensor")
    index_type = np.int64 if b.chance(0.8) else np.int32

    def vec(values: list[int]) -> Tensor:
        arr = np.asarray(values, dtype=np.int64)
        if index_type == np.int32:
            arr = np.clip(arr, np.iinfo(np.int32).min, np.iinfo(np.int32).max)
        return b.const(arr.astype(index_type), node=b.chance(0.1))

    inputs: list[Tensor | None] = [x, vec([s[0] for s in spec]), vec([s[1] for s in spec])]
    default_axes = axes == list(range(count)) and b.chance(0.3)
    steps = [s[2] for s in spec]
    if not default_axes or any(st != 1 for st in steps) or b.chance(0.5):
        inputs.append(vec([a - x.rank if b.chance(0.3) else a for a in axes]) if not default_axes else None)
        if any(st != 1 for st in steps) or b.chance(0.5):
            inputs.append(vec(steps))
    b.node("Slice", inputs, [_out(b, x, tuple(dims))])


def gather(b: Builder) -> None:
    """Gather with constant indices in range (negative ones too; 0 or -1 on a symbolic axis),
    scalar indices dropping the axis, or indices fed at run time."""
    x = _any_tensor(b, min_rank=1)
    axis = int(b.rng.integers(-x.rank, x.rank))
    a = normalize_axis(axis, x.rank)
    d = int(x.shape[a])
    itype = np.dtype(b.pick([np.int64, np.int64, np.int32]))
    rank = int(b.pick([0, 0, 1, 1, 2]))
    ishape = tuple(int(s) for s in b.rng.integers(1, 4, size=rank))
    if isinstance(x.dims[a], str):
        indices = b.const(np.asarray(b.rng.choice([0, -1], size=ishape), dtype=itype))
    elif b.chance(0.2):
        indices = b.input(itype, ishape, low=-d, high=d - 1, pool=False)
    else:
        indices = b.const(np.asarray(b.rng.integers(-d, d, size=ishape), dtype=itype))
    dims = (*x.dims[:a], *ishape, *x.dims[a + 1:])
    b.node("Gather", [x, indices], [_out(b, x, tuple(dims))], axis=axis)


def expand(b: Builder) -> None:
    x = _any_tensor(b, max_rank=4)
    lead = [int(v) for v in b.rng.integers(1, 4, size=int(b.pick([0, 0, 1, 2])))]
    target: list[int] = list(lead)
    for d in x.dims:
        if isinstance(d, str):
            target.append(1)
        elif d == 1 and b.chance(0.5):
            target.append(int(b.rng.integers(2, 4)))
        else:
            target.append(int(d) if b.chance(0.6) else 1)
    if b.chance(0.1):
        lead, target = [], [1] * x.rank
        b.feature("noop-expand")
    dims: list[Dim] = list(lead)
    for d, t in zip(x.dims, target[len(lead):], strict=True):
        dims.append(d if t == 1 else t)
    b.node("Expand", [x, b.ints(target)], [_out(b, x, tuple(dims))])


def tile(b: Builder) -> None:
    x = _any_tensor(b, min_rank=1, max_rank=4)
    repeats = [1 if isinstance(d, str) and b.chance(0.7) else int(b.rng.integers(1, 4)) for d in x.dims]
    dims: list[Dim] = []
    for d, r in zip(x.dims, repeats, strict=True):
        if r == 1:
            dims.append(d)
        elif isinstance(d, int):
            dims.append(d * r)
        else:
            dims.append(derived(b, b.symbols[d] * r, "tile", d, r))
    b.node("Tile", [x, b.ints(repeats)], [_out(b, x, tuple(dims))])


def pad(b: Builder) -> None:
    x = _any_tensor(b, min_rank=1, max_rank=4)
    mode = b.pick(["constant", "constant", "reflect", "edge"])
    if mode == "reflect" and (x.symbolic or min(x.shape) < 2):
        mode = "constant"
    begins, ends = [], []
    for d in x.dims:
        size = b.symbols[d] if isinstance(d, str) else int(d)
        limit = size - 1 if mode == "reflect" else 2
        lo = -min(size - 1, 1) if mode == "constant" and isinstance(d, int) and b.chance(0.1) else 0
        begins.append(int(b.rng.integers(lo, limit + 1)) if not isinstance(d, str) or b.chance(0.3) else 0)
        ends.append(int(b.rng.integers(lo, limit + 1)) if not isinstance(d, str) or b.chance(0.3) else 0)
    if b.chance(0.1):
        begins, ends = [0] * x.rank, [0] * x.rank
        b.feature("noop-pad")
    dims: list[Dim] = []
    for d, p, q in zip(x.dims, begins, ends, strict=True):
        if p == q == 0:
            dims.append(d)
        elif isinstance(d, int):
            dims.append(d + p + q)
        else:
            dims.append(derived(b, b.symbols[d] + p + q, "pad", d, p, q))
    if any(isinstance(d, int) and d <= 0 for d in dims):
        raise Skip("pads crop everything")
    inputs: list[Tensor | None] = [x, b.ints(begins + ends)]
    if mode == "constant" and b.chance(0.5) and x.dtype != BOOL:
        inputs.append(b.const(np.asarray(b.pick([0.0, 1.0, -2.0]), dtype=x.dtype)))
    attrs = {"mode": mode} if mode != "constant" or b.chance(0.5) else {}
    bound = max(x.bound, 2.0) if x.dtype != BOOL else 1.0
    b.node("Pad", inputs, [_out(b, x, tuple(dims), bound=bound)], **attrs)


def shape_values(b: Builder) -> None:
    """What dynamic exports compute from shapes: Shape (with start/end), Size, Gather of a dim,
    ConstantOfShape, Range over a dim; cast to float and mixed into the data."""
    x = _any_tensor(b, min_rank=1)
    roll = b.rng.random()
    i64 = np.dtype(np.int64)
    if roll < 0.25:
        start = int(b.rng.integers(-x.rank, x.rank)) if b.opset >= 15 and b.chance(0.5) else 0
        s = normalize_axis(start, x.rank)
        attrs = {"start": start} if start else {}
        n = x.rank - s
        b.node("Shape", [x], [{"dtype": i64, "shape": (n,), "dims": (n,), "bound": 64.0, "exact": True}], **attrs)
        return
    if roll < 0.35:
        b.node("Size", [x], [{"dtype": i64, "shape": (), "dims": (), "bound": float(x.size), "exact": True}])
        return
    (s,) = b.node("Shape", [x], [{"dtype": i64, "shape": (x.rank,), "dims": (x.rank,), "bound": 64.0,
                                  "exact": True}], pool=False)
    if roll < 0.6:
        value = b.pick([0.0, 1.0, -1.5])
        from onnx import helper  # noqa: TID251

        dtype = b.float_type
        tensor = helper.make_tensor("value", helper.np_dtype_to_tensor_dtype(dtype), [1], [value])
        b.feature("constant-of-shape")
        b.node("ConstantOfShape", [s], [b.like(x, dtype=dtype, bound=max(abs(value), 1.0), exact=True)], value=tensor)
        return
    axis = int(b.rng.integers(x.rank))
    (dim,) = b.node("Gather", [s, b.ints(axis)], [{"dtype": i64, "shape": (), "dims": (), "exact": True,
                                                  "bound": float(x.shape[axis])}], pool=False)
    from onnx import helper  # noqa: TID251

    to = helper.np_dtype_to_tensor_dtype(b.float_type)
    if roll < 0.8:
        b.feature("range")
        (r,) = b.node("Range", [b.const(np.asarray(0, np.int64)), dim, b.const(np.asarray(1, np.int64))],
                      [{"dtype": i64, "shape": (x.shape[axis],), "dims": (x.dims[axis],), "exact": True,
                        "bound": float(x.shape[axis])}])
        b.node("Cast", [r], [b.like(r, dtype=b.float_type)], to=to)
    else:
        b.node("Cast", [dim], [{"dtype": b.float_type, "shape": (), "dims": (), "exact": True,
                                "bound": float(x.shape[axis])}], to=to)


def noop_chain(b: Builder) -> None:
    """Identity chains and ops that hand their input through: eliminate-identity and
    eliminate-noop's cases, one after another."""
    x = _any_tensor(b)
    b.feature("noop-chain")
    for _ in range(int(b.rng.integers(1, 4))):
        roll = b.rng.random()
        if roll < 0.4:
            (x,) = b.node("Identity", [x], [b.like(x)], pool=False)
        elif roll < 0.6 and x.rank >= 1:
            (x,) = b.node("Tile", [x, b.ints([1] * x.rank)], [b.like(x)], pool=False)
        elif roll < 0.8:
            (x,) = b.node("Expand", [x, b.ints([1] * x.rank)], [b.like(x)], pool=False)
        else:
            (x,) = b.node("Concat", [x], [b.like(x)], pool=False, axis=0) if x.rank else \
                b.node("Identity", [x], [b.like(x)], pool=False)
    b.pool.append(x)


def int_index_math(b: Builder) -> None:
    """An integer tensor (e.g. positions) through Gather with computed indices: Mod keeps them in
    range whatever the arithmetic before."""
    data = _any_tensor(b, min_rank=1)
    i = int_operand(b, max_bound=1000)
    d = int(data.shape[0])
    if isinstance(data.dims[0], str):
        raise Skip("symbolic axis")
    mod = b.const(np.asarray(d, dtype=i.dtype))
    (idx,) = b.node("Mod", [i, mod], [b.like(i, bound=float(d), exact=True)], pool=False)
    b.node("Gather", [data, idx], [_out(b, data, (*i.dims, *data.dims[1:]))], axis=0)


ACTIONS: dict[str, tuple[float, Callable[[Builder], None]]] = {
    "reshape": (3.0, reshape), "transpose": (2.5, transpose), "unsqueeze": (1.0, unsqueeze),
    "squeeze": (1.0, squeeze), "flatten": (0.8, flatten), "concat": (1.5, concat), "split": (1.0, split),
    "slice": (2.0, slice_), "gather": (1.5, gather), "expand": (1.0, expand), "tile": (0.8, tile), "pad": (1.0, pad),
    "shape-values": (1.5, shape_values), "noop-chain": (1.0, noop_chain), "index-math": (0.5, int_index_math),
}
