"""The no-op laws of the ops that reshape, crop, pad or tile: Reshape, Expand, Slice, Pad, Tile.

Each is a no-op where its constant operand names the input's own shape (a 0 entry of Reshape copies
a dim, an Expand entry of 1 keeps it), selects every element, pads nothing or repeats once.
"""

from __future__ import annotations

from mlc.ir.core import Node
from mlc.passes._noop_facts import Found, broadcast_keeps, const_ints, is_int
from mlc.passes._transformer_match import dims_of

# A Slice end at least this large covers any dim a tensor can have (INT64_MAX and its kin), so it
# selects to the end even where the dim is symbolic; smaller ends are compared with static dims.
HUGE = 2**62

def noop_reshape(node: Node) -> Found:
    if len(node.inputs) < 2:
        return None
    x, target = node.inputs[0], const_ints(node.inputs[1])
    if x is None or target is None:
        return None
    dims = dims_of(x)
    if dims is None:
        return "the input's rank is unknown"
    if len(target) != len(dims) or target.count(-1) > 1:
        return None
    allowzero = bool(node.attr("allowzero", 0))
    unknown = False
    for entry, dim in zip(target, dims, strict=True):
        if entry == -1 or (entry == 0 and not allowzero):
            continue  # -1 is checked below; 0 copies the input's dim, whatever it is
        if is_int(dim):
            if entry != dim:
                return None
        else:
            unknown = True
    if -1 in target:
        # -1 is the element count over the product of the other dims: x's own dim when those are
        # x's dims and known non-zero (with a zero among them -1 is ill-defined).
        j = target.index(-1)
        if not all(isinstance(d, int) and d > 0 for i, d in enumerate(dims) if i != j):
            return "a -1 entry stands beside symbolic or zero dims"
    if unknown:
        return f"target {target} names a dim that is symbolic in the input"
    return ("reshape", x)


def noop_expand(node: Node) -> Found:
    if len(node.inputs) < 2:
        return None
    x, shape = node.inputs[0], const_ints(node.inputs[1])
    if x is None or shape is None:
        return None
    why = broadcast_keeps(dims_of(x), shape)
    if why == "differs":
        return None
    return why if why is not None else ("expand", x)


def noop_slice(node: Node) -> Found:
    x = node.inputs[0]
    if x is None:
        return None
    if len(node.inputs) >= 3:  # opset 10 on: starts, ends, axes, steps are inputs
        starts, ends = const_ints(node.inputs[1]), const_ints(node.inputs[2])
        axes = const_ints(node.inputs[3]) if len(node.inputs) > 3 and node.inputs[3] is not None else None
        steps = const_ints(node.inputs[4]) if len(node.inputs) > 4 and node.inputs[4] is not None else None
        if starts is None or ends is None:
            return None
        if (len(node.inputs) > 3 and node.inputs[3] is not None and axes is None) or (
                len(node.inputs) > 4 and node.inputs[4] is not None and steps is None):
            return None
    else:
        starts, ends, axes, steps = node.attr("starts"), node.attr("ends"), node.attr("axes"), None
        if starts is None or ends is None:
            return None
    axes = list(range(len(starts))) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    if not len(starts) == len(ends) == len(axes) == len(steps):
        return None
    dims = dims_of(x)
    seen: set[int] = set()
    unknown = ""
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        if step != 1:
            return None
        if (start == 0 or start <= -HUGE) and end >= HUGE:
            continue  # the whole axis, whatever its length
        if dims is None or not -len(dims) <= axis < len(dims):
            unknown = unknown or "the input's rank is unknown"
            continue
        axis = axis + len(dims) if axis < 0 else axis
        if axis in seen:
            return None
        seen.add(axis)
        dim = dims[axis]
        if not isinstance(dim, int):
            unknown = unknown or f"dim {axis} is symbolic and the slice [{start}:{end}] may end before it"
            continue
        lo = min(max(start + dim if start < 0 else start, 0), dim)
        hi = min(max(end + dim if end < 0 else end, 0), dim)
        if lo != 0 or hi != dim:
            return None
    return unknown if unknown else ("slice", x)


def noop_pad(node: Node) -> Found:
    x = node.inputs[0]
    if x is None:
        return None
    if len(node.inputs) > 1:  # opset 11 on: pads is an input
        pads = const_ints(node.inputs[1])
    else:
        pads = node.attr("pads")
    if pads is None or any(p != 0 for p in pads):
        return None
    return ("pad", x)


def noop_tile(node: Node) -> Found:
    if len(node.inputs) < 2:
        return None
    x, repeats = node.inputs[0], const_ints(node.inputs[1])
    if x is None or repeats is None or any(r != 1 for r in repeats):
        return None
    return ("tile", x)


__all__ = ["HUGE", "noop_expand", "noop_pad", "noop_reshape", "noop_slice", "noop_tile"]
