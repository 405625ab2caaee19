"""Folding a per-channel affine map y = P(x)*s + t into the weights of the linear op P (Conv,
ConvTranspose, Gemm, MatMul): which axis of the weight is the output channel, when a fold is
safe, and the fold itself (fuse-batchnorm, fuse-conv-affine)."""

from __future__ import annotations

from typing import Any

import numpy as np

from mlc.ir.core import Node, Value
from mlc.passes._graph_edits import drop_dead_constants, new_constant
from mlc.passes._match_basics import FLOAT_DTYPES, const_array, dtype_of, input_at, static_shape
from mlc.rewrite import IRBuilder


def out_channels(producer: Node) -> int | None:
    """Number of output channels of a Conv/ConvTranspose/Gemm/MatMul whose weight shape is static."""
    shape = static_shape(input_at(producer, 1))
    if shape is None:
        return None
    op = producer.op_type
    if op == "Conv" and len(shape) >= 3:
        return shape[0]
    if op == "ConvTranspose" and len(shape) >= 3:
        return int(producer.attr("group", 1)) * shape[1]
    if op == "Gemm" and len(shape) == 2:
        return shape[0] if producer.attr("transB", 0) else shape[1]
    if op == "MatMul" and len(shape) == 2:
        return shape[1]
    return None


def fold_problem(producer: Node, channels: int, *, scales: bool, shifts: bool) -> str | None:
    """Why y*s + t (per output channel, `channels` of them) cannot be folded into `producer`'s
    constants; None when it can. `scales` / `shifts` say whether s / t are present."""
    op = producer.op_type
    w = input_at(producer, 1)
    wdtype = dtype_of(w)
    if wdtype not in FLOAT_DTYPES:
        return "its weight is not a floating-point tensor of known type"
    have = out_channels(producer)
    if have is None:
        return "its weight's shape is not static"
    if have != channels:
        return f"it has {have} output channels, the per-channel constant has {channels}"
    if scales and const_array(w) is None:
        return "its weight is not a constant"
    if op == "ConvTranspose":
        group = int(producer.attr("group", 1))
        shape = static_shape(w)
        assert shape is not None
        if group < 1 or shape[0] % group:
            return f"its weight has {shape[0]} input channels, not a multiple of group={group}"
    if op in ("Conv", "ConvTranspose", "Gemm"):
        bias = input_at(producer, 2)
        if bias is not None and const_array(bias) is None:
            return "its bias is not a constant"
    if op == "MatMul" and shifts:
        return "a bias on MatMul needs an Add (fuse-matmul-add makes Gemm)"
    return None


def channel_factor(producer: Node, w: np.ndarray, s: np.ndarray) -> np.ndarray:
    """s laid out to multiply the weight `w` elementwise."""
    op = producer.op_type
    if op == "Conv":
        return s.reshape(-1, *([1] * (w.ndim - 1)))
    if op == "ConvTranspose":
        group = int(producer.attr("group", 1))
        per_group = s.reshape(group, -1)  # [group, M/group]
        factor = np.repeat(per_group, w.shape[0] // group, axis=0)  # [C_in, M/group]
        return factor.reshape(*factor.shape, *([1] * (w.ndim - 2)))
    if op == "Gemm" and producer.attr("transB", 0):
        return s.reshape(-1, 1)
    return s.reshape(1, -1)  # Gemm (B is [K, N]) and MatMul


def fold_affine(builder: IRBuilder, producer: Node, consumer: Node, scale: np.ndarray | None,
                shift: np.ndarray | None) -> None:
    """Replace `consumer(producer(...))`, which computes producer(...)*scale + shift per output
    channel, by one producer with new constants. Check `fold_problem` first. `scale` / `shift`
    are float64 vectors of the channel count (None: 1 / 0)."""
    op, graph = producer.op_type, builder.graph
    inputs: list[Value | None] = list(producer.inputs)
    attributes: dict[str, Any] = dict(producer.attributes)
    w = inputs[1]
    assert w is not None
    wdtype = dtype_of(w)
    assert wdtype is not None
    np_dtype = wdtype.numpy
    old = [*inputs[1:], *consumer.inputs]  # the consumer's constants (BN parameters, Mul's factor) too
    if scale is not None:
        weight = const_array(w)
        assert weight is not None
        scaled = weight.astype(np.float64) * channel_factor(producer, weight, scale)
        inputs[1] = new_constant(graph, scaled.astype(np_dtype), w, "weight")

    if op == "MatMul":
        assert shift is None
        builder.fuse_chain([producer, consumer], "MatMul", inputs, attributes)
        drop_dead_constants(old)
        return

    bias_value = input_at(producer, 2)
    bias = const_array(bias_value)
    if op == "Gemm" and bias is not None:
        bias = bias.astype(np.float64) * float(producer.attr("beta", 1.0))
    new_bias: np.ndarray | None = None
    if bias is not None and (scale is not None or shift is not None):
        new_bias = bias.astype(np.float64)
        if scale is not None:
            new_bias = new_bias * (scale if op != "Gemm" else scale.reshape(1, -1))
        if shift is not None:
            new_bias = new_bias + (shift if op != "Gemm" else shift.reshape(1, -1))
        if op == "Gemm" and bias.ndim < 2:  # keep C's rank when it was [N] or a scalar
            new_bias = new_bias.reshape(-1)
    elif bias is None and shift is not None:
        new_bias = shift
    if new_bias is not None:
        while len(inputs) < 3:
            inputs.append(None)
        inputs[2] = new_constant(graph, np.ascontiguousarray(new_bias).astype(np_dtype), bias_value, "bias")
        if op == "Gemm":
            attributes.pop("beta", None)  # beta*C is folded in: the default 1.0 applies
    builder.fuse_chain([producer, consumer], op, inputs, attributes)
    drop_dead_constants(old)
