"""Fold a per-channel constant Mul or Add after a Conv, Gemm or MatMul into its weights.

    Mul(Conv(X, W, B), c)   ->  Conv(X, W*c, B*c)         c broadcasts as [M,1,1], [1,M,1,1], [1] or a scalar
    Add(Conv(X, W, B), c)   ->  Conv(X, W, B + c)         B created when absent
    Mul(Gemm(A, B, C), c)   ->  Gemm(A, B*c, C*c)         c broadcasts as [N], [1,N] or a scalar (per column)
    Add(Gemm(A, B, C), c)   ->  Gemm(A, B, beta*C + c)    beta becomes 1
    Mul(MatMul(A, W), c)    ->  MatMul(A, W*c)            W constant and 2-D, c per column

Either operand order of Mul/Add matches. A chain Conv→Mul→Add folds in two rewrites (the new
Conv is visited again); this is what Caffe2-exported models need after BatchNormalization is
folded (`Conv→BN→Mul→Add` in Inception-v2 and DenseNet). The constant must vary along the output
channel axis only and must not enlarge the result (a [1,M,1,1] constant after a 3-D Conv output
would add an axis), the producer's output must have this one reader, and the producer's weight
must be a constant when it is scaled (an Add only needs a constant or absent bias). An Add after
MatMul is fuse-matmul-add's rule (MatMul+Add → Gemm) and is left to it.

Arithmetic is done in float64 and rounded once to the weight's dtype, hence `tolerance`. A fold
whose rounding would lose values is refused with a remark (`affine_fold_loss`): in float16,
W*c above 65504 would become Inf where the unfused graph stays finite (the activations it scales
are small), and a channel whose folded weights all fall below the smallest normal keeps few or
no significant bits. Weights that nothing reads any more are removed.
"""

from __future__ import annotations

import numpy as np

from mlc.ir.core import Node, Value
from mlc.ir.types import TensorType
from mlc.numerics.narrowing import narrowing_problem
from mlc.pass_api import Numerics, register_pass
from mlc.passes._affine_fold import channel_factor, fold_affine, fold_problem, out_channels
from mlc.passes._match_basics import STANDARD, const_array, dtype_of, input_at, label, reader_problem
from mlc.rewrite import IRBuilder, Match, Reject, Rule, RulePass

_PRODUCERS = ("Conv", "Gemm", "MatMul")
_AFFINE_OPS = ("Mul", "Add")


def per_channel(c: np.ndarray, rank: int, axis: int, channels: int) -> np.ndarray | None:
    """`c` as a float64 vector of `channels` values when, broadcast against a tensor of rank
    `rank`, it varies along `axis` only and leaves the tensor's shape unchanged."""
    if c.ndim > rank:
        return None
    padded = (1,) * (rank - c.ndim) + tuple(c.shape)
    if any(d != 1 for i, d in enumerate(padded) if i != axis) or padded[axis] not in (1, channels):
        return None
    return np.broadcast_to(np.asarray(c, dtype=np.float64).reshape(-1), (channels,)).copy()


def _weight_channel_axes(producer: Node) -> tuple[int, ...]:
    """The axes of the weight that the per-channel factor indexes (see `channel_factor`)."""
    if producer.op_type == "Conv":
        return (0,)
    if producer.op_type == "ConvTranspose":
        return (0, 1)  # the factor of W[c, j] depends on c's group and on j
    if producer.op_type == "Gemm" and producer.attr("transB", 0):
        return (0,)
    return (1,)  # Gemm's B [K, N] and MatMul's W: per column


def affine_fold_loss(producer: Node, scale: np.ndarray | None, shift: np.ndarray | None) -> str | None:
    """Why `fold_affine(producer, scale, shift)` would lose values when its float64 results are
    rounded to the weight's type (overflow to Inf; a channel underflowing to subnormals or zero),
    or None when the fold is safe. Check `fold_problem` first; the arithmetic mirrors `fold_affine`
    (and fuse-batchnorm's MatMul + Add, whose Add holds `shift` in the weight's type)."""
    w = input_at(producer, 1)
    wdtype = dtype_of(w)
    assert wdtype is not None
    np_dtype = wdtype.numpy
    if scale is not None:
        weight = const_array(w)
        assert weight is not None
        scaled = weight.astype(np.float64) * channel_factor(producer, weight, scale)
        why = narrowing_problem(scaled, np_dtype, channel_axes=_weight_channel_axes(producer))
        if why is not None:
            return why
    op = producer.op_type
    bias = const_array(input_at(producer, 2)) if op != "MatMul" else None
    new_bias: np.ndarray | None = None
    if bias is not None and (scale is not None or shift is not None):
        new_bias = bias.astype(np.float64) * (float(producer.attr("beta", 1.0)) if op == "Gemm" else 1.0)
        if scale is not None:
            new_bias = new_bias * (scale if op != "Gemm" else scale.reshape(1, -1))
        if shift is not None:
            new_bias = new_bias + (shift if op != "Gemm" else shift.reshape(1, -1))
    elif shift is not None:
        new_bias = shift
    if new_bias is None:
        return None
    return narrowing_problem(new_bias, np_dtype, channel_axes=(), what="folded biases", underflow=False)


def _output_rank(producer: Node) -> int | None:
    out = producer.outputs[0]
    if out is not None and isinstance(out.type, TensorType) and out.type.shape is not None:
        return len(out.type.shape)
    if producer.op_type == "Gemm":
        return 2
    if producer.op_type == "Conv":
        w = producer.inputs[1] if len(producer.inputs) > 1 else None
        if w is not None and isinstance(w.type, TensorType) and w.type.shape is not None:
            return len(w.type.shape)
    return None


class AffineIntoProducer(Rule):
    name = "affine"
    law = "Mul(P(x), s) -> P'(x) (weights * s); Add(P(x), t) -> P'(x) (bias + t), P in Conv/Gemm/MatMul"
    ops = _PRODUCERS

    def match(self, producer: Node) -> Match | Reject | None:
        out = producer.outputs[0]
        consumers = [n for n in out.consumers if n.op_type in _AFFINE_OPS and n.domain in STANDARD] if out else []
        if out is None or not consumers:
            return None  # not a candidate: nothing to fold
        found = _plan(producer, out, consumers[0])
        if isinstance(found, str):
            return self.reject(producer, found)
        consumer = consumers[0]
        return Match(producer, nodes=(producer, consumer), facts={"vector": found},
                     rule=f"{producer.op_type.lower()}-{consumer.op_type.lower()}")

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        producer, consumer = match.nodes
        vector, is_mul = match.facts["vector"], consumer.op_type == "Mul"
        fold_affine(builder, producer, consumer, vector if is_mul else None,
                    None if is_mul else vector)
        builder.ctx.stats["fused"] += 1


def _plan(producer: Node, out: Value, consumer: Node) -> np.ndarray | str:
    """The per-channel vector to fold, or why the producer and its Mul/Add stay apart."""
    why = reader_problem(out)
    if why is not None:
        return why
    if consumer.graph is not producer.graph:
        return f"{label(consumer)} is in a sub-graph"
    other = consumer.inputs[1] if consumer.inputs[0] is out else consumer.inputs[0]
    c = const_array(other)
    if c is None:
        return f"with {label(consumer)}, its other operand is not a constant"
    rank, channels = _output_rank(producer), out_channels(producer)
    if rank is None or channels is None:
        return f"with {label(consumer)}, its output rank or channel count is unknown"
    axis = 1 if producer.op_type == "Conv" else rank - 1
    vector = per_channel(c, rank, axis, channels)
    if vector is None:
        return (f"with {label(consumer)}, the constant of shape {list(c.shape)} is not per output channel "
                f"(axis {axis} of {channels})")
    is_mul = consumer.op_type == "Mul"
    why = fold_problem(producer, channels, scales=is_mul, shifts=not is_mul)
    why = why or affine_fold_loss(producer, vector if is_mul else None, None if is_mul else vector)
    return f"with {label(consumer)}, {why}" if why is not None else vector


@register_pass
class FuseConvAffine(RulePass):
    name = "fuse-conv-affine"
    description = "Fold a per-channel constant Mul/Add after Conv, Gemm or MatMul into its weight and bias"
    numerics = Numerics.TOLERANCE
    statistics = ("fused",)
    rules = (AffineIntoProducer(),)
