"""legalize-tvm-shapes' Resize coordinates: the source position of each output position of an axis.

onnxruntime's float32 formulas for the coordinate transformation modes (half_pixel,
pytorch_half_pixel, align_corners, asymmetric) and the nearest modes' rounding, over a run-time
input length and an output length that is a constant, a dim read by a Shape, in * an integer, or
floor(in * scale) computed at run time (the rounded one, as onnxruntime sizes the output).
`Resampler` (`_resize_gather`) sets the axis it works on and gathers at these coordinates.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlc.ir.core import Node, Value
from mlc.ir.dtypes import DType
from mlc.ir.types import Shape
from mlc.passes._resize_plan import Axis, text
from mlc.passes._shape_emit import ShapeEmitter


class Coordinates:
    """The coordinate transform of one Resize, for the axis being resampled."""

    def __init__(self, b: ShapeEmitter, node: Node) -> None:
        self.b = b
        self.coordinates = text(node.attr("coordinate_transformation_mode", "half_pixel"))
        self.nearest = text(node.attr("nearest_mode", "round_prefer_floor"))
        self.axis = Axis(0)
        self.x: Value | None = None
        self.in_len: Value | None = None
        self.computed: dict[tuple[str, int, int], Value] = {}

    def f32(self, value: Any) -> Value:
        return self.b.const(value, DType.FLOAT, "f")

    def input_length(self) -> Value:
        assert self.in_len is not None
        return self.in_len

    def out_len(self) -> Value:
        """The output length as float32 [1]: the rounded one, as onnxruntime uses (onnx.reference
        takes in * scale for scales)."""
        b, axis = self.b, self.axis
        if axis.length is not None:
            return self.f32([axis.length])
        if axis.dim is not None:
            return b.length(*axis.dim)
        if axis.computed:
            assert self.x is not None
            return self.out_len_of(self.x, axis)
        assert axis.times is not None
        return b.op("Mul", [self.input_length(), self.f32(float(axis.times))], DType.FLOAT, (1,))

    def out_len_of(self, x: Value, axis: Axis) -> Value:
        """floor(in * scale) in float32, as onnxruntime sizes the output (one per axis)."""
        key = ("computed", id(x), axis.axis)
        if key not in self.computed:
            in_len = self.b.length(x, axis.axis)
            scaled = self.b.op("Mul", [in_len, self.f32(np.float32(axis.scale))], DType.FLOAT, (1,))
            self.computed[key] = self.b.op("Floor", [scaled], DType.FLOAT, (1,))
        return self.computed[key]

    def scale(self) -> Value:
        if self.axis.scale is not None:
            return self.f32(np.float32(self.axis.scale))
        return self.b.op("Div", [self.out_len(), self.input_length()], DType.FLOAT, (1,))

    def original(self, pos: Value, length: Shape) -> Value:
        """The source coordinate of each output position (onnxruntime's float32 formulas)."""
        b, f, mode = self.b, DType.FLOAT, self.coordinates
        if mode == "asymmetric":
            return b.op("Div", [pos, self.scale()], f, length)
        if mode == "align_corners":
            out_len = self.out_len()
            spread = b.op("Mul", [pos, b.op("Sub", [self.input_length(), self.f32(1.0)], f, (1,))], f, length)
            moved = b.op("Div", [spread, b.op("Sub", [out_len, self.f32(1.0)], f, (1,))], f, length)
            single = b.op("Greater", [out_len, self.f32(1.0)], DType.BOOL, (1,))
            return b.op("Where", [single, moved, self.f32(0.0)], f, length)
        centred = b.op("Sub", [b.op("Div", [b.op("Add", [pos, self.f32(0.5)], f, length), self.scale()], f, length),
                               self.f32(0.5)], f, length)
        if mode == "half_pixel":
            return centred
        single = b.op("Greater", [self.out_len(), self.f32(1.0)], DType.BOOL, (1,))  # pytorch_half_pixel
        return b.op("Where", [single, centred, self.f32(0.0)], f, length)

    def round(self, original: Value, length: Shape) -> Value:
        b, f = self.b, DType.FLOAT
        if self.nearest == "floor":
            return b.op("Floor", [original], f, length)
        if self.nearest == "ceil":
            return b.op("Ceil", [original], f, length)
        if self.nearest == "round_prefer_ceil":
            return b.op("Floor", [b.op("Add", [original, self.f32(0.5)], f, length)], f, length)
        return b.op("Ceil", [b.op("Sub", [original, self.f32(0.5)], f, length)], f, length)


__all__ = ["Coordinates"]
