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
candidate: when it does not fuse, a remark `LayerNorm at 'name': not fused, <why>` says why
(`mlc debug -v` shows it). Other ReduceMeans are not layer norms and get no remark.

`tolerance`: LayerNormalization computes the statistics in float32 (stash_type) and in its own
order. Constants the pattern read (2, eps, the original gamma/beta when reshaped) are left for
`dce`, which the pipelines run last.

The small matching helpers below are shared by `fuse-gelu`, `fuse-skip-layernorm` and
`fuse-bias-gelu`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlc.ir.core import Graph, Node, Value
from mlc.ir.dtypes import DType
from mlc.ir.types import Dim
from mlc.pass_api import Numerics, Pass, PassContext, register_pass
from mlc.passes._patterns import (
    CONST_RTOL,
    CONTRIB_DTYPES,
    FLOAT_DTYPES,
    MS_DOMAIN,
    STANDARD,
    const_array,
    const_scalar,
    dims_of,
    dtype_of,
    ensure_ms_opset,
    fused_name,
    is_close,
    is_op,
    other_input,
    producer,
    read_only_by,
    remove_nodes,
    replace_pattern,
    sole_reader,
    where,
)


# ===================================================================== the pass
@dataclass
class _LayerNorm:
    x: Value
    axes: int  # k: the last k axes are normalized
    eps: float
    gamma: np.ndarray | None
    beta: np.ndarray | None
    gamma_value: Value | None
    beta_value: Value | None
    nodes: list[Node]
    out: Value


def _reduce_axes(node: Node, rank: int | None) -> list[int] | str:
    """ReduceMean's axes normalized to negative numbers, or why they cannot be read."""
    if node.attr("keepdims", 1) != 1:
        return "keepdims=0"
    axes_input = node.inputs[1] if len(node.inputs) > 1 else None
    if axes_input is not None:
        array = const_array(axes_input)
        if array is None or array.dtype.kind not in "iu":
            return "its axes are not a constant"
        axes = [int(a) for a in array.reshape(-1)]
    elif node.attr("axes") is not None:
        axes = [int(a) for a in node.attr("axes")]
    else:
        axes = []
    if not axes:
        if node.attr("noop_with_empty_axes", 0):
            return "it reduces nothing (noop_with_empty_axes)"
        if rank is None:
            return "it reduces all axes of an input of unknown rank"
        axes = list(range(rank))
    normalized = []
    for axis in axes:
        if axis >= 0:
            if rank is None:
                return f"axis {axis} is positive and the input's rank is unknown"
            axis -= rank
        normalized.append(axis)
    return sorted(set(normalized))


def _affine_param(array: np.ndarray, k: int, norm_dims: tuple[Dim, ...], rank: int | None,
                  what: str) -> np.ndarray | str:
    """gamma/beta shaped as the normalized axes, or why it cannot be: it may only vary along them."""
    if rank is not None and array.ndim > rank:
        return f"{what} has rank {array.ndim}, more than the input's {rank} (the product broadcasts up)"
    if array.ndim > k and any(d != 1 for d in array.shape[:array.ndim - k]):
        return f"{what} of shape {list(array.shape)} varies along an axis that is not normalized"
    if rank is None and array.ndim > k:
        return f"{what} has more axes than the normalized ones and the input's rank is unknown"
    tail = array.reshape(array.shape[max(array.ndim - k, 0):])
    tail = tail.reshape((1,) * (k - tail.ndim) + tail.shape)
    target: list[int] = []
    have: int
    for have, dim in zip(tail.shape, norm_dims, strict=True):
        if isinstance(dim, int):
            if have not in (1, dim):
                return f"{what} of shape {list(array.shape)} does not match the normalized axes {list(norm_dims)}"
            target.append(dim)
        elif have == 1:
            return f"{what} broadcasts along a normalized axis of unknown size"
        else:
            target.append(have)
    return np.ascontiguousarray(np.broadcast_to(tail, tuple(target)))


def _match_affine(n: Value, k: int, norm_dims: tuple[Dim, ...], rank: int | None,
                  dtype: DType) -> tuple[list[Node], Value, list[np.ndarray | None], list[Value | None]] | str:
    """The optional Mul(gamma) and Add(beta) after the normalized value `n`: (their nodes, the
    pattern's output, [gamma, beta] shaped as the normalized axes, [the constants themselves when
    already so shaped]), or why the pattern cannot be fused."""
    nodes: list[Node] = []
    params: list[np.ndarray | None] = [None, None]
    values: list[Value | None] = [None, None]
    out = n
    for slot, op, what in ((0, "Mul", "gamma"), (1, "Add", "beta")):
        reader = sole_reader(out, op)
        operand = other_input(reader, out) if reader is not None else None
        if reader is None or operand is None or operand is out:
            continue
        array = const_array(operand)
        if array is None:
            if op == "Mul":
                return f"the normalized value is multiplied by the non-constant %{operand.name} (gamma must be " \
                       "constant)"
            break  # an Add of a non-constant (a residual) is not a beta: the layer norm ends before it
        if dtype_of(operand) != dtype:
            return f"{what} is not of the input's element type"
        shaped = _affine_param(array, k, norm_dims, rank, what)
        if isinstance(shaped, str):
            return shaped
        params[slot] = shaped
        values[slot] = operand if array.shape == shaped.shape else None
        nodes.append(reader)
        result = reader.outputs[0]
        assert result is not None
        out = result
    return nodes, out, params, values


def _out(node: Node) -> Value:
    out = node.outputs[0]
    assert out is not None
    return out


def _next(node: Node, what: str, *op_types: str) -> Node | str:
    """The next node of the chain: the only reader of `node`'s output, one of `op_types` and
    reading it as its first operand where order matters, or why there is none."""
    value = _out(node)
    if value.is_graph_output or len(value.uses) != 1:
        return f"{what} (%{value.name}) is also read outside the layer norm"
    reader = sole_reader(value, *op_types)
    if reader is None:
        return f"{what} is not read by {' or '.join(op_types)}"
    if reader.op_type in ("ReduceMean", "Sqrt", "Pow", "Reciprocal") and reader.inputs[0] is not value:
        return f"{what} is not the operand of {reader.op_type}"
    return reader


def _match(mean_node: Node, opset: int | None) -> _LayerNorm | str | None:
    """The layer norm starting at `mean_node`, None when it is no candidate, or why it is not one."""
    x = mean_node.inputs[0] if mean_node.inputs else None
    mean = mean_node.outputs[0]
    if x is None or mean is None:
        return None
    subs = [n for n in mean.consumers if is_op(n, "Sub") and n.inputs[0] is x and n.inputs[1] is mean]
    if not subs:
        return None  # not the centering step of a layer norm
    sub = subs[0]
    x_dims = dims_of(x)
    rank = None if x_dims is None else len(x_dims)
    axes = _reduce_axes(mean_node, rank)
    if isinstance(axes, str):
        return f"the mean's ReduceMean: {axes}"
    k = len(axes)
    if axes != list(range(-k, 0)):
        return f"it reduces axes {axes}, not the last ones (LayerNormalization normalizes from one axis to the end)"
    if rank is not None and k > rank:
        return f"it reduces {k} axes of a rank-{rank} input"
    if not read_only_by(mean, [sub]):
        return "the mean is also read elsewhere"
    d = sub.outputs[0]
    assert d is not None
    square = next((n for n in d.consumers if (is_op(n, "Pow") and n.inputs[0] is d and is_close(n.inputs[1], 2.0))
                   or (is_op(n, "Mul") and n.inputs[0] is d and n.inputs[1] is d)), None)
    if square is None:
        return "the centered value is not squared (Pow(d, 2) or Mul(d, d))"
    var_node = _next(square, "the square", "ReduceMean")
    if isinstance(var_node, str):
        return var_node
    var_axes = _reduce_axes(var_node, rank)
    if var_axes != axes:
        return f"the variance's ReduceMean reduces {var_axes}, the mean's {axes}"
    add_eps = _next(var_node, "the variance", "Add")
    if isinstance(add_eps, str):
        return add_eps
    eps = const_scalar(other_input(add_eps, _out(var_node)))
    if eps is None:
        return "epsilon is not a constant scalar"
    if eps < 0:
        return f"epsilon {eps} is negative"
    root = _next(add_eps, "variance + epsilon", "Sqrt", "Pow")
    if isinstance(root, str) or (root.op_type == "Pow" and (root.inputs[0] is not _out(add_eps)
                                                             or not is_close(root.inputs[1], 0.5))):
        return root if isinstance(root, str) else "variance + epsilon is not square-rooted (Sqrt or Pow(., 0.5))"
    std = _out(root)
    nodes = [mean_node, sub, square, var_node, add_eps, root]
    div = _next(root, "the standard deviation", "Div", "Reciprocal")
    if isinstance(div, str):
        return div
    if div.op_type == "Reciprocal":
        nodes.append(div)
        recip = _out(div)
        div = _next(div, "the reciprocal standard deviation", "Mul")
        if isinstance(div, str):
            return div
        if other_input(div, recip) is not d:
            return "the reciprocal standard deviation does not multiply the centered value"
    elif div.inputs[0] is not d or div.inputs[1] is not std:
        return "the centered value is not divided by the standard deviation"
    nodes.append(div)
    if not read_only_by(d, [square, div]):
        return "the centered value is also read outside the layer norm"
    dtype = dtype_of(x)
    if dtype not in FLOAT_DTYPES:
        return "its input is not a float tensor of known type"
    n = div.outputs[0]
    assert n is not None
    norm_dims: tuple[Dim, ...] = (None,) * k if x_dims is None else tuple(x_dims[len(x_dims) - k:])
    affine = _match_affine(n, k, norm_dims, rank, dtype)
    if isinstance(affine, str):
        return affine
    extra, out, (gamma, beta), (gamma_value, beta_value) = affine
    if gamma is None and not all(isinstance(dim, int) for dim in norm_dims):
        return "it has no gamma and the normalized axes are not static (a ones gamma cannot be made)"
    if opset is None or opset < 17:
        return f"ai.onnx opset {opset} has no LayerNormalization (it needs 17)"
    return _LayerNorm(x, k, eps, gamma, beta, gamma_value, beta_value, nodes + extra, out)


@register_pass
class FuseLayerNorm(Pass):
    name = "fuse-layernorm"
    description = "Fuse the decomposed layer norm (ReduceMean, Sub, Pow, Sqrt, Div, Mul, Add) into LayerNormalization"
    numerics = Numerics.TOLERANCE
    statistics = ("fused",)

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        opset = graph.opset_version("")
        for sub in list(graph.all_graphs()):
            for node in sub:
                if not is_op(node, "ReduceMean"):
                    continue
                match = _match(node, opset)
                if match is None:
                    continue
                if isinstance(match, str):
                    ctx.remark(f"LayerNorm at {where(node)}: not fused, {match}")
                    continue
                rule = "layernorm" if match.gamma is not None or match.beta is not None else "layernorm-no-affine"
                if not ctx.rewrite(rule):
                    return changed
                self._apply(sub, ctx, rule, match)
                ctx.stats["fused"] += 1
                changed = True
        return changed

    @staticmethod
    def _apply(graph: Graph, ctx: PassContext, rule: str, match: _LayerNorm) -> None:
        dtype = dtype_of(match.x)
        assert dtype is not None
        gamma = match.gamma_value
        if gamma is None:
            if match.gamma is not None:
                array = match.gamma.astype(dtype.numpy)
            else:
                dims = dims_of(match.x)
                assert dims is not None
                array = np.ones([int(d) for d in dims[len(dims) - match.axes:]], dtype=dtype.numpy)  # type: ignore[arg-type]
            gamma = graph.make_constant(array, "gamma")
        beta = match.beta_value
        if beta is None and match.beta is not None:
            beta = graph.make_constant(match.beta.astype(dtype.numpy), "beta")
        inputs = [match.x, gamma] + ([beta] if beta is not None else [])
        attributes = {"axis": -match.axes, "epsilon": match.eps}
        replace_pattern(graph, ctx, rule, match.nodes, "LayerNormalization", inputs, [match.out], attributes,
                        name=fused_name(match.nodes[0], "LayerNormalization"))


__all__ = ["CONST_RTOL", "CONTRIB_DTYPES", "FLOAT_DTYPES", "MS_DOMAIN", "STANDARD", "FuseLayerNorm", "const_array",
           "const_scalar", "dims_of", "dtype_of", "ensure_ms_opset", "fused_name", "is_close", "is_op", "other_input",
           "producer", "read_only_by", "remove_nodes", "replace_pattern", "sole_reader", "where"]
