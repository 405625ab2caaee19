"""legalize-tvm's rules for operands TVM reads differently from ONNX: Slice starts and Pow types.

Slice: a negative step whose start lies before the axis (start < -dim) is clamped to 0 by ONNX
(element 0 is taken), while TVM's strided_slice reads it as Python does (nothing is taken; fuzz
seed 168): such a start is written as 0 (static dims). Pow: ONNX allows an exponent of another
element type than the base, TVM's converter fails ("Binary operators must have the same datatype",
fuzz seed 141): a constant exponent the base's type holds exactly (2, 0.5, 3 ...) is cast, else the
power is taken in the wider float type and cast back.
"""

from __future__ import annotations

import numpy as np

from mlc.ir.core import Node
from mlc.ir.dtypes import DType
from mlc.ir.types import TensorType
from mlc.passes._match_basics import const_array
from mlc.passes._slicing import python_start
from mlc.rewrite import IRBuilder, Match, Reject, Rule


def onnx_starts(node: Node) -> np.ndarray | None:
    """The starts of an opset-10+ Slice rewritten where ONNX and Python read them differently
    (`mlc.passes._slicing`), or None when none is (or the bounds or dims are not known)."""
    x = node.inputs[0] if node.inputs else None
    if len(node.inputs) < 5 or x is None or not isinstance(x.type, TensorType) or x.type.shape is None:
        return None
    starts = const_array(node.inputs[1], constant_nodes=True)
    steps = const_array(node.inputs[4], constant_nodes=True)
    axes = const_array(node.inputs[3], constant_nodes=True) if node.inputs[3] is not None else None
    if starts is None or steps is None or (axes is None and node.inputs[3] is not None):
        return None
    shape = x.type.shape
    axes = np.arange(starts.size) if axes is None else axes
    fixed = starts.reshape(-1).copy()
    for i, (axis, step) in enumerate(zip(axes.reshape(-1), steps.reshape(-1), strict=False)):
        dim = shape[int(axis) % len(shape)] if shape else None
        if isinstance(dim, int):
            fixed[i] = python_start(int(fixed[i]), int(step), dim)
    return fixed.reshape(starts.shape) if not np.array_equal(fixed, starts.reshape(-1)) else None


class SliceStartRule(Rule):
    name = "slice-start"
    law = "Slice(x, starts < -dim, ..., steps < 0) -> Slice(x, 0, ..., steps)"
    ops = ("Slice",)

    def match(self, node: Node) -> Match | Reject | None:
        fixed = onnx_starts(node)
        return None if fixed is None else Match(node, facts={"starts": fixed})

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        match.root.set_input(1, builder.constant(match.facts["starts"], "starts"))
        builder.ctx.stats["rewritten"] += 1


def pow_types(node: Node) -> tuple[DType, DType] | None:
    """(x's, y's element type) of a Pow whose operands differ in type, else None."""
    x, y = [*node.inputs, None, None][:2]
    if x is None or y is None or not isinstance(x.type, TensorType) or not isinstance(y.type, TensorType):
        return None
    if x.type.dtype == y.type.dtype or not x.type.dtype.is_float:
        return None
    return x.type.dtype, y.type.dtype


class PowTypesRule(Rule):
    name = "pow-types"
    law = "Pow(x, y: other type) -> Pow(x, Cast(y)), or Cast(Pow(Cast(x, w), Cast(y, w)), x's type)"
    ops = ("Pow",)

    def match(self, node: Node) -> Match | Reject | None:
        types = pow_types(node)
        return None if types is None else Match(node, facts={"types": types})

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        node = match.root
        xt, yt = match.facts["types"]
        x, y, out = node.inputs[0], node.inputs[1], node.outputs[0]
        assert x is not None and y is not None and out is not None
        assert isinstance(x.type, TensorType) and isinstance(y.type, TensorType)
        builder.ctx.stats["rewritten"] += 1
        exponent = const_array(y, constant_nodes=True)
        if exponent is not None and np.array_equal(exponent.astype(xt.numpy).astype(exponent.dtype), exponent):
            node.set_input(1, builder.constant(exponent.astype(xt.numpy), "exponent"))
            return
        out_type = out.type if isinstance(out.type, TensorType) else None
        wide = yt if yt.is_float and yt.bits > xt.bits else xt
        xs = x if xt == wide else builder.op("Cast", [x], {"to": int(wide)}, type=TensorType(wide, x.type.shape))
        ys = builder.op("Cast", [y], {"to": int(wide)}, type=TensorType(wide, y.type.shape))
        power = builder.op("Pow", [xs, ys], type=TensorType(wide, out_type.shape if out_type is not None else None))
        result = power if wide == xt else builder.op("Cast", [power], {"to": int(xt)}, type=out_type)
        builder.bypass(node, result)


__all__ = ["PowTypesRule", "SliceStartRule", "onnx_starts", "pow_types"]
