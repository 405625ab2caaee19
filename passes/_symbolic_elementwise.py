"""Shape rules of the elementwise ops: unary ops keep the shape, n-ary ones broadcast it.

Over small tensors of known values (shape computations) the values are computed too, and stay
symbolic: `Add(batch, 1)` is `batch+1`, `Equal(batch, -1)` is known false (a dim is never
negative), `Where` picks by a known condition, `Mod` by a constant that divides a dim is 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from mlc.ir.core import Node, Value
from mlc.ir.declared_dims import tensor_dtype
from mlc.ir.dtypes import DType
from mlc.ir.shape_analysis import ShapeAnalysis, ShapeResult, ShapeRule
from mlc.ir.symbolic_dims import ZERO, Expr
from mlc.ir.symbolic_shapes import INT_DTYPES, MAX_ELEMENTS, Elems, Shape, broadcast, static
from mlc.passes._symbolic_common import elem_grid, registrar

RULES: dict[str, ShapeRule] = {}
rule = registrar(RULES)


@rule("Identity", "Abs", "Acos", "Acosh", "Asin", "Asinh", "Atan", "Atanh", "Ceil", "Celu", "Clip", "Cos", "Cosh",
       "Elu", "Erf", "Exp", "Floor", "Gelu", "HardSigmoid", "HardSwish", "Hardmax", "IsInf", "IsNaN", "LeakyRelu",
       "Log", "LogSoftmax", "LpNormalization", "Mish", "Neg", "Not", "Reciprocal", "Relu", "Round", "Selu",
       "Shrink", "Sigmoid", "Sign", "Sin", "Sinh", "Softmax", "Softplus", "Softsign", "Sqrt", "Tan", "Tanh",
       "ThresholdedRelu", "Trilu", "CumSum", "Cast", "CastLike", "Dropout", "LayerNormalization",
       "BatchNormalization", "InstanceNormalization", "BitwiseNot", "QuantizeLinear", "DequantizeLinear",
       "GroupNormalization", "RMSNormalization", "SimplifiedLayerNormalization")
def _unary(info: ShapeAnalysis, node: Node) -> ShapeResult:
    x = node.inputs[0]
    shape = info.shape(x)
    elems = None
    if node.op_type in ("Identity", "Neg", "Cast", "CastLike"):
        elems = info.elems(x)
        if elems is not None and node.op_type == "Neg":
            elems = tuple(None if e is None else -e for e in elems)
        if elems is not None and node.op_type in ("Cast", "CastLike"):
            elems = _cast_elems(elems, tensor_dtype(node.outputs[0]))
    return [shape], [elems]


def _cast_elems(elems: Elems, to: DType | None) -> Elems | None:
    if to == DType.BOOL:
        return tuple(None if e is None else (Expr.const(int(e.value != 0)) if e.is_const else None) for e in elems)
    if to in INT_DTYPES:
        return elems
    return None


_BINARY_ARITH: dict[str, Callable[[Expr, Expr], Expr]] = {
    "Add": lambda a, b: a + b, "Sub": lambda a, b: a - b, "Mul": lambda a, b: a * b}


@rule("Add", "Sub", "Mul", "Div", "Pow", "Mod", "Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual",
       "And", "Or", "Xor", "Where", "Max", "Min", "Sum", "Mean", "PRelu", "BitShift", "BitwiseAnd", "BitwiseOr",
       "BitwiseXor")
def _elementwise(info: ShapeAnalysis, node: Node) -> ShapeResult:
    inputs = [v for v in node.inputs if v is not None]
    shape = broadcast([info.shape(v) for v in inputs])
    elems = _elementwise_elems(info, node, inputs, shape)
    return [shape], [elems]


def _elementwise_elems(info: ShapeAnalysis, node: Node, inputs: list[Value], shape: Shape | None) -> Elems | None:
    """The values of an elementwise op over small tensors of known values, numpy-broadcast."""
    dims = static(shape)
    if dims is None or math.prod(dims) > MAX_ELEMENTS:
        return None
    operands = []
    for v in inputs:
        grid = elem_grid(info, v)
        if grid is None:
            return None
        operands.append(np.broadcast_to(grid, dims).reshape(-1))
    op = node.op_type
    fmod = bool(node.attr("fmod", 0))
    return tuple(_elementwise_one(op, tuple(column), fmod) for column in zip(*operands, strict=True))


def _mod(a: Expr, b: Expr, fmod: bool) -> Expr | None:
    """a mod b: Python's floor remainder (the divisor's sign), or C's fmod (the dividend's sign);
    zero whenever b divides a (a symbolic dim that is a multiple of a constant window size)."""
    if b.is_const and b.value == 0:
        return None
    if a.is_const and b.is_const:
        return Expr.const(int(math.fmod(a.value, b.value)) if fmod else a.value % b.value)
    if a.divide(b) is not None:
        return ZERO
    return None


def _elementwise_one(op: str, column: tuple[Expr | None, ...], fmod: bool = False) -> Expr | None:
    if op == "Where":
        cond, a, b = column
        if cond is None or not cond.is_const:
            return a if a is not None and a == b else None
        return a if cond.value else b
    if any(c is None for c in column):
        return None
    a, b = column[0], column[1] if len(column) > 1 else None
    assert a is not None
    if op in _BINARY_ARITH and b is not None and len(column) == 2:
        return _BINARY_ARITH[op](a, b)
    if op == "Div" and b is not None:
        if a.is_const and b.is_const:
            if b.value == 0:
                return None
            q = abs(a.value) // abs(b.value)
            return Expr.const(q if (a.value >= 0) == (b.value >= 0) else -q)  # truncates toward zero
        return a.divide(b) if a.nonnegative and b.nonnegative else None
    if op in ("Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual") and b is not None:
        diff = a - b
        if diff.is_const:
            v = diff.value
            truth = {"Equal": v == 0, "Less": v < 0, "LessOrEqual": v <= 0, "Greater": v > 0,
                     "GreaterOrEqual": v >= 0}[op]
            return Expr.const(int(truth))
        if op == "Equal" and ((a.nonnegative and b.is_const and b.value < 0)
                              or (b.nonnegative and a.is_const and a.value < 0)):
            return ZERO  # a dim (or a sum of dims) is never negative
        return None
    if op == "Mod" and b is not None:
        return _mod(a, b, fmod)
    if op in ("Max", "Min") and all(c is not None and c.is_const for c in column):
        values = [c.value for c in column if c is not None]
        return Expr.const(max(values) if op == "Max" else min(values))
    if op in ("And", "Or") and b is not None and a.is_const and b.is_const:
        return Expr.const(int(bool(a.value) and bool(b.value)) if op == "And" else int(bool(a.value) or bool(b.value)))
    return None


__all__ = ["RULES", "rule"]
