"""Move a residual branch's bias into the LayerNormalization that produces the residual.

In a post-LN transformer (BERT) every sub-layer ends with

    r = LayerNormalization(z, gamma, beta)          the residual, also the next sub-layer's input
    s = Add(Add(x, b), r)                           x = dense(...) without its bias b

and r is read, besides that residual Add, only by linear layers `r @ W + c` with constant W and
c. With r' = r + b (beta' = beta + b) the residual sum is `Add(x, r')` and each linear layer
computes `r' @ W + (c - b @ W)`: the same numbers, one Add fewer per sub-layer (the bias Add, a
full pass over [batch, sequence, hidden]). What counts as a linear reader (`_linear_readers.py`):

- `MatMul(r, W)` whose product is read only by `Add(., c)` (either order) or com.microsoft
  `BiasGelu(., c)` / `FastGelu(., c)`, W a constant matrix, c a constant vector of W's width;
- `Gemm(r, W, c)` with transA=0 (W possibly transposed, alpha and beta folded into the shift);
- com.microsoft `Attention(r, W, c, ...)` (its packed QKV weight and bias).

Every LayerNormalization read by an Add is a candidate. Left alone (with a remark
`fold-residual-bias at 'name': not applied, <why>`): an r that is a graph output or read by
anything else, beta or b not constant, b not a vector of the normalized size, r read by more than
one residual Add, or the bias Add read elsewhere. Only LayerNormalization over the last axis is
matched; one whose Mean/InvStdDev outputs are read is no candidate.

`tolerance`: c - b @ W is rounded once at compile time; the run-time sums associate differently.
It is computed in float64; when beta + b or c - b @ W would overflow their type (float16's 65504),
the bias is kept (remark: `not applied, the shifted biases of ... overflow float16`).
"""

from __future__ import annotations

import numpy as np

from mlc.ir.core import Node, Value
from mlc.pass_api import Numerics, register_pass
from mlc.passes._graph_edits import drop_dead_constants
from mlc.passes._linear_readers import linear_reader, shift_overflow, shifted_bias
from mlc.passes._match_basics import const_array, input_at, label
from mlc.passes._transformer_match import dims_of, is_op, other_input, sole_reader
from mlc.rewrite import IRBuilder, Match, Reject, Rule, RulePass


def _biased_branch(add: Node, r: Value) -> tuple[Node, Value, np.ndarray] | None:
    """(the bias Add, x, b) when residual Add `add` computes Add(Add(x, b), r) with b constant."""
    other = other_input(add, r)
    inner = other.producer if other is not None else None
    if inner is None or not is_op(inner, "Add") or sole_reader(other) is not add:
        return None
    for position in (0, 1):
        b = const_array(inner.inputs[position])
        x = inner.inputs[1 - position]
        if b is not None and x is not None and const_array(x) is None:
            return inner, x, b
    return None



class FoldResidualBiasRule(Rule):
    name = "fold-residual-bias"
    law = "Add(Add(x, b), r = LN(z)) -> Add(x, LN(z){beta + b}); r's readers r @ W + c take c - b @ W"
    ops = ("LayerNormalization",)

    def match(self, ln: Node) -> Match | Reject | None:
        r = ln.outputs[0] if ln.outputs else None
        if any(v is not None and v.uses for v in ln.outputs[1:]):
            return None  # Mean/InvStdDev read: the normalized output is not all it computes
        if r is None or not any(is_op(n, "Add") for n, _ in r.uses):
            return None
        found = self._plan(ln, r)
        return self.reject(ln, found) if isinstance(found, str) else found

    def _plan(self, ln: Node, r: Value) -> Match | str:
        if r.is_graph_output:
            return "its output is a graph output"
        dims = dims_of(ln.inputs[0])
        axis = ln.attr("axis", -1)
        if axis != -1 and (dims is None or axis != len(dims) - 1):
            return "it does not normalize the last axis"
        beta_value = input_at(ln, 2)
        gamma = const_array(ln.inputs[1])
        if gamma is None or gamma.ndim != 1 or (beta_value is not None and const_array(beta_value) is None):
            return "its gamma/beta are not constant vectors"
        residuals: list[tuple[Node, Value, np.ndarray]] = []
        readers: list[Node] = []
        for node, _ in r.uses:
            branch = _biased_branch(node, r) if is_op(node, "Add") else None
            if branch is None:
                readers.append(node)
            else:
                residuals.append(branch)
        if len(residuals) != 1:
            return f"it is read by {len(residuals)} residual Adds of a biased branch, not one"
        bias_add, x, b = residuals[0]
        if b.shape != gamma.shape:
            return f"the residual bias of {label(bias_add)} is not a vector of the normalized size"
        shifts = [linear_reader(node, r) for node in readers]
        why = next((s for s in shifts if isinstance(s, str)), None)
        if why is not None:
            return why
        found = [s for s in shifts if not isinstance(s, str)]
        if len({id(s.node) for s in found}) != len(found):
            return "two readers share one bias"
        beta = const_array(beta_value) if beta_value is not None else np.zeros_like(gamma)
        assert beta is not None
        why = shift_overflow(ln, beta, b, found)
        if why is not None:
            return why
        return Match(ln, nodes=(ln, bias_add), values={"x": x}, facts={"b": b, "beta": beta, "shifts": found})

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        ln, bias_add = match.nodes
        b, beta, shifts = match.facts["b"], match.facts["beta"], match.facts["shifts"]
        old = [input_at(ln, 2), bias_add.inputs[0], bias_add.inputs[1]]
        shifted_beta = builder.constant((beta.astype(np.float64) + b).astype(beta.dtype), f"{ln.name or 'ln'}_beta")
        if len(ln.inputs) > 2:
            ln.set_input(2, shifted_beta)
        else:
            ln.append_input(shifted_beta)
        for shift in shifts:
            value = shift.node.inputs[shift.index]
            c = const_array(value)
            assert value is not None and c is not None
            old.append(value)
            shift.node.set_input(shift.index, builder.constant(shifted_bias(c, b, shift).astype(c.dtype), value.name))
        out = bias_add.outputs[0]
        assert out is not None
        builder.replace(out, match["x"])
        builder.remove(bias_add)
        drop_dead_constants(old)
        builder.ctx.stats["folded"] += 1


@register_pass
class FoldResidualBias(RulePass):
    name = "fold-residual-bias"
    description = "Add(Add(x, b), LayerNorm(z)) -> Add(x, LayerNorm(z) with beta + b); its linear readers absorb -b @ W"
    numerics = Numerics.TOLERANCE
    statistics = ("folded",)
    rules = (FoldResidualBiasRule(),)
