"""legalize-tvm-shapes' Range and Reshape rules: shapes TVM's frontend can follow.

    Range(s, dim, d)  TVM gives every Range a fresh length `range_len_0`: an attention mask built on
                      it no longer broadcasts against the scores, every shape after it is unknown
                      and the next Reshape(-1) fails  ->  the positions along the dim `dim` was read
                      from (`ShapeEmitter.positions`), a Slice of them for s > 0 or d > 1.
    Reshape(x, [.., -1, ..])  of a dynamic x, with the output dim at -1 known  ->  that int, so that
                      TVM has nothing to infer from an input whose shape it may have lost.
"""

from __future__ import annotations

import numpy as np

from mlc.ir.core import Node, Value
from mlc.ir.dtypes import DType
from mlc.ir.types import TensorType
from mlc.passes._match_basics import const_array, input_at
from mlc.passes._shape_elements import DimOf, Element, elements
from mlc.passes._shape_emit import ShapeEmitter
from mlc.passes._transformer_match import dims_of
from mlc.rewrite import IRBuilder, Match, Reject, Rule

INT64_MAX = int(np.iinfo(np.int64).max)


def _scalar(value: Value | None) -> float | int | None:
    array = const_array(value, constant_nodes=True)
    if array is None or array.size != 1:
        return None
    item = array.reshape(-1)[0]
    return int(item) if array.dtype.kind in "iu" else float(item)


def range_plan(node: Node) -> tuple[DimOf, int, int] | str:
    """(the dim `limit` is, start, delta), or why the Range stays."""
    out = node.outputs[0]
    if out is None or not isinstance(out.type, TensorType):
        return "its output type is unknown"
    start, limit, delta = (input_at(node, i) for i in range(3))
    if const_array(limit, constant_nodes=True) is not None:
        return "its limit is a constant (fold-constants folds it)"
    found = elements(limit)
    if found is None or len(found) != 1 or isinstance(found[0], int):
        return "its limit is not a dim read by a Shape"
    first, step = _scalar(start), _scalar(delta)
    if first is None or step is None:
        return "its start or delta is not a constant"
    integral = out.type.dtype.numpy is not None and np.dtype(out.type.dtype.numpy).kind in "iu"
    if integral and (first < 0 or step <= 0 or first != int(first) or step != int(step)):
        return f"start {first} / delta {step} are not a non-negative start and a positive step"
    if not integral and (first != 0 or step != 1):
        return f"a {out.type.dtype.short_name} Range from {first} by {step} (only 0 by 1 is rewritten)"
    return found[0], int(first), int(step)


class RangeOverDimRule(Rule):
    name = "range-over-dim"
    law = "Range(s, Shape(x)[a], d) -> Slice(Sub(CumSum(ConstantOfShape(Shape(x, a, a+1), 1)), 1), s, max, 0, d)"
    ops = ("Range",)

    def match(self, node: Node) -> Match | Reject | None:
        plan = range_plan(node)
        return self.reject(node, plan) if isinstance(plan, str) else Match(node, facts={"plan": plan})

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        node = match.root
        source, first, step = match.facts["plan"]
        out = node.outputs[0]
        assert out is not None and isinstance(out.type, TensorType)
        b = ShapeEmitter(builder)
        result = b.positions(source)
        if first != 0 or step != 1:
            bounds = [b.const([first], DType.INT64), b.const([INT64_MAX], DType.INT64), b.const([0], DType.INT64),
                      b.const([step], DType.INT64)]
            result = b.op("Slice", [result, *bounds], DType.INT64, out.type.shape)
        if out.type.dtype != DType.INT64:
            result = b.op("Cast", [result], out.type.dtype, out.type.shape, to=int(out.type.dtype))
        builder.bypass(node, result)
        builder.ctx.stats["range"] += 1


def reshape_plan(node: Node) -> list[Element] | None:
    """The shape with -1 (and 0 where allowzero is off) replaced by the known output dims; None
    when there is nothing to replace or some -1 stays unknown."""
    out_shape, in_shape = dims_of(node.outputs[0]), dims_of(node.inputs[0])
    if in_shape is not None and all(isinstance(d, int) for d in in_shape):
        return None  # TVM infers -1 from a static input itself
    found = elements(input_at(node, 1))
    if found is None or out_shape is None or len(found) != len(out_shape) or -1 not in found:
        return None
    allowzero = int(node.attr("allowzero", 0))
    fixed: list[Element] = []
    for item, dim in zip(found, out_shape, strict=True):
        if item == -1 or (item == 0 and not allowzero):
            if not isinstance(dim, int) or dim < 0 or (item == -1 and dim == 0):
                if item == -1:
                    return None
                fixed.append(item)
                continue
            fixed.append(dim)
        else:
            fixed.append(item)
    return fixed


class ReshapeKnownDimRule(Rule):
    name = "reshape-known-dim"
    law = "Reshape(x, [.., -1, ..]) -> Reshape(x, [.., known dim, ..])"
    ops = ("Reshape",)

    def match(self, node: Node) -> Match | Reject | None:
        plan = reshape_plan(node)
        return None if plan is None else Match(node, facts={"plan": plan})

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        match.root.set_input(1, ShapeEmitter(builder).shape_tensor(match.facts["plan"]))
        builder.ctx.stats["reshape"] += 1


__all__ = ["RangeOverDimRule", "ReshapeKnownDimRule", "range_plan", "reshape_plan"]
