"""Elementwise, comparison, cast and reduction actions of the generator.

Each action reads operands from the pool (or makes them), emits one to a few nodes, and puts its
results in the pool; it raises `Skip` when it does not apply. Domains are kept: Log, Sqrt and
Reciprocal read `Add(Abs(x), c)`, a divisor is a constant away from zero or such a guard, Exp
reads small values, integer products stay below 2^24, and discontinuous ops read exact values.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from mlc.fuzzing.builder import BOOL, FLOATS, INTS, Builder, Skip, Tensor, broadcast_dims, concrete, limit_of
from mlc.fuzzing.operands import (
    bool_operand,
    broadcast_partner,
    check_bound,
    float_operand,
    guard_positive,
    int_operand,
    reduce_axes,
)

# op -> (output bound from input bound, keeps exactness, attributes maker)
_SMOOTH: dict[str, Callable[[float], float]] = {
    "Sigmoid": lambda bd: 1.0, "Tanh": lambda bd: 1.0, "Erf": lambda bd: 1.0, "Softsign": lambda bd: 1.0,
    "Sin": lambda bd: 1.0, "Cos": lambda bd: 1.0, "Atan": lambda bd: 1.6, "Softplus": lambda bd: bd + 1.0,
    "Elu": lambda bd: bd + 1.0, "Selu": lambda bd: 1.06 * bd + 1.76, "HardSigmoid": lambda bd: 1.0,
    "HardSwish": lambda bd: bd + 1.0, "LeakyRelu": lambda bd: bd, "Celu": lambda bd: bd + 1.0,
    "ThresholdedRelu": lambda bd: bd, "Mish": lambda bd: bd + 1.0, "Shrink": lambda bd: bd,
}
_EXACT = ("Relu", "Abs", "Neg", "Identity")
_ROUNDING = ("Floor", "Ceil", "Round", "Sign")


def _attrs(b: Builder, op: str) -> dict[str, float]:
    if op == "LeakyRelu":
        return {"alpha": float(b.pick([0.01, 0.1, 0.2]))}
    if op in ("Elu", "Celu"):
        return {"alpha": float(b.pick([1.0, 0.5]))}
    if op == "HardSigmoid":
        return {"alpha": float(b.pick([0.2, 1 / 6])), "beta": 0.5}
    if op == "ThresholdedRelu":
        return {"alpha": float(b.pick([0.5, 1.0]))}
    if op == "Shrink":
        return {"lambd": 0.5, "bias": float(b.pick([0.0, 0.5]))}
    return {}


def unary_float(b: Builder) -> None:
    """Activation and math functions on a float tensor."""
    ops = [*_SMOOTH, *_EXACT, "Exp", "Log", "Sqrt", "Reciprocal", "Dropout", "Clip", "Clip"]
    if b.opset < 18:
        ops.remove("Mish")
    op = b.pick(ops)
    if b.float_type == np.dtype(np.float16) and op in ("Celu", "Mish", "Shrink", "Atan", "Softsign", "ThresholdedRelu"):
        raise Skip("float16")
    if op == "Exp":
        x = float_operand(b, max_bound=5.0 if b.float_type == np.dtype(np.float16) else 8.0)
        b.node("Exp", [x], [b.like(x, bound=check_bound(b, x.dtype, math.exp(x.bound)), exact=False)])
        return
    x = float_operand(b)
    if op in ("Log", "Sqrt", "Reciprocal"):
        g = guard_positive(b, x, float(b.pick([0.5, 1.0])))
        bound = {"Log": math.log(g.bound) + 1, "Sqrt": math.sqrt(g.bound), "Reciprocal": 2.0}[op]
        b.node(op, [g], [b.like(x, bound=bound, exact=False)])
    elif op == "Dropout":
        b.feature("dropout")
        outs = [b.like(x)] + ([b.like(x, dtype=BOOL, bound=1.0, exact=True)] if b.chance(0.3) else [])
        b.node("Dropout", [x], outs, **({"seed": 3} if b.chance(0.2) else {}))
    elif op == "Clip":
        lo = b.const(np.asarray(-b.rng.uniform(0, 2), dtype=x.dtype)) if b.chance(0.7) else None
        hi = b.const(np.asarray(b.rng.uniform(0, 2), dtype=x.dtype)) if b.chance(0.7) else None
        bound = max(abs(float(t.value)) for t in (lo, hi) if t is not None and t.value is not None) \
            if lo is not None and hi is not None else x.bound
        inputs = [x, lo, hi] if hi is not None else [x, lo] if lo is not None else [x]
        b.node("Clip", inputs, [b.like(x, bound=min(bound, x.bound) if lo is not None and hi is not None
                                       else x.bound + 2, exact=x.exact)])
    elif op in _EXACT:
        b.node(op, [x], [b.like(x, exact=x.exact)])
    else:
        b.node(op, [x], [b.like(x, bound=_SMOOTH[op](x.bound), exact=False)], **_attrs(b, op))


def rounding(b: Builder) -> None:
    """Floor / Ceil / Round / Sign of an exact value (halves included in the feeds)."""
    op = b.pick(_ROUNDING)
    x = float_operand(b, exact=True)
    b.node(op, [x], [b.like(x, bound=x.bound + 1, exact=True)])


def binary_float(b: Builder) -> None:
    """Add, Sub, Mul, Div, Max, Min, Pow, PRelu, Sum, Mean with broadcasting."""
    op = b.pick(["Add", "Sub", "Mul", "Mul", "Div", "Max", "Min", "Pow", "PRelu", "Sum", "Mean", "Add"])
    x = float_operand(b)
    if op == "Div":
        y = broadcast_partner(b, x, x.dtype, away_from_zero=True) if b.chance(0.7) else \
            guard_positive(b, float_operand(b, extra=lambda t: broadcast_dims(x.dims, t.dims) is not None), 0.5)
        bound = x.bound * 2
    elif op == "Pow":
        exponent = float(b.pick([2.0, 3.0, 0.5, -1.0, 1.0]))
        base = guard_positive(b, x, 0.5) if exponent in (0.5, -1.0) else x
        if abs(base.bound) > 20:
            raise Skip("pow")
        y = b.const(np.asarray(exponent, dtype=x.dtype if b.chance(0.8) else np.float32))
        bound = base.bound ** exponent if exponent > 0 else 2.0
        x = base
    elif op == "PRelu":
        per_channel = x.rank >= 2 and b.chance(0.5)
        slope_dims = tuple(1 if isinstance(d, str) else d for d in x.dims[1:]) if per_channel else (1,)
        shape = tuple(int(d) for d in slope_dims)
        y = b.const(np.asarray(b.rng.uniform(0, 0.5, size=shape), dtype=x.dtype))
        bound = x.bound
    else:
        y = broadcast_partner(b, x, x.dtype)
        bound = {"Add": x.bound + y.bound, "Sub": x.bound + y.bound, "Mul": x.bound * y.bound,
                 "Sum": x.bound + y.bound, "Mean": max(x.bound, y.bound), "Max": max(x.bound, y.bound),
                 "Min": max(x.bound, y.bound)}[op]
    dims = broadcast_dims(x.dims, y.dims)
    if dims is None:
        raise Skip("broadcast")
    if op == "PRelu" and dims != x.dims:
        raise Skip("prelu broadcasts only the slope")
    exact = op in ("Max", "Min") and x.exact and y.exact
    inputs = [x, y]
    if op in ("Sum", "Mean", "Max", "Min") and b.chance(0.3):
        z = broadcast_partner(b, x, x.dtype)
        if broadcast_dims(dims, z.dims) is None:
            raise Skip("broadcast")
        dims = broadcast_dims(dims, z.dims)
        bound = bound + z.bound
        inputs.append(z)
        exact = exact and z.exact
    assert dims is not None
    if op in ("Sum", "Mean", "Max", "Min") and b.chance(0.1):
        inputs = [x]  # a single operand: a copy
        dims = x.dims
    b.node(op, inputs, [b.like(x, dims=dims, shape=concrete(dims, b.symbols),
                               bound=check_bound(b, x.dtype, bound), exact=exact)])


def binary_int(b: Builder) -> None:
    """Integer Add, Sub, Mul, Div, Mod, Max, Min, Abs, Neg with broadcasting (no overflow:
    bounds stay below 2^24)."""
    op = b.pick(["Add", "Sub", "Mul", "Div", "Mod", "Max", "Min", "Abs", "Neg"])
    x = int_operand(b)
    if op in ("Abs", "Neg"):
        b.node(op, [x], [b.like(x, exact=True)])
        return
    positive = op in ("Div", "Mod")
    y = broadcast_partner(b, x, x.dtype, positive=positive, bound=100.0)
    dims = broadcast_dims(x.dims, y.dims)
    if dims is None:
        raise Skip("broadcast")
    bound = {"Add": x.bound + y.bound, "Sub": x.bound + y.bound, "Mul": x.bound * y.bound,
             "Div": x.bound, "Mod": y.bound, "Max": max(x.bound, y.bound), "Min": max(x.bound, y.bound)}[op]
    attrs = {"fmod": 0} if op == "Mod" else {}
    b.node(op, [x, y], [b.like(x, dims=dims, shape=concrete(dims, b.symbols),
                               bound=check_bound(b, x.dtype, bound), exact=True)], **attrs)


def compare(b: Builder) -> None:
    """Comparisons of exact values, then Where / Not / And / Or / Xor on the booleans."""
    op = b.pick(["Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"])
    x = float_operand(b, exact=True) if b.chance(0.6) else int_operand(b)
    if op == "Equal" and x.is_float and b.chance(0.5):
        y = b.const(np.asarray(b.pick([0.0, 0.5, 1.0]), dtype=x.dtype))  # a value the feeds hold
    else:
        y = broadcast_partner(b, x, x.dtype, exact=True)
    dims = broadcast_dims(x.dims, y.dims)
    if dims is None:
        raise Skip("broadcast")
    (c,) = b.node(op, [x, y], [b.like(x, dims=dims, shape=concrete(dims, b.symbols), dtype=BOOL, bound=1.0,
                                      exact=True)])
    follow = b.rng.random()
    if follow < 0.5:
        where(b, c)
    elif follow < 0.65:
        b.node("Not", [c], [b.like(c)])
    elif follow < 0.8:
        other = bool_operand(b)
        d = broadcast_dims(c.dims, other.dims)
        if d is None:
            return
        b.node(b.pick(["And", "Or", "Xor"]), [c, other], [b.like(c, dims=d, shape=concrete(d, b.symbols))])


def where(b: Builder, cond: Tensor | None = None) -> None:
    """Where(cond, x, y) with broadcasting of all three."""
    c = cond if cond is not None else bool_operand(b)
    x = float_operand(b) if b.chance(0.8) else int_operand(b)
    y = broadcast_partner(b, x, x.dtype)
    dims = broadcast_dims(c.dims, x.dims)
    dims = broadcast_dims(dims, y.dims) if dims is not None else None
    if dims is None:
        raise Skip("broadcast")
    b.node("Where", [c, x, y], [b.like(x, dims=dims, shape=concrete(dims, b.symbols), bound=max(x.bound, y.bound),
                                       exact=x.exact and y.exact)])


def cast(b: Builder) -> None:
    """Casts between float, integer and bool types, each only where it is exact or continuous:
    float -> int of exact values within range, down-casts of floats of exact values."""
    x = b.pick([t for t in b.pool if t.size > 0] or [float_operand(b)])
    choices: list[np.dtype] = []
    for target in (*FLOATS, *INTS, BOOL):
        if target == x.dtype:
            choices.append(target)  # a no-op Cast (eliminate-noop)
        elif x.dtype == BOOL:
            choices.append(target)
        elif target == BOOL:
            if x.exact:
                choices.append(target)
        elif target in INTS:
            if x.exact and x.bound < 2 ** 20:
                choices.append(target)
        elif x.is_int:
            if x.bound <= limit_of(target) and (target != np.dtype(np.float16) or x.bound <= 2048):
                choices.append(target)
        elif x.exact or np.dtype(target).itemsize >= x.dtype.itemsize:
            if x.bound <= limit_of(target):
                choices.append(target)
    target = b.pick(choices)
    if b.float_type == np.dtype(np.float16) and target in FLOATS and target != x.dtype and b.chance(0.5):
        raise Skip("keep float16 graphs mostly float16")
    widening = np.dtype(target).itemsize >= x.dtype.itemsize
    exact = x.exact and (target not in FLOATS or x.dtype == BOOL or x.is_int or widening)
    bound = 1.0 if target == BOOL else x.bound
    if b.chance(0.2) and b.opset >= 15:
        like = b.const(np.zeros(()), dtype=target)
        b.node("CastLike", [x, like], [b.like(x, dtype=np.dtype(target), bound=bound, exact=exact)])
        return
    from onnx import helper  # noqa: TID251

    b.node("Cast", [x], [b.like(x, dtype=np.dtype(target), bound=bound, exact=exact)],
           to=helper.np_dtype_to_tensor_dtype(np.dtype(target)))


_REDUCE_BOUND: dict[str, Callable[[float, int], float]] = {
    "ReduceSum": lambda bd, n: bd * n, "ReduceMean": lambda bd, n: bd, "ReduceMax": lambda bd, n: bd,
    "ReduceMin": lambda bd, n: bd, "ReduceProd": lambda bd, n: bd ** n, "ReduceL1": lambda bd, n: bd * n,
    "ReduceL2": lambda bd, n: bd * math.sqrt(n), "ReduceSumSquare": lambda bd, n: bd * bd * n,
    "ReduceLogSumExp": lambda bd, n: bd + math.log(n) + 1,
}


def reduce(b: Builder) -> None:
    """Reductions over a random subset of axes, keepdims either way; axes as an attribute or an
    input as the opset asks (ReduceSum from 13, the others from 18)."""
    op = b.pick(list(_REDUCE_BOUND))
    use_int = op in ("ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd") and b.chance(0.25)
    x = int_operand(b, min_rank=1, max_bound=100) if use_int else float_operand(b, min_rank=1)
    if op == "ReduceLogSumExp" and x.bound > 20:
        raise Skip("logsumexp")
    all_axes = b.chance(0.15)
    axes = list(range(x.rank)) if all_axes else reduce_axes(b, x)
    norm = sorted(a % x.rank for a in axes)
    count = int(np.prod([x.shape[a] for a in norm])) if norm else 1
    bound = check_bound(b, x.dtype, _REDUCE_BOUND[op](x.bound, count))
    keep = int(b.chance(0.5))
    dims = tuple(1 if i in norm else d for i, d in enumerate(x.dims)) if keep else \
        tuple(d for i, d in enumerate(x.dims) if i not in norm)
    out = b.like(x, dims=dims, shape=concrete(dims, b.symbols), bound=bound,
                 exact=x.exact and op in ("ReduceMax", "ReduceMin"))
    axes_as_input = b.opset >= 18 or op == "ReduceSum"
    if all_axes and b.chance(0.5):
        b.node(op, [x], [out], keepdims=keep)  # no axes: every axis
    elif axes_as_input:
        b.node(op, [x, b.ints(axes)], [out], keepdims=keep)
    else:
        b.node(op, [x], [out], keepdims=keep, axes=axes)


def arg_reduce(b: Builder) -> None:
    """ArgMax / ArgMin of an exact value (ties: first or last index, as the attribute says)."""
    x = float_operand(b, min_rank=1, exact=True) if b.chance(0.7) else int_operand(b, min_rank=1)
    axis = int(b.rng.integers(-x.rank, x.rank))
    keep = int(b.chance(0.5))
    a = axis % x.rank
    dims = tuple(1 if i == a else d for i, d in enumerate(x.dims)) if keep else \
        tuple(d for i, d in enumerate(x.dims) if i != a)
    b.node(b.pick(["ArgMax", "ArgMin"]), [x], [b.like(x, dtype=np.dtype(np.int64), dims=dims,
                                                      shape=concrete(dims, b.symbols), bound=float(x.shape[a]),
                                                      exact=True)],
           axis=axis, keepdims=keep, select_last_index=int(b.chance(0.3)))


def softmax(b: Builder) -> None:
    x = float_operand(b, min_rank=1)
    axis = int(b.rng.integers(-x.rank, x.rank)) if b.chance(0.5) else -1
    op = b.pick(["Softmax", "Softmax", "LogSoftmax"])
    bound = 1.0 if op == "Softmax" else 2 * x.bound + math.log(max(x.size, 1)) + 1
    b.node(op, [x], [b.like(x, bound=bound, exact=False)], axis=axis)


def cumsum(b: Builder) -> None:
    x = float_operand(b, min_rank=1) if b.chance(0.7) else int_operand(b, min_rank=1, max_bound=100)
    axis = int(b.rng.integers(-x.rank, x.rank))
    n = x.shape[axis % x.rank]
    axis_t = b.const(np.asarray(axis, dtype=b.pick([np.int32, np.int64])), node=False)
    b.node("CumSum", [x, axis_t], [b.like(x, bound=check_bound(b, x.dtype, x.bound * n), exact=x.is_int)],
           exclusive=int(b.chance(0.3)), reverse=int(b.chance(0.3)))


def identity_arith(b: Builder) -> None:
    """The arithmetic identities eliminate-noop removes, and near-misses it must keep: x*1, 1*x,
    x/1, x+0, x-0 with +0.0 and -0.0, and constants that broadcast x to a larger shape."""
    x = float_operand(b) if b.chance(0.8) else int_operand(b)
    op, value = b.pick([("Mul", 1.0), ("Div", 1.0), ("Add", 0.0), ("Add", -0.0), ("Sub", 0.0), ("Sub", -0.0)])
    shape: tuple[int, ...] = b.pick([(), (1,), (1, 1)] + ([tuple(int(d) for d in x.shape)] if not x.symbolic else []))
    c = b.const(np.full(shape, value, dtype=x.dtype))
    dims = broadcast_dims(x.dims, c.dims)
    assert dims is not None
    first = b.chance(0.3) and op in ("Mul", "Add")
    b.feature("arith-identity")
    b.node(op, [c, x] if first else [x, c], [b.like(x, dims=dims, shape=concrete(dims, b.symbols))])


def is_special(b: Builder) -> None:
    """IsNaN / IsInf of a finite value (always false): the flags of IsInf included."""
    x = float_operand(b)
    if b.chance(0.5):
        b.node("IsNaN", [x], [b.like(x, dtype=BOOL, bound=1.0, exact=True)])
    else:
        b.node("IsInf", [x], [b.like(x, dtype=BOOL, bound=1.0, exact=True)],
               detect_negative=int(b.chance(0.7)), detect_positive=int(b.chance(0.7)))


ACTIONS: dict[str, tuple[float, Callable[[Builder], None]]] = {
    "unary": (6.0, unary_float), "rounding": (1.0, rounding), "binary": (7.0, binary_float),
    "binary-int": (2.0, binary_int), "compare": (2.0, compare), "where": (1.0, where), "cast": (2.0, cast),
    "reduce": (2.5, reduce), "arg-reduce": (0.7, arg_reduce), "softmax": (1.2, softmax), "cumsum": (0.7, cumsum),
    "identity-arith": (1.2, identity_arith), "is-special": (0.3, is_special),
}

