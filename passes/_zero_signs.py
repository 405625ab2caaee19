"""The sign of zero: which values can carry a zero's sign to a reader that tells -0.0 from +0.0.

x + (+0.0) turns -0.0 into +0.0 (and x - (-0.0) too): eliminate-noop removes such a node only
where no reader, followed through the ops that pass a zero's sign on, can tell the two zeros apart
by value (a Div's divisor, Reciprocal, Pow with a non-positive exponent, another domain's op, a
sub-graph), and with `output_zero_signs` no graph output either.
"""

from __future__ import annotations

import numpy as np

from mlc.ir.core import Graph, Node, Value
from mlc.passes._noop_facts import const_array, dtype_of

# Ops whose every output may carry a zero's sign from any input (a zero of either sign in, a zero
# of either sign out): the search goes on through them. Ops listed in neither set can tell -0.0
# from +0.0 by value (or are unknown): reaching one keeps x + (+0.0).
SIGN_PASSES = {
    "Identity", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Concat", "Slice", "Gather",
    "GatherElements", "GatherND", "Split", "Expand", "Tile", "Pad", "Neg", "Mul", "Add", "Sub", "Sum", "Mean",
    "MatMul", "Gemm", "Conv", "ConvTranspose", "Relu", "LeakyRelu", "PRelu", "Elu", "Celu", "Selu", "Gelu",
    "Mish", "HardSwish", "Tanh", "Erf", "Sin", "Sinh", "Asin", "Asinh", "Atan", "Atanh", "Tan", "Sqrt", "Sign",
    "Round", "Floor", "Ceil", "Softsign", "Clip", "Max", "Min", "Dropout", "LayerNormalization",
    "BatchNormalization", "InstanceNormalization", "GroupNormalization", "ReduceSum", "ReduceMean", "ReduceMax",
    "ReduceMin", "ReduceProd", "CumSum", "Einsum", "AveragePool", "MaxPool", "GlobalAveragePool",
    "GlobalMaxPool", "Resize", "DepthToSpace", "SpaceToDepth", "Trilu", "ScatterElements", "ScatterND",
}
# Ops whose outputs are equal for -0.0 and +0.0 inputs (the search stops there).
SIGN_BLIND = {
    "Exp", "Softmax", "LogSoftmax", "Sigmoid", "HardSigmoid", "Softplus", "Cos", "Cosh", "Log", "Abs",
    "ReduceL1", "ReduceL2", "ReduceSumSquare", "ReduceLogSumExp", "Equal", "Less", "LessOrEqual", "Greater",
    "GreaterOrEqual", "IsNaN", "IsInf", "Shape", "Size", "ArgMax", "ArgMin", "Not", "And", "Or", "Xor",
    "QuantizeLinear", "ConstantOfShape",
}


def sign_use(node: Node, index: int) -> str:
    """How `node` treats a zero's sign arriving at input `index`: "blind", "passes" or "observes"."""
    if node.domain != "" or node.subgraphs():
        return "observes"
    op = node.op_type
    if op in ("Cast", "CastLike"):
        out = node.outputs[0]
        dtype = dtype_of(out) if out is not None else None
        if dtype is None:
            return "observes"
        return "passes" if dtype.is_float else "blind"
    if op == "Where":
        return "blind" if index == 0 else "passes"
    if op == "Div":
        return "passes" if index == 0 else "observes"  # 1 / -0.0 is -inf
    if op == "Pow":
        if index == 1:
            return "blind"  # b ** (+-0.0) is 1
        exponent = const_array(node.inputs[1] if len(node.inputs) > 1 else None)
        if exponent is None or exponent.dtype.kind not in "iuf" or not bool(np.all(exponent > 0)):
            return "observes"  # (-0.0) ** -1 is -inf
        return "passes"
    if op in SIGN_BLIND:
        return "blind"
    if op in SIGN_PASSES:
        return "passes"
    return "observes"


class ZeroSigns:
    """Which values can carry a zero's sign to a reader that tells -0.0 from +0.0 by value (and,
    with `outputs`, to a graph output): computed once per graph, readers before producers."""

    def __init__(self, graph: Graph, outputs: bool) -> None:
        self.outputs = outputs
        self._graph = graph
        self._observed: dict[Value, bool] | None = None  # computed on the first question

    def _build(self) -> dict[Value, bool]:
        self._observed = {}
        for node in reversed(self._graph.nodes):
            for value in node.outputs:
                if value is not None:
                    self._observed[value] = self._compute(value, self._graph)
        return self._observed

    def _compute(self, value: Value, graph: Graph) -> bool:
        if value.is_graph_output and (self.outputs or graph.parent is not None):
            return True  # a sub-graph's output flows on into its owner's outputs
        for user, index in value.uses:
            if user.graph is not graph:
                return True  # read inside a sub-graph
            how = sign_use(user, index)
            if how == "observes":
                return True
            if how == "passes" and any(out is not None and self._observed.get(out, True)  # type: ignore[union-attr]
                                       for out in user.outputs):
                return True
        return False

    def observed(self, value: Value) -> bool:
        observed = self._observed if self._observed is not None else self._build()
        return observed.get(value, True)


__all__ = ["SIGN_BLIND", "SIGN_PASSES", "ZeroSigns", "sign_use"]
