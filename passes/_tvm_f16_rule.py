"""legalize-tvm's `f16-as-f32` rule: float16 arithmetic TVM's CPU code accumulates in float16.

With the `f16_as_f32` option (the llvm target), matrix products, reductions, softmax and
transcendental functions on float16 accumulate in float16 in TVM's CPU code, off by up to 3e-3
relative on the official attention cases: they become Cast to float32, the op, Cast back to
float16 (what onnxruntime's CPU kernels do). Not for cuda, where float16 arithmetic is the point.
"""

from __future__ import annotations

from mlc.ir.core import Node, Value
from mlc.ir.dtypes import DType
from mlc.ir.types import TensorType
from mlc.rewrite import IRBuilder, Match, Reject, Rule

F16_SENSITIVE = ("MatMul", "Gemm", "Softmax", "LogSoftmax", "Sigmoid", "Tanh", "Exp", "Log", "Erf", "Sqrt", "Pow",
                 "ReduceMean", "ReduceSum", "ReduceSumSquare", "ReduceL2", "ReduceLogSumExp", "LayerNormalization",
                 "HardSigmoid", "Softplus", "Conv", "ConvTranspose", "Gelu", "CumSum")


def all_f16(node: Node) -> bool:
    """Every float tensor the node reads or writes is float16 (and typed)."""
    floats = [v.type for v in (*node.inputs, *node.outputs)
              if v is not None and isinstance(v.type, TensorType) and v.type.dtype.is_float]
    typed = all(v is None or isinstance(v.type, TensorType) for v in node.outputs)
    return typed and bool(floats) and all(t.dtype == DType.FLOAT16 for t in floats)


def _float32(value: Value) -> TensorType:
    assert isinstance(value.type, TensorType)
    return TensorType(DType.FLOAT, value.type.shape)


def _wide_twin(builder: IRBuilder, node: Node, inputs: list[Value | None]) -> Node:
    """The node again, under its own name, on `inputs` and with float32 outputs (IRBuilder.op
    names a node after the root and returns one output: a clone keeps the name and every output)."""
    graph = builder.graph
    outputs = [None if v is None else Value(graph.unique_name("f32"), _float32(v)) for v in node.outputs]
    wide = Node(node.op_type, inputs, outputs, list(node.attributes.values()), name=node.name)
    builder.insert(wide, before=node)
    return wide


class F16AsF32Rule(Rule):
    name = "f16-as-f32"
    law = "Op(f16...) -> Cast<f16>(Op(Cast<f32>(...)))"
    ops = F16_SENSITIVE

    def match(self, node: Node) -> Match | Reject | None:
        return Match(node) if all_f16(node) else None

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        node = match.root
        inputs: list[Value | None] = []
        for value in node.inputs:
            if value is not None and isinstance(value.type, TensorType) and value.type.dtype == DType.FLOAT16:
                value = builder.op("Cast", [value], {"to": int(DType.FLOAT)}, type=_float32(value))
            inputs.append(value)
        wide = _wide_twin(builder, node, inputs)
        for old, new in zip(node.outputs, wide.outputs, strict=True):
            if old is not None and new is not None:
                builder.replace(old, builder.op("Cast", [new], {"to": int(DType.FLOAT16)}, type=old.type))
        builder.graph.remove(node)
        builder.ctx.stats["f16_upcast"] += 1


__all__ = ["F16_SENSITIVE", "F16AsF32Rule", "all_f16"]
