"""Fold inference BatchNormalization into the linear op before it.

    Y = BatchNormalization(P(X, W, b), gamma, beta, mean, var)   ->   P(X, W', b')

    s  = gamma / sqrt(var + epsilon)           (one factor per output channel)
    W' = W * s   along P's output-channel axis
    b' = (b - mean) * s + beta                 (b = 0 when P has no bias)

for P one of:

    Conv           W [M, C/group, k...]: channel = axis 0 of W
    ConvTranspose  W [C_in, M/group, k...]: output channel g*(M/group)+j is W[c, j] for the input
                   channels c of group g, so the factor depends on both axes
    Gemm           channel = column of B (row when transB=1); b is beta*C, the new C is written with
                   beta=1 (alpha stays: it multiplies the scaled B)
    MatMul         2-D output, constant 2-D W: W' = W * s per column, and b' is added by an Add
                   (MatMul has no bias input)

It applies when the BatchNormalization is in inference mode (training_mode absent or 0; is_test=1
before opset 7; spatial=1), its running-statistics outputs are unused, its four parameters are
constant 1-D vectors, P's output is read by it alone, and P's weight (and bias) are constant. The
arithmetic is done in float64 and rounded once to the weight's dtype, hence `tolerance`: the
result differs from normalizing after the fact by a rounding of the product.

A BatchNormalization whose input comes from anything else (Concat, MaxPool, a graph input:
DenseNet's pre-activation blocks) is left as it is, with a remark: turning a standalone
BatchNormalization into Mul+Add is a different rule. The old weights and BatchNormalization
parameters are removed when nothing else reads them.

The per-channel folding itself (`fold_affine`) lives in `_affine_fold.py`, shared with the other
`fuse-*` passes, which fold the same affine map y = x*s + t.
"""

from __future__ import annotations

import numpy as np

from mlc.ir.core import Node, Value
from mlc.ir.types import TensorType
from mlc.pass_api import Numerics, register_pass
from mlc.passes._affine_fold import fold_affine, fold_problem
from mlc.passes._graph_edits import drop_dead_constants, new_constant
from mlc.passes._match_basics import AFFINE_PRODUCERS, STANDARD, const_array, dtype_of, input_at, label, reader_problem
from mlc.passes.fuse_conv_affine import affine_fold_loss
from mlc.rewrite import IRBuilder, Match, Reject, Rule, RulePass


# ===================================================================== the pass
def _batchnorm_affine(bn: Node, opset: int | None) -> tuple[np.ndarray, np.ndarray] | str:
    """(s, t) with BatchNormalization(x) = x*s + t per channel, or why there are none."""
    if opset is not None and opset < 7 and not bn.attr("is_test", 0):
        return f"opset {opset} BatchNormalization without is_test=1 runs in training mode"
    if bn.attr("training_mode", 0):
        return "it is in training mode"
    if bn.attr("spatial", 1) != 1:
        return "spatial=0 (per-element statistics)"
    for extra in bn.outputs[1:]:
        if extra is not None and (extra.uses or extra.is_graph_output):
            return "its running-statistics outputs are read"
    params = [const_array(input_at(bn, i)) for i in range(1, 5)]
    if any(p is None for p in params):
        return "scale, B, mean and var are not all constants"
    gamma, beta, mean, var = (np.asarray(p, dtype=np.float64) for p in params)
    if any(p.ndim != 1 or p.shape != gamma.shape for p in (gamma, beta, mean, var)):
        return "its parameters are not 1-D vectors of one length"
    scale = gamma / np.sqrt(var + float(bn.attr("epsilon", 1e-5)))
    return scale, beta - mean * scale


class BatchNormIntoProducer(Rule):
    name = "batchnorm"
    law = "BatchNormalization(P(x)) -> P'(x), P in Conv/ConvTranspose/Gemm/MatMul, weights and bias scaled"
    ops = ("BatchNormalization",)

    def match(self, bn: Node) -> Match | Reject | None:
        x = input_at(bn, 0)
        producer = x.producer if x is not None else None
        if producer is None or producer.op_type not in AFFINE_PRODUCERS or producer.domain not in STANDARD:
            source = "a graph input or constant" if producer is None else producer.op_type
            return self.reject(bn, f"its input comes from {source}, not Conv/ConvTranspose/Gemm/MatMul (a "
                                   "standalone BatchNormalization is another rule)")
        assert x is not None and bn.graph is not None
        if x.graph is not bn.graph:
            return self.reject(bn, "its input is defined in an enclosing graph")
        affine = _batchnorm_affine(bn, bn.graph.root.opset_version(""))
        if isinstance(affine, str):
            return self.reject(bn, affine)
        scale, shift = affine
        why = reader_problem(x)
        if why is None and producer.op_type == "MatMul":
            shape = x.type.shape if isinstance(x.type, TensorType) else None
            if shape is None or len(shape) != 2:
                why = "its output is not known to be 2-D (BatchNormalization's channel axis 1 is not the last)"
        why = why or fold_problem(producer, len(scale), scales=True, shifts=False)
        why = why or affine_fold_loss(producer, scale, shift)
        if why is not None:
            return self.reject(bn, f"{label(producer)} before it: {why}")
        return Match(bn, nodes=(producer, bn), facts={"scale": scale, "shift": shift},
                     rule=f"{producer.op_type.lower()}-batchnorm")

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        producer, bn = match.nodes
        graph, ctx = builder.graph, builder.ctx
        scale, shift = match.facts["scale"], match.facts["shift"]
        ctx.stats["fused"] += 1
        params = list(bn.inputs[1:])
        if producer.op_type != "MatMul":
            fold_affine(builder, producer, bn, scale, shift)
            return
        # MatMul has no bias: MatMul(A, W*s) then Add(t), the Add standing where the BN was.
        a, w = producer.inputs[0], producer.inputs[1]
        out = bn.outputs[0]
        assert w is not None and out is not None
        wdtype = dtype_of(w)
        weight = const_array(w)
        assert wdtype is not None and weight is not None
        scaled = (weight.astype(np.float64) * scale.reshape(1, -1)).astype(wdtype.numpy)
        matmul = Node("MatMul", [a, new_constant(graph, scaled, w, "weight")],
                      [Value(graph.unique_name("matmul"), out.type)], name=producer.name)
        product = builder.insert(matmul, replaced=[producer], before=bn)
        bias = graph.make_constant(shift.astype(wdtype.numpy), "bias")
        builder.fuse_chain([producer, bn], "Add", [product, bias], name=bn.name)
        drop_dead_constants([w, *params])


@register_pass
class FuseBatchNorm(RulePass):
    name = "fuse-batchnorm"
    description = "Fold inference BatchNormalization into a preceding Conv, ConvTranspose, Gemm or MatMul"
    numerics = Numerics.TOLERANCE
    statistics = ("fused",)
    rules = (BatchNormIntoProducer(),)
