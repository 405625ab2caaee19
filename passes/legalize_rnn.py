"""Unroll LSTM, GRU and RNN over a static sequence length into primitive ONNX ops.

Apache TVM's ONNX frontend has no converter for the recurrent ops, so a model that contains one
cannot be compiled at all. With a static sequence length the recurrence is a fixed chain of
steps, and each step is a handful of MatMul / Add / Mul / Sigmoid / Tanh nodes. One rule per op:

    LSTM(X, W, R, ...) -> per direction X·Wᵀ, then seq LSTM cell steps   (the laws: `_rnn_cells`)
    GRU(X, W, R, ...)  -> per direction X·Wᵀ, then seq GRU cell steps
    RNN(X, W, R, ...)  -> per direction X·Wᵀ, then seq RNN cell steps

The checks are `_rnn_plan`, the unrolling `_rnn_unroll`, the activations `_rnn_activations`, the
emission (constant weight preparation folded in numpy) `_rnn_emit`. Only ops whose signature is
the same in opsets 7 to 22 are emitted, except Split (sizes as an attribute before opset 13),
Clip (bounds as attributes before opset 11) and ThresholdedRelu (an op from opset 10).

Semantics follow the ONNX spec where onnxruntime agrees with it: `clip` bounds the inputs of the
gate activations f and g (not the input of h, whose argument is the cell state), LSTM
`input_forget` couples the gates as f = 1 - i, and activation_alpha/beta are consumed in the
order of the activation list across both directions.

Left alone (with a reason): dynamic sequence length, a `sequence_lens` that is not a constant
equal to the full length for every batch item, activations outside the spec's list, Affine /
ScaledTanh / ThresholdedRelu without explicit alpha (beta) (onnxruntime uses 0 where the ONNX ops
default to 1), element types other than f16/f32/f64, malformed nodes, and (`keep_ops`) the ops a
backend runs with a recurrence kernel of its own.
"""

from __future__ import annotations

from collections.abc import Set

from mlc.ir.core import Graph, Node
from mlc.pass_api import Numerics, PassContext, PassOption, register_pass
from mlc.passes._rnn_cells import Step, gru_step, lstm_step, rnn_step
from mlc.passes._rnn_emit import Emitter
from mlc.passes._rnn_plan import default_recurrence, plan_recurrence
from mlc.passes._rnn_unroll import unroll
from mlc.rewrite import STANDARD_DOMAINS, IRBuilder, Match, Reject, Rule, RulePass, apply_rules

STEPS: dict[str, Step] = {"LSTM": lstm_step, "GRU": gru_step, "RNN": rnn_step}


class UnrollRecurrence(Rule):
    """One rule per recurrent op, named after it (`lstm`, `gru`, `rnn`)."""

    def __init__(self, op: str, keep: Set[str]) -> None:
        self.name, self.ops, self.keep = op.lower(), (op,), keep
        self.law = f"{op}(X, W, R, ...) with a static sequence length -> its cell steps, unrolled"

    def match(self, node: Node) -> Match | Reject | None:
        if node.op_type in self.keep and default_recurrence(node):
            return self.reject(node, "keep_ops leaves it to the backend's recurrence kernel")
        assert node.graph is not None
        plan = plan_recurrence(node, node.graph)
        if isinstance(plan, str):
            return self.reject(node, plan)
        return Match(node, facts={"plan": plan})

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        node, plan = match.root, match.facts["plan"]
        olds = [node.outputs[i] if i < len(node.outputs) else None for i in range(3 if plan.op == "LSTM" else 2)]
        needed = [v is not None and (bool(v.uses) or v.is_graph_output) for v in olds]
        emitter = Emitter(builder, plan.dtype, plan.opset)
        news = unroll(emitter, plan, node, STEPS[plan.op], needed)
        for old, new in zip(olds, news, strict=False):
            if old is not None and new is not None:
                builder.replace(old, new)
        builder.graph.remove(node)
        emitter.drop_unused()
        builder.ctx.stats[self.name] += 1
        builder.ctx.stats["steps"] += plan.seq * len(plan.directions)


@register_pass
class LegalizeRnn(RulePass):
    name = "legalize-rnn"
    description = "Unroll LSTM, GRU and RNN with a static sequence length into MatMul and elementwise ops"
    numerics = Numerics.TOLERANCE
    statistics = ("lstm", "gru", "rnn", "steps", "kept")
    options = (PassOption("keep_ops", str, "",
                          "op types (LSTM, GRU, RNN; separated by , + or spaces) left alone where their "
                          "activations are the ONNX defaults and sequence_lens is absent: a backend with a loop "
                          "kernel of its own runs those faster than the unrolled steps (TVM: 8x on a 2-layer "
                          "bidirectional LSTM)"),)

    def keep_ops(self) -> frozenset[str]:
        return frozenset(str(self.values["keep_ops"]).replace(",", " ").replace("+", " ").split())

    def rule_set(self) -> list[Rule]:
        keep = self.keep_ops()
        return [UnrollRecurrence(op, keep) for op in STEPS]

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        keep = self.keep_ops()
        kept = sum(1 for sub in graph.all_graphs() for node in sub
                   if node.op_type in keep and node.op_type in STEPS and node.domain in STANDARD_DOMAINS
                   and default_recurrence(node))
        if kept:
            ctx.stats["kept"] += kept
        return apply_rules(graph, self.rule_set(), ctx)
