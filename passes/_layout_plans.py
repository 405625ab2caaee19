"""The plans of merge-layout-ops that compose two permutations or two axes lists.

A plan says what one merge builds (`LayoutPlan`), or a string says why the pair is kept. Here:
Transpose of a Transpose (the perms composed, or nothing where they cancel), Squeeze of a Squeeze
and Unsqueeze of an Unsqueeze (the second op's axes mapped back onto x's, or onto the result's),
and the axes arithmetic they share. The plans that end in a Reshape are
`mlc.passes._layout_reshape_plans`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mlc.ir.attributes import Attr, AttrType
from mlc.ir.core import Node, Value
from mlc.ir.tensor import Tensor, TensorDataUnavailable
from mlc.ir.types import Dim
from mlc.passes._transformer_match import dims_of

RESHAPING = {"Reshape", "Squeeze", "Unsqueeze", "Flatten"}


@dataclass
class LayoutPlan:
    """What a merge builds: `op` over `inputs` (a numpy array becomes a new constant) with
    `attributes`; `op=None` means the pair cancels and x takes the result's place."""

    rule: str
    op: str | None
    inputs: list[Value | np.ndarray | None] = field(default_factory=list)
    attributes: list[Attr] = field(default_factory=list)


def rank_of(value: Value | None) -> int | None:
    dims = dims_of(value)
    return None if dims is None else len(dims)


def const_ints(value: Value | None) -> list[int] | None:
    if value is None or not value.is_constant or not isinstance(value.const, Tensor):
        return None
    try:
        array = value.const.numpy()
    except TensorDataUnavailable:
        return None
    if array.dtype.kind not in "iu":
        return None
    return [int(v) for v in array.reshape(-1)]


def layout_axes(node: Node) -> list[int] | str | None:
    """Squeeze/Unsqueeze axes: a list, None when absent, or the reason they are unknown."""
    if "axes" in node.attributes:
        return list(node.attr("axes"))
    if len(node.inputs) > 1 and node.inputs[1] is not None:
        axes = const_ints(node.inputs[1])
        return "its axes are not a constant" if axes is None else axes
    return None


def normalize_axes(axes: list[int], rank: int | None) -> list[int] | None:
    """Sorted non-negative axes without repeats, or None (a negative axis with the rank unknown,
    an axis out of range, a repeat)."""
    if any(a < 0 for a in axes) and rank is None:
        return None
    result = [a + rank if a < 0 and rank is not None else a for a in axes]
    if len(set(result)) != len(result) or any(a < 0 or (rank is not None and a >= rank) for a in result):
        return None
    return sorted(result)


def nth_free(j: int, taken: list[int]) -> int:
    """The j-th (from 0) position that is not in `taken`."""
    position = -1
    for _ in range(j + 1):
        position += 1
        while position in taken:
            position += 1
    return position


def same_dim(a: Dim, b: Dim) -> bool:
    """Known equal: the same static size or the same symbolic name."""
    return a is not None and a == b


def plan_transposes(first: Node, second: Node) -> LayoutPlan | str:
    x = first.inputs[0]
    p, q = first.attr("perm"), second.attr("perm")
    if p is None and q is None:
        return LayoutPlan("transpose-cancel", None)  # reversing twice, whatever the rank
    rank = len(p) if p is not None else len(q)
    p = list(p) if p is not None else list(reversed(range(rank)))
    q = list(q) if q is not None else list(reversed(range(rank)))
    if len(p) != len(q) or sorted(p) != list(range(rank)) or sorted(q) != list(range(rank)):
        return "the perms do not fit together"
    perm = [p[i] for i in q]
    if perm == list(range(rank)):
        return LayoutPlan("transpose-cancel", None)
    return LayoutPlan("transpose-transpose", "Transpose", [x], [Attr("perm", AttrType.INTS, perm)])


def axes_plan(rule: str, op: str, x: Value | None, axes: list[int], second: Node, opset: int | None) -> LayoutPlan:
    as_input = opset >= 13 if opset is not None else "axes" not in second.attributes
    if as_input:
        return LayoutPlan(rule, op, [x, np.array(axes, dtype=np.int64)])
    return LayoutPlan(rule, op, [x], [Attr("axes", AttrType.INTS, axes)])


def plan_squeezes(first: Node, second: Node, opset: int | None) -> LayoutPlan | str:
    x, y = first.inputs[0], first.outputs[0]
    a, b = layout_axes(first), layout_axes(second)
    if isinstance(a, str) or isinstance(b, str):
        return a if isinstance(a, str) else str(b)
    if not a or not b:
        return "a Squeeze without axes removes whichever dims are 1"
    rank, after = rank_of(x), rank_of(y)
    if rank is None and after is not None:
        rank = after + len(a)
    first_axes = normalize_axes(a, rank)
    second_axes = normalize_axes(b, None if rank is None else rank - len(a))
    if first_axes is None or second_axes is None:
        return "negative or repeated axes with the input's rank unknown"
    merged = sorted(first_axes + [nth_free(j, first_axes) for j in second_axes])
    return axes_plan("squeeze-squeeze", "Squeeze", x, merged, second, opset)


def plan_unsqueezes(first: Node, second: Node, opset: int | None) -> LayoutPlan | str:
    x, y, z = first.inputs[0], first.outputs[0], second.outputs[0]
    a, b = layout_axes(first), layout_axes(second)
    if isinstance(a, str) or isinstance(b, str):
        return a if isinstance(a, str) else str(b)
    if a is None or b is None:
        return "an Unsqueeze without axes"
    middle, before, after = rank_of(y), rank_of(x), rank_of(z)
    if middle is None and before is not None:
        middle = before + len(a)
    if middle is None and after is not None:
        middle = after - len(b)
    first_axes = normalize_axes(a, middle)
    second_axes = normalize_axes(b, None if middle is None else middle + len(b))
    if first_axes is None or second_axes is None:
        return "negative or repeated axes with the input's rank unknown"
    merged = sorted(second_axes + [nth_free(j, second_axes) for j in first_axes])
    return axes_plan("unsqueeze-unsqueeze", "Unsqueeze", x, merged, second, opset)


__all__ = ["RESHAPING", "LayoutPlan", "axes_plan", "const_ints", "layout_axes", "normalize_axes", "nth_free",
           "plan_squeezes", "plan_transposes", "plan_unsqueezes", "rank_of", "same_dim"]
