"""The statistics of a decomposed layer norm (`fuse-layernorm`): the mean's axes, then the chain
square -> ReduceMean -> + eps -> Sqrt that makes the standard deviation, each step the only reader
of the one before. Every function answers with what it found or why the chain breaks there (the
remark's words); `_layernorm_match.py` assembles the whole pattern.
"""

from __future__ import annotations

from mlc.ir.core import Node, Value
from mlc.passes._chain_match import output_of, read_outside
from mlc.passes._match_basics import const_array
from mlc.passes._transformer_match import const_scalar, is_close, is_op, other_input, read_only_by, sole_reader


def reduce_axes(node: Node, rank: int | None) -> list[int] | str:
    """ReduceMean's axes normalized to negative numbers, or why they cannot be read."""
    if node.attr("keepdims", 1) != 1:
        return "keepdims=0"
    axes_input = node.inputs[1] if len(node.inputs) > 1 else None
    if axes_input is not None:
        array = const_array(axes_input)
        if array is None or array.dtype.kind not in "iu":
            return "its axes are not a constant"
        axes = [int(a) for a in array.reshape(-1)]
    else:
        axes = [int(a) for a in node.attr("axes") or []]
    if not axes:
        if node.attr("noop_with_empty_axes", 0):
            return "it reduces nothing (noop_with_empty_axes)"
        if rank is None:
            return "it reduces all axes of an input of unknown rank"
        axes = list(range(rank))
    if rank is None and any(axis >= 0 for axis in axes):
        return f"axis {next(a for a in axes if a >= 0)} is positive and the input's rank is unknown"
    return sorted({axis - rank if axis >= 0 and rank is not None else axis for axis in axes})


def next_in_chain(node: Node, what: str, *op_types: str) -> Node | str:
    """The next node of the chain: the only reader of `node`'s output, one of `op_types` and
    reading it as its first operand where order matters, or why there is none."""
    value = output_of(node)
    why = read_outside(value, what, "layer norm")
    reader = sole_reader(value, *op_types)
    if why is not None or reader is None:
        return why or f"{what} is not read by {' or '.join(op_types)}"
    if reader.op_type in ("ReduceMean", "Sqrt", "Pow", "Reciprocal") and reader.inputs[0] is not value:
        return f"{what} is not the operand of {reader.op_type}"
    return reader


def mean_axes(mean_node: Node, sub: Node, rank: int | None) -> list[int] | str:
    axes = reduce_axes(mean_node, rank)
    if isinstance(axes, str):
        return f"the mean's ReduceMean: {axes}"
    k = len(axes)
    if axes != list(range(-k, 0)):
        return f"it reduces axes {axes}, not the last ones (LayerNormalization normalizes from one axis to the end)"
    if rank is not None and k > rank:
        return f"it reduces {k} axes of a rank-{rank} input"
    if not read_only_by(mean_node.outputs[0], [sub]):
        return "the mean is also read elsewhere"
    return axes


def variance_root(d: Value, axes: list[int], rank: int | None) -> tuple[list[Node], float] | str:
    """([square, variance, + eps, root], eps) after the centered value `d`, or why they are not there."""
    square = next((n for n in d.consumers if (is_op(n, "Pow") and n.inputs[0] is d and is_close(n.inputs[1], 2.0))
                   or (is_op(n, "Mul") and n.inputs[0] is d and n.inputs[1] is d)), None)
    if square is None:
        return "the centered value is not squared (Pow(d, 2) or Mul(d, d))"
    var_node = next_in_chain(square, "the square", "ReduceMean")
    if isinstance(var_node, str):
        return var_node
    var_axes = reduce_axes(var_node, rank)
    if var_axes != axes:
        return f"the variance's ReduceMean reduces {var_axes}, the mean's {axes}"
    add_eps = next_in_chain(var_node, "the variance", "Add")
    if isinstance(add_eps, str):
        return add_eps
    eps = const_scalar(other_input(add_eps, output_of(var_node)))
    if eps is None:
        return "epsilon is not a constant scalar"
    if eps < 0:
        return f"epsilon {eps} is negative"
    root = next_in_chain(add_eps, "variance + epsilon", "Sqrt", "Pow")
    if isinstance(root, str) or (root.op_type == "Pow" and (root.inputs[0] is not output_of(add_eps)
                                                             or not is_close(root.inputs[1], 0.5))):
        return root if isinstance(root, str) else "variance + epsilon is not square-rooted (Sqrt or Pow(., 0.5))"
    return [square, var_node, add_eps, root], eps

__all__ = ["mean_axes", "next_in_chain", "reduce_axes", "variance_root"]
