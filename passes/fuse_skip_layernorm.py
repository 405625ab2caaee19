"""Fuse a residual Add and the LayerNormalization after it into onnxruntime's SkipLayerNormalization.

    LayerNormalization(Add(a, b), gamma, beta)                 ->  SkipLayerNormalization(a, b, gamma, beta)
    LayerNormalization(Add(Add(a, b), bias), gamma, beta)      ->  SkipLayerNormalization(a, b, gamma, beta, bias)
    LayerNormalization(Add(Add(m, bias), b), gamma, beta)      ->  SkipLayerNormalization(m, b, gamma, beta, bias)

(the last is BERT's `dense(x) + residual` with the dense layer's bias Add still separate; bias
is a 1-D constant of the hidden size). The contract, from onnxruntime's contrib schema
(com.microsoft, version 1): inputs `input`, `skip`, `gamma`, optional `beta`, optional `bias`
(gamma/beta/bias 1-D of the hidden size); outputs `output`, optional `mean` and `inv_std_var`
(training only, omitted here), optional `input_skip_bias_sum` = input + skip + bias; attribute
`epsilon` (its default, 1e-12, is not LayerNormalization's 1e-5, so it is always written). When
the sum is also read elsewhere (a pre-LN transformer's residual stream, GPT-2), that fourth output
replaces it; the other intermediate Adds must have no other readers.

Where it applies: LayerNormalization over the last axis only (axis -1), stash_type 1, Mean and
InvStdDev unused, 1-D gamma/beta; input and skip of one rank, 2 or 3 (the kernel refuses others).
Their shapes must agree: onnxruntime's kernel checks the last two dims at run time and refuses a
mismatch, but given a 3-D input of batch 1 and a skip of batch B it silently returns a result of
the input's shape. So the batch dims must be provably equal (a broadcasting Add, an embedding
plus a [1, S, H] position table, is refused) and the last two must not be provably different
(the same int or symbol, or one of them unknown; a static 1 against anything else is a
broadcast and refused). ONNX shape inference loses symbolic dims at computed Reshapes and
broadcasts (`unk__N`), so the dims are the symbolic shape analysis' (`_symbolic.ShapeInfo`, with
the com.microsoft ops the earlier fusions and this pass emit in `_contrib_shapes.py`): dims equal
by construction stay equal, which proves BERT's and GPT-2's residual operands share the batch
dim. Element types: float32 and float16 (the CPU kernels). The checks are in
`_skip_layernorm_match.py`.

Every LayerNormalization is a candidate; when one does not fuse, a remark `skip-layernorm at
'name': not applied, <why>` says why. The pass is onnxruntime-only and imports com.microsoft
(version 1) into the model. Only the `onnxruntime-cuda` target appends it at -O3: onnxruntime
1.31's CPU kernel is 1.4-2.7x slower than the Add+Add+LayerNormalization it replaces
(benchmarks/bench_skip_layernorm.py).
`tolerance`: the fused kernel adds and normalizes in one pass, in its own order.
"""

from __future__ import annotations

from mlc.ir.core import Graph, Node
from mlc.pass_api import Numerics, register_pass
from mlc.passes._contrib_shapes import ContribShapes
from mlc.passes._graph_edits import ensure_ms_opset, fused_name
from mlc.passes._match_basics import const_array, dtype_of
from mlc.passes._skip_layernorm_match import layernorm_problem, shape_problem, split_sum
from mlc.passes._symbolic import as_int
from mlc.passes._transformer_match import MS_DOMAIN, is_op
from mlc.rewrite import IRBuilder, Match, Reject, Rule, RulePass


class SkipLayerNormRule(Rule):
    """`skip-layernorm`, with `-bias` (a bias Add folded in) and `-sum` (the sum kept as output 3)."""

    name = "skip-layernorm"
    law = "LayerNormalization(Add(a, b) [+ bias]) -> com.microsoft::SkipLayerNormalization(a, b, gamma, beta, bias)"
    ops = ("LayerNormalization",)

    def __init__(self) -> None:
        self.shapes: dict[Graph, ContribShapes] = {}  # per graph, made at its first candidate

    def shapes_of(self, graph: Graph) -> ContribShapes:
        if graph not in self.shapes:
            self.shapes[graph] = ContribShapes(graph)
        return self.shapes[graph]

    def match(self, ln: Node) -> Match | Reject | None:
        if ln.graph is None or ln.graph.root.model is None:
            return None
        found = self._plan(ln, self.shapes_of(ln.graph))
        return self.reject(ln, found) if isinstance(found, str) else found

    def _plan(self, ln: Node, shapes: ContribShapes) -> Match | str:
        x = ln.inputs[0] if ln.inputs else None
        add = x.producer if x is not None else None
        if x is None or add is None or not is_op(add, "Add"):
            return "its input is not an Add"
        hidden = layernorm_problem(ln, x, shapes)
        if isinstance(hidden, str):
            return hidden
        p, q = add.inputs[0], add.inputs[1]
        if p is None or q is None:
            return "the Add has an omitted operand"
        found = split_sum(add, p, q, hidden)
        a, b = found.input, found.skip
        if a is None or b is None or const_array(a) is not None or const_array(b) is not None:
            return "the Add adds a constant, not a skip connection"
        a_shape, b_shape = shapes.shape(a), shapes.shape(b)
        if a_shape is None or b_shape is None or len(a_shape) not in (2, 3) or len(b_shape) not in (2, 3):
            return "the Add's operands are not known to be 2-D or 3-D (the kernel's ranks)"
        why = shape_problem(a_shape, b_shape, shapes)
        if why is not None:
            return why
        if as_int(a_shape[-1]) != hidden:
            return f"the last dim {shapes.to_dim(a_shape[-1])} is not the hidden size {hidden}"
        dtype = dtype_of(x)
        if dtype_of(a) != dtype or dtype_of(b) != dtype or (found.bias is not None and dtype_of(found.bias) != dtype):
            return "the operands are not all of one element type"
        keep_total = x.is_graph_output or len(x.uses) > 1
        if keep_total and any(v is not None and v.producer is not None for v in ln.inputs[1:3]):
            return "the sum is read elsewhere and gamma/beta are computed (they would be needed before the Add)"
        if ln.graph is not add.graph:
            return "the Add is in another graph"
        member = self.name + ("-bias" if found.bias is not None else "") + ("-sum" if keep_total else "")
        return Match(ln, nodes=(*found.adds, ln), values={"input": a, "skip": b, "bias": found.bias, "total": x},
                     facts={"keep_total": keep_total}, rule=member)

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        ln, keep_total = match.root, match.facts["keep_total"]
        ensure_ms_opset(builder.graph.root)
        beta = ln.inputs[2] if len(ln.inputs) > 2 else None
        inputs = [match["input"], match["skip"], ln.inputs[1], beta, match.values["bias"]]
        while inputs and inputs[-1] is None:
            inputs.pop()
        outputs = [ln.outputs[0], None, None, match["total"]] if keep_total else [ln.outputs[0]]
        # With the sum kept, readers of it may precede the LayerNormalization: the fused node goes
        # where the Add was (gamma/beta are then constants or graph inputs).
        builder.fuse(match.nodes, "SkipLayerNormalization", inputs, outputs,
                     {"epsilon": float(ln.attr("epsilon", 1e-5))}, domain=MS_DOMAIN,
                     name=fused_name(ln, "SkipLayerNormalization"), before=match.nodes[-2] if keep_total else ln)
        builder.ctx.stats["fused"] += 1


@register_pass
class FuseSkipLayerNorm(RulePass):
    name = "fuse-skip-layernorm"
    description = "Fuse residual Add (+ bias) + LayerNormalization into onnxruntime's SkipLayerNormalization"
    numerics = Numerics.TOLERANCE
    statistics = ("fused",)

    def rule_set(self) -> tuple[Rule, ...]:
        return (SkipLayerNormRule(),)  # fresh: its shape analyses belong to one run
