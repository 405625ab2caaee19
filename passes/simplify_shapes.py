"""Shape computations that exporters write for dynamic models, reduced to constants.

PyTorch and TensorFlow exporters compute reshape targets at run time even when most of the
answer is known: `x.view(x.size(0), x.size(1), heads, -1)` becomes

    %s = Shape(%x); %b = Gather(%s, 0); %b1 = Unsqueeze(%b, [0]); ... ; %t = Concat(%b1, %n1, [4], [-1])
    %y = Reshape(%x, %t)

Once dims are static, `fold-constants` folds the chain. With symbolic dims (dynamic batch and
sequence) it cannot, but the chain's values are known symbolically (`mlc.passes._symbolic`:
`%t` is [batch, sequence, 4, -1] for x: [batch, sequence, 64]), and Reshape itself can copy a
dim: a target entry 0 means "the input's dim at this position" (when `allowzero` is 0), and one
entry may be -1. The rules:

    fold-shape-value   an integer or boolean value whose every element is known and constant
                       (Gather(Shape(x), 1) with x's dim 1 static, Slice(Shape(x), -1) likewise,
                       Equal(Concat(batch, -1), -1) = [false, true] since a dim is never -1,
                       Where over it, arithmetic on such values), read by a node that does not
                       fold itself                                  ->  a constant
    reshape-copy-dims  Reshape(x, t), t computed: the output dims derived from t and x's dims
                       (its -1 solved from the element count) -> Reshape(x, constant): each
                       output dim that is static is written out, each that is x's own dim at
                       the same position is 0, and at most one other is -1 (`allowzero` goes
                       where a 0 entry copies and no output dim is a literal 0: it changes
                       nothing else)
    reshape-noop       Reshape(x, t) whose output dims provably are x's dims     ->  x
    expand-noop        Expand(x, s) with s computed, broadcasting x to x's own dims   ->  x

Every dim used is equal by construction (the same symbolic expression), so the rewrites hold for
every shape the model accepts. With the analysis built, the pass first gives every value the dims
it derives, as `infer-shapes` does (option `refine_types`, on by default), so that the passes
after it compare dims by one name. The Shape→Gather→Concat chains its rewrites orphan go with it
(a dead Shape still reads its tensor, and a layout merge after this pass would count it as a
reader); unused constants are left to `dce`. The per-graph analysis and fold-shape-value are
`mlc.passes._shape_folding`, the Reshape and Expand rules `mlc.passes._reshape_rules`.
"""

from __future__ import annotations

from mlc.ir.core import Graph
from mlc.pass_api import Numerics, PassContext, PassOption, register_pass
from mlc.passes._graph_edits import remove_dead_producers
from mlc.passes._reshape_rules import ExpandNoop, ReshapeTarget
from mlc.passes._shape_folding import FoldShapeValue, GraphShapes
from mlc.rewrite import RulePass, apply_rules


@register_pass
class SimplifyShapes(RulePass):
    name = "simplify-shapes"
    description = "Turn Shape→Gather→Concat→Reshape chains into constant Reshape targets where dims allow"
    numerics = Numerics.EXACT
    options = (PassOption("refine_types", bool, True,
                          "also give values the dims the analysis derives, as infer-shapes does"),)
    statistics = ("dims_folded", "reshapes_simplified", "reshapes_removed", "expands_removed", "values_refined",
                  "dims_refined", "dead_nodes_removed")

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        """The rules share one run's analyses (they need the context to refine types) and its
        orphans, whose dead chains go at the end."""
        shapes = GraphShapes(ctx, bool(self.option("refine_types")))
        try:
            changed = apply_rules(graph, (FoldShapeValue(shapes), ReshapeTarget(shapes), ExpandNoop(shapes)), ctx)
        finally:
            ctx.stats["dead_nodes_removed"] += remove_dead_producers(shapes.orphans)
        return changed or shapes.refined
