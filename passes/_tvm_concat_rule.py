"""legalize-tvm-shapes' Concat rule: inputs concatenated on dims TVM cannot prove equal.

Concat(u, skip) along channels, where a dim off the concatenation axis is derived (no graph
input's dim: pooled, strided, upsampled): TVM computes each input's dims its own way
(ConvTranspose(MaxPool(MaxPool(x))) has h // 4 * 2 rows, MaxPool(x) h // 2), cannot prove them
equal, and gives the Concat and everything after it an unknown shape; the first Shape of such a
tensor is then no shape expression and TVM's Cast of it fails (`relax.astype` given an R.Shape)
->  every input but the earliest computed one goes through Reshape(input, its own
concatenation-axis dim ++ the earliest one's other dims). For every input the model accepts the
dims are equal (the Concat needs them so), so the Reshape moves nothing; TVM lowers it to a view.
"""

from __future__ import annotations

from mlc.ir.core import Graph, Node, Value
from mlc.ir.types import Shape
from mlc.passes._match_basics import dtype_of
from mlc.passes._shape_elements import Element, rank_of
from mlc.passes._shape_emit import ShapeEmitter
from mlc.passes._transformer_match import dims_of
from mlc.rewrite import IRBuilder, Match, Reject, Rule


def input_dim_names(graph: Graph) -> set[str]:
    """The dim names of the (root) graph's inputs: TVM binds each to one variable."""
    return {d for v in graph.root.inputs for d in (dims_of(v) or ()) if isinstance(d, str)}


def _concat_axis(node: Node, rank: int) -> int:
    axis = int(node.attr("axis", 0))
    return axis + rank if axis < 0 else axis


def concat_plan(node: Node, names: frozenset[str] | set[str]) -> tuple[Value, list[int]] | None:
    """(the input whose dims the others take, the positions of those that get a Reshape), or
    None: every input has a static rank, some dim off the concatenation axis is derived (a
    symbolic dim that is no input's dim, such as pooled-then-upsampled rows)."""
    rank = rank_of(node.outputs[0])
    if rank is None or rank < 2 or len(node.inputs) < 2:
        return None
    axis = _concat_axis(node, rank)
    shapes = [dims_of(v) for v in node.inputs]
    if any(v is None or s is None or len(s) != rank for v, s in zip(node.inputs, shapes, strict=True)):
        return None

    def derived(shape: Shape) -> bool:
        return any(isinstance(d, str) and d not in names for i, d in enumerate(shape) if i != axis)

    if not any(derived(s) for s in shapes if s is not None):
        return None
    graph = node.graph
    order = {id(n): i for i, n in enumerate(graph)} if graph is not None else {}

    def made_at(value: Value | None) -> int:
        producer = value.producer if value is not None else None
        return -1 if producer is None else order.get(id(producer), len(order))

    anchor = min((v for v in node.inputs if v is not None), key=made_at)
    targets = [i for i, (v, s) in enumerate(zip(node.inputs, shapes, strict=True))
               if v is not anchor and s is not None and derived(s)]
    return (anchor, targets) if targets else None


class ConcatSameDimsRule(Rule):
    name = "concat-same-dims"
    law = "Concat(a, b) -> Concat(a, Reshape(b, b's axis dim ++ a's other dims))"
    ops = ("Concat",)

    names: frozenset[str] = frozenset()  # the dim names of the model's inputs, read in `start`

    def start(self, graph: Graph) -> None:
        self.names = frozenset(input_dim_names(graph))

    def match(self, node: Node) -> Match | Reject | None:
        plan = concat_plan(node, self.names)
        return None if plan is None else Match(node, values={"anchor": plan[0]}, facts={"targets": plan[1]})

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        node, anchor = match.root, match["anchor"]
        b = ShapeEmitter(builder)
        anchor_shape = dims_of(anchor)
        assert anchor_shape is not None
        axis = _concat_axis(node, len(anchor_shape))
        for index in match.facts["targets"]:
            value = node.inputs[index]
            shape, dtype = dims_of(value), dtype_of(value)
            assert value is not None and shape is not None and dtype is not None
            items: list[Element] = [d if isinstance(d, int) else (anchor, i) for i, d in enumerate(anchor_shape)]
            own = shape[axis]
            items[axis] = own if isinstance(own, int) else (value, axis)
            typed = (*anchor_shape[:axis], own, *anchor_shape[axis + 1:])
            node.set_input(index, b.op("Reshape", [value, b.shape_tensor(items)], dtype, typed))
        builder.ctx.stats["concat"] += 1


__all__ = ["ConcatSameDimsRule", "concat_plan", "input_dim_names"]
