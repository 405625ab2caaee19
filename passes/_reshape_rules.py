"""The simplify-shapes rules on Reshape and Expand with computed targets.

`ReshapeTarget` derives the output dims of Reshape(x, t) from t's symbolic values: where they are
x's own dims the Reshape goes (reshape-noop); otherwise, for a computed t, the target becomes a
constant that writes static dims out, copies x's dim at the same position with 0 and solves at
most one other with -1 (reshape-copy-dims). `ExpandNoop` removes an Expand whose computed shape
broadcasts x to x's own dims.
"""

from __future__ import annotations

import numpy as np

from mlc.ir.core import Node
from mlc.passes._match_basics import output_name_blocked
from mlc.passes._shape_folding import GraphShapes
from mlc.passes._symbolic import Shape, broadcast, reshape_dims
from mlc.rewrite import IRBuilder, Match, Reject, Rule, label


def copy_entries(x: Shape, dims: Shape, allowzero: bool) -> list[int | None]:
    """The constant target entries for `dims`: static ones written out, x's own dims copied with 0
    (a 0 entry copies unless allowzero: where no output dim is a literal 0, allowzero makes no
    difference but to forbid the copy, and it is dropped for one), None where neither."""
    copy = not allowzero or not any(d is not None and d.is_const and d.value == 0 for d in dims)
    entries: list[int | None] = []
    for i, d in enumerate(dims):
        if d is not None and d.is_const and (d.value != 0 or allowzero):
            entries.append(d.value)
        elif copy and d is not None and i < len(x) and x[i] == d:
            entries.append(0)
        else:
            entries.append(None)
    return entries


class ReshapeTarget(Rule):
    name = "reshape-copy-dims"
    law = "Reshape(x, computed t) -> Reshape(x, constant), or x where the output dims are x's"
    ops = ("Reshape",)

    def __init__(self, shapes: GraphShapes) -> None:
        self.shapes = shapes

    def match(self, node: Node) -> Match | Reject | None:
        data, target, out = node.inputs[0], node.inputs[1] if len(node.inputs) > 1 else None, node.outputs[0]
        if data is None or target is None or out is None or node.graph is None or node in self.shapes.folded:
            return None
        info, _ = self.shapes.of(node.graph)
        allowzero = bool(node.attr("allowzero", 0))
        x, elems = info.shape(data), info.elems(target)
        dims = reshape_dims(x, elems, allowzero) if x is not None and elems is not None else None
        if x is None or dims is None:
            return None
        if len(dims) == len(x) and all(d is not None and d == e for d, e in zip(dims, x, strict=True)):
            if output_name_blocked(out, data, node.graph):
                return Reject("reshape-noop", label(node), "it names a graph output its input cannot take")
            return Match(node, values={"x": data, "target": target}, rule="reshape-noop")
        if target.is_constant:
            return None
        entries = copy_entries(x, dims, allowzero)
        unknown = [i for i, e in enumerate(entries) if e is None]
        if len(unknown) > 1:
            return self.reject(node, f"{len(unknown)} target dims are neither constant nor copied")
        if unknown:
            entries[unknown[0]] = -1
        return Match(node, values={"target": target}, facts={"entries": entries}, rule=self.name)

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        node, target = match.root, match["target"]
        self.shapes.orphans.append(target)
        if match.rule == "reshape-noop":
            builder.bypass(node, match["x"])
            builder.ctx.stats["reshapes_removed"] += 1
            return
        entries = match.facts["entries"]
        node.set_input(1, builder.constant(np.array(entries, dtype=np.int64), "shape"))
        if node.attr("allowzero", 0) and 0 in entries:
            del node.attributes["allowzero"]
        builder.ctx.stats["reshapes_simplified"] += 1


class ExpandNoop(Rule):
    name = "expand-noop"
    law = "Expand(x, computed s), broadcast(x, s) = x's dims -> x"
    ops = ("Expand",)

    def __init__(self, shapes: GraphShapes) -> None:
        self.shapes = shapes

    def match(self, node: Node) -> Match | None:
        data, shape, out = node.inputs[0], node.inputs[1] if len(node.inputs) > 1 else None, node.outputs[0]
        if data is None or shape is None or out is None or shape.is_constant or node.graph is None:
            return None  # a constant shape is eliminate-noop's
        if node in self.shapes.folded:
            return None
        info, _ = self.shapes.of(node.graph)
        x, elems = info.shape(data), info.elems(shape)
        if x is None or elems is None:
            return None
        result = broadcast([x, elems])
        if result is None or len(result) != len(x) or any(r is None or r != d for r, d in zip(result, x, strict=True)):
            return None
        if any(e is None for e in elems) or output_name_blocked(out, data, node.graph):
            return None
        return Match(node, values={"x": data, "shape": shape})

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        builder.bypass(match.root, match["x"])
        self.shapes.orphans.append(match["shape"])
        builder.ctx.stats["expands_removed"] += 1


__all__ = ["ExpandNoop", "ReshapeTarget", "copy_entries"]
