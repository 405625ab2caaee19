"""Move a residual branch's bias into the LayerNormalization that produces the residual.

In a post-LN transformer (BERT) every sub-layer ends with

    r = LayerNormalization(z, gamma, beta)          the residual, also the next sub-layer's input
    s = Add(Add(x, b), r)                           x = dense(...) without its bias b

and r is read, besides that residual Add, only by linear layers `r @ W + c` with constant W and
c. With r' = r + b (beta' = beta + b) the residual sum is `Add(x, r')` and each linear layer
computes `r' @ W + (c - b @ W)`: the same numbers, one Add fewer per sub-layer (the bias Add, a
full pass over [batch, sequence, hidden]). What counts as a linear reader:

- `MatMul(r, W)` whose product is read only by `Add(., c)` (either order) or com.microsoft
  `BiasGelu(., c)` / `FastGelu(., c)`, W a constant matrix, c a constant vector of W's width;
- `Gemm(r, W, c)` with transA=0 (W possibly transposed, alpha and beta folded into the shift);
- com.microsoft `Attention(r, W, c, ...)` (its packed QKV weight and bias).

Left alone (with a remark `Residual bias at 'name': kept, <why>`): an r that is a graph output or
read by anything else, beta or b not constant, b not a vector of the normalized size, r read by
more than one residual Add, or the bias Add read elsewhere. Only LayerNormalization over the last
axis is matched.

`tolerance`: c - b @ W is rounded once at compile time; the run-time sums associate differently.
It is computed in float64; when beta + b or c - b @ W would overflow their type (float16's 65504),
the bias is kept (remark: `kept, the shifted biases of ... overflow float16`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlc.ir.core import Graph, Node, Value
from mlc.numerics.narrowing import narrowing_problem
from mlc.pass_api import Numerics, Pass, PassContext, register_pass
from mlc.passes._patterns import (
    MS_DOMAIN,
    const_array,
    dims_of,
    drop_dead_constants,
    input_at,
    is_op,
    label,
    other_input,
    sole_reader,
)

_BIASED_ACTIVATIONS = ("BiasGelu", "FastGelu")


class _Kept(Exception):
    """Why a LayerNormalization's residual keeps its bias Add (the remark's text)."""


@dataclass
class _Shift:
    """One reader's bias, to become `bias - b @ weight` (weight already [hidden, width])."""

    node: Node
    index: int  # the bias input of `node`
    weight: np.ndarray
    factor: float  # Gemm's beta divides the shift: beta * c' = beta * c - alpha * b @ W


def _linear_reader(node: Node, r: Value) -> _Shift:
    """How reader `node` of r computes r @ W + c, with c adjustable."""
    if is_op(node, "MatMul") and node.inputs[0] is r:
        weight = const_array(node.inputs[1])
        product = node.outputs[0]
        if weight is None or weight.ndim != 2:
            raise _Kept(f"{label(node)} reads it with a weight that is not a constant matrix")
        reader = sole_reader(product)
        if reader is None:
            raise _Kept(f"the product of {label(node)} is not read by one bias Add")
        if is_op(reader, "Add"):
            index = 1 if reader.inputs[0] is product else 0
        elif reader.domain == MS_DOMAIN and reader.op_type in _BIASED_ACTIVATIONS and reader.inputs[0] is product \
                and input_at(reader, 1) is not None:
            index = 1
        else:
            raise _Kept(f"the product of {label(node)} is read by {label(reader)}, not a bias Add")
        bias = const_array(reader.inputs[index])
        if bias is None or bias.shape != (weight.shape[1],):
            raise _Kept(f"{label(reader)} adds no constant vector of the product's width")
        return _Shift(reader, index, weight, 1.0)
    if is_op(node, "Gemm") and node.inputs[0] is r and not node.attr("transA", 0):
        weight = const_array(node.inputs[1])
        bias = const_array(input_at(node, 2))
        if weight is None or bias is None:
            raise _Kept(f"{label(node)} has no constant weight and bias")
        weight = weight.T if node.attr("transB", 0) else weight
        beta = float(node.attr("beta", 1.0))
        if bias.shape != (weight.shape[1],) or beta == 0.0:
            raise _Kept(f"{label(node)}'s bias is not a vector of its width")
        return _Shift(node, 2, weight.astype(np.float64) * float(node.attr("alpha", 1.0)), beta)
    if node.domain == MS_DOMAIN and node.op_type == "Attention" and node.inputs[0] is r:
        weight, bias = const_array(input_at(node, 1)), const_array(input_at(node, 2))
        if weight is None or bias is None or weight.ndim != 2 or bias.shape != (weight.shape[1],):
            raise _Kept(f"{label(node)} has no constant packed weight and bias")
        return _Shift(node, 2, weight, 1.0)
    raise _Kept(f"it is also read by {label(node)}, not a linear layer")


def _match(ln: Node) -> tuple[Node, Value, np.ndarray, list[_Shift]]:
    """(the residual bias Add, its other operand x, b, the readers' shifts)."""
    r = ln.outputs[0]
    if r is None or r.is_graph_output:
        raise _Kept("its output is a graph output")
    dims = dims_of(ln.inputs[0])
    axis = ln.attr("axis", -1)
    if axis != -1 and (dims is None or axis != len(dims) - 1):
        raise _Kept("it does not normalize the last axis")
    beta_value = input_at(ln, 2)
    gamma = const_array(ln.inputs[1])
    if gamma is None or gamma.ndim != 1 or (beta_value is not None and const_array(beta_value) is None):
        raise _Kept("its gamma/beta are not constant vectors")
    residuals: list[tuple[Node, Node, Value, np.ndarray]] = []
    readers: list[Node] = []
    for node, _ in r.uses:
        if not is_op(node, "Add"):
            readers.append(node)
            continue
        other = other_input(node, r)
        inner = other.producer if other is not None else None
        if inner is None or not is_op(inner, "Add") or sole_reader(other) is not node:
            readers.append(node)
            continue
        for position in (0, 1):
            b = const_array(inner.inputs[position])
            x = inner.inputs[1 - position]
            if b is not None and x is not None and const_array(x) is None:
                residuals.append((node, inner, x, b))
                break
        else:
            readers.append(node)
    if len(residuals) != 1:
        raise _Kept(f"it is read by {len(residuals)} residual Adds of a biased branch, not one")
    _, bias_add, x, b = residuals[0]
    if b.shape != gamma.shape:
        raise _Kept(f"the residual bias of {label(bias_add)} is not a vector of the normalized size")
    shifts = [_linear_reader(node, r) for node in readers]
    if len({id(s.node) for s in shifts}) != len(shifts):
        raise _Kept("two readers share one bias")
    beta = const_array(beta_value) if beta_value is not None else np.zeros_like(gamma)
    assert beta is not None
    why = narrowing_problem(beta.astype(np.float64) + b, beta.dtype, channel_axes=(), underflow=False,
                            what=f"shifted biases of {label(ln)}")
    for shift in shifts:
        c = const_array(shift.node.inputs[shift.index])
        assert c is not None
        why = why or narrowing_problem(_shifted(c, b, shift), c.dtype, channel_axes=(), underflow=False,
                                       what=f"shifted biases of {label(shift.node)}")
    if why is not None:
        raise _Kept(why)
    return bias_add, x, b, shifts


def _shifted(c: np.ndarray, b: np.ndarray, shift: _Shift) -> np.ndarray:
    """c - b @ W / factor in float64 (the reader's new bias before rounding to c's type)."""
    return c.astype(np.float64) - (b.astype(np.float64) @ shift.weight.astype(np.float64)) / shift.factor


@register_pass
class FoldResidualBias(Pass):
    name = "fold-residual-bias"
    description = "Add(Add(x, b), LayerNorm(z)) -> Add(x, LayerNorm(z) with beta + b); its linear readers absorb -b @ W"
    numerics = Numerics.TOLERANCE
    statistics = ("folded",)

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        for sub in list(graph.all_graphs()):
            for ln in list(sub):
                if not is_op(ln, "LayerNormalization"):
                    continue
                if len(ln.outputs) > 1 and any(v is not None and v.uses for v in ln.outputs[1:]):
                    continue  # Mean/InvStdDev read: the normalized output is not all it computes
                try:
                    bias_add, x, b, shifts = _match(ln)
                except _Kept as why:
                    if any(is_op(n, "Add") for n, _ in (ln.outputs[0].uses if ln.outputs[0] else [])):
                        ctx.remark(f"Residual bias at {ln.name!r}: kept, {why}")
                    continue
                if not ctx.rewrite("fold-residual-bias"):
                    return changed
                self._rewrite(sub, ln, bias_add, x, b, shifts, ctx)
                ctx.stats["folded"] += 1
                changed = True
        return changed

    @staticmethod
    def _rewrite(graph: Graph, ln: Node, bias_add: Node, x: Value, b: np.ndarray, shifts: list[_Shift],
                 ctx: PassContext) -> None:
        old = [input_at(ln, 2), bias_add.inputs[0], bias_add.inputs[1]]
        gamma = const_array(ln.inputs[1])
        assert gamma is not None
        beta_value = input_at(ln, 2)
        beta = const_array(beta_value) if beta_value is not None else np.zeros_like(gamma)
        assert beta is not None
        shifted_beta = (beta.astype(np.float64) + b).astype(beta.dtype)
        shifted_value = graph.make_constant(shifted_beta, f"{ln.name or 'ln'}_beta")
        if len(ln.inputs) > 2:
            ln.set_input(2, shifted_value)
        else:
            ln.append_input(shifted_value)
        for shift in shifts:
            value = shift.node.inputs[shift.index]
            c = const_array(value)
            assert c is not None
            shifted = _shifted(c, b, shift)
            old.append(value)
            shift.node.set_input(shift.index, graph.make_constant(shifted.astype(c.dtype), value.name))
        out = bias_add.outputs[0]
        assert out is not None
        out.replace_all_uses_with(x)
        graph.remove(bias_add)
        drop_dead_constants(old)
