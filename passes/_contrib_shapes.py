"""Symbolic shapes through onnxruntime's com.microsoft ops, for passes that run after the contrib
fusions (`fuse-skip-layernorm`).

`ShapeInfo` (`_symbolic.py`) derives the shapes of ai.onnx ops and reads every other op's declared
type, where ONNX inference left fresh `unk__N` dims: behind an EmbedLayerNormalization or
Attention the batch dim would no longer be provably the ids' one. `ContribShapes` adds the rules of
the com.microsoft ops the fusions emit (the same dims as the input, a broadcast for BiasGelu,
[batch, sequence] of the query for the attention family) and applies them lazily, so a fused node
a pass creates after the analysis (its outputs are new values) gets its shape from its inputs too.
`show` writes a shape as remarks print it: `[batch,sequence,64]`, `?` for an unknown dim.
"""

from __future__ import annotations

from mlc.ir.core import Graph, Node, Value
from mlc.passes._symbolic import Shape, ShapeInfo, broadcast
from mlc.passes._transformer_match import MS_DOMAIN

SAME_AS_INPUT = ("Gelu", "FastGelu", "SkipLayerNormalization")  # outputs 0 (and the sum, 3) keep x's shape
QUERY_SHAPED = ("Attention", "MultiHeadAttention", "EmbedLayerNormalization")  # [batch, sequence, hidden]


class ContribShapes(ShapeInfo):
    """`ShapeInfo` that also derives the outputs of com.microsoft ops from their inputs."""

    def __init__(self, graph: Graph) -> None:
        self.contrib: dict[Value, Shape | None] = {}
        super().__init__(graph)

    def shape(self, value: Value | None) -> Shape | None:
        node = value.producer if value is not None else None
        if value is None or node is None or node.domain != MS_DOMAIN:
            return super().shape(value)
        if value not in self.contrib:
            declared = super().shape(value)
            derived = self._contrib_shape(node, node.outputs.index(value), declared)
            if derived is None or (declared is not None and len(declared) != len(derived)):
                self.contrib[value] = declared
            else:
                self.contrib[value] = derived if declared is None else tuple(
                    d if d is not None else e for d, e in zip(derived, declared, strict=True))
        return self.contrib[value]

    def _contrib_shape(self, node: Node, index: int, declared: Shape | None) -> Shape | None:
        inputs = [v for v in node.inputs if v is not None]
        if not inputs:
            return None
        if node.op_type == "BiasGelu" and index == 0:
            return broadcast([self.shape(v) for v in inputs])
        x = self.shape(node.inputs[0])
        if node.op_type in SAME_AS_INPUT and index in (0, 3):
            return x
        if node.op_type in QUERY_SHAPED and index == 0 and x is not None and len(x) >= 2:
            return (x[0], x[1], declared[-1] if declared else None)
        return None

    def show(self, shape: Shape) -> str:
        dims = (self.to_dim(d) for d in shape)
        return "[" + ",".join("?" if d is None else str(d) for d in dims) + "]"


__all__ = ["QUERY_SHAPED", "SAME_AS_INPUT", "ContribShapes"]
