"""Constant folding: evaluate at compile time what does not depend on the model's inputs.

    y = Op(c1, c2, ...)            all inputs constant            ->  y is a constant
    y = Shape(x) / Size(x)         the dims asked for are static  ->  y is a constant
    y = Constant<value...>()                                      ->  y is a constant (initializer)
    y = ConstantOfShape(c)                                        ->  a splat constant (no bytes stored)

Values come from onnx's reference evaluator (`mlc.numerics.evaluate`), which follows the node's
opset; Shape, Size, Constant and ConstantOfShape are read off the IR directly, and the layout ops
that keep the values in order (Identity, Reshape, Flatten, Squeeze, Unsqueeze) only reshape, so a
splat stays a splat (`_fold_evaluate`, `_fold_values`). Results whose elements are all equal are
stored as splats, which cost one element whatever their shape.

Folding must not turn a small model into a large one (onnxsim's known failure: a 150-byte
`Expand` becomes hundreds of MB), yet a constant computation worth folding often is larger than
its inputs: swin's shifted-window attention mask is `Where(Not(Equal(Sub(a, b), 0)), ...)` over
two 1 KiB vectors, a 16 KiB result that costs five nodes at run time when left alone. The policy:

* no single output above `limit` bytes (4 MiB) is ever made;
* a fold may always grow the model by up to `growth` bytes (1 KiB): shape arithmetic, small
  broadcasts;
* beyond that, folds draw on a budget for the whole run: the net growth of the constants by
  this pass (new constants minus the ones made dead, every fold counted) stays within
  `growth_ratio` (1/10) of the model's constant bytes when the pass starts, and within
  `growth_cap` bytes (16 MiB) whatever the model's size.

A 150-byte model thus never grows by more than 1 KiB at a time, a 560 KB swin folds its 18 KB of
masks, a 100 MB model may gain at most 10 MB of folded constants, and no model more than
16 MiB (`_fold_budget`). What is refused stays a node, with the reason recorded as a remark (a weight cast from
float16 to float32 at load time stays a Cast; a quantized weight stays DequantizeLinear).

Two rules, in two phases over each graph: `fold-<Op>` folds single nodes; then `fold-region` takes
the nodes refused for growth alone, which may still fold as part of their constant region: the connected
nodes whose inputs are all constants or outputs of one another. The region folds as a whole when
the constants it leaves (the outputs read outside it, static in size) exceed the constants it
makes dead by at most `growth` bytes, or by what the budget has left. The dynamo exporter's
LSTM weights are such a region: four Slices of one weight, reordered by a Concat and
Unsqueezed: each Slice alone adds a copy of a quarter of the weight, the whole replaces the
weight by its reordered self.

Random ops, ops with sub-graphs, ops of other domains and nodes whose output is a graph output
(a graph output cannot be an initializer for every consumer) are never folded, nor a node whose
float16 (or narrower) result overflows to Inf from finite inputs: onnx's semantics round every
intermediate, but onnxruntime runs a float16 op that has no float16 kernel in float32 and drops
the casts between two such ops, so `Mul(x, Add(a, a))` with a = 6e4 is finite there; folded, it
would be Inf in every artifact. Folding computes
in numpy what the runtime would compute with its own kernels: transcendental functions may differ
in the last bit, hence `tolerance`.
"""

from __future__ import annotations

from mlc.ir.core import Graph, Node, Value
from mlc.ir.tensor import Tensor
from mlc.pass_api import Numerics, PassContext, PassOption, register_pass
from mlc.passes._fold_budget import FoldBudget, constant_regions, foldable, freed_bytes, stored_bytes
from mlc.passes._fold_evaluate import Folded, evaluate, refusal
from mlc.rewrite import ANY_OP, AnyRule, IRBuilder, Match, Reject, Rule, RulePass, label


def _replace(builder: IRBuilder, node: Node, folded: Folded) -> None:
    """`node`'s outputs become constants; the constants only it read go with it."""
    sub = builder.graph
    for value, tensor in zip(node.outputs, folded, strict=True):
        if value is not None and tensor is not None:
            value.replace_all_uses_with(sub.make_constant(tensor, value.name))
    inputs = [v for v in node.inputs if v is not None]
    sub.remove(node)
    for value in inputs:
        owner = value.graph
        if (not value.uses and value.is_constant and owner is not None and not value.is_graph_output
                and owner.initializers.get(value.name) is value):
            owner.remove_initializer(value)
    builder.ctx.stats["folded"] += 1


class FoldNode(Rule):
    name = "fold-node"
    law = "Op(c1, c2, ...) with constant inputs (or static Shape/Size) -> constant"
    ops = ANY_OP

    def __init__(self, budget: FoldBudget, opsets: dict[str, int]) -> None:
        self.budget, self.opsets = budget, opsets
        self.refused: dict[Graph, list[Node]] = {}  # refused for growth alone: region seeds

    def match(self, node: Node) -> Match | Reject | None:
        if not foldable(node):
            return None
        folded = evaluate(node, self.opsets, self.budget.limit)
        if not isinstance(folded, list):
            return folded
        added = sum(stored_bytes(t) for t in folded if t is not None)
        if any(t is not None and t.nbytes > self.budget.limit and not t.is_splat for t in folded):
            return refusal(node, f"its output takes {added} bytes (limit {self.budget.limit})", "skipped_size")
        growth = added - freed_bytes([node])
        if not self.budget.affordable(growth):
            assert node.graph is not None
            self.refused.setdefault(node.graph, []).append(node)
            return refusal(node, f"it would grow the model by {growth} bytes ({added} bytes of new constants for "
                           f"{added - growth} freed; {self.budget.left()} bytes of the growth budget left)",
                           "skipped_growth")
        self.budget.spent += growth
        return Match(node, facts={"folded": folded}, rule=f"fold-{node.op_type}")

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        _replace(builder, match.root, match.facts["folded"])


class FoldRegion(Rule):
    name = "fold-region"
    law = "a connected constant region -> its outputs read outside it, as constants (all or nothing)"
    ops = ANY_OP

    def __init__(self, nodes: FoldNode) -> None:
        self.nodes = nodes

    def start(self, graph: Graph) -> None:
        self.regions = constant_regions(graph, self.nodes.refused.get(graph, []))

    def walks(self, graph: Graph) -> bool:
        return bool(self.regions)

    def match(self, node: Node) -> Match | Reject | None:
        region = self.regions.get(node)
        budget = self.nodes.budget
        growth = budget.region_growth(region) if region else None
        if region is None or growth is None:
            return None
        if not budget.affordable(growth):
            return self.reject(node, f"a constant region of {len(region)} nodes from {label(region[0])} would grow "
                               f"the model by {growth} bytes ({budget.left()} bytes of the growth budget left)")
        env: dict[Value, Tensor] = {}
        results = []
        for member in region:  # every node evaluates before any is replaced: all or nothing
            folded = evaluate(member, self.nodes.opsets, budget.limit, env)
            if not isinstance(folded, list):
                return folded  # the member's reason (or None): the region stays
            results.append(folded)
            env.update((v, t) for v, t in zip(member.outputs, folded, strict=True) if v is not None and t is not None)
        budget.spent += growth
        return Match(node, nodes=tuple(region), facts={"folded": results})

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        for member, folded in zip(match.nodes, match.facts["folded"], strict=True):
            _replace(builder, member, folded)
            builder.ctx.stats["folded_in_regions"] += 1


@register_pass
class FoldConstants(RulePass):
    name = "fold-constants"
    description = "Evaluate nodes whose inputs are constant (and static Shape/Size) at compile time"
    numerics = Numerics.TOLERANCE
    options = (
        PassOption("limit", int, 4 << 20, "largest output (bytes) a folded node may produce"),
        PassOption("growth", int, 1024, "bytes by which one fold may always grow the model's constants"),
        PassOption("growth_ratio", float, 0.1,
                   "beyond `growth`: the most the run's folds may grow the constants, as a fraction of them"),
        PassOption("growth_cap", int, 16 << 20, "beyond `growth`: the most bytes the run's folds may add in all"),
    )
    statistics = ("folded", "folded_in_regions", "skipped_size", "skipped_growth", "skipped_error")

    def run(self, graph: Graph, ctx: PassContext) -> bool:  # the rules hold this run's budget
        model = graph.root.model
        budget = FoldBudget(graph, self.option("limit"), self.option("growth"), self.option("growth_ratio"),
                            self.option("growth_cap"))
        self._rules = FoldNode(budget, dict(model.opset_imports) if model is not None else {"": 17})
        return super().run(graph, ctx)

    def rule_set(self) -> tuple[AnyRule, ...]:
        return (self._rules,)

    def later_phases(self) -> tuple[tuple[AnyRule, ...]]:
        return ((FoldRegion(self._rules),),)
