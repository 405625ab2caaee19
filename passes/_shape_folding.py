"""The per-graph analysis the simplify-shapes rules read, and the fold-shape-value rule.

The symbolic analysis (`mlc.passes._symbolic.ShapeInfo`) of a graph is built as the driver enters
it (`Rule.start`), so after the rewrites of the graphs visited before it; with `refine_types` the
graph's values then get the dims it derives. The analysis is not
updated by the rewrites: every rule reads the dims as they were when the graph was entered.
"""

from __future__ import annotations

import numpy as np

from mlc.ir.core import Graph, Node, Value
from mlc.ir.types import TensorType
from mlc.pass_api import PassContext
from mlc.passes._symbolic import INT_DTYPES, ShapeInfo, elems_array
from mlc.passes.infer_shapes import refine_types
from mlc.rewrite import ANY_OP, IRBuilder, Match, Rule

Foldable = dict[Node, dict[Value, np.ndarray]]


class GraphShapes:
    """The analyses of the graphs one run of the pass has entered, and what its rewrites left behind."""

    def __init__(self, ctx: PassContext, refine: bool) -> None:
        self.ctx, self.refine = ctx, refine
        self._graphs: dict[int, tuple[ShapeInfo, Foldable]] = {}
        self.refined = False  # refine_types changed a type
        self.folded: set[Node] = set()  # nodes fold-shape-value rewrote: the other rules leave them
        self.orphans: list[Value] = []  # values whose readers moved away: their chains may be dead now

    def of(self, graph: Graph) -> tuple[ShapeInfo, Foldable]:
        if id(graph) not in self._graphs:
            info = ShapeInfo(graph)
            if self.refine:
                self.refined |= refine_types(graph, info, self.ctx)
            self._graphs[id(graph)] = info, foldable_values(graph, info)
        return self._graphs[id(graph)]


def foldable_values(graph: Graph, info: ShapeInfo) -> Foldable:
    """The nodes with outputs whose values are all known constants (and those values)."""
    found: Foldable = {}
    for node in graph:
        if node.domain != "" or node.op_type == "Constant":
            continue
        arrays = {}
        for out in node.outputs:
            if out is None or out.is_graph_output or not isinstance(out.type, TensorType):
                continue
            if out.type.dtype not in INT_DTYPES:
                continue
            elems, shape = info.elems(out), info.shape(out)
            array = elems_array(elems, out.type.dtype, shape) if elems is not None and shape is not None else None
            if array is not None:
                arrays[out] = array
        if arrays:
            found[node] = arrays
    return found


class FoldShapeValue(Rule):
    """Each output whose values are all known constants, read by a node that is not folded itself,
    becomes a constant (the rest of a folded chain is left to dce)."""

    name = "fold-shape-value"
    law = "v = f(...), every element of v known and constant, read by a node that does not fold -> constant"
    ops = ANY_OP

    def __init__(self, shapes: GraphShapes) -> None:
        self.shapes = shapes

    def start(self, graph: Graph) -> None:
        self.shapes.of(graph)  # the analysis (and refined types) of the graph the driver enters

    def match(self, node: Node) -> Match | None:
        assert node.graph is not None
        _, foldable = self.shapes.of(node.graph)
        if node not in foldable:
            return None
        outputs = [(out, array) for out, array in foldable[node].items()
                   if not all(user in foldable for user, _ in out.uses)]
        return Match(node, facts={"outputs": outputs}) if outputs else None

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        self.shapes.folded.add(match.root)
        for k, (out, array) in enumerate(match.facts["outputs"]):
            if k and not builder.ctx.rewrite(self.name):  # the driver counted the first output
                return
            out.replace_all_uses_with(builder.constant(array, out.name))
            self.shapes.orphans.append(out)
            builder.ctx.stats["dims_folded"] += 1


__all__ = ["FoldShapeValue", "Foldable", "GraphShapes", "foldable_values"]
