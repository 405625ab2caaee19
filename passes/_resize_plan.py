"""legalize-tvm-shapes' Resize plan: which axes to resample, and where each output length comes from.

TVM computes the size of a constant scale on a dynamic dim as Cast(2.0 * Cast(h)) (never equal to
the skip connection's h * 2 it is concatenated with), cannot read sizes that are not constants,
and resizes by out / in where the spec says by the scale (wrong wherever in * scale is no integer,
static dims too). The output length of a resampled axis is a dim TVM knows where one exists: the
dim a `sizes` element was read from, the dim of a tensor the output is concatenated with (equal
for every input the model accepts), in * s for an integer scale s; else floor(in * s) computed at
run time. Static Resizes TVM gets right stay. Left alone (a reject): cubic, antialias,
exclude_outside, tf_crop_and_resize, half_pixel_symmetric, keep_aspect_ratio_policy other than
stretch, and `sizes` computed from values with no concatenated tensor to read the length from.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlc.ir.core import Node, Value
from mlc.ir.types import Shape, TensorType
from mlc.passes._match_basics import STANDARD, const_array, input_at
from mlc.passes._shape_elements import DimOf, Element, partial_elements, rank_of
from mlc.passes._transformer_match import dims_of

RESIZE_MODES = ("nearest", "linear")
COORDINATES = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric")
NEAREST = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


def text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class Axis:
    """How one resized axis gets its output positions: a constant length, the length of a dim
    read at run time, the input's length times an integer, or (`computed`) floor(in * scale)
    computed at run time (a length TVM names anew: fine unless it must meet another dim)."""

    def __init__(self, axis: int, *, length: int | None = None, dim: DimOf | None = None, times: int | None = None,
                 scale: float | None = None, computed: bool = False) -> None:
        self.axis, self.length, self.dim, self.times, self.scale = axis, length, dim, times, scale
        self.computed = computed


def _tvm_reads_it(node: Node, shape: Shape, scales: np.ndarray | None, sizes: list[Element | None] | None,
                  axes: list[int]) -> bool:
    """A static input with constant scales or sizes: TVM computes those itself, except with `axes`
    (it misreads them), for linear downsampling (wrong numbers: the official
    test_resize_downsample_*) and for a scale s where in * s is no integer (TVM resizes by out / in)."""
    if not all(isinstance(d, int) for d in shape):
        return False
    if scales is None and (sizes is None or not all(isinstance(s, int) for s in sizes)):
        return False
    if scales is not None:
        shrinks = bool(np.any(scales < 1))
    else:
        assert sizes is not None
        shrinks = any(isinstance(s, int) and s < int(shape[a] or 0) for s, a in zip(sizes, axes, strict=False))
    fractional = scales is not None and any(
        float(np.float32(shape[a]) * np.float32(v)) != np.floor(np.float32(shape[a]) * np.float32(v))
        for a, v in zip(axes, scales.reshape(-1), strict=False))
    linear = text(node.attr("mode", "nearest")) == "linear"
    return node.attr("axes") is None and not (linear and shrinks) and not fractional


def _unsupported(node: Node, x: Value) -> str | None:
    """Why the Resize's attributes keep it, or None."""
    mode = text(node.attr("mode", "nearest"))
    coordinates = text(node.attr("coordinate_transformation_mode", "half_pixel"))
    nearest = text(node.attr("nearest_mode", "round_prefer_floor"))
    if mode not in RESIZE_MODES:
        return f"mode {mode!r} is not rewritten (nearest and linear are)"
    if coordinates not in COORDINATES:
        return f"coordinate_transformation_mode {coordinates!r} is not rewritten"
    if mode == "nearest" and nearest not in NEAREST:
        return f"nearest_mode {nearest!r} is not rewritten"
    if int(node.attr("antialias", 0)) or int(node.attr("exclude_outside", 0)):
        return "antialias / exclude_outside are not rewritten"
    if text(node.attr("keep_aspect_ratio_policy", "stretch")) != "stretch":
        return "keep_aspect_ratio_policy is not 'stretch'"
    if mode == "linear" and not (isinstance(x.type, TensorType) and x.type.dtype.is_float):
        return "linear resize of a non-float tensor"
    return None


def _scaled_axis(axis: int, in_dim: object, factor: float) -> Axis | str | None:
    if factor == 1.0:
        return None
    if isinstance(in_dim, int):
        return Axis(axis, length=int(np.floor(in_dim * np.float32(factor))), scale=factor)
    if factor > 1 and factor == int(factor):
        return Axis(axis, times=int(factor), scale=factor)
    if factor > 0:
        return Axis(axis, computed=True, scale=factor)
    return f"its scale {factor} for dim {axis} is not positive"


def _sized_axis(node: Node, x: Value, axis: int, in_dim: object, item: Element | None) -> Axis | str | None:
    if item is None:  # computed from values: the length of a tensor it must equal
        partner = concat_partner(node, axis)
        if partner is None:
            return (f"its size for dim {axis} is computed at run time from values, not read from a shape, "
                    "and it is concatenated with no tensor of that length")
        return Axis(axis, dim=partner)
    if isinstance(item, int):
        return None if item == in_dim else Axis(axis, length=item)
    return None if item == (x, axis) else Axis(axis, dim=item)


def resize_plan(node: Node, opset: int) -> list[Axis] | str | None:
    """The axes to resample, or why the Resize stays (a str), or None when TVM reads it as it is."""
    x = node.inputs[0] if node.inputs else None
    shape = dims_of(x)
    if x is None or shape is None:
        return "its input's rank is unknown"
    rank = len(shape)
    scales_in, sizes_in = (input_at(node, 1), None) if opset < 11 else (input_at(node, 2), input_at(node, 3))
    scales = const_array(scales_in, constant_nodes=True)
    if scales is not None and scales.size == 0:
        scales, scales_in = None, None
    sizes = partial_elements(sizes_in) if sizes_in is not None else None
    axes = [int(a) + rank if int(a) < 0 else int(a) for a in (node.attr("axes") or range(rank))]
    if _tvm_reads_it(node, shape, scales, sizes, axes):
        return None
    why = _unsupported(node, x)
    if why is not None:
        return why
    if scales_in is None and sizes_in is None:
        return "it has neither scales nor sizes"
    if scales is None and sizes is None:
        return "its scales / sizes are computed at run time from values, not read from shapes"
    count = len(scales.reshape(-1)) if scales is not None else len(sizes or [])
    if count != len(axes):
        return f"{count} scales/sizes for {len(axes)} axes"
    plan: list[Axis] = []
    for j, axis in enumerate(axes):
        if scales is not None:
            entry = _scaled_axis(axis, shape[axis], float(scales.reshape(-1)[j]))
        else:
            assert sizes is not None
            entry = _sized_axis(node, x, axis, shape[axis], sizes[j])
        if isinstance(entry, str):
            return entry
        if entry is not None:
            plan.append(entry)
    for entry in plan:
        if entry.length is None:  # a length TVM may not prove equal to the tensor it meets
            partner = concat_partner(node, entry.axis)
            if partner is not None:
                entry.dim, entry.times = partner, None
    return plan


def depends_on(value: Value, node: Node, limit: int = 10000) -> bool:
    """Whether `value` is computed (transitively) from an output of `node`."""
    stack, seen = [value], set()
    while stack and limit:
        limit -= 1
        current = stack.pop()
        producer = current.producer
        if producer is None or id(producer) in seen:
            continue
        if producer is node:
            return True
        seen.add(id(producer))
        stack.extend(v for v in producer.inputs if v is not None)
    return bool(stack)  # out of budget: assume it does


def concat_partner(node: Node, axis: int) -> DimOf | None:
    """Dim `axis` of a tensor the Resize's output is concatenated with (along another axis): a
    Concat needs them equal, so for every input the model runs on it is the output's length, and
    TVM then sees the same dim on both sides (it cannot prove (h // 4) * 2 == h // 2)."""
    out = node.outputs[0]
    graph = node.graph
    order = {id(n): i for i, n in enumerate(graph)} if graph is not None else {}
    for consumer in (out.consumers if out is not None else []):
        if consumer.op_type != "Concat" or consumer.domain not in STANDARD:
            continue
        rank = rank_of(out)
        concat_axis = int(consumer.attr("axis", 0))
        if rank is None or (concat_axis + rank if concat_axis < 0 else concat_axis) == axis:
            continue
        for other in consumer.inputs:
            if other is None or other is out or rank_of(other) != rank or depends_on(other, node):
                continue
            producer = other.producer
            if producer is not None and order.get(id(producer), len(order)) > order.get(id(node), -1):
                continue  # computed after the Resize: its Shape cannot come first
            return other, axis
    return None


__all__ = ["COORDINATES", "NEAREST", "RESIZE_MODES", "Axis", "concat_partner", "depends_on", "resize_plan", "text"]
