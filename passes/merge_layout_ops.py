"""Merge two consecutive layout ops into one (each line is a rule).

    transpose-transpose   Transpose(Transpose(x){p}){q}  -> Transpose(x){perm[i] = p[q[i]]}
    transpose-cancel      ... whose composed perm is the identity   -> x
                          (an Identity(x) where the result names a graph output that x cannot take over:
                          a graph input, a constant, an outer value or another graph output)
    squeeze-squeeze       Squeeze(Squeeze(x, a), b)      -> Squeeze(x, a + b mapped back onto x's axes)
    unsqueeze-unsqueeze   Unsqueeze(Unsqueeze(x, a), b)  -> Unsqueeze(x, b + a mapped onto the result's axes)
    reshape-reshape       Reshape(Reshape(x, s), t)      -> Reshape(x, t)
    squeeze-reshape, unsqueeze-reshape, flatten-reshape: the same with Squeeze/Unsqueeze/Flatten first
    transpose-reshape     the same with a Transpose first that moves only dims of size 1 (the data
                          keep their order: the dynamo exporter's LSTM output [s, 1, b, h] -> [s, b, 1, h])
    reshape-unsqueeze     Unsqueeze(Reshape(x, t), a), t constant -> Reshape(x, t with 1s inserted at a)
    reshape-squeeze       Squeeze(Reshape(x, t), a), t constant with 1 at each axis of a
                          -> Reshape(x, t without them); both need t free of 0 entries (without
                          allowzero a 0 copies x's dim at its position, which the 1s would shift);
                          a -1 stays, the element count is the same (torchvision's
                          MultiheadAttention: Unsqueeze(Reshape(qkv, [L, -1, 3, E]), 0))
    static-reshape        Squeeze/Unsqueeze/Flatten of a Reshape/Squeeze/Unsqueeze/Flatten, where the
                          result's shape is static and has no 0 dim -> Reshape(x, that shape)

A pair merges only when the first op's output has exactly that one reader and is no graph output
(otherwise the first op stays and nothing is saved). All rules move data without computing.

A 0 in the last Reshape's shape (without allowzero) copies a dim of the intermediate tensor, not
of x: it is kept only where the two dims are known equal (the first Reshape copied it with its own
0, or both types give the same static or symbolic dim), replaced by the intermediate dim where that
is static and non-zero, or by -1 where it is the only such entry, there is no -1 and every other
entry is a non-zero constant (the element count then determines it); otherwise the pair is kept
with a remark. -1 entries need no care: the
element count is the same. Negative axes are normalized with the known ranks; a pair whose negative
axes meet an unknown rank is kept. Axes are an attribute before opset 13 and an input from 13 on.

New shapes and axes are new constants; the constants the merged nodes read are left in place when
they become unused: `dce`, which the pipelines run last, deletes them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from mlc.ir.attributes import Attr, AttrType
from mlc.ir.core import Graph, Node, Value
from mlc.ir.tensor import Tensor, TensorDataUnavailable
from mlc.ir.types import Dim
from mlc.pass_api import Numerics, Pass, PassContext, register_pass
from mlc.passes._patterns import dims_of

_RESHAPING = {"Reshape", "Squeeze", "Unsqueeze", "Flatten"}


@dataclass
class _Plan:
    """What a merge builds: `op` over `inputs` (a numpy array becomes a new constant) with
    `attributes`; `op=None` means the pair cancels and x takes the result's place."""

    rule: str
    op: str | None
    inputs: list[Value | np.ndarray | None] = field(default_factory=list)
    attributes: list[Attr] = field(default_factory=list)


def _label(node: Node) -> str:
    return f"{node.op_type} {node.name!r}"



def _rank(value: Value | None) -> int | None:
    dims = dims_of(value)
    return None if dims is None else len(dims)


def _const_ints(value: Value | None) -> list[int] | None:
    if value is None or not value.is_constant or not isinstance(value.const, Tensor):
        return None
    try:
        array = value.const.numpy()
    except TensorDataUnavailable:
        return None
    if array.dtype.kind not in "iu":
        return None
    return [int(v) for v in array.reshape(-1)]


def _axes(node: Node) -> list[int] | str | None:
    """Squeeze/Unsqueeze axes: a list, None when absent, or the reason they are unknown."""
    if "axes" in node.attributes:
        return list(node.attr("axes"))
    if len(node.inputs) > 1 and node.inputs[1] is not None:
        axes = _const_ints(node.inputs[1])
        return "its axes are not a constant" if axes is None else axes
    return None


def _normalize(axes: list[int], rank: int | None) -> list[int] | None:
    """Sorted non-negative axes without repeats, or None (a negative axis with the rank unknown,
    an axis out of range, a repeat)."""
    if any(a < 0 for a in axes) and rank is None:
        return None
    result = [a + rank if a < 0 and rank is not None else a for a in axes]
    if len(set(result)) != len(result) or any(a < 0 or (rank is not None and a >= rank) for a in result):
        return None
    return sorted(result)


def _nth_free(j: int, taken: list[int]) -> int:
    """The j-th (from 0) position that is not in `taken`."""
    position = -1
    for _ in range(j + 1):
        position += 1
        while position in taken:
            position += 1
    return position


def _same_dim(a: Dim, b: Dim) -> bool:
    """Known equal: the same static size or the same symbolic name."""
    return a is not None and a == b


# ===================================================================== the rules
def _transposes(first: Node, second: Node) -> _Plan | str:
    x = first.inputs[0]
    p, q = first.attr("perm"), second.attr("perm")
    if p is None and q is None:
        return _Plan("transpose-cancel", None)  # reversing twice, whatever the rank
    rank = len(p) if p is not None else len(q)
    p = list(p) if p is not None else list(reversed(range(rank)))
    q = list(q) if q is not None else list(reversed(range(rank)))
    if len(p) != len(q) or sorted(p) != list(range(rank)) or sorted(q) != list(range(rank)):
        return "the perms do not fit together"
    perm = [p[i] for i in q]
    if perm == list(range(rank)):
        return _Plan("transpose-cancel", None)
    return _Plan("transpose-transpose", "Transpose", [x], [Attr("perm", AttrType.INTS, perm)])


def _axes_plan(rule: str, op: str, x: Value | None, axes: list[int], second: Node, opset: int | None) -> _Plan:
    as_input = opset >= 13 if opset is not None else "axes" not in second.attributes
    if as_input:
        return _Plan(rule, op, [x, np.array(axes, dtype=np.int64)])
    return _Plan(rule, op, [x], [Attr("axes", AttrType.INTS, axes)])


def _squeezes(first: Node, second: Node, opset: int | None) -> _Plan | str:
    x, y = first.inputs[0], first.outputs[0]
    a, b = _axes(first), _axes(second)
    if isinstance(a, str) or isinstance(b, str):
        return a if isinstance(a, str) else str(b)
    if not a or not b:
        return "a Squeeze without axes removes whichever dims are 1"
    rank, after = _rank(x), _rank(y)
    if rank is None and after is not None:
        rank = after + len(a)
    first_axes = _normalize(a, rank)
    second_axes = _normalize(b, None if rank is None else rank - len(a))
    if first_axes is None or second_axes is None:
        return "negative or repeated axes with the input's rank unknown"
    merged = sorted(first_axes + [_nth_free(j, first_axes) for j in second_axes])
    return _axes_plan("squeeze-squeeze", "Squeeze", x, merged, second, opset)


def _unsqueezes(first: Node, second: Node, opset: int | None) -> _Plan | str:
    x, y, z = first.inputs[0], first.outputs[0], second.outputs[0]
    a, b = _axes(first), _axes(second)
    if isinstance(a, str) or isinstance(b, str):
        return a if isinstance(a, str) else str(b)
    if a is None or b is None:
        return "an Unsqueeze without axes"
    middle, before, after = _rank(y), _rank(x), _rank(z)
    if middle is None and before is not None:
        middle = before + len(a)
    if middle is None and after is not None:
        middle = after - len(b)
    first_axes = _normalize(a, middle)
    second_axes = _normalize(b, None if middle is None else middle + len(b))
    if first_axes is None or second_axes is None:
        return "negative or repeated axes with the input's rank unknown"
    merged = sorted(second_axes + [_nth_free(j, second_axes) for j in first_axes])
    return _axes_plan("unsqueeze-unsqueeze", "Unsqueeze", x, merged, second, opset)


def _into_reshape(first: Node, second: Node) -> _Plan | str:
    """A Reshape of a Reshape/Squeeze/Unsqueeze/Flatten reads x directly."""
    x, y = first.inputs[0], first.outputs[0]
    rule = f"{first.op_type.lower()}-reshape"
    shape = second.inputs[1] if len(second.inputs) > 1 else None
    if shape is None:
        return "its shape is an attribute (opset < 5)"
    allowzero = int(second.attr("allowzero", 0))
    attributes = [Attr("allowzero", AttrType.INT, allowzero)] if "allowzero" in second.attributes else []
    target = _const_ints(shape)
    if allowzero or (target is not None and 0 not in target):
        return _Plan(rule, "Reshape", [x, shape], attributes)
    if target is None:
        return "its shape is not a constant, and a 0 entry would copy a dim of the intermediate tensor"
    copied = []  # positions where the first op is a Reshape that itself copies x's dim
    if first.op_type == "Reshape" and len(first.inputs) > 1 and not first.attr("allowzero", 0):
        inner = _const_ints(first.inputs[1])
        copied = [i for i, v in enumerate(inner or []) if v == 0]
    x_dims, y_dims = dims_of(x), dims_of(y)
    resolved: list[int] = list(target)
    unresolved = []
    for i, entry in enumerate(target):
        if entry != 0 or i in copied:
            continue
        inter = y_dims[i] if y_dims is not None and i < len(y_dims) else None
        if x_dims is not None and i < len(x_dims) and _same_dim(inter, x_dims[i]):
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
    return _Plan(rule, "Reshape", [x, new_shape], attributes)


def _moves_only_ones(node: Node) -> bool:
    """A Transpose that keeps the order of every dim but those of size 1: the data keep their
    order, so it is a reshape (RNN outputs [seq, 1, batch, hidden] -> [seq, batch, 1, hidden])."""
    if node.op_type != "Transpose":
        return False
    dims, perm = dims_of(node.inputs[0]), node.attr("perm")
    if dims is None or perm is None or sorted(perm) != list(range(len(dims))):
        return False
    moved = [p for p in perm if dims[p] != 1]
    return moved == sorted(moved)


def _reshape_axes(first: Node, second: Node) -> _Plan | str:
    """Unsqueeze/Squeeze of a Reshape to a constant target: one Reshape to the target with the
    1s inserted or removed."""
    x = first.inputs[0]
    target = _const_ints(first.inputs[1]) if len(first.inputs) > 1 else None
    if target is None:
        return "the Reshape's shape is not a constant"
    allowzero = int(first.attr("allowzero", 0))
    if not allowzero and 0 in target:
        return "the Reshape's shape copies a dim with 0, at a position the axes would shift"
    axes = _axes(second)
    if isinstance(axes, str):
        return axes
    if not axes:
        return f"a {second.op_type} without axes"
    rule = f"reshape-{second.op_type.lower()}"
    attributes = [Attr("allowzero", AttrType.INT, allowzero)] if "allowzero" in first.attributes else []
    if second.op_type == "Unsqueeze":
        placed = _normalize(axes, len(target) + len(axes))
        if placed is None:
            return "repeated or out-of-range axes"
        shape = list(target)
        for axis in placed:
            shape.insert(axis, 1)
    else:
        placed = _normalize(axes, len(target))
        if placed is None or any(target[a] != 1 for a in placed):
            return "an axis it squeezes is not a literal 1 of the Reshape's shape"
        shape = [d for i, d in enumerate(target) if i not in placed]
    return _Plan(rule, "Reshape", [x, np.array(shape, dtype=np.int64)], attributes)


def _static_reshape(first: Node, second: Node) -> _Plan | str:
    """A layout op of a layout op: one Reshape to the result's static shape."""
    dims = dims_of(second.outputs[0])
    if dims is None or not all(isinstance(d, int) and d > 0 for d in dims):
        return "the result's shape is not static (or has a 0 dim)"
    source = dims_of(first.inputs[0])
    known = [d for d in source or () if isinstance(d, int)]
    if source is not None and len(known) == len(source) and math.prod(known) != math.prod(dims):
        return f"the declared result {list(dims)} does not hold the input's {list(source)} elements"
    return _Plan("static-reshape", "Reshape", [None, np.array(dims, dtype=np.int64)])


def plan_merge(first: Node, second: Node, opset: int | None) -> _Plan | str | None:
    """How to merge `second`(`first`(x)), why the pair is kept, or None when it is no candidate."""
    pair = (first.op_type, second.op_type)
    specific: _Plan | str | None = None
    if pair == ("Transpose", "Transpose"):
        return _transposes(first, second)
    if pair == ("Squeeze", "Squeeze"):
        specific = _squeezes(first, second, opset)
    elif pair == ("Unsqueeze", "Unsqueeze"):
        specific = _unsqueezes(first, second, opset)
    elif second.op_type == "Reshape" and (first.op_type in _RESHAPING or _moves_only_ones(first)):
        return _into_reshape(first, second)
    elif first.op_type == "Reshape" and second.op_type in ("Squeeze", "Unsqueeze"):
        specific = _reshape_axes(first, second)
    if isinstance(specific, _Plan):
        return specific
    if first.op_type in _RESHAPING and second.op_type in ("Squeeze", "Unsqueeze", "Flatten"):
        fallback = _static_reshape(first, second)
        if isinstance(fallback, _Plan):
            fallback.inputs[0] = first.inputs[0]
            return fallback
        return f"{specific}, and {fallback}" if specific is not None else None
    return specific


def _producer_pair(node: Node, sub: Graph) -> Node | None:
    """The layout op feeding `node`'s data input, when both are plain ONNX ops of this graph."""
    if node.domain not in ("", "ai.onnx") or node.op_type not in ("Transpose", *_RESHAPING):
        return None
    if not node.inputs or node.inputs[0] is None or len(node.outputs) != 1 or node.outputs[0] is None:
        return None
    first = node.inputs[0].producer
    if first is None or first.graph is not sub or first.domain not in ("", "ai.onnx"):
        return None
    if first.op_type not in ("Transpose", *_RESHAPING) or not first.inputs or first.inputs[0] is None:
        return None
    if any(a.ref is not None for n in (first, node) for a in n.attributes.values()):
        return None
    return first


@register_pass
class MergeLayoutOps(Pass):
    name = "merge-layout-ops"
    description = "Merge consecutive Transposes, Reshapes, Squeezes and Unsqueezes into one op"
    numerics = Numerics.EXACT
    statistics = ("merged", "cancelled")

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        opset = graph.opset_version("")
        for sub in graph.all_graphs():
            for second in sub:
                first = _producer_pair(second, sub)
                if first is None:
                    continue
                plan = plan_merge(first, second, opset)
                if plan is None:
                    continue
                y = first.outputs[0]
                if isinstance(plan, str):
                    ctx.remark(f"{_label(second)}: kept, {plan}")
                    continue
                if y is None or y.is_graph_output or y.uses != [(second, 0)]:
                    why = "names a graph output" if y is None or y.is_graph_output else f"has {len(y.uses)} readers"
                    ctx.remark(f"{_label(second)}: kept, the {first.op_type} {first.name!r} before it {why}")
                    continue
                if not ctx.rewrite(plan.rule):
                    return changed
                self._apply(sub, ctx, first, second, plan)
                changed = True
        return changed

    @staticmethod
    def _apply(sub: Graph, ctx: PassContext, first: Node, second: Node, plan: _Plan) -> None:
        x, z = first.inputs[0], second.outputs[0]
        assert x is not None and z is not None
        if plan.op is None:
            if not z.is_graph_output or not (x.producer is None or x.is_graph_output or x.graph is not sub):
                z.replace_all_uses_with(x, replace_graph_outputs=True)
                sub.remove(second)
                sub.remove(first)
                ctx.stats["cancelled"] += 1
                return
            # The result names a graph output that x cannot take over: one Identity keeps both names.
            plan = _Plan(plan.rule, "Identity", [x])
            ctx.remark(f"{_label(second)}: cancels out, kept as an Identity: it names a graph output")
        inputs = [sub.make_constant(v, "shape" if plan.op == "Reshape" else "axes") if isinstance(v, np.ndarray)
                  else v for v in plan.inputs]
        new = Node(plan.op, inputs, [Value(sub.unique_name(z.name or plan.op), z.type)], plan.attributes,
                   name=second.name)
        sub.insert_before(second, new)
        ctx.created(new, [first, second], plan.rule)
        out = new.outputs[0]
        assert out is not None
        z.replace_all_uses_with(out, replace_graph_outputs=True)
        sub.remove(second)
        sub.remove(first)
        ctx.stats["merged"] += 1
