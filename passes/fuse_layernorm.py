"""Fuse the decomposed layer norm that exporters write into one LayerNormalization (opset 17).

PyTorch's TorchScript exporter (below opset 17, and in every model exported before that opset
existed) and many hand-written graphs spell `nn.LayerNorm` over the last k axes as

    mean = ReduceMean(x, axes=[-k..-1], keepdims=1)
    d    = Sub(x, mean)
    var  = ReduceMean(Pow(d, 2), axes)          or  ReduceMean(Mul(d, d), axes)
    std  = Sqrt(Add(var, eps))                  (Pow(., 0.5) for Sqrt also matches)
    n    = Div(d, std)                          or  Mul(d, Reciprocal(std))
    y    = Add(Mul(n, gamma), beta)             gamma / beta constant; either or both may be absent

    ->  y = LayerNormalization(x, gamma, beta) {axis=-k, epsilon=eps}

One kernel replaces nine, reads x twice instead of five times, and is what every backend
optimizes. ReduceMean's axes are an attribute before opset 18 and a constant input from 18 on;
both are read, positive axes are accepted where the rank is known, and the axes must be the
last k, the same in both ReduceMeans. Binary ops match with their operands in either order.

The rewrite applies when the model imports ai.onnx opset >= 17 (LayerNormalization's first
version; below it the pattern is left with a remark), x is a float tensor, eps is a constant
scalar or one-element tensor, and every intermediate value is read only inside the pattern (a
mean or variance read elsewhere stays as it is). gamma and beta must be constants spanning only
the normalized axes (a per-row gamma is not a layer norm); LayerNormalization wants them shaped
exactly as the normalized axes, so [1, 1, H] is reshaped and a broadcast [1] is expanded (which
needs those axes static). Without gamma, a ones constant is made; without beta, B is omitted.
A normalized value multiplied or shifted by a non-constant is not fused at all (the remark says
so): whether it is an affine part cannot be told.

Every ReduceMean whose output is subtracted from its own input (the centering step) is a
candidate: when it does not fuse, a remark `layernorm at 'name': not applied, <why>` says why
(`mlc debug -v` shows it). Other ReduceMeans are not layer norms and get no remark. The chain is
matched in `_layernorm_match.py` (statistics in `_layernorm_stats.py`, gamma/beta in
`_layernorm_affine.py`); the rule here checks the opset and emits the fused node.

`tolerance`: LayerNormalization computes the statistics in float32 (stash_type) and in its own
order. Constants the pattern read (2, eps, the original gamma/beta when reshaped) are left for
`dce`, which the pipelines run last.
"""

from __future__ import annotations

import numpy as np

from mlc.ir.core import Node, Value
from mlc.pass_api import Numerics, register_pass
from mlc.passes._graph_edits import fused_name
from mlc.passes._layernorm_match import LayerNormPattern, centering_sub, match_layernorm
from mlc.passes._match_basics import dtype_of
from mlc.passes._transformer_match import dims_of
from mlc.rewrite import IRBuilder, Match, Reject, Rule, RulePass

LAYERNORM_OPSET = 17


class FuseLayerNormRule(Rule):
    name = "layernorm"
    law = "(x - mean) / sqrt(var + eps) * gamma + beta over the last k axes -> LayerNormalization(x, gamma, beta)"
    ops = ("ReduceMean",)

    def match(self, mean_node: Node) -> Match | Reject | None:
        sub = centering_sub(mean_node)
        if sub is None:
            return None  # not the centering step of a layer norm
        found = match_layernorm(mean_node, sub)
        if isinstance(found, str):
            return self.reject(mean_node, found)
        assert mean_node.graph is not None
        opset = mean_node.graph.root.opset_version("")
        if opset is None or opset < LAYERNORM_OPSET:
            return self.reject(mean_node, f"ai.onnx opset {opset} has no LayerNormalization (it needs 17)")
        affine = found.gamma is not None or found.beta is not None
        return Match(mean_node, nodes=tuple(found.nodes), facts={"pattern": found},
                     rule="layernorm" if affine else "layernorm-no-affine")

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        found: LayerNormPattern = match.facts["pattern"]
        gamma = _gamma(found, builder)
        beta = _beta(found, builder)
        inputs = [found.x, gamma] if beta is None else [found.x, gamma, beta]
        builder.fuse(found.nodes, "LayerNormalization", inputs, [found.out],
                     {"axis": -found.axes, "epsilon": found.eps}, name=fused_name(found.nodes[0], "LayerNormalization"))
        builder.ctx.stats["fused"] += 1


def _gamma(found: LayerNormPattern, builder: IRBuilder) -> Value:
    """gamma as LayerNormalization takes it: the matched constant, a reshaped copy, or ones."""
    if found.gamma_value is not None:
        return found.gamma_value
    dtype = dtype_of(found.x)
    assert dtype is not None
    if found.gamma is not None:
        return builder.constant(found.gamma.astype(dtype.numpy), "gamma")
    dims = dims_of(found.x)
    assert dims is not None
    static = [d for d in dims[len(dims) - found.axes:] if isinstance(d, int)]
    assert len(static) == found.axes  # the match made sure: no gamma needs static normalized axes
    return builder.constant(np.ones(static, dtype=dtype.numpy), "gamma")


def _beta(found: LayerNormPattern, builder: IRBuilder) -> Value | None:
    """beta as LayerNormalization takes it (None: B omitted)."""
    if found.beta_value is not None or found.beta is None:
        return found.beta_value
    dtype = dtype_of(found.x)
    assert dtype is not None
    return builder.constant(found.beta.astype(dtype.numpy), "beta")


@register_pass
class FuseLayerNorm(RulePass):
    name = "fuse-layernorm"
    description = "Fuse the decomposed layer norm (ReduceMean, Sub, Pow, Sqrt, Div, Mul, Add) into LayerNormalization"
    numerics = Numerics.TOLERANCE
    statistics = ("fused",)
    rules = (FuseLayerNormRule(),)
