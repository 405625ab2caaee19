"""Sub-graph actions: If (constant, fed or computed condition) and Loop (a fixed trip count, a
loop-carried value, a scan output), with small bodies that read values of the enclosing graph
and constants of their own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import onnx  # noqa: TID251 - sub-graphs are built as protobuf graphs
from onnx import helper  # noqa: TID251

from mlc.fuzzing.builder import BOOL, Builder, Tensor
from mlc.fuzzing.operands import float_operand


@contextmanager
def body(b: Builder) -> Iterator[tuple[list[onnx.NodeProto], list[onnx.TensorProto]]]:
    """Collect the nodes and initializers made inside the block into a sub-graph's lists."""
    saved = b.nodes, b.initializers
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    b.nodes, b.initializers = nodes, inits
    try:
        yield nodes, inits
    finally:
        b.nodes, b.initializers = saved


def _elementwise_chain(b: Builder, x: Tensor, steps: int) -> Tensor:
    for _ in range(steps):
        op = b.pick(["Relu", "Neg", "Sigmoid", "Tanh", "Abs", "Mul", "Add", "Identity"])
        if op in ("Mul", "Add"):
            c = b.const(np.asarray(b.rng.uniform(-1.5, 1.5), dtype=x.dtype), node=b.chance(0.3))
            bound = x.bound * 1.5 if op == "Mul" else x.bound + 1.5
            (x,) = b.node(op, [x, c], [b.like(x, bound=bound, exact=False)], pool=False)
        else:
            bound = 1.0 if op in ("Sigmoid", "Tanh") else x.bound
            (x,) = b.node(op, [x], [b.like(x, bound=bound, exact=x.exact and op not in ("Sigmoid", "Tanh"))],
                          pool=False)
    return x


def _value_info(t: Tensor, named: str | None = None) -> onnx.ValueInfoProto:
    dims = [d if isinstance(d, int) or d in ("N", "S") else None for d in t.dims]
    return helper.make_tensor_value_info(named or t.name, helper.np_dtype_to_tensor_dtype(t.dtype), dims)


def if_op(b: Builder) -> None:
    """If(cond) with branches computing different functions of outer values."""
    x = float_operand(b, max_bound=100)
    roll = b.rng.random()
    if roll < 0.3:
        b.feature("if-constant")
        cond = b.const(np.asarray(b.chance(0.5), dtype=BOOL).reshape(b.pick([(), (1,)])), node=b.chance(0.5))
    elif roll < 0.6:
        cond = b.input(BOOL, (), pool=False)
    else:
        probe = b.choose(lambda t: t.is_float and t.exact and t.size > 0, lambda: float_operand(b, exact=True))
        (m,) = b.node("ReduceMax", [probe], [b.like(probe, dims=(), shape=())], pool=False, keepdims=0)
        zero = b.const(np.asarray(0.0, dtype=probe.dtype))
        (cond,) = b.node("Less", [m, zero], [b.like(m, dtype=BOOL, bound=1.0)], pool=False)
    two = b.chance(0.3)
    branches = []
    results: list[list[Tensor]] = []
    for name in ("then", "else"):
        with body(b) as (nodes, inits):
            outs = [_elementwise_chain(b, x, int(b.rng.integers(1, 4)))]
            if two:
                outs.append(_elementwise_chain(b, x, 1))
            outs = [b.node("Identity", [o], [b.like(o)], pool=False)[0] if o.name == x.name else o for o in outs]
        results.append(outs)
        branches.append(helper.make_graph(nodes, b.fresh(name), [], [_value_info(o) for o in outs], inits))
    made = [b.like(x, bound=max(t.bound, e.bound), exact=False) for t, e in zip(*results, strict=True)]
    b.feature("if")
    b.node("If", [cond], made, then_branch=branches[0], else_branch=branches[1])


def loop(b: Builder) -> None:
    """Loop(M, cond) carrying v: v = Tanh(v * c + x + i * d), with a scan output of each v."""
    x = float_operand(b, max_bound=100)
    trips = int(b.rng.integers(1, 4))
    count = b.const(np.asarray(trips, dtype=np.int64))
    cond = b.const(np.asarray(True), node=False) if b.chance(0.5) else None
    i64 = np.dtype(np.int64)
    it = Tensor(b.fresh("iter"), i64, (), (), float(trips), True)
    cin = Tensor(b.fresh("cond"), BOOL, (), (), 1.0, True)
    v_in = Tensor(b.fresh("v"), x.dtype, x.shape, x.dims, 1.0, False)
    scan = b.chance(0.5)
    with body(b) as (nodes, inits):
        c = b.const(np.asarray(b.rng.uniform(-1, 1), dtype=x.dtype), node=b.chance(0.5))
        (t,) = b.node("Mul", [v_in, c], [b.like(x, bound=1.0)], pool=False)
        (u,) = b.node("Add", [t, x], [b.like(x, bound=1.0 + x.bound)], pool=False)
        (fi,) = b.node("Cast", [it], [b.like(it, dtype=x.dtype)], pool=False,
                       to=helper.np_dtype_to_tensor_dtype(x.dtype))
        d = b.const(np.asarray(0.25, dtype=x.dtype))
        (fd,) = b.node("Mul", [fi, d], [b.like(fi, bound=1.0)], pool=False)
        (w,) = b.node("Add", [u, fd], [b.like(u)], pool=False)
        (v_out,) = b.node("Tanh", [w], [b.like(x, bound=1.0)], pool=False)
        (c_out,) = b.node("Identity", [cin], [b.like(cin)], pool=False)
        outs = [c_out, v_out]
        if scan:
            (s,) = b.node("Identity", [v_out], [b.like(v_out)], pool=False)
            outs.append(s)
    graph = helper.make_graph(nodes, b.fresh("body"), [_value_info(it), _value_info(cin), _value_info(v_in)],
                              [_value_info(o) for o in outs], inits)
    start = b.const(np.asarray(b.rng.uniform(-1, 1, size=x.shape), dtype=x.dtype)) if not x.symbolic else x
    results = [b.like(x, bound=1.0, exact=False)]
    if scan:
        dims = (trips, *x.dims)
        results.append(b.like(x, dims=dims, shape=(trips, *x.shape), bound=1.0, exact=False))
    b.feature("loop")
    b.node("Loop", [count, cond, start], results, body=graph)


ACTIONS: dict[str, tuple[float, Callable[[Builder], None]]] = {"if": (1.0, if_op), "loop": (0.4, loop)}

