"""What the simplify-slices Concat rule would do to one Concat, decided before anything changes.

`plan_concat` splices input Concats on the same axis (concat-concat), finds each input's piece
(`mlc.passes._concat_pieces`) and groups adjacent pieces of one source, greedily from the left; a
group becomes its source where it covers it (concat-slices, split-concat), a Shape with start and
end (concat-shapes) or one new Slice (concat-slices). A group that would save no node stays as it
is. The plan makes nothing: `mlc.passes._concat_rules` builds it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mlc.ir.core import Graph, Node, Value
from mlc.passes._concat_pieces import Piece, gather_shared, piece_of, splice_concats
from mlc.passes._slice_shape_rule import shape_attrs_allowed
from mlc.passes._symbolic import ZERO, Expr, ShapeInfo, as_int


@dataclass(frozen=True)
class GroupPlan:
    """What stands for a group of adjacent pieces: `rule`, and the value `kind` says to make:
    "source" (the source itself), "shape" (Shape of `values[0]`'s producer's input, [start, end))
    or "slice" (a Slice of the source, rows [lo, hi))."""

    rule: str
    kind: str
    first: Piece
    hi: Expr  # the group's end
    values: tuple[Value, ...]


@dataclass
class ConcatPlan:
    """The Concat's parts after splicing, and per step (i, j, plan): parts[i:j] replaced by what
    `plan` makes, or parts[i] kept (plan None)."""

    axis: int
    spliced: list[Node]
    parts: list[Value]
    steps: list[tuple[int, int, GroupPlan | None]] = field(default_factory=list)

    def rules(self) -> list[str]:
        """The rewrites the plan counts, in order."""
        return ["concat-concat"] * bool(self.spliced) + [p.rule for _, _, p in self.steps if p is not None]


def group_plan(graph: Graph, group: list[Piece], values: list[Value], axis: int, info: ShapeInfo) -> GroupPlan | None:
    """How the adjacent pieces `group` are replaced, or None when no node would be saved."""
    first, lo, hi = group[0], group[0].lo, group[-1].hi
    if len(group) == 1 and (first.kind != "gather" or gather_shared(values[0])):
        return None  # one Slice for one Slice, or for an Unsqueeze whose Gather stays
    kinds = {p.kind for p in group}
    if "split" in kinds:
        split = values[0].producer
        if kinds != {"split"} or split is None or list(split.outputs) != values:
            return None  # only a whole Split goes: otherwise no node is saved
    if first.kind == "shape":
        start, end = as_int(lo), as_int(hi)
        shape_node = values[0].producer
        assert start is not None and end is not None and shape_node is not None
        if not shape_attrs_allowed(graph, shape_node, start, end):
            return None
        return GroupPlan("concat-shapes", "shape", first, hi, tuple(values))
    shape = info.shape(first.source)
    if shape is not None and lo == ZERO and hi == shape[axis]:
        return GroupPlan("split-concat" if first.kind == "split" else "concat-slices", "source", first, hi,
                         tuple(values))
    start, end = as_int(lo), as_int(hi)
    if start is None or shape is None or (end is None and hi != shape[axis]):
        return None  # a bound is symbolic and not the dim's end
    return GroupPlan("concat-slices", "slice", first, hi, tuple(values))


def plan_concat(graph: Graph, node: Node, info: ShapeInfo) -> ConcatPlan | None:
    out = node.outputs[0]
    rank = info.rank(out)
    if out is None or rank is None or not node.inputs or any(v is None for v in node.inputs):
        return None
    axis = node.attr("axis", 0)
    axis = axis + rank if axis < 0 else axis
    spliced: list[Node] = []
    parts = splice_concats(graph, node, axis, info, spliced)
    if not spliced:
        parts = [v for v in node.inputs if v is not None]
    readers = {node, *spliced}
    pieces = [piece_of(graph, readers, v, axis, info) for v in parts]
    plan = ConcatPlan(axis, spliced, parts)
    i = 0
    while i < len(parts):
        first = pieces[i]
        j = i + 1
        while (j < len(parts) and first is not None and pieces[j] is not None
               and pieces[j].source is first.source and (pieces[j].kind == "shape") == (first.kind == "shape")  # type: ignore[union-attr]
               and pieces[j].lo == pieces[j - 1].hi  # type: ignore[union-attr]
               and parts[j] is not parts[j - 1]):
            j += 1
        group: list[Piece] = pieces[i:j]  # type: ignore[assignment]
        made = None if first is None else group_plan(graph, group, parts[i:j], axis, info)
        plan.steps.append((i, j if made is not None else i + 1, made))
        i = j if made is not None else i + 1
    return plan if plan.rules() else None


__all__ = ["ConcatPlan", "GroupPlan", "group_plan", "plan_concat"]
