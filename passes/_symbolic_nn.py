"""Shape rules of the contractions, reductions and recurrent ops: MatMul, Gemm, Reduce*, ArgMax,
global pools, LSTM/GRU/RNN.
"""

from __future__ import annotations

from mlc.ir.core import Node
from mlc.ir.shape_analysis import ShapeAnalysis, ShapeResult, ShapeRule
from mlc.ir.symbolic_dims import ONE, Expr
from mlc.ir.symbolic_shapes import Shape, broadcast
from mlc.passes._symbolic_common import axes_of, input_at, norm_axis, registrar

RULES: dict[str, ShapeRule] = {}
rule = registrar(RULES)


@rule("MatMul", "MatMulInteger")
def _matmul(info: ShapeAnalysis, node: Node) -> ShapeResult:
    a, b = info.shape(node.inputs[0]), info.shape(node.inputs[1])
    if a is None or b is None or not a or not b:
        return None
    a2 = a if len(a) > 1 else (ONE, *a)
    b2 = b if len(b) > 1 else (*b, ONE)
    batch = broadcast([a2[:-2], b2[:-2]])
    if batch is None:
        return None
    out = [*batch, a2[-2], b2[-1]]
    if len(a) == 1:
        out.pop(-2)
    if len(b) == 1:
        out.pop(-1)
    return [tuple(out)], []


@rule("Gemm")
def _gemm(info: ShapeAnalysis, node: Node) -> ShapeResult:
    a, b = info.shape(node.inputs[0]), info.shape(node.inputs[1])
    if a is None or b is None or len(a) != 2 or len(b) != 2:
        return None
    m = a[1] if node.attr("transA", 0) else a[0]
    n = b[0] if node.attr("transB", 0) else b[1]
    return [(m, n)], []


@rule("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum",
       "ReduceLogSumExp", "ReduceSumSquare")
def _reduce(info: ShapeAnalysis, node: Node) -> ShapeResult:
    x = info.shape(node.inputs[0])
    if x is None:
        return None
    axes = axes_of(info, node, 1)
    keep = node.attr("keepdims", 1)
    if axes is None or not axes:
        if input_at(node, 1) is not None or (axes is not None and not axes and node.attr("noop_with_empty_axes", 0)):
            if axes is None:
                return None
            return [x], []
        axes = list(range(len(x)))
    drop = {norm_axis(a, len(x)) for a in axes}
    out = [ONE if i in drop else d for i, d in enumerate(x)] if keep else [d for i, d in enumerate(x) if i not in drop]
    return [tuple(out)], []


@rule("ArgMax", "ArgMin")
def _argmax(info: ShapeAnalysis, node: Node) -> ShapeResult:
    x = info.shape(node.inputs[0])
    if x is None:
        return None
    axis = norm_axis(node.attr("axis", 0), len(x))
    keep = node.attr("keepdims", 1)
    out = [ONE if i == axis else d for i, d in enumerate(x)] if keep else [d for i, d in enumerate(x) if i != axis]
    return [tuple(out)], []


@rule("GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool")
def _global_pool(info: ShapeAnalysis, node: Node) -> ShapeResult:
    x = info.shape(node.inputs[0])
    if x is None or len(x) < 2:
        return None
    return [(x[0], x[1], *([ONE] * (len(x) - 2)))], []


@rule("LSTM", "GRU", "RNN")
def _rnn(info: ShapeAnalysis, node: Node) -> ShapeResult:
    x = info.shape(node.inputs[0])
    hidden = node.attr("hidden_size")
    if x is None or len(x) != 3 or hidden is None:
        return None
    direction = node.attr("direction", "forward")
    direction = direction.decode() if isinstance(direction, bytes) else direction
    dirs = Expr.const(2 if direction == "bidirectional" else 1)
    h = Expr.const(int(hidden))
    if node.attr("layout", 0):
        batch, seq = x[0], x[1]
        y: Shape = (batch, seq, dirs, h)
        state: Shape = (batch, dirs, h)
    else:
        seq, batch = x[0], x[1]
        y = (seq, dirs, batch, h)
        state = (dirs, batch, h)
    return [y, state, state], []


__all__ = ["RULES", "rule"]
