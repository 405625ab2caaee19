"""legalize-qlinear's MatMulInteger rule: the spec's int32 arithmetic, written out.

    MatMulInteger(A, B, za, zb)  ->  MatMul(Cast<i32>(A) - za, Cast<i32>(B) - zb)

Sub of the zero points, MatMul in int32, wrapping on overflow like the op: bit-exact. A 1-D
`a_zero_point` is per row of A, so it is reshaped to [M, 1]; one that is not a constant needs A's
rank to be known (at least 2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlc.ir.core import Graph, Node, Value
from mlc.ir.dtypes import DType
from mlc.passes._match_basics import input_at
from mlc.passes._qlinear_emit import QuantEmitter, decompose, match_plan
from mlc.passes._qlinear_params import Unsupported, check_int8, constant, nonzero_point, rank_of, required, shape_of
from mlc.rewrite import IRBuilder, Match, Reject, Rule


@dataclass(frozen=True)
class IntMatMulPlan:
    a: Value
    b: Value
    a_zero: Value | None  # None: absent or a constant zero
    b_zero: Value | None


def plan_matmul_integer(node: Node, graph: Graph) -> IntMatMulPlan:
    a, b = required(node, 0, 1)
    check_int8(a, "A")
    check_int8(b, "B")
    a_zero, b_zero = nonzero_point(input_at(node, 2)), nonzero_point(input_at(node, 3))
    for zero, what in ((a_zero, "a_zero_point"), (b_zero, "b_zero_point")):
        check_int8(zero, what)
        if zero is not None and constant(zero) is None and rank_of(zero) is None:
            raise Unsupported(f"{what} %{zero.name} has unknown rank")
    if a_zero is not None and constant(a_zero) is None and shape_of(a_zero) not in ((), (1,)):
        if rank_of(a_zero) == 1 and (rank_of(a) or 0) < 2:
            raise Unsupported(f"a_zero_point %{a_zero.name} is per row but A has no known rank of at least 2")
    if graph.opset_version("") is None:
        raise Unsupported("the model's ai.onnx opset is unknown")
    return IntMatMulPlan(a, b, a_zero, b_zero)


def _int32_zero(e: QuantEmitter, zero: Value, per_row: bool) -> Value:
    """The zero point in int32, a 1-D per-row one of A as [M, 1]."""
    array = constant(zero)
    if array is not None:
        array = array.astype(np.int32)
        if per_row and array.ndim == 1 and array.size > 1:
            array = array.reshape(-1, 1)
        elif array.size == 1:
            array = array.reshape(())
        return e.const(array, "zero_point")
    value = e.cast(zero, DType.INT32)
    shape = shape_of(zero)
    if per_row and shape is not None and len(shape) == 1 and shape != (1,):
        target = e.const(np.array([-1, 1], dtype=np.int64), "shape")
        value = e.op("Reshape", [value, target], DType.INT32, (shape[0], 1))
    return value


def _int32_operand(e: QuantEmitter, data: Value, zero: Value | None, per_row: bool) -> Value:
    """Cast<i32>(data) - zero point."""
    value = e.cast(data, DType.INT32)
    if zero is None:
        return value
    return e.op("Sub", [value, _int32_zero(e, zero, per_row)], DType.INT32, shape_of(data))


def emit_matmul_integer(e: QuantEmitter, node: Node, plan: IntMatMulPlan) -> Value:
    left = _int32_operand(e, plan.a, plan.a_zero, per_row=True)
    right = _int32_operand(e, plan.b, plan.b_zero, per_row=False)
    return e.op("MatMul", [left, right], DType.INT32, shape_of(node.outputs[0]))


class MatMulIntegerRule(Rule):
    name = "matmulinteger"
    law = "MatMulInteger(A, B, za, zb) -> MatMul(Cast<i32>(A) - za, Cast<i32>(B) - zb)"
    ops = ("MatMulInteger",)

    def match(self, node: Node) -> Match | Reject | None:
        return match_plan(self, node, plan_matmul_integer)

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        decompose(builder, match.root, emit_matmul_integer, match.facts["plan"])


__all__ = ["IntMatMulPlan", "MatMulIntegerRule", "emit_matmul_integer", "plan_matmul_integer"]
