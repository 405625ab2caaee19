"""Choosing and making operands: tensors from the pool that fit an op, or new inputs and constants.

Shapes are small (dims 1..5) so that a case runs in milliseconds; symbolic dims sit at the front
(axis 0 is the batch `N`, axis 1 sometimes a sequence `S`) as in exported models, and a constant
never has a symbolic dim, so broadcasting a constant against a symbolic dim always puts 1 there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from mlc.fuzzing.builder import BOOL, Builder, Dim, Skip, Tensor, broadcast_dims, concrete, limit_of


def random_dims(b: Builder, rank: int, *, static: bool = False, low: int = 1, high: int = 5) -> tuple[Dim, ...]:
    dims: list[Dim] = [int(b.rng.integers(low, high + 1)) for _ in range(rank)]
    if not static and rank >= 1:
        for axis, name in ((0, "N"), (1, "S")):
            if name in b.symbols and axis < rank and (rank >= 2 or axis == 0) and b.chance(0.6):
                dims[axis] = name
    return tuple(dims)


def new_float_input(b: Builder, rank: int | None = None, *, static: bool = False, bound: float | None = None) -> Tensor:
    rank = int(b.pick([0, 1, 2, 2, 3, 3, 4])) if rank is None else rank
    return b.input(b.float_type, random_dims(b, rank, static=static), bound=bound)


def float_operand(b: Builder, *, min_rank: int = 0, max_rank: int = 6, exact: bool = False,
                  max_bound: float | None = None, static: bool = False,
                  extra: Callable[[Tensor], bool] | None = None, make_rank: int | None = None) -> Tensor:
    """A float tensor of the graph's float type (from the pool, else a new input)."""
    limit = max_bound if max_bound is not None else limit_of(b.float_type)

    def fits(t: Tensor) -> bool:
        return (t.dtype == b.float_type and min_rank <= t.rank <= max_rank and t.bound <= limit
                and (t.exact or not exact) and (not static or not t.symbolic) and t.size > 0
                and (extra is None or extra(t)))

    def make() -> Tensor:
        rank = make_rank if make_rank is not None else int(b.rng.integers(min_rank, min(max_rank, 4) + 1))
        made = new_float_input(b, rank, static=static, bound=min(3.0, limit))
        if extra is not None and not extra(made):
            raise Skip("new input does not fit")
        return made

    return b.choose(fits, make)


def int_operand(b: Builder, *, max_bound: float = 1000.0, min_rank: int = 0, max_rank: int = 4) -> Tensor:
    def fits(t: Tensor) -> bool:
        return t.is_int and t.bound <= max_bound and min_rank <= t.rank <= max_rank and t.size > 0

    def make() -> Tensor:
        dtype = np.dtype(b.pick([np.int32, np.int64]))
        rank = int(b.rng.integers(min_rank, max_rank + 1))
        return b.input(dtype, random_dims(b, rank), bound=float(b.pick([3, 10, 100])))

    return b.choose(fits, make)


def bool_operand(b: Builder) -> Tensor:
    def make() -> Tensor:
        return b.input(BOOL, random_dims(b, int(b.rng.integers(0, 4))))

    return b.choose(lambda t: t.dtype == BOOL and t.size > 0, make)


def partner_dims(b: Builder, dims: Sequence[Dim], *, constant: bool) -> tuple[Dim, ...]:
    """Dims that broadcast with `dims`: a suffix of them with some set to 1, a scalar, [1], or
    (rarely) one more leading dim. A constant's symbolic dims are 1."""
    roll = b.rng.random()
    if roll < 0.1:
        return ()
    if roll < 0.15:
        return (1,)
    keep = int(b.rng.integers(0, len(dims) + 1)) if b.chance(0.4) else len(dims)
    suffix = list(dims[len(dims) - keep:])
    out: list[Dim] = []
    for d in suffix:
        if (constant and isinstance(d, str)) or b.chance(0.25):
            out.append(1)
        else:
            out.append(d)
    if b.chance(0.08) and len(out) < 4:
        out.insert(0, int(b.rng.integers(2, 4)))
    return tuple(out)


def broadcast_partner(b: Builder, x: Tensor, dtype: np.dtype, *, bound: float | None = None,
                      positive: bool = False, away_from_zero: bool = False,
                      exact: bool = False) -> Tensor:
    """A second operand for an elementwise op with `x`: a pool tensor whose dims broadcast with
    x's, a new constant, or a new input."""
    limit = bound if bound is not None else limit_of(dtype)
    if not positive and not away_from_zero and b.chance(0.45):
        found = b.operands(lambda t: t.dtype == dtype and t.name != x.name and t.bound <= limit
                           and (t.exact or not exact) and t.size > 0
                           and broadcast_dims(x.dims, t.dims) is not None)
        if found:
            return b.pick(found)  # type: ignore[no-any-return]
        if b.chance(0.3) and x.dtype == dtype:
            return x  # Op(x, x)
    as_const = b.chance(0.7)
    dims = partner_dims(b, x.dims, constant=as_const)
    if as_const:
        shape = concrete(dims, b.symbols)
        scale = min(limit, 2.0)
        if dtype in (np.dtype(np.int32), np.dtype(np.int64)):
            low = 1 if positive or away_from_zero else -int(scale) - 1
            values = b.random_ints(shape, low, max(int(scale) + 1, low), dtype)
        else:
            values = b.rng.uniform(0.5 if positive or away_from_zero else -scale, scale, size=shape)
            if away_from_zero and not positive:
                values = values * b.rng.choice([-1.0, 1.0], size=shape)
            if b.chance(0.2) and not (positive or away_from_zero):
                values = np.round(values * 2) / 2  # exact halves, zeros among them
        return b.const(np.asarray(values, dtype=dtype))
    if positive or away_from_zero:
        raise Skip("a divisor is a constant here")
    if dtype == BOOL:
        return b.input(BOOL, dims)
    if dtype in (np.dtype(np.int32), np.dtype(np.int64)):
        return b.input(dtype, dims, bound=min(limit, 10.0))
    return b.input(dtype, dims, bound=min(limit, 2.0))


def guard_positive(b: Builder, x: Tensor, floor: float = 0.5) -> Tensor:
    """Add(Abs(x), floor): a value kept at least `floor` away from zero (Log, Sqrt, Div, Pow)."""
    (a,) = b.node("Abs", [x], [b.like(x, exact=x.exact)], pool=False)
    c = b.const(np.asarray(floor, dtype=x.dtype))
    (g,) = b.node("Add", [a, c], [b.like(x, bound=x.bound + floor, exact=False)], pool=False)
    return g


def check_bound(b: Builder, dtype: np.dtype, bound: float) -> float:
    if not np.isfinite(bound) or bound > limit_of(dtype):
        raise Skip("bound")
    return bound


def reduce_axes(b: Builder, x: Tensor) -> list[int]:
    """A non-empty random subset of x's axes (sorted), sometimes written as negative axes."""
    count = int(b.rng.integers(1, x.rank + 1))
    axes = sorted(int(a) for a in b.rng.choice(x.rank, size=count, replace=False))
    return [a - x.rank if b.chance(0.3) else a for a in axes]


def normalize_axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


def derived(b: Builder, size: int, *parts: object) -> str:
    """The name of a dim derived from symbolic ones (equal only to itself), its size recorded."""
    name = "(" + ",".join(str(p) for p in parts) + ")"
    b.symbols[name] = int(size)
    return name


def dim_product(b: Builder, dims: Sequence[Dim]) -> Dim:
    size = int(np.prod(concrete(dims, b.symbols), dtype=np.int64))
    if all(isinstance(d, int) for d in dims):
        return size
    return derived(b, size, "prod", *dims)


def varied(b: Builder, x: Tensor, count: int) -> Tensor:
    """x plus a ramp of distinct values over its last `count` axes, unless x is a graph input.
    A normalization of a row whose values are all equal (replicated by Expand, Gather, a
    broadcast) divides rounding noise by sqrt(eps): no two implementations agree on it, and no
    model computes it on purpose (fuzz seed 20006: a decomposed layer norm, eps 1e-12, of a row of
    nine equal values; onnxruntime and onnx's reference evaluator differ by 0.17)."""
    if any(x is t for t in b.inputs) or count == 0:
        return x
    shape = tuple(int(d) for d in x.shape[x.rank - count:])
    ramp = b.rng.permutation(np.linspace(-1.0, 1.0, int(np.prod(shape)))).reshape(shape)
    c = b.const(np.asarray(ramp, dtype=x.dtype))
    (y,) = b.node("Add", [x, c], [b.like(x, bound=x.bound + 1.0, exact=False)], pool=False)
    return y
