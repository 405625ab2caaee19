"""The plans of merge-layout-ops that end in one Reshape.

A Reshape of a Reshape/Squeeze/Unsqueeze/Flatten (or of a Transpose that moves only 1-dims) reads
x directly, its 0 entries resolved against x; a Squeeze/Unsqueeze of a constant-target Reshape
folds its axes into the target; any two such ops with a static result become one Reshape to it.
`plan_merge` picks the plan for a pair, and `pair_rule` names the rule a kept pair was asked of.
"""

from __future__ import annotations

import math

import numpy as np

from mlc.ir.attributes import Attr, AttrType
from mlc.ir.core import Node, Value
from mlc.passes._layout_plans import (
    RESHAPING,
    LayoutPlan,
    const_ints,
    layout_axes,
    normalize_axes,
    plan_squeezes,
    plan_transposes,
    plan_unsqueezes,
    same_dim,
)
from mlc.passes._transformer_match import dims_of


def plan_into_reshape(first: Node, second: Node) -> LayoutPlan | str:
    """A Reshape of a Reshape/Squeeze/Unsqueeze/Flatten reads x directly."""
    x, y = first.inputs[0], first.outputs[0]
    rule = f"{first.op_type.lower()}-reshape"
    shape = second.inputs[1] if len(second.inputs) > 1 else None
    if shape is None:
        return "its shape is an attribute (opset < 5)"
    allowzero = int(second.attr("allowzero", 0))
    attributes = [Attr("allowzero", AttrType.INT, allowzero)] if "allowzero" in second.attributes else []
    target = const_ints(shape)
    if allowzero or (target is not None and 0 not in target):
        return LayoutPlan(rule, "Reshape", [x, shape], attributes)
    if target is None:
        return "its shape is not a constant, and a 0 entry would copy a dim of the intermediate tensor"
    copied = []  # positions where the first op is a Reshape that itself copies x's dim
    if first.op_type == "Reshape" and len(first.inputs) > 1 and not first.attr("allowzero", 0):
        inner = const_ints(first.inputs[1])
        copied = [i for i, v in enumerate(inner or []) if v == 0]
    x_dims, y_dims = dims_of(x), dims_of(y)
    resolved: list[int] = list(target)
    unresolved = []
    for i, entry in enumerate(target):
        if entry != 0 or i in copied:
            continue
        inter = y_dims[i] if y_dims is not None and i < len(y_dims) else None
        if x_dims is not None and i < len(x_dims) and same_dim(inter, x_dims[i]):
            continue  # copies the same dim from x
        if isinstance(inter, int) and inter > 0:
            resolved[i] = inter
            continue
        unresolved.append(i)
    if unresolved:
        # One such dim is the element count over the others when they are all non-zero constants.
        others = [v for i, v in enumerate(resolved) if i not in unresolved]
        if len(unresolved) > 1 or -1 in target or not all(v > 0 for v in others):
            return (f"its shape's 0 at {unresolved[0]} copies a dim of the {first.op_type}'s output that x "
                    "does not have")
        resolved[unresolved[0]] = -1
    new_shape: Value | np.ndarray = shape if resolved == target else np.array(resolved, dtype=np.int64)
    return LayoutPlan(rule, "Reshape", [x, new_shape], attributes)


def moves_only_ones(node: Node) -> bool:
    """A Transpose that keeps the order of every dim but those of size 1: the data keep their
    order, so it is a reshape (RNN outputs [seq, 1, batch, hidden] -> [seq, batch, 1, hidden])."""
    if node.op_type != "Transpose":
        return False
    dims, perm = dims_of(node.inputs[0]), node.attr("perm")
    if dims is None or perm is None or sorted(perm) != list(range(len(dims))):
        return False
    moved = [p for p in perm if dims[p] != 1]
    return moved == sorted(moved)


def plan_reshape_axes(first: Node, second: Node) -> LayoutPlan | str:
    """Unsqueeze/Squeeze of a Reshape to a constant target: one Reshape to the target with the
    1s inserted or removed."""
    x = first.inputs[0]
    target = const_ints(first.inputs[1]) if len(first.inputs) > 1 else None
    if target is None:
        return "the Reshape's shape is not a constant"
    allowzero = int(first.attr("allowzero", 0))
    if not allowzero and 0 in target:
        return "the Reshape's shape copies a dim with 0, at a position the axes would shift"
    axes = layout_axes(second)
    if isinstance(axes, str):
        return axes
    if not axes:
        return f"a {second.op_type} without axes"
    rule = f"reshape-{second.op_type.lower()}"
    attributes = [Attr("allowzero", AttrType.INT, allowzero)] if "allowzero" in first.attributes else []
    if second.op_type == "Unsqueeze":
        placed = normalize_axes(axes, len(target) + len(axes))
        if placed is None:
            return "repeated or out-of-range axes"
        shape = list(target)
        for axis in placed:
            shape.insert(axis, 1)
    else:
        placed = normalize_axes(axes, len(target))
        if placed is None or any(target[a] != 1 for a in placed):
            return "an axis it squeezes is not a literal 1 of the Reshape's shape"
        shape = [d for i, d in enumerate(target) if i not in placed]
    return LayoutPlan(rule, "Reshape", [x, np.array(shape, dtype=np.int64)], attributes)


def plan_static_reshape(first: Node, second: Node) -> LayoutPlan | str:
    """A layout op of a layout op: one Reshape to the result's static shape."""
    dims = dims_of(second.outputs[0])
    if dims is None or not all(isinstance(d, int) and d > 0 for d in dims):
        return "the result's shape is not static (or has a 0 dim)"
    source = dims_of(first.inputs[0])
    known = [d for d in source or () if isinstance(d, int)]
    result = [d for d in dims if isinstance(d, int)]
    if source is not None and len(known) == len(source) and math.prod(known) != math.prod(result):
        return f"the declared result {list(dims)} does not hold the input's {list(source)} elements"
    return LayoutPlan("static-reshape", "Reshape", [None, np.array(dims, dtype=np.int64)])


def plan_merge(first: Node, second: Node, opset: int | None) -> LayoutPlan | str | None:
    """How to merge `second`(`first`(x)), why the pair is kept, or None when it is no candidate."""
    pair = (first.op_type, second.op_type)
    specific: LayoutPlan | str | None = None
    if pair == ("Transpose", "Transpose"):
        return plan_transposes(first, second)
    if pair == ("Squeeze", "Squeeze"):
        specific = plan_squeezes(first, second, opset)
    elif pair == ("Unsqueeze", "Unsqueeze"):
        specific = plan_unsqueezes(first, second, opset)
    elif second.op_type == "Reshape" and (first.op_type in RESHAPING or moves_only_ones(first)):
        return plan_into_reshape(first, second)
    elif first.op_type == "Reshape" and second.op_type in ("Squeeze", "Unsqueeze"):
        specific = plan_reshape_axes(first, second)
    if isinstance(specific, LayoutPlan):
        return specific
    if first.op_type in RESHAPING and second.op_type in ("Squeeze", "Unsqueeze", "Flatten"):
        fallback = plan_static_reshape(first, second)
        if isinstance(fallback, LayoutPlan):
            fallback.inputs[0] = first.inputs[0]
            return fallback
        return f"{specific}, and {fallback}" if specific is not None else None
    return specific


def pair_rule(first: Node, second: Node) -> str:
    """The rule `plan_merge` asks first for the pair: the one a kept pair's reason is from."""
    pair = (first.op_type, second.op_type)
    if pair in (("Transpose", "Transpose"), ("Squeeze", "Squeeze"), ("Unsqueeze", "Unsqueeze")):
        return f"{first.op_type.lower()}-{second.op_type.lower()}"
    if second.op_type == "Reshape":
        return f"{first.op_type.lower()}-reshape"
    if first.op_type == "Reshape" and second.op_type in ("Squeeze", "Unsqueeze"):
        return f"reshape-{second.op_type.lower()}"
    return "static-reshape"


__all__ = ["moves_only_ones", "pair_rule", "plan_into_reshape", "plan_merge", "plan_reshape_axes",
           "plan_static_reshape"]
