"""The decomposed layer norm, matched from its first ReduceMean (`fuse-layernorm`).

    mean = ReduceMean(x, axes=[-k..-1], keepdims=1);  d = Sub(x, mean)
    var  = ReduceMean(Pow(d, 2) | Mul(d, d), axes);   std = Sqrt | Pow(., 0.5) of Add(var, eps)
    n    = Div(d, std) | Mul(d, Reciprocal(std));     then the affine tail (`_layernorm_affine.py`)

`centering_sub` says whether a ReduceMean is a candidate at all (its output is subtracted from its
own input); `match_layernorm` follows the chain and answers with the pattern or why it is none.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlc.ir.core import Node, Value
from mlc.ir.types import Dim
from mlc.passes._chain_match import output_of
from mlc.passes._layernorm_affine import match_affine
from mlc.passes._layernorm_stats import mean_axes, next_in_chain, variance_root
from mlc.passes._match_basics import FLOAT_DTYPES, dtype_of
from mlc.passes._transformer_match import dims_of, is_op, other_input, read_only_by


@dataclass
class LayerNormPattern:
    x: Value
    axes: int  # k: the last k axes are normalized
    eps: float
    gamma: np.ndarray | None
    beta: np.ndarray | None
    gamma_value: Value | None
    beta_value: Value | None
    nodes: list[Node]
    out: Value


def centering_sub(mean_node: Node) -> Node | None:
    """The Sub(x, mean) reading ReduceMean `mean_node`'s output: what makes it a layer norm's."""
    x = mean_node.inputs[0] if mean_node.inputs else None
    mean = mean_node.outputs[0]
    if x is None or mean is None:
        return None
    return next((n for n in mean.consumers if is_op(n, "Sub") and n.inputs[0] is x and n.inputs[1] is mean), None)


def _normalized(d: Value, root: Node) -> list[Node] | str:
    """[Div] or [Reciprocal, Mul]: the centered value `d` divided by the standard deviation."""
    div = next_in_chain(root, "the standard deviation", "Div", "Reciprocal")
    if isinstance(div, str):
        return div
    if div.op_type == "Div":
        if div.inputs[0] is not d or div.inputs[1] is not output_of(root):
            return "the centered value is not divided by the standard deviation"
        return [div]
    mul = next_in_chain(div, "the reciprocal standard deviation", "Mul")
    if isinstance(mul, str):
        return mul
    if other_input(mul, output_of(div)) is not d:
        return "the reciprocal standard deviation does not multiply the centered value"
    return [div, mul]


def match_layernorm(mean_node: Node, sub: Node) -> LayerNormPattern | str:
    """The layer norm whose mean is `mean_node` and centering step `sub`, or why it is not one."""
    x = mean_node.inputs[0]
    assert x is not None
    x_dims = dims_of(x)
    rank = None if x_dims is None else len(x_dims)
    axes = mean_axes(mean_node, sub, rank)
    if isinstance(axes, str):
        return axes
    d = output_of(sub)
    variance = variance_root(d, axes, rank)
    if isinstance(variance, str):
        return variance
    (square, *rest), eps = variance
    divide = _normalized(d, rest[-1])
    if isinstance(divide, str):
        return divide
    if not read_only_by(d, [square, divide[-1]]):
        return "the centered value is also read outside the layer norm"
    dtype = dtype_of(x)
    if dtype not in FLOAT_DTYPES:
        return "its input is not a float tensor of known type"
    k = len(axes)
    norm_dims: tuple[Dim, ...] = (None,) * k if x_dims is None else tuple(x_dims[len(x_dims) - k:])
    affine = match_affine(output_of(divide[-1]), k, norm_dims, rank, dtype)
    if isinstance(affine, str):
        return affine
    gamma, beta = affine.params
    if gamma is None and not all(isinstance(dim, int) for dim in norm_dims):
        return "it has no gamma and the normalized axes are not static (a ones gamma cannot be made)"
    gamma_value, beta_value = affine.values
    nodes = [mean_node, sub, square, *rest, *divide, *affine.nodes]
    return LayerNormPattern(x, k, eps, gamma, beta, gamma_value, beta_value, nodes, affine.out)


__all__ = ["LayerNormPattern", "centering_sub", "match_layernorm"]
