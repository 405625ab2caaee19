"""legalize-tvm's rules for broadcasting ops TVM cannot convert or computes wrongly.

Expand(x, c) with c constant and x of a symbolic dim: TVM's converter reads every dim of x as a
number ("'Var' object has no attribute 'value'", fuzz seed 100046) -> Mul(x, ones(c)) (Or(x,
false(c)) for booleans), the same broadcast exactly. PRelu(x, s) whose axis TVM makes nn.prelu
along is symbolic ("Expect value to be constant int", fuzz seed 500012) -> Where(Less(x, 0),
Mul(x, s), x), ONNX's definition. Tile(x, r): TVM 0.27's AVX-512 code returns garbage (official
test_tile on znver4) -> Reshape(Expand(Reshape(x, [1, d0, 1, d1, ...]), [r0, d0, r1, d1, ...]),
[r0*d0, ...]) for a static x and constant repeats.
"""

from __future__ import annotations

import numpy as np

from mlc.ir.core import Node
from mlc.ir.dtypes import DType
from mlc.ir.tensor import Tensor
from mlc.ir.types import TensorType
from mlc.passes._match_basics import const_array
from mlc.passes._tvm_math_rules import scalar
from mlc.rewrite import IRBuilder, Match, Reject, Rule


def expand_target(node: Node) -> np.ndarray | None:
    """The constant target of an Expand whose input has a dim that is not a number, else None."""
    x = node.inputs[0] if node.inputs else None
    if len(node.inputs) < 2 or x is None or not isinstance(x.type, TensorType) or x.type.shape is None:
        return None
    if all(isinstance(d, int) for d in x.type.shape) or x.type.dtype in (DType.STRING,) or x.type.dtype.is_exotic:
        return None
    target = const_array(node.inputs[1], constant_nodes=True)
    return None if target is None or target.ndim != 1 or (target < 0).any() else target


class ExpandBroadcastRule(Rule):
    name = "expand-broadcast"
    law = "Expand(x, c) -> Mul(x, ones(c)) (Or(x, false(c)) for booleans)"
    ops = ("Expand",)

    def match(self, node: Node) -> Match | Reject | None:
        target = expand_target(node)
        return None if target is None else Match(node, facts={"shape": tuple(int(d) for d in target)})

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        node, shape = match.root, match.facts["shape"]
        x, out = node.inputs[0], node.outputs[0]
        assert x is not None and out is not None and isinstance(x.type, TensorType)
        out_type = out.type if isinstance(out.type, TensorType) else None
        if x.type.dtype == DType.BOOL:
            result = builder.op("Or", [x, builder.constant(np.zeros(shape, dtype=bool), "false")], type=out_type)
        else:
            ones = builder.constant(np.ones(shape, dtype=x.type.dtype.numpy), "ones")
            result = builder.op("Mul", [x, ones], type=out_type)
        builder.bypass(node, result)
        builder.ctx.stats["rewritten"] += 1


def prelu_axis_dynamic(node: Node) -> bool:
    """Whether TVM's PRelu converter would read a dim that is not a number: it makes
    `nn.prelu(x, slope, axis)` along the last axis (a slope of one value or of rank 1) or the
    slope's one non-1 axis, and fails ("Expect value to be constant int") where x's dim on that
    axis is symbolic (fuzz seed 500012: PRelu of x[N] with a slope of [1])."""
    if len(node.inputs) < 2:
        return False
    x, slope = node.inputs
    if x is None or slope is None or not isinstance(x.type, TensorType) or not isinstance(slope.type, TensorType):
        return False
    if x.type.shape is None or slope.type.shape is None or not x.type.shape or x.type.dtype.is_exotic:
        return False
    dims, slope_dims = x.type.shape, slope.type.shape
    if len(slope_dims) > len(dims):
        return False
    if all(d == 1 for d in slope_dims) or len(slope_dims) == 1:
        axis = len(dims) - 1
    else:
        wide = [i for i, d in enumerate(slope_dims) if d != 1]
        if len(wide) != 1:
            return False  # the converter writes the elementwise form itself
        axis = len(dims) - len(slope_dims) + wide[0]
    return not isinstance(dims[axis], int)


class PReluElementwiseRule(Rule):
    name = "prelu-elementwise"
    law = "PRelu(x, s) -> Where(Less(x, 0), Mul(x, s), x)"
    ops = ("PRelu",)

    def match(self, node: Node) -> Match | Reject | None:
        return Match(node) if prelu_axis_dynamic(node) else None

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        node = match.root
        x, slope = node.inputs
        out = node.outputs[0]
        assert x is not None and slope is not None and out is not None and isinstance(x.type, TensorType)
        out_type = out.type if isinstance(out.type, TensorType) else None
        negative = builder.op("Less", [x, scalar(builder, 0, x.type.dtype)], type=TensorType(DType.BOOL, x.type.shape))
        result = builder.op("Where", [negative, builder.op("Mul", [x, slope], type=out_type), x], type=out_type)
        builder.bypass(node, result)
        builder.ctx.stats["rewritten"] += 1


class TileAsExpandRule(Rule):
    name = "tile-as-expand"
    law = "Tile(x, r) -> Reshape(Expand(Reshape(x, [1, d0, 1, d1, ...]), [r0, d0, r1, d1, ...]), [r0*d0, ...])"
    ops = ("Tile",)

    def match(self, node: Node) -> Match | Reject | None:
        x, repeats = node.inputs[0], node.inputs[1] if len(node.inputs) > 1 else None
        if x is None or not isinstance(x.type, TensorType) or not x.type.is_static or x.type.shape is None:
            return self.reject(node, "its input's shape is not static")
        if repeats is None or not repeats.is_constant or not isinstance(repeats.const, Tensor):
            return self.reject(node, "its repeats are not constant")
        dims = [int(d) for d in x.type.shape if isinstance(d, int)]
        reps = [int(r) for r in repeats.const.numpy().reshape(-1)]
        return Match(node, values={"x": x}, facts={"dims": dims, "reps": reps}) if len(reps) == len(dims) else None

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        node, x, dims, reps = match.root, match["x"], match.facts["dims"], match.facts["reps"]
        assert isinstance(x.type, TensorType)
        dtype = x.type.dtype
        spread = [v for d in dims for v in (1, d)]
        wide = [v for d, r in zip(dims, reps, strict=True) for v in (r, d)]
        final = [d * r for d, r in zip(dims, reps, strict=True)]
        result = x
        for op_type, target, hint in (("Reshape", spread, "tile_spread"), ("Expand", wide, "tile_wide"),
                                      ("Reshape", final, "tile_shape")):
            shape = builder.constant(np.array(target, np.int64), hint)
            result = builder.op(op_type, [result, shape], type=TensorType(dtype, tuple(target)))
        builder.bypass(node, result)
        builder.ctx.stats["rewritten"] += 1


__all__ = ["ExpandBroadcastRule", "PReluElementwiseRule", "TileAsExpandRule", "expand_target", "prelu_axis_dynamic"]
