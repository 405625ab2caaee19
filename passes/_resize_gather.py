"""legalize-tvm-shapes' Resize rule: a Resize on dynamic dims as Gathers TVM can follow.

Per resized axis, a Gather of the source rows (nearest) or two Gathers blended (linear) at indices
computed from the positions 0..out-1 with the spec's coordinate transform (`_resize_coordinates`),
in float32 as onnxruntime does. Which axes, and where their output lengths come from, is
`_resize_plan`.
"""

from __future__ import annotations

import numpy as np

from mlc.ir.core import Graph, Node, Value
from mlc.ir.dtypes import DType
from mlc.ir.types import Dim, Shape, TensorType
from mlc.passes._match_basics import dtype_of
from mlc.passes._resize_coordinates import Coordinates
from mlc.passes._resize_plan import Axis, resize_plan, text
from mlc.passes._shape_emit import ShapeEmitter
from mlc.passes._transformer_match import dims_of
from mlc.rewrite import IRBuilder, Match, Reject, Rule


class Resampler(Coordinates):
    """Builds one axis of a Resize: indices (and weights) from output positions, then Gather."""

    def __init__(self, b: ShapeEmitter, node: Node) -> None:
        super().__init__(b, node)
        self.mode = text(node.attr("mode", "nearest"))
        self.out_shape = dims_of(node.outputs[0])

    def run(self, x: Value, plan: list[Axis]) -> Value:
        shape = list(dims_of(x) or ())
        for axis in plan:
            x = self.resample(x, axis, shape)
        return x

    def positions(self, x: Value, axis: Axis, shape: list[Dim], out_dim: Dim) -> Value:
        """0..out-1 along the axis, with a length TVM knows where there is one."""
        b, k = self.b, axis.axis
        if axis.length is not None:
            return b.const(np.arange(axis.length), DType.INT64, "positions")
        if axis.dim is not None:
            return b.positions(axis.dim)
        if axis.computed:
            count = b.op("Cast", [self.out_len_of(x, axis)], DType.INT64, (1,), to=int(DType.INT64))
            scalar = b.op("Squeeze", [count, b.const([0], DType.INT64, "axes")], DType.INT64, ())
            return b.op("Range", [b.const(0, DType.INT64, "zero"), scalar, b.const(1, DType.INT64, "one")],
                        DType.INT64, (out_dim,))
        assert axis.times is not None
        inner = b.positions((x, k))
        scaled = b.op("Mul", [b.unsqueeze(inner, [1], (shape[k], 1)), b.const(axis.times, DType.INT64)],
                      DType.INT64, (shape[k], 1))
        grid = b.op("Add", [scaled, b.const(np.arange(axis.times), DType.INT64, "offsets")], DType.INT64,
                    (shape[k], axis.times))
        return b.op("Reshape", [grid, b.const([-1], DType.INT64, "flat")], DType.INT64, (out_dim,))

    def resample(self, x: Value, axis: Axis, shape: list[Dim]) -> Value:
        b, k, f = self.b, axis.axis, DType.FLOAT
        out_dim: Dim = self.out_shape[k] if self.out_shape is not None and k < len(self.out_shape) else None
        if axis.length is not None:
            out_dim = axis.length
        positions = self.positions(x, axis, shape, out_dim)
        length: Shape = (out_dim,)
        self.axis, self.x, self.in_len = axis, x, b.length(x, k)
        original = self.original(b.op("Cast", [positions], f, length, to=int(f)), length)
        last = b.op("Sub", [self.in_len, self.f32(1.0)], f, (1,))
        out_shape = (*shape[:k], out_dim, *shape[k + 1:])
        dtype = dtype_of(x)
        assert dtype is not None
        if self.mode == "nearest":
            rounded = self.round(original, length)
            clamped = b.op("Min", [b.op("Max", [rounded, self.f32(0.0)], f, length), last], f, length)
            index = b.op("Cast", [clamped], DType.INT64, length, to=int(DType.INT64))
            result = b.op("Gather", [x, index], dtype, out_shape, axis=k)
        else:
            result = self.blend(x, original, last, len(shape), k, out_shape)
        shape[k] = out_dim
        return result

    def blend(self, x: Value, original: Value, last: Value, rank: int, k: int, out_shape: Shape) -> Value:
        """Linear: the rows at floor and floor + 1 of the clamped coordinate, weighted."""
        b, f = self.b, DType.FLOAT
        out_dim = out_shape[k]
        length: Shape = (out_dim,)
        dtype = dtype_of(x)
        assert dtype is not None
        clamped = b.op("Min", [b.op("Max", [original, self.f32(0.0)], f, length), last], f, length)
        low = b.op("Floor", [clamped], f, length)
        high = b.op("Min", [b.op("Add", [low, self.f32(1.0)], f, length), last], f, length)
        weight = b.op("Sub", [clamped, low], f, length)
        keep = b.op("Sub", [self.f32(1.0), weight], f, length)
        trailing = list(range(1, rank - k))
        spread: Shape = (out_dim, *([1] * len(trailing)))
        weight = b.unsqueeze(weight, trailing, spread)
        keep = b.unsqueeze(keep, trailing, spread)
        if dtype != f:
            weight = b.op("Cast", [weight], dtype, spread, to=int(dtype))
            keep = b.op("Cast", [keep], dtype, spread, to=int(dtype))
        rows = []
        for source, share in ((low, keep), (high, weight)):
            index = b.op("Cast", [source], DType.INT64, length, to=int(DType.INT64))
            gathered = b.op("Gather", [x, index], dtype, out_shape, axis=k)
            rows.append(b.op("Mul", [gathered, share], dtype, out_shape))
        return b.op("Add", rows, dtype, out_shape)


class ResizeGatherRule(Rule):
    name = "resize-gather"
    law = "Resize(x, scales | sizes) on dynamic dims -> Gather(x, indices from positions) per axis (two, blended)"
    ops = ("Resize",)

    opset = 0  # the model's ai.onnx opset, read in `start`

    def start(self, graph: Graph) -> None:
        self.opset = graph.root.opset_version("") or 0

    def match(self, node: Node) -> Match | Reject | None:
        plan = resize_plan(node, self.opset)
        if plan is None:
            return None
        return self.reject(node, plan) if isinstance(plan, str) else Match(node, facts={"plan": plan})

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        node, plan = match.root, match.facts["plan"]
        x, out = node.inputs[0], node.outputs[0]
        assert x is not None and out is not None
        b = ShapeEmitter(builder)
        result = Resampler(b, node).run(x, plan) if plan else x
        if result is x:
            out_type = out.type
            assert isinstance(out_type, TensorType)
            result = b.op("Identity", [x], out_type.dtype, out_type.shape)
        builder.bypass(node, result)
        builder.ctx.stats["resize"] += 1


__all__ = ["Resampler", "ResizeGatherRule"]
