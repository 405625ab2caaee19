"""Which outputs are picked by a discrete selection (TopK, NonMaxSuppression), and along which axis.

A detector's boxes, a classifier's top-k: the rows of such outputs are records that a selection
chose and ordered by a score. Two correct executions of the same model can order near-tied scores
differently (one last-bit difference from another kernel or a rewritten graph swaps two rows), and
a NonMaxSuppression that sees the scores in another order may even keep the other one of two
equivalent boxes. Comparing those outputs element by element then reports a 25-pixel error for a
correct program; `mlc.numerics.records` compares them as records instead, and needs to know which
outputs they are and which axis holds the records. That is what this module finds, by walking the
graph (sub-graphs of If included) forward from each selection's outputs.

The record axis is followed through the ops detection and top-k heads use between the selection
and the outputs: gathers by the selected indices, slices, concatenations, splits, squeezes,
transposes, elementwise math and casts. A tensor whose axis cannot be followed (a Reshape that
merges it, a MatMul over it) stays marked as selection-dependent with an unknown axis: it is then
compared in order as before, and a failure says why it may be a tie. ArgMax/ArgMin are not
followed: a tie there changes a value, not an order, and no record comparison can explain it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from mlc.ir.core import Graph, Node, Value
from mlc.ir.tensor import Tensor
from mlc.ir.types import TensorType

__all__ = ["Selection", "selection_outputs"]

# ops that pick and order records: output index -> how the record axis is found
SOURCES = ("TopK", "NonMaxSuppression")
_UNARY = frozenset({
    "Abs", "Acos", "Acosh", "Asin", "Asinh", "Atan", "Atanh", "BitwiseNot", "Cast", "CastLike", "Ceil", "Celu",
    "Clip", "Cos", "Cosh", "Dropout", "Elu", "Erf", "Exp", "Floor", "Gelu", "HardSigmoid", "HardSwish",
    "Identity", "IsInf", "IsNaN", "LeakyRelu", "Log", "Mish", "Neg", "Not", "Reciprocal", "Relu", "Round",
    "Selu", "Shrink", "Sigmoid", "Sign", "Sin", "Sinh", "Softplus", "Softsign", "Sqrt", "Tan", "Tanh",
    "ThresholdedRelu",
})
_BROADCAST = frozenset({
    "Add", "And", "BitShift", "BitwiseAnd", "BitwiseOr", "BitwiseXor", "Div", "Equal", "Greater",
    "GreaterOrEqual", "Less", "LessOrEqual", "Max", "Mean", "Min", "Mod", "Mul", "Or", "Pow", "PRelu", "Sub",
    "Sum", "Where", "Xor",
})
# along the record axis these are permutation-equivariant (softmax over records) or leave it alone
_PER_AXIS = frozenset({"Softmax", "LogSoftmax", "Hardmax", "LpNormalization"})
_REDUCE = frozenset({"ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean",
                     "ReduceMin", "ReduceProd", "ReduceSum", "ReduceSumSquare"})


@dataclass(frozen=True)
class Selection:
    """How an output depends on selections: `axis` holds the records (None: not traceable), and
    `sources` names the selecting nodes (`TopK '/model/TopK'`), for grouping and for the report."""

    axis: int | None
    sources: frozenset[str]

    @property
    def ops(self) -> list[str]:
        """The op types of the sources, each once, sorted: `['NonMaxSuppression', 'TopK']`."""
        return sorted({s.split(" ", 1)[0] for s in self.sources})


@dataclass(frozen=True)
class _ShapeOf:
    """A shape vector (`Shape(x)`) whose entry `position` is the number of records of x."""

    position: int
    sources: frozenset[str]


_Mark = Selection | _ShapeOf


class _Invariant:
    """The result of an op that does not depend on the records' order (a reduction over them)."""


INVARIANT = _Invariant()


def _rank(value: Value | None) -> int | None:
    t = value.type if value is not None else None
    return t.rank if isinstance(t, TensorType) else None


def _ints(value: Value | None) -> list[int] | None:
    """A constant int vector: an initializer or a `Constant` node's value."""
    if value is None:
        return None
    tensor = value.const
    producer = value.producer
    if tensor is None and producer is not None and producer.op_type == "Constant":
        tensor = producer.attr("value")
    if not isinstance(tensor, Tensor) or not tensor.has_data:
        return None
    try:
        return [int(v) for v in np.asarray(tensor.numpy()).reshape(-1)]
    except Exception:  # noqa: BLE001 - unreadable data: not a constant we can use
        return None


def _axes(node: Node, rank: int | None, attr: str = "axes", position: int = 1) -> list[int] | None:
    """The node's axes (attribute, or the constant input of newer opsets), normalized by `rank`."""
    axes = node.attr(attr)
    if axes is None:
        axes = _ints(node.inputs[position]) if position < len(node.inputs) else None
    if axes is None:
        return None
    axes = [int(a) for a in (axes if isinstance(axes, Iterable) else [axes])]
    if any(a < 0 for a in axes):
        if rank is None:
            return None
        axes = [a + rank if a < 0 else a for a in axes]
    return axes


def _norm(axis: int, rank: int | None) -> int | None:
    if axis >= 0:
        return axis
    return axis + rank if rank is not None else None


def _merge(marks: Sequence[Selection], axis: int | None) -> Selection:
    return Selection(axis, frozenset().union(*(m.sources for m in marks)))


def _same(axes: Iterable[int | None]) -> int | None:
    found = set(axes)
    return found.pop() if len(found) == 1 else None


class _Walk:
    def __init__(self) -> None:
        self.marks: dict[Value, _Mark] = {}

    def graph(self, graph: Graph) -> None:
        for node in graph:
            self.node(node)

    def sel(self, value: Value | None) -> Selection | None:
        mark = self.marks.get(value) if value is not None else None
        return mark if isinstance(mark, Selection) else None

    def node(self, node: Node) -> None:
        for sub in node.subgraphs():
            self.graph(sub)
        op = node.op_type
        outs = [v for v in node.outputs if v is not None]
        if op in SOURCES and node.domain == "":
            self.source(node)
            return
        marks = [self.sel(v) for v in node.inputs]
        data = [m for m in marks if m is not None]
        if op == "If" and node.subgraphs():
            self.if_node(node)
            return
        if op == "ConstantOfShape" and node.inputs and isinstance(self.marks.get(node.inputs[0]), _ShapeOf):
            shape_of = self.marks[node.inputs[0]]  # type: ignore[index]
            assert isinstance(shape_of, _ShapeOf)
            self.set(outs, Selection(shape_of.position, shape_of.sources))
            return
        if not data:
            return
        if op == "Shape":
            x = data[0]
            start = node.attr("start", 0)
            if x.axis is not None and not node.attr("end") and start == 0:
                self.marks[outs[0]] = _ShapeOf(x.axis, x.sources)
            return
        if op in ("Size",):
            return
        axis = self.axis(node, marks)
        if not isinstance(axis, _Invariant):
            self.set(outs, _merge(data, axis))

    def set(self, values: Sequence[Value], mark: Selection) -> None:
        for value in values:
            self.marks[value] = mark

    def source(self, node: Node) -> None:
        label = f"{node.op_type} {node.name!r}" if node.name else node.op_type
        upstream = [m for m in (self.sel(v) for v in node.inputs) if m is not None]
        sources = frozenset({label}).union(*(m.sources for m in upstream))
        if node.op_type == "TopK":
            axis = _norm(int(node.attr("axis", -1)), _rank(node.inputs[0]))
        else:  # NonMaxSuppression: selected_indices[num_selected, 3]
            axis = 0
        self.set([v for v in node.outputs if v is not None], Selection(axis, sources))

    def if_node(self, node: Node) -> None:
        branches = node.subgraphs()
        for index, out in enumerate(node.outputs):
            if out is None:
                continue
            marks = [self.sel(b.outputs[index]) for b in branches if index < len(b.outputs)]
            found = [m for m in marks if m is not None]
            if found:
                self.marks[out] = _merge(found, _same(m.axis for m in found))

    def axis(self, node: Node, marks: list[Selection | None]) -> int | _Invariant | None:
        """The record axis of the node's outputs, given its inputs' marks (None: untraceable;
        INVARIANT: the outputs are the same in whatever order the records come)."""
        op = node.op_type
        first = marks[0] if marks else None
        out_rank = _rank(node.outputs[0]) if node.outputs else None
        if op in _UNARY:
            return first.axis if first is not None and all(m is None for m in marks[1:]) else None
        if op in _BROADCAST:
            shifted = []
            for value, mark in zip(node.inputs, marks, strict=True):
                if mark is None:
                    continue
                rank = _rank(value)
                if mark.axis is None or rank is None or out_rank is None:
                    return None
                shifted.append(out_rank - rank + mark.axis)
            return _same(shifted)
        if op == "Concat":
            return _same(m.axis if m is not None else None for m in marks if m is not None)
        if first is None or first.axis is None or any(m is not None for m in marks[1:]):
            return self.index_axis(node, marks)
        a = first.axis
        rank = _rank(node.inputs[0])
        if op in ("Slice", "Split", "Tile") or op in _PER_AXIS:
            return a
        if op == "Expand":
            return out_rank - rank + a if out_rank is not None and rank is not None else None
        if op == "Transpose":
            perm = node.attr("perm")
            perm = list(perm) if perm is not None else (list(range(rank))[::-1] if rank is not None else None)
            return perm.index(a) if perm is not None and a in perm else None
        if op == "Squeeze":
            axes = _axes(node, rank)
            if axes is None:
                return None
            return None if a in axes else a - sum(1 for x in axes if x < a)
        if op == "Unsqueeze":
            axes = _axes(node, out_rank)
            if axes is None or out_rank is None:
                return None
            kept = [i for i in range(out_rank) if i not in axes]
            return kept[a] if a < len(kept) else None
        if op in _REDUCE or op in ("ArgMax", "ArgMin"):
            axes = [node.attr("axis", 0)] if op in ("ArgMax", "ArgMin") else _axes(node, rank)
            if axes is None and op in _REDUCE and len(node.inputs) < 2 and not node.attr("noop_with_empty_axes", 0):
                return INVARIANT  # reduced over every axis: a sum/max of the records is the same in any order
            if axes is None:
                return None
            axes = [x + rank if x < 0 and rank is not None else x for x in axes]
            if a in axes:  # over the records: invariant for a reduction, not for the position of the max
                return INVARIANT if op in _REDUCE else None
            return a if node.attr("keepdims", 1) else a - sum(1 for x in axes if x < a)
        if op == "Flatten":
            split = _norm(int(node.attr("axis", 1)), rank)
            return 0 if a == 0 and split == 1 else None
        if op == "Reshape":
            return self.reshape_axis(node, a)
        return self.index_axis(node, marks)

    def index_axis(self, node: Node, marks: list[Selection | None]) -> int | None:
        """Gathers: the records follow the selected indices (or the selected data)."""
        op = node.op_type
        data, idx = [*marks, None, None][:2]
        data_rank = _rank(node.inputs[0]) if node.inputs else None
        idx_rank = _rank(node.inputs[1]) if len(node.inputs) > 1 else None
        if op == "Gather":
            k = _norm(int(node.attr("axis", 0)), data_rank)
            if k is None:
                return None
            if idx is not None:
                if idx.axis is None or (data is not None and data.axis != k):
                    return None
                return k + idx.axis
            if data is None or data.axis is None or idx_rank is None:
                return None
            if data.axis < k:
                return data.axis
            if data.axis > k:
                return data.axis + idx_rank - 1
            return None  # fixed positions picked out of the records
        if op == "GatherElements":
            k = _norm(int(node.attr("axis", 0)), data_rank)
            if idx is not None:
                return idx.axis if data is None or data.axis == idx.axis else None
            return data.axis if data is not None and data.axis != k else None
        if op == "GatherND":
            batch = int(node.attr("batch_dims", 0))
            if idx is not None:
                if idx.axis is None or idx_rank is None or idx.axis >= idx_rank - 1:
                    return None
                return idx.axis if data is None or data.axis == idx.axis else None
            if data is not None and data.axis is not None and data.axis < batch:
                return data.axis
            return None
        return None

    def reshape_axis(self, node: Node, a: int) -> int | None:
        """A Reshape keeps the record axis when the dims up to it are the same before and after."""
        src = node.inputs[0].type if node.inputs[0] is not None else None
        dst = node.outputs[0].type if node.outputs[0] is not None else None
        if not isinstance(src, TensorType) or not isinstance(dst, TensorType) or src.shape is None or dst.shape is None:
            return None
        if len(dst.shape) <= a or any(s is None or s != d for s, d in zip(src.shape[:a + 1], dst.shape[:a + 1],
                                                                          strict=True)):
            return None
        return a


def selection_outputs(graph: Graph) -> dict[str, Selection]:
    """The graph's outputs that depend on a TopK/NonMaxSuppression selection, by name, with the axis
    their records lie along (None where it cannot be followed)."""
    walk = _Walk()
    walk.graph(graph)
    found = {}
    for value in graph.outputs:
        mark = walk.sel(value)
        if mark is not None:
            found[value.name] = mark
    return found
