"""The no-op laws of the layout ops that move no element: Transpose, Squeeze, Unsqueeze, Concat, Split.

The identity permutation, a Squeeze without axes of an input with no 1-dim, an Unsqueeze of no
axes, a Concat or a Split of one part.
"""

from __future__ import annotations

from mlc.ir.core import Node
from mlc.passes._noop_facts import Found, const_ints, is_int
from mlc.passes._transformer_match import dims_of


def noop_transpose(node: Node) -> Found:
    x = node.inputs[0]
    if x is None:
        return None
    perm = node.attr("perm")
    if perm is None:  # the default reverses the dims: nothing moves for rank 0 and 1
        dims = dims_of(x)
        return ("transpose", x) if dims is not None and len(dims) <= 1 else None
    return ("transpose", x) if list(perm) == list(range(len(perm))) else None


def noop_axes(node: Node) -> list[int] | str | None:
    """Squeeze/Unsqueeze axes: a list, None when absent, "?" when not a constant."""
    if "axes" in node.attributes:
        return list(node.attr("axes"))
    if len(node.inputs) > 1 and node.inputs[1] is not None:
        axes = const_ints(node.inputs[1])
        return "?" if axes is None else axes
    return None


def noop_squeeze(node: Node) -> Found:
    x, axes = node.inputs[0], noop_axes(node)
    if x is None or (axes is not None and axes != []):
        return None  # named axes are removed: the rank changes
    # No axes (an empty list is read the same way): every dim of size 1 goes.
    dims = dims_of(x)
    if dims is None:
        return "without axes it removes every 1-dim, and the input's rank is unknown"
    if any(d == 1 for d in dims):
        return None
    if not all(is_int(d) for d in dims):
        return "without axes it removes every 1-dim, and a symbolic dim may be 1"
    return ("squeeze", x)


def noop_unsqueeze(node: Node) -> Found:
    x, axes = node.inputs[0], noop_axes(node)
    return ("unsqueeze", x) if x is not None and axes == [] else None


def noop_concat(node: Node) -> Found:
    x = node.inputs[0] if len(node.inputs) == 1 else None
    return ("concat", x) if x is not None else None


def noop_split(node: Node) -> Found:
    x = node.inputs[0]
    if x is None or len(node.outputs) != 1:
        return None
    if "split" in node.attributes:
        sizes: list[int] | None = list(node.attr("split"))
    elif len(node.inputs) > 1 and node.inputs[1] is not None:
        sizes = const_ints(node.inputs[1])
        if sizes is None:
            return None
    else:
        sizes = None
    if sizes is not None:
        if len(sizes) != 1:
            return None
        dims = dims_of(x)
        axis = node.attr("axis", 0)
        if dims is not None and -len(dims) <= axis < len(dims) and is_int(dims[axis]) and dims[axis] != sizes[0]:
            return None  # not the whole (the model is malformed): leave it to the runtime to say so
    return ("split", x)


__all__ = ["noop_axes", "noop_concat", "noop_split", "noop_squeeze", "noop_transpose", "noop_unsqueeze"]
