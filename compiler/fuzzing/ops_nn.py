"""Neural-network actions: MatMul, Gemm, Conv, ConvTranspose, BatchNormalization, pooling,
normalizations, each with the neighbours mlc's fusions look for (a bias Add, a per-channel
Mul/Add, a BatchNormalization, a Pad before, an activation after).

Weights are constants scaled by 1/sqrt(fan-in), and every output's bound is computed from the
actual weights (sum of |w| per output channel), so chains of layers stay in range.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from mlc.fuzzing.builder import Builder, Dim, Skip, Tensor, broadcast_dims, concrete
from mlc.fuzzing.operands import check_bound, derived, float_operand, random_dims, varied

ACTIVATIONS = ("Relu", "Sigmoid", "Tanh", "LeakyRelu", "HardSigmoid", "Clip")


def weights(b: Builder, shape: tuple[int, ...], fan_in: int) -> np.ndarray:
    scale = 1.0 / math.sqrt(max(fan_in, 1))
    values = b.rng.uniform(-scale, scale, size=shape) * b.pick([1.0, 1.0, 2.0])
    if b.chance(0.1) and len(shape) >= 1 and shape[0] > 1:
        values[int(b.rng.integers(shape[0]))] = 0.0  # a zero output channel (prune-zero-channels)
    return np.asarray(values, dtype=b.float_type)


def activation(b: Builder, x: Tensor, op: str | None = None) -> Tensor:
    """An activation after a layer (FusedConv / FusedGemm take these)."""
    op = op or b.pick(ACTIVATIONS)
    if op == "Clip":
        lo = b.const(np.asarray(0.0, dtype=x.dtype), node=False)
        hi = b.const(np.asarray(6.0, dtype=x.dtype), node=False)
        (y,) = b.node("Clip", [x, lo, hi], [b.like(x, bound=min(x.bound, 6.0), exact=False)], pool=False)
        return y
    attrs: dict[str, float] = {}
    if op == "LeakyRelu":
        attrs = {"alpha": float(b.pick([0.01, 0.2]))}
    elif op == "HardSigmoid":
        attrs = {"alpha": 0.2, "beta": 0.5}
    bound = x.bound if op in ("Relu", "LeakyRelu") else 1.0
    (y,) = b.node(op, [x], [b.like(x, bound=bound, exact=False)], pool=False, **attrs)
    return y


def channel_affine(b: Builder, x: Tensor, axis: int) -> Tensor:
    """Mul and/or Add by per-channel constants along `axis` ([C,1,1], [1,C,1,1], [C] last axis or
    a scalar): fuse-conv-affine folds these into the layer."""
    channels = int(x.shape[axis])
    for op in [o for o in ("Mul", "Add") if b.chance(0.6)]:
        form = b.rng.random()
        if form < 0.15:
            shape: tuple[int, ...] = ()
        else:
            trailing = x.rank - axis - 1
            shape = (channels, *([1] * trailing))
            if b.chance(0.4):
                shape = (*([1] * (x.rank - len(shape))), *shape)
        low = 0.5 if op == "Mul" else -1.0
        c = b.const(np.asarray(b.rng.uniform(low, 1.5, size=shape) * (b.rng.choice([-1, 1], size=shape)
                                                                         if op == "Mul" else 1), dtype=x.dtype))
        bound = x.bound * 1.5 if op == "Mul" else x.bound + 1.5
        first = b.chance(0.3)
        (x,) = b.node(op, [c, x] if first else [x, c], [b.like(x, bound=check_bound(b, x.dtype, bound), exact=False)],
                      pool=False)
    return x


def batchnorm(b: Builder, x: Tensor) -> Tensor:
    channels = int(x.shape[1])
    scale = b.rng.uniform(0.5, 1.5, size=channels) * b.rng.choice([-1, 1], size=channels)
    bias = b.rng.uniform(-1, 1, size=channels)
    mean = b.rng.uniform(-0.5, 0.5, size=channels)
    var = b.rng.uniform(0.25, 2.0, size=channels)
    if b.chance(0.1):
        var[0] = b.pick([1e-3, 1e-5, 0.0])  # near-degenerate variance (scale becomes large)
    eps = float(b.pick([1e-5, 1e-3]))
    params = [b.const(np.asarray(v, dtype=x.dtype)) for v in (scale, bias, mean, var)]
    factor = np.abs(scale) / np.sqrt(var + eps)
    bound = float(np.max(factor) * (x.bound + 0.5) + 1.0)
    (y,) = b.node("BatchNormalization", [x, *params], [b.like(x, bound=check_bound(b, x.dtype, bound), exact=False)],
                  pool=False, epsilon=eps)
    b.feature("batchnorm")
    return y


def _image(b: Builder, spatial: int) -> Tensor:
    def fits(t: Tensor) -> bool:
        return (t.dtype == b.float_type and t.rank == 2 + spatial and isinstance(t.dims[1], int)
                and all(isinstance(d, int) and d >= 2 for d in t.dims[2:]) and t.bound <= 50 and t.size <= 4096)

    def make() -> Tensor:
        n: Dim = "N" if "N" in b.symbols and b.chance(0.6) else int(b.rng.integers(1, 3))
        dims = (n, int(b.rng.integers(1, 7)), *[int(b.rng.integers(3, 9)) for _ in range(spatial)])
        return b.input(b.float_type, dims, bound=2.0)

    return b.choose(fits, make, prefer_fresh=0.2)


def _window(b: Builder, size: int, allow_dilation: bool = True) -> tuple[int, int, int, int, int]:
    """(kernel, stride, dilation, pad_begin, pad_end) valid for a spatial dim `size`."""
    for _ in range(20):
        k = int(b.rng.integers(1, 4))
        s = int(b.pick([1, 1, 2]))
        d = int(b.pick([1, 1, 1, 2])) if allow_dilation else 1
        pb = int(b.rng.integers(0, k))
        pe = int(b.rng.integers(0, k))
        if size + pb + pe >= d * (k - 1) + 1:
            return k, s, d, pb, pe
    raise Skip("window")


def conv(b: Builder) -> None:
    """[Pad] -> Conv -> [BatchNormalization] -> [per-channel Mul/Add] -> [activation], groups,
    strides, dilations, asymmetric pads, auto_pad; 1-D or 2-D."""
    spatial = int(b.pick([1, 2, 2, 2]))
    x = _image(b, spatial)
    channels = int(x.shape[1])
    if b.chance(0.2):
        pads = [0, 0, *[int(b.rng.integers(0, 2)) for _ in range(spatial)]] * 2
        pads = pads[: 2 + spatial] + pads[2 + spatial:]
        value = [b.const(np.asarray(0.0, dtype=x.dtype))] if b.chance(0.5) else []
        dims = tuple(d if i < 2 else int(d) + pads[i] + pads[i + 2 + spatial] for i, d in enumerate(x.dims))
        (x,) = b.node("Pad", [x, b.ints(pads), *value], [b.like(x, dims=dims, shape=concrete(dims, b.symbols),
                                                                bound=x.bound)], pool=False)
        b.feature("pad-conv")
    divisors = [g for g in range(1, channels + 1) if channels % g == 0]
    group = int(b.pick(divisors)) if b.chance(0.4) else 1
    out_channels = group * int(b.rng.integers(1, 4))
    windows = [_window(b, int(x.shape[2 + i])) for i in range(spatial)]
    kernel = [w[0] for w in windows]
    attrs: dict[str, object] = {"kernel_shape": kernel} if b.chance(0.7) else {}
    auto = b.chance(0.1)
    out_dims: list[Dim] = [x.dims[0], out_channels]
    if auto:
        attrs["auto_pad"] = b.pick(["SAME_UPPER", "SAME_LOWER", "VALID"])
        strides = [w[1] for w in windows]
        attrs["strides"] = strides
        for i, (k, s, _, _, _) in enumerate(windows):
            size = int(x.shape[2 + i])
            out = -(-size // s) if attrs["auto_pad"] != "VALID" else (size - k) // s + 1
            if out < 1:
                raise Skip("conv window")
            out_dims.append(out)
    else:
        attrs["strides"] = [w[1] for w in windows]
        attrs["dilations"] = [w[2] for w in windows]
        attrs["pads"] = [w[3] for w in windows] + [w[4] for w in windows]
        for i, (k, s, d, pb, pe) in enumerate(windows):
            out_dims.append((int(x.shape[2 + i]) + pb + pe - d * (k - 1) - 1) // s + 1)
    if group > 1:
        attrs["group"] = group
    fan_in = channels // group * int(np.prod(kernel))
    w = weights(b, (out_channels, channels // group, *kernel), fan_in)
    inputs = [x, b.const(w)]
    bias = None
    if b.chance(0.6):
        bias = np.asarray(b.rng.uniform(-1, 1, size=out_channels), dtype=x.dtype)
        inputs.append(b.const(bias))
    per_channel = np.abs(w.astype(np.float64)).reshape(out_channels, -1).sum(axis=1)
    bound = float(np.max(per_channel) * x.bound + (np.max(np.abs(bias)) if bias is not None else 0.0))
    dims = tuple(out_dims)
    (y,) = b.node("Conv", inputs, [b.like(x, dims=dims, shape=concrete(dims, b.symbols),
                                          bound=check_bound(b, x.dtype, bound), exact=False)], pool=False, **attrs)
    if b.chance(0.4):
        y = batchnorm(b, y)
    if b.chance(0.3):
        y = channel_affine(b, y, 1)
        b.feature("conv-affine")
    if b.chance(0.5):
        y = activation(b, y)
        b.feature("conv-activation")
    b.pool.append(y)


def conv_transpose(b: Builder) -> None:
    x = _image(b, 2)
    channels = int(x.shape[1])
    group = int(b.pick([g for g in range(1, channels + 1) if channels % g == 0])) if b.chance(0.3) else 1
    per_group = int(b.rng.integers(1, 3))
    kernel = [int(b.rng.integers(1, 4)) for _ in range(2)]
    strides = [int(b.pick([1, 2])) for _ in range(2)]
    pads = [int(b.rng.integers(0, k)) for k in kernel] * 2
    out_pad = [int(b.rng.integers(0, s)) for s in strides] if b.chance(0.3) else [0, 0]
    w = weights(b, (channels, per_group, *kernel), channels // group * int(np.prod(kernel)))
    dims: list[Dim] = [x.dims[0], per_group * group]
    for i in range(2):
        dims.append(strides[i] * (int(x.shape[2 + i]) - 1) + out_pad[i] + kernel[i] - pads[i] - pads[i + 2])
    if min(int(d) for d in dims[2:]) < 1:
        raise Skip("convtranspose")
    attrs: dict[str, object] = {"kernel_shape": kernel, "strides": strides, "pads": pads}
    if group > 1:
        attrs["group"] = group
    if any(out_pad):
        attrs["output_padding"] = out_pad
    bound = float(np.abs(w.astype(np.float64)).sum() * x.bound)
    (y,) = b.node("ConvTranspose", [x, b.const(w)], [b.like(x, dims=tuple(dims), shape=concrete(dims, b.symbols),
                                                            bound=check_bound(b, x.dtype, bound), exact=False)],
                  pool=False, **attrs)
    if b.chance(0.5):
        y = batchnorm(b, y)
    b.pool.append(y)


def pool(b: Builder) -> None:
    op = b.pick(["MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool"])
    x = _image(b, int(b.pick([1, 2, 2])))
    spatial = x.rank - 2
    if op.startswith("Global"):
        dims = (*x.dims[:2], *[1] * spatial)
        b.node(op, [x], [b.like(x, dims=dims, shape=concrete(dims, b.symbols),
                                exact=op == "GlobalMaxPool" and x.exact)])
        return
    windows = [_window(b, int(x.shape[2 + i]), allow_dilation=op == "MaxPool") for i in range(spatial)]
    ceil = int(b.chance(0.15))
    attrs: dict[str, object] = {"kernel_shape": [w[0] for w in windows], "strides": [w[1] for w in windows],
                                "pads": [w[3] for w in windows] + [w[4] for w in windows]}
    if ceil:
        attrs["ceil_mode"] = 1
    if op == "MaxPool" and any(w[2] > 1 for w in windows):
        attrs["dilations"] = [w[2] for w in windows]
    if op == "AveragePool" and b.chance(0.5):
        attrs["count_include_pad"] = 1
    dims_out: list[Dim] = list(x.dims[:2])
    for i, (k, s, d, pb, pe) in enumerate(windows):
        size = int(x.shape[2 + i])
        span = size + pb + pe - d * (k - 1) - 1
        out = (-(-span // s) if ceil else span // s) + 1
        if ceil and (out - 1) * s >= size + pb:
            raise Skip("ceil_mode window starting in the padding: onnx's shape inference and onnxruntime differ")
        dims_out.append(out)
    outs = [b.like(x, dims=tuple(dims_out), shape=concrete(dims_out, b.symbols),
                   exact=op == "MaxPool" and x.exact)]
    b.node(op, [x], outs, **attrs)


def resize(b: Builder) -> None:
    """Resize of an image by scales or sizes: nearest (each nearest_mode) or linear, with the
    coordinate transformations exporters write."""
    if b.opset < 13:
        raise Skip("opset")
    x = _image(b, int(b.pick([1, 2, 2])))
    spatial = x.rank - 2
    mode = b.pick(["nearest", "nearest", "linear"])
    coordinate = b.pick(["half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel"])
    attrs: dict[str, object] = {"mode": mode, "coordinate_transformation_mode": coordinate}
    if mode == "nearest":
        attrs["nearest_mode"] = b.pick(["round_prefer_floor", "floor", "ceil", "round_prefer_ceil"])
    scales = [float(b.pick([2.0, 2.0, 3.0, 0.5, 1.5])) for _ in range(spatial)]
    out = [int(np.floor(int(x.shape[2 + i]) * s)) for i, s in enumerate(scales)]
    if min(out) < 1:
        raise Skip("empty resize")
    dims = (*x.dims[:2], *out)
    empty = b.const(np.zeros(0, dtype=np.float32), node=False)
    if b.chance(0.5):
        inputs = [x, None if b.chance(0.5) else empty, b.const(np.asarray([1.0, 1.0, *scales], np.float32))]
    else:
        inputs = [x, None, None, b.ints([int(x.shape[0]) if isinstance(x.dims[0], int) else 1, int(x.shape[1]), *out])]
        if not isinstance(x.dims[0], int):
            raise Skip("sizes fix every dim")
    b.feature("resize")
    out_t = b.like(x, dims=dims, shape=concrete(dims, b.symbols), exact=mode == "nearest" and x.exact)
    b.node("Resize", inputs, [out_t], **attrs)


def matmul(b: Builder) -> None:
    """x [.., K] @ W [K, N] (constant, or another activation), then maybe a bias Add (Gemm when
    2-D: fuse-matmul-add) and a per-column Mul; 1-D operands and batched products too."""
    x = float_operand(b, min_rank=1, extra=lambda t: isinstance(t.dims[-1], int) and t.bound <= 50)
    k = int(x.shape[-1])
    n = int(b.rng.integers(1, 6))
    roll = b.rng.random()
    if roll < 0.6 or x.rank == 1:
        w = weights(b, (k, n) if not b.chance(0.1) else (k,), k)
        wt = b.const(w)
        col = np.abs(w.astype(np.float64)).sum(axis=0)
        bound = float(np.max(col) * x.bound)
        dims: tuple[Dim, ...] = (*x.dims[:-1], n) if w.ndim == 2 else tuple(x.dims[:-1])
        if x.rank == 1:
            dims = (n,) if w.ndim == 2 else ()
    else:
        batch = x.dims[:-2]
        other_dims = (*[1 if isinstance(d, str) else d for d in batch], k, n) if b.chance(0.5) else (*batch, k, n)
        wt = b.input(x.dtype, other_dims, bound=1.0) if any(isinstance(d, str) for d in other_dims) or b.chance(0.5) \
            else b.const(weights(b, concrete(other_dims, b.symbols), k))
        lead = broadcast_dims(batch, wt.dims[:-2])
        if lead is None:
            raise Skip("batch dims")
        dims = (*lead, x.dims[-2], n)
        bound = x.bound * wt.bound * k
    first = dict(b.like(x, dims=dims, shape=concrete(dims, b.symbols), bound=check_bound(b, x.dtype, bound),
                        exact=False))
    (y,) = b.node("MatMul", [x, wt], [first], pool=False)
    if b.chance(0.5) and y.rank >= 1:
        bias_shape = b.pick([(int(y.shape[-1]),), (1, int(y.shape[-1])), ()])
        c = b.const(np.asarray(b.rng.uniform(-1, 1, size=bias_shape), dtype=x.dtype))
        out_dims = broadcast_dims(y.dims, c.dims)
        if out_dims is None:
            raise Skip("bias over a symbolic dim")
        (y,) = b.node("Add", [y, c] if b.chance(0.7) else [c, y],
                      [b.like(y, dims=out_dims, shape=concrete(out_dims, b.symbols), bound=y.bound + 1)], pool=False)
        b.feature("matmul-add")
    if b.chance(0.2) and y.rank >= 1:
        y = channel_affine(b, y, y.rank - 1)
    if b.chance(0.2):
        y = activation(b, y)
    b.pool.append(y)


def gemm(b: Builder) -> None:
    """Gemm with transA/transB, alpha/beta and every C broadcast, then maybe an activation
    (FusedGemm) or per-column Mul/Add."""
    trans_a = int(b.chance(0.2))

    def fits(t: Tensor) -> bool:
        return (t.dtype == b.float_type and t.rank == 2 and isinstance(t.dims[1 - trans_a], int) and t.bound <= 50
                and (not trans_a or isinstance(t.dims[1], int)))

    a = b.choose(fits, lambda: b.input(b.float_type, random_dims(b, 2) if not trans_a else
                                       random_dims(b, 2, static=True), bound=2.0))
    if not fits(a):
        raise Skip("gemm operand")
    m_dim, k = (a.dims[1], int(a.shape[0])) if trans_a else (a.dims[0], int(a.shape[1]))
    n = int(b.rng.integers(1, 6))
    trans_b = int(b.chance(0.5))
    w = weights(b, (k, n), k)
    wt = b.const(w.T.copy() if trans_b else w)
    alpha = float(b.pick([1.0, 1.0, 0.5, -2.0]))
    beta = float(b.pick([1.0, 1.0, 0.5, 0.0]))
    inputs = [a, wt]
    cb = 0.0
    if b.chance(0.7):
        m_static = isinstance(m_dim, int)
        shapes = [(n,), (1, n), (), (1,)] + ([(int(m_dim), n), (int(m_dim), 1)] if m_static else [])
        c = b.const(np.asarray(b.rng.uniform(-1, 1, size=b.pick(shapes)), dtype=a.dtype))
        inputs.append(c)
        cb = c.bound
    attrs: dict[str, object] = {}
    if trans_a:
        attrs["transA"] = 1
    if trans_b:
        attrs["transB"] = 1
    if alpha != 1.0:
        attrs["alpha"] = alpha
    if beta != 1.0:
        attrs["beta"] = beta
    bound = abs(alpha) * float(np.max(np.abs(w.astype(np.float64)).sum(axis=0))) * a.bound + abs(beta) * cb
    dims = (m_dim, n)
    (y,) = b.node("Gemm", inputs, [b.like(a, dims=dims, shape=concrete(dims, b.symbols),
                                          bound=check_bound(b, a.dtype, bound), exact=False)], pool=False, **attrs)
    if b.chance(0.25):
        y = channel_affine(b, y, 1)
    if b.chance(0.5):
        y = activation(b, y)
        b.feature("gemm-activation")
    b.pool.append(y)


def standalone_batchnorm(b: Builder) -> None:
    x = float_operand(b, min_rank=2, max_rank=4, extra=lambda t: isinstance(t.dims[1], int))
    b.pool.append(batchnorm(b, x))


def layernorm(b: Builder) -> None:
    if b.opset < 17:
        raise Skip("LayerNormalization needs opset 17")
    x = float_operand(b, min_rank=1, extra=lambda t: isinstance(t.dims[-1], int))
    static_tail = 0
    for d in reversed(x.dims):
        if not isinstance(d, int):
            break
        static_tail += 1
    count = int(b.rng.integers(1, static_tail + 1))
    x = varied(b, x, count)
    axis = x.rank - count
    written = axis - x.rank if b.chance(0.5) else axis
    norm_shape = tuple(int(d) for d in x.shape[axis:])
    scale = b.const(np.asarray(b.rng.uniform(0.5, 1.5, size=norm_shape), dtype=x.dtype))
    inputs = [x, scale]
    bias_bound = 0.0
    if b.chance(0.7):
        bias = b.const(np.asarray(b.rng.uniform(-1, 1, size=norm_shape), dtype=x.dtype))
        inputs.append(bias)
        bias_bound = 1.0
    n = int(np.prod(norm_shape))
    outs = [b.like(x, bound=math.sqrt(n) * 1.5 + bias_bound, exact=False)]
    if b.chance(0.1):
        stat = (*x.dims[:axis], *[1] * count)
        stats = {"dtype": np.dtype(np.float32), "dims": stat, "shape": concrete(stat, b.symbols), "exact": False}
        outs += [{**stats, "bound": x.bound}, {**stats, "bound": 1e4}]
        b.feature("layernorm-stats")
    attrs = {"axis": written, "epsilon": float(b.pick([1e-5, 1e-12, 1e-3]))}
    b.node("LayerNormalization", inputs, outs, **attrs)


def instancenorm(b: Builder) -> None:
    x = _image(b, int(b.pick([1, 2])))
    x = varied(b, x, x.rank - 2)
    channels = int(x.shape[1])
    scale = b.const(np.asarray(b.rng.uniform(0.5, 1.5, size=channels), dtype=x.dtype))
    bias = b.const(np.asarray(b.rng.uniform(-1, 1, size=channels), dtype=x.dtype))
    n = int(np.prod(x.shape[2:]))
    b.node("InstanceNormalization", [x, scale, bias], [b.like(x, bound=1.5 * math.sqrt(n) + 1, exact=False)],
           epsilon=1e-5)


def gelu_op(b: Builder) -> None:
    if b.opset < 20:
        raise Skip("Gelu needs opset 20")
    x = float_operand(b)
    attrs = {"approximate": "tanh"} if b.chance(0.4) else {}
    b.node("Gelu", [x], [b.like(x, exact=False)], **attrs)


def flat_gemm(b: Builder) -> None:
    """x [B, S, K] -> Reshape [-1, K] -> Gemm -> Reshape [B, S, N]: unflatten-gemm's pattern, the
    restoring shape constant or computed from Shape(x)."""
    x = float_operand(b, min_rank=3, max_rank=3, extra=lambda t: isinstance(t.dims[2], int) and t.bound <= 50,
                      make_rank=3)
    k = int(x.shape[2])
    n = int(b.rng.integers(1, 6))
    count = int(x.shape[0]) * int(x.shape[1])
    rows: Dim = derived(b, count, "rows", *x.dims[:2]) if x.symbolic else count
    (flat,) = b.node("Reshape", [x, b.ints([-1, k])], [b.like(x, dims=(rows, k), shape=(count, k))], pool=False)
    w = weights(b, (k, n), k)
    bias = b.const(np.asarray(b.rng.uniform(-1, 1, size=(n,)), dtype=x.dtype))
    bound = float(np.max(np.abs(w.astype(np.float64)).sum(axis=0)) * x.bound + 1)
    (g,) = b.node("Gemm", [flat, b.const(w), bias], [b.like(flat, dims=(rows, n), shape=(flat.shape[0], n), bound=bound,
                                                            exact=False)], pool=False)
    if x.symbolic or b.chance(0.5):
        i64 = np.dtype(np.int64)
        (s,) = b.node("Shape", [x], [{"dtype": i64, "shape": (3,), "dims": (3,), "bound": 64.0, "exact": True}],
                      pool=False)
        parts = []
        for axis in (0, 1):
            (d,) = b.node("Gather", [s, b.ints(axis)], [{"dtype": i64, "shape": (), "dims": (), "bound": 64.0,
                                                         "exact": True}], pool=False)
            (u,) = b.node("Unsqueeze", [d, b.ints([0])], [{"dtype": i64, "shape": (1,), "dims": (1,),
                                                            "bound": 64.0, "exact": True}], pool=False)
            parts.append(u)
        (target,) = b.node("Concat", [*parts, b.ints([n])], [{"dtype": i64, "shape": (3,), "dims": (3,),
                                                             "bound": 64.0, "exact": True}], pool=False, axis=0)
    else:
        target = b.ints([int(x.shape[0]), int(x.shape[1]), n])
    dims = (x.dims[0], x.dims[1], n)
    b.feature("flat-gemm")
    b.node("Reshape", [g, target], [b.like(g, dims=dims, shape=concrete(dims, b.symbols))])


ACTIONS: dict[str, tuple[float, Callable[[Builder], None]]] = {
    "matmul": (3.0, matmul), "gemm": (2.0, gemm), "conv": (3.0, conv), "conv-transpose": (0.6, conv_transpose),
    "pool": (1.5, pool), "batchnorm": (0.8, standalone_batchnorm), "layernorm": (1.2, layernorm),
    "instancenorm": (0.5, instancenorm), "gelu": (0.6, gelu_op), "flat-gemm": (0.8, flat_gemm),
    "resize": (0.8, resize),
}
