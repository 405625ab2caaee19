"""The rule family behind onnxruntime's FusedConv and FusedGemm: an op and the activation that
alone reads it become one com.microsoft kernel (float32 only) with the activation as attributes.

`fuse-conv-activation` and `fuse-gemm-activation` each make one rule per activation of their table
from `ContribActivation`; they differ in the root op, the fused op, the activation attributes and
what else the root must satisfy (`root_problem`).
"""

from __future__ import annotations

from typing import Any

from mlc.ir.core import Node
from mlc.ir.dtypes import DType
from mlc.ir.types import TensorType
from mlc.passes._graph_edits import drop_dead_constants, ensure_ms_opset
from mlc.passes._match_basics import STANDARD, input_at, label, reader_problem
from mlc.passes._transformer_match import MS_DOMAIN
from mlc.rewrite import IRBuilder, Match, Reject, Rule


class ContribActivation(Rule):
    """`<activation>(<root>(...)) -> <fused>(...) {activation=...}`, one instance per activation."""

    root: str = ""
    fused: str = ""
    activations: tuple[str, ...] = ()

    def __init__(self, activation: str) -> None:
        self.activation = activation
        self.ops = (self.root,)
        self.name = f"{self.root.lower()}-{activation.lower()}"
        self.law = f"{activation}({self.root}(...)) -> {self.fused}(...) {{activation={activation}}}"

    def root_problem(self, root: Node) -> str | None:
        """What else rules the root out (none by default)."""
        return None

    def activation_attributes(self, act: Node) -> dict[str, Any] | str:
        """The fused op's activation attributes, or why the activation has none."""
        raise NotImplementedError

    def match(self, root: Node) -> Match | Reject | None:
        out = root.outputs[0]
        acts = [n for n in out.consumers if n.op_type in self.activations and n.domain in STANDARD] if out else []
        if out is None or not acts or acts[0].op_type != self.activation:
            return None  # not a candidate of this rule
        act, graph, x = acts[0], root.graph, input_at(root, 0)
        why = reader_problem(out)
        if why is None and act.graph is not graph:
            why = f"{label(act)} is in a sub-graph"
        why = why or self.root_problem(root)
        if why is None and (x is None or not isinstance(x.type, TensorType) or x.type.dtype != DType.FLOAT):
            why = f"its input is not known to be float32 (onnxruntime's {self.fused} kernel is float32 only)"
        if why is None and (graph is None or graph.root.model is None):
            why = f"the graph has no model to import {MS_DOMAIN} into"
        attributes = self.activation_attributes(act) if why is None else {}
        if isinstance(attributes, str):
            why = f"{label(act)}: {attributes}"
        if why is not None:
            return self.reject(root, why)
        return Match(root, nodes=(root, act), facts={"attributes": attributes})

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        root, act = match.nodes
        ensure_ms_opset(builder.graph)
        operands = list(act.inputs[1:])  # Clip's bounds: dropped once nothing reads them
        builder.fuse_chain([root, act], self.fused, list(root.inputs), {**root.attributes, **match.facts["attributes"]},
                           domain=MS_DOMAIN)
        drop_dead_constants(operands)
        builder.ctx.stats["fused"] += 1


__all__ = ["ContribActivation"]
