"""The decomposed blocks exporters write and mlc's fusions rewrite, in the spellings they match
(and near misses): GELU (erf and tanh forms, every operand order), layer norm, skip layer norm,
bias + GELU, BERT self-attention with its extended mask, BERT embeddings; plus the graph shapes
the cleanup passes work on: constant subgraphs, common subexpressions, dead branches.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from mlc.fuzzing.builder import Builder, Dim, Skip, Tensor, broadcast_dims, concrete
from mlc.fuzzing.operands import check_bound, float_operand, random_dims, varied
from mlc.fuzzing.ops_nn import weights


def _mul(b: Builder, x: Tensor, y: Tensor, bound: float) -> Tensor:
    dims = broadcast_dims(x.dims, y.dims)
    if dims is None:
        raise Skip("broadcast")
    out = b.like(x, dims=dims, shape=concrete(dims, b.symbols), bound=bound, exact=False)
    (z,) = b.node("Mul", [x, y] if b.chance(0.5) else [y, x], [out], pool=False)
    return z


def _binary(b: Builder, op: str, x: Tensor, y: Tensor, bound: float | None = None) -> Tensor:
    """x op y with broadcasting (the output takes x's dtype)."""
    dims = broadcast_dims(x.dims, y.dims)
    if dims is None:
        raise Skip("broadcast")
    out = b.like(x, dims=dims, shape=concrete(dims, b.symbols), bound=x.bound if bound is None else bound,
                 exact=False)
    (z,) = b.node(op, [x, y], [out], pool=False)
    return z


def _scalar(b: Builder, value: float, dtype: np.dtype) -> Tensor:
    shape = b.pick([(), (1,)])
    return b.const(np.full(shape, value, dtype=dtype))


def gelu_erf(b: Builder, x: Tensor | None = None) -> Tensor:
    """x * 0.5 * (1 + Erf(x / sqrt 2)) in one of the orders exporters write. Not on a scalar:
    onnxruntime's own GeluFusion turns a scalar GELU whose constants are [1] into a scalar Gelu
    (its optimizer drops the broadcast to [1], fuzz seed 118), and FastGeluFusion makes a FastGelu
    its kernel refuses (seed 2): upstream bugs the onnxruntime artifact (optimizer on) inherits."""
    x = x if x is not None else float_operand(b, max_bound=100, min_rank=1)
    if x.rank == 0:
        raise Skip("scalar GELU: onnxruntime's own fusions break it")
    if b.chance(0.5):
        scaled = _binary(b, "Div", x, _scalar(b, 1.4142135, x.dtype))
    else:
        scaled = _binary(b, "Mul", x, _scalar(b, 0.70710678, x.dtype))
    (e,) = b.node("Erf", [scaled], [b.like(scaled, bound=1.0, exact=False)], pool=False)
    one = _scalar(b, 1.0, x.dtype)
    p = _binary(b, "Add", e, one, 2.0) if b.chance(0.5) else _binary(b, "Add", one, e, 2.0)
    half = _scalar(b, 0.5, x.dtype)
    order = b.rng.integers(3)
    if order == 0:
        y = _mul(b, _mul(b, x, half, x.bound), p, x.bound * 2)
    elif order == 1:
        y = _mul(b, x, _mul(b, half, p, 1.0), x.bound)
    else:
        y = _mul(b, _mul(b, x, p, 2 * x.bound), half, x.bound)
    b.feature("gelu-erf")
    return y


def gelu_tanh(b: Builder, x: Tensor | None = None) -> Tensor:
    """0.5 * x * (1 + Tanh(0.7978846 * (x + 0.044715 * x^3)))."""
    x = x if x is not None else float_operand(b, max_bound=20, min_rank=1)
    if x.bound > 20 or x.rank == 0:
        # a scalar: onnxruntime's own FastGeluFusion makes a FastGelu its kernel refuses (seed 2)
        raise Skip("cube")
    if b.chance(0.5):
        cube = _binary(b, "Pow", x, _scalar(b, 3.0, x.dtype), x.bound ** 3)
    else:
        sq = _mul(b, x, x, x.bound ** 2)
        cube = _mul(b, sq, x, x.bound ** 3)
    inner = _mul(b, cube, _scalar(b, 0.044715, x.dtype), 0.05 * x.bound ** 3)
    s = _binary(b, "Add", x, inner, x.bound + 0.05 * x.bound ** 3)
    scaled = _mul(b, s, _scalar(b, 0.7978846, x.dtype), s.bound)
    (t,) = b.node("Tanh", [scaled], [b.like(scaled, bound=1.0, exact=False)], pool=False)
    p = _binary(b, "Add", t, _scalar(b, 1.0, x.dtype), 2.0)
    y = _mul(b, _mul(b, _scalar(b, 0.5, x.dtype), x, x.bound), p, 2 * x.bound)
    b.feature("gelu-tanh")
    return y


def gelu_forms(b: Builder) -> None:
    b.pool.append(gelu_erf(b) if b.chance(0.6) else gelu_tanh(b))


def layernorm_decomposed(b: Builder, x: Tensor | None = None) -> Tensor:
    """ReduceMean / Sub / Pow|Mul / ReduceMean / Add eps / Sqrt|Pow .5 / Div|Mul Reciprocal /
    Mul gamma / Add beta over the last k axes."""
    x = x if x is not None else float_operand(b, min_rank=1, extra=lambda t: isinstance(t.dims[-1], int))
    static_tail = 0
    for d in reversed(x.dims):
        if not isinstance(d, int):
            break
        static_tail += 1
    if static_tail == 0:
        raise Skip("layernorm over a symbolic dim")
    count = int(b.rng.integers(1, min(static_tail, 2) + 1))
    x = varied(b, x, count)
    axes = list(range(-count, 0)) if b.chance(0.7) else list(range(x.rank - count, x.rank))

    def mean(t: Tensor, bound: float) -> Tensor:
        dims = (*t.dims[:-count], *[1] * count)
        out = b.like(t, dims=dims, shape=concrete(dims, b.symbols), bound=bound, exact=False)
        if b.opset >= 18:
            (m,) = b.node("ReduceMean", [t, b.ints(axes)], [out], pool=False)
        else:
            (m,) = b.node("ReduceMean", [t], [out], pool=False, axes=axes)
        return m

    mu = mean(x, x.bound)
    (d,) = b.node("Sub", [x, mu], [b.like(x, bound=2 * x.bound, exact=False)], pool=False)
    if b.chance(0.5):
        sq = _binary(b, "Pow", d, _scalar(b, 2.0, x.dtype), d.bound ** 2)
    else:
        sq = _mul(b, d, d, d.bound ** 2)
    var = mean(sq, sq.bound)
    eps = float(b.pick([1e-5, 1e-12, 1e-6]))
    ve = _binary(b, "Add", var, _scalar(b, eps, x.dtype))
    if b.chance(0.7):
        (std,) = b.node("Sqrt", [ve], [b.like(ve)], pool=False)
    else:
        std = _binary(b, "Pow", ve, _scalar(b, 0.5, x.dtype))
    n_elems = int(np.prod(x.shape[-count:]))
    nb = math.sqrt(n_elems)
    if b.chance(0.7):
        n = _binary(b, "Div", d, std, nb)
    else:
        (r,) = b.node("Reciprocal", [std], [b.like(std)], pool=False)
        n = _mul(b, d, r, nb)
    norm_shape = tuple(int(s) for s in x.shape[-count:])
    if b.chance(0.2):
        norm_shape = (*[1] * (x.rank - count), *norm_shape)
    y, bound = n, nb
    if b.chance(0.8):
        gamma = b.const(np.asarray(b.rng.uniform(0.5, 1.5, size=norm_shape), dtype=x.dtype))
        bound *= 1.5
        y = _mul(b, y, gamma, bound)
    if b.chance(0.7):
        beta = b.const(np.asarray(b.rng.uniform(-1, 1, size=norm_shape), dtype=x.dtype))
        bound += 1.0
        y = _binary(b, "Add", y, beta, bound) if b.chance(0.6) else _binary(b, "Add", beta, y, bound)
    b.feature("layernorm-decomposed")
    return y


def layernorm_pattern(b: Builder) -> None:
    b.pool.append(layernorm_decomposed(b))


def _hidden(b: Builder) -> Tensor:
    """A [B, S, H] activation of the graph's float type."""
    def fits(t: Tensor) -> bool:
        return t.dtype == b.float_type and t.rank == 3 and isinstance(t.dims[2], int) and t.bound <= 20

    def make() -> Tensor:
        dims = random_dims(b, 3)
        dims = (dims[0], dims[1], int(b.pick([2, 4, 6, 8])))
        return b.input(b.float_type, dims, bound=2.0)

    return b.choose(fits, make, prefer_fresh=0.3)


def skip_layernorm(b: Builder) -> None:
    """LayerNormalization(Add(a, b) [+ bias]) over the last axis (SkipLayerNormalization)."""
    if b.opset < 17:
        raise Skip("opset")
    a = varied(b, _hidden(b), 1)
    hidden = int(a.shape[2])
    other = b.input(a.dtype, a.dims, bound=2.0) if b.chance(0.6) else a
    (s,) = b.node("Add", [a, other], [b.like(a, bound=a.bound + other.bound, exact=False)], pool=False)
    if b.chance(0.4):
        bias = b.const(np.asarray(b.rng.uniform(-1, 1, size=(hidden,)), dtype=a.dtype))
        (s,) = b.node("Add", [s, bias], [b.like(s, bound=s.bound + 1)], pool=b.chance(0.2))
    gamma = b.const(np.asarray(b.rng.uniform(0.5, 1.5, size=(hidden,)), dtype=a.dtype))
    beta = b.const(np.asarray(b.rng.uniform(-1, 1, size=(hidden,)), dtype=a.dtype))
    b.feature("skip-layernorm")
    b.node("LayerNormalization", [s, gamma, beta], [b.like(s, bound=1.5 * math.sqrt(hidden) + 1)], axis=-1,
           epsilon=float(b.pick([1e-5, 1e-12])))


def bias_gelu(b: Builder) -> None:
    """Gelu(Add(MatMul(x, W), bias)): a transformer's feed-forward layer (BiasGelu/FastGelu)."""
    x = _hidden(b)
    k = int(x.shape[2])
    n = int(b.pick([2, 4, 8]))
    w = weights(b, (k, n), k)
    (m,) = b.node("MatMul", [x, b.const(w)], [b.like(x, dims=(*x.dims[:2], n), shape=(*x.shape[:2], n),
                                                       bound=float(np.abs(w).sum(axis=0).max() * x.bound),
                                                       exact=False)], pool=False)
    bias = b.const(np.asarray(b.rng.uniform(-1, 1, size=(n,)), dtype=x.dtype))
    (h,) = b.node("Add", [m, bias] if b.chance(0.7) else [bias, m], [b.like(m, bound=m.bound + 1)], pool=False)
    if b.opset >= 20 and b.chance(0.4):
        attrs = {"approximate": "tanh"} if b.chance(0.4) else {}
        b.node("Gelu", [h], [b.like(h)], **attrs)
    else:
        b.pool.append(gelu_erf(b, h) if b.chance(0.6) else gelu_tanh(b, h))
    b.feature("bias-gelu")


def attention(b: Builder) -> None:
    """BERT self-attention: Q/K/V projections, head split, scaled scores, the extended mask,
    Softmax, context, head merge (fuse-attention's pattern, its K-transpose variants)."""
    heads = int(b.pick([1, 2, 2, 4]))
    head = int(b.pick([2, 4]))
    hidden = heads * head
    dims0 = random_dims(b, 3)
    batch, seq = dims0[0], dims0[1]
    x = b.choose(lambda t: t.dtype == b.float_type and t.rank == 3 and t.dims[2] == hidden and t.bound <= 20,
                 lambda: b.input(b.float_type, (batch, seq, hidden), bound=2.0), prefer_fresh=0.4)
    batch, seq = x.dims[0], x.dims[1]
    f = x.dtype

    def project() -> Tensor:
        w = weights(b, (hidden, hidden), hidden)
        bias = b.const(np.asarray(b.rng.uniform(-0.5, 0.5, size=(hidden,)), dtype=f))
        bound = float(np.abs(w).sum(axis=0).max() * x.bound + 0.5)
        (m,) = b.node("MatMul", [x, b.const(w)], [b.like(x, bound=bound, exact=False)], pool=False)
        (q,) = b.node("Add", [m, bias] if b.chance(0.8) else [bias, m], [b.like(m, bound=bound)], pool=False)
        return q

    def heads_of(t: Tensor, perm: list[int]) -> Tensor:
        dims4: tuple[Dim, ...] = (batch, seq, heads, head)
        (r,) = b.node("Reshape", [t, b.ints([0, 0, heads, head])],
                      [b.like(t, dims=dims4, shape=concrete(dims4, b.symbols))], pool=False)
        pd = tuple(dims4[p] for p in perm)
        (tr,) = b.node("Transpose", [r], [b.like(r, dims=pd, shape=concrete(pd, b.symbols))], pool=False, perm=perm)
        return tr

    q = heads_of(project(), [0, 2, 1, 3])
    k_form = b.chance(0.5)
    k = heads_of(project(), [0, 2, 3, 1] if k_form else [0, 2, 1, 3])
    if not k_form:
        kd = (k.dims[0], k.dims[1], k.dims[3], k.dims[2])
        (k,) = b.node("Transpose", [k], [b.like(k, dims=kd, shape=concrete(kd, b.symbols))], pool=False,
                      perm=[0, 1, 3, 2])
    v = heads_of(project(), [0, 2, 1, 3])
    sd: tuple[Dim, ...] = (batch, heads, seq, seq)
    score_bound = q.bound * k.bound * head
    if score_bound > 200:
        raise Skip("scores")
    (s,) = b.node("MatMul", [q, k], [b.like(q, dims=sd, shape=concrete(sd, b.symbols), bound=score_bound)], pool=False)
    if b.chance(0.6):
        s = _binary(b, "Div", s, _scalar(b, math.sqrt(head), f))
    else:
        s = _binary(b, "Mul", s, _scalar(b, 1 / math.sqrt(head), f))
    if b.chance(0.6):
        mask = b.input(np.dtype(np.int64), (batch, seq), low=0, high=1, pool=False)
        fill = b.feeds[mask.name]
        if fill.size and b.chance(0.8):
            fill[..., 0] = 1  # most rows keep a key (a fully masked row now and then)
        d3 = (batch, 1, seq)
        (u1,) = b.node("Unsqueeze", [mask, b.ints([1])], [b.like(mask, dims=d3, shape=concrete(d3, b.symbols))],
                       pool=False)
        md = (batch, 1, 1, seq)
        (u2,) = b.node("Unsqueeze", [u1, b.ints([2])], [b.like(u1, dims=md, shape=concrete(md, b.symbols))], pool=False)
        from onnx import helper  # noqa: TID251

        (cf,) = b.node("Cast", [u2], [b.like(u2, dtype=f)], pool=False, to=helper.np_dtype_to_tensor_dtype(f))
        inv = _binary(b, "Sub", _scalar(b, 1.0, f), cf, 1.0)
        c = float(b.pick([-10000.0, float(np.finfo(f).min)]))
        ext = _binary(b, "Mul", inv, _scalar(b, c, f), abs(c))
        (s,) = b.node("Add", [s, ext], [b.like(s, bound=abs(c))], pool=False)
    (p,) = b.node("Softmax", [s], [b.like(s, bound=1.0)], pool=False, axis=-1)
    cd = (batch, heads, seq, head)
    (ctx,) = b.node("MatMul", [p, v], [b.like(v, dims=cd, shape=concrete(cd, b.symbols), bound=v.bound)], pool=False)
    td = (batch, seq, heads, head)
    (t,) = b.node("Transpose", [ctx], [b.like(ctx, dims=td, shape=concrete(td, b.symbols))], pool=False,
                  perm=[0, 2, 1, 3])
    od = (batch, seq, hidden)
    b.feature("attention")
    b.node("Reshape", [t, b.ints([0, 0, hidden])], [b.like(t, dims=od, shape=concrete(od, b.symbols))])


def embeddings(b: Builder) -> None:
    """LayerNormalization(Gather(W, ids) + Gather(T, segments) + Gather(P, positions)) with
    positions a Slice of a constant arange up to the sequence length (EmbedLayerNormalization)."""
    if b.opset < 17:
        raise Skip("opset")
    vocab, hidden = int(b.rng.integers(5, 20)), int(b.pick([2, 4, 8]))
    dims = random_dims(b, 2)
    ids = b.input(np.dtype(np.int64), dims, low=0, high=vocab - 1, pool=False)
    seq_len = int(ids.shape[1])
    f = b.float_type
    table = b.const(np.asarray(b.rng.normal(0, 0.5, size=(vocab, hidden)), dtype=f))
    out_dims = (*ids.dims, hidden)
    out = {"dtype": f, "dims": out_dims, "shape": concrete(out_dims, b.symbols), "bound": 3.0, "exact": False}
    (words,) = b.node("Gather", [table, ids], [out], pool=False)
    terms = [words]
    if b.chance(0.7):
        segments = b.input(np.dtype(np.int64), dims, low=0, high=1, pool=False)
        types = b.const(np.asarray(b.rng.normal(0, 0.5, size=(2, hidden)), dtype=f))
        (seg,) = b.node("Gather", [types, segments], [out], pool=False)
        terms.append(seg)
    max_pos = seq_len + int(b.rng.integers(0, 4))
    positions_table = b.const(np.asarray(b.rng.normal(0, 0.5, size=(max_pos, hidden)), dtype=f))
    arange = b.const(np.arange(max_pos, dtype=np.int64).reshape(1, max_pos))
    i64 = np.dtype(np.int64)
    (shape,) = b.node("Shape", [ids], [{"dtype": i64, "dims": (2,), "shape": (2,), "bound": 64.0, "exact": True}],
                      pool=False)
    (length,) = b.node("Gather", [shape, b.ints(1)], [{"dtype": i64, "dims": (), "shape": (), "bound": 64.0,
                                                       "exact": True}], pool=False)
    (end,) = b.node("Unsqueeze", [length, b.ints([0])], [{"dtype": i64, "dims": (1,), "shape": (1,), "bound": 64.0,
                                                          "exact": True}], pool=False)
    pd = (1, dims[1])
    (pos,) = b.node("Slice", [arange, b.ints([0]), end, b.ints([1])],
                    [{"dtype": i64, "dims": pd, "shape": concrete(pd, b.symbols), "bound": float(max_pos),
                      "exact": True}], pool=False)
    pe_dims = (1, dims[1], hidden)
    (pe,) = b.node("Gather", [positions_table, pos], [{**out, "dims": pe_dims, "shape": concrete(pe_dims, b.symbols)}],
                   pool=False)
    terms.append(pe)
    order = [int(i) for i in b.rng.permutation(len(terms))]
    total = terms[order[0]]
    for i in order[1:]:
        (total,) = b.node("Add", [total, terms[i]], [dict(out)], pool=False)
    gamma = b.const(np.asarray(b.rng.uniform(0.5, 1.5, size=(hidden,)), dtype=f))
    beta = b.const(np.asarray(b.rng.uniform(-1, 1, size=(hidden,)), dtype=f))
    b.feature("embed-layernorm")
    b.node("LayerNormalization", [total, gamma, beta], [{**out, "bound": 1.5 * math.sqrt(hidden) + 1}], axis=-1,
           epsilon=1e-12)


def constant_subgraph(b: Builder) -> None:
    """Ops over constants only (fold-constants), the result mixed into the data."""
    x = float_operand(b)
    shape = tuple(1 if isinstance(d, str) else int(d) for d in x.dims)
    c1 = b.const(np.asarray(b.rng.uniform(-1, 1, size=shape), dtype=x.dtype), node=b.chance(0.3))
    roll = b.rng.random()
    if roll < 0.3:
        (c,) = b.node(b.pick(["Exp", "Tanh", "Neg", "Abs", "Sigmoid"]), [c1], [b.like(c1, bound=3.0)], pool=False)
    elif roll < 0.6:
        c2 = b.const(np.asarray(b.rng.uniform(-1, 1, size=shape), dtype=x.dtype))
        (c,) = b.node(b.pick(["Add", "Mul", "Sub", "Max"]), [c1, c2], [b.like(c1, bound=2.0)], pool=False)
    else:
        flat = (c1.size,)
        (r,) = b.node("Reshape", [c1, b.ints([-1])], [b.like(c1, dims=flat, shape=flat)], pool=False)
        (c,) = b.node("Reshape", [r, b.ints(list(shape))], [b.like(c1)], pool=False)
    b.feature("constant-subgraph")
    (y,) = b.node(b.pick(["Add", "Mul"]), [x, c], [b.like(x, bound=check_bound(b, x.dtype, x.bound * 3 + 3),
                                                         exact=False)], pool=False)
    b.pool.append(y)


def constant_chain(b: Builder) -> None:
    """A few random actions over constants only (a constant region fold-constants evaluates with
    onnx's reference evaluator: Slices, Gathers, Pads, reductions, casts... of a weight), the result
    mixed into the data (through its mean when it does not broadcast)."""
    from mlc.fuzzing import ops_elementwise, ops_shape

    x = float_operand(b)
    dims = tuple(int(d) for d in b.rng.integers(1, 5, size=int(b.rng.integers(1, 4))))
    start = b.const(np.asarray(b.rng.uniform(-2, 2, size=dims), dtype=x.dtype))
    saved, b.pool, b.constant_only = b.pool, [start], True
    names = ["unary", "binary", "reduce", "softmax", "cumsum", "cast", "rounding", "compare", "reshape", "transpose",
             "slice", "gather", "concat", "split", "expand", "tile", "pad", "flatten", "squeeze", "unsqueeze"]
    table = {**ops_elementwise.ACTIONS, **ops_shape.ACTIONS}
    try:
        for _ in range(int(b.rng.integers(1, 4))):
            snap = b.snapshot()
            try:
                table[b.pick(names)][1](b)
            except Skip:
                b.rollback(snap)
    finally:
        chain, b.pool, b.constant_only = b.pool, saved, False
    produced = {o for n in b.nodes for o in n.output}
    made = [t for t in chain if t.name in produced and t.dtype == x.dtype and t.size > 0]
    if not made:
        raise Skip("the chain made nothing of x's type")
    c = made[-1]
    if broadcast_dims(x.dims, c.dims) is None or c.bound > 100:
        (c,) = b.node("ReduceMean", [c], [b.like(c, dims=(), shape=(), bound=min(c.bound, 1e4))], pool=False,
                      keepdims=0)
    out_dims = broadcast_dims(x.dims, c.dims)
    assert out_dims is not None
    b.feature("constant-chain")
    bound = check_bound(b, x.dtype, x.bound + c.bound)
    b.node("Add", [x, c], [b.like(x, dims=out_dims, shape=concrete(out_dims, b.symbols), bound=bound, exact=False)])


def common_subexpression(b: Builder) -> None:
    """The same node twice (cse), both results read."""
    known = {t.name: t for t in [*b.pool, *b.constants, *b.inputs]}
    candidates = [n for n in b.nodes if n.op_type not in ("Constant", "If", "Loop", "Dropout") and n.output
                  and all(o in known for o in n.output) and all(not i or i in known for i in n.input)]
    if not candidates:
        raise Skip("no candidate")
    node = b.pick(candidates)
    from onnx import helper  # noqa: TID251

    b.feature("cse")
    b.node(node.op_type, [known[i] if i else None for i in node.input], [b.like(known[o]) for o in node.output],
           domain=node.domain, **{a.name: helper.get_attribute_value(a) for a in node.attribute})


ACTIONS: dict[str, tuple[float, Callable[[Builder], None]]] = {
    "gelu-forms": (1.0, gelu_forms), "layernorm-decomposed": (1.0, layernorm_pattern),
    "skip-layernorm": (0.6, skip_layernorm), "bias-gelu": (0.6, bias_gelu), "attention": (0.8, attention),
    "embeddings": (0.4, embeddings), "constant-subgraph": (1.0, constant_subgraph),
    "constant-chain": (1.2, constant_chain), "cse": (1.0, common_subexpression),
}
