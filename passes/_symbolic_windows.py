"""Shape rules of the windowed ops: Conv, ConvTranspose, the pools, Pad and Resize/Upsample.

Each spatial dim comes from the window arithmetic where it is exact (static dims, or stride 1 over
a symbolic dim), from the pads (also computed from the input's own dims), or from Resize's sizes
or integral scales.
"""

from __future__ import annotations

import math

from mlc.ir.core import Node, Value
from mlc.ir.shape_analysis import ShapeAnalysis, ShapeResult, ShapeRule
from mlc.ir.symbolic_dims import ONE, Expr
from mlc.ir.symbolic_shapes import Elems
from mlc.ir.tensor import Tensor, TensorDataUnavailable
from mlc.passes._symbolic_common import input_at, norm_axis, registrar

RULES: dict[str, ShapeRule] = {}
rule = registrar(RULES)


@rule("Conv", "ConvTranspose", "MaxPool", "AveragePool", "LpPool")
def _windowed(info: ShapeAnalysis, node: Node) -> ShapeResult:
    """Batch passes through; channels from the weight (Conv) or the input (pools); each spatial dim
    from the window arithmetic where it is exact: static dims, or stride 1 over a symbolic dim."""
    x = info.shape(node.inputs[0])
    if x is None or len(x) < 3:
        return None
    spatial = len(x) - 2
    out: list[Expr | None] = [x[0], None, *([None] * spatial)]
    w = info.shape(input_at(node, 1)) if node.op_type in ("Conv", "ConvTranspose") else None
    if node.op_type == "Conv" and w:
        out[1] = w[0]
    elif node.op_type == "ConvTranspose" and w and len(w) > 1 and w[1] is not None and w[1].is_const:
        out[1] = w[1] * Expr.const(int(node.attr("group", 1)))
    elif node.op_type != "Conv" and node.op_type != "ConvTranspose":
        out[1] = x[1]
    kernel = node.attr("kernel_shape")
    if kernel is None and w is not None and len(w) == len(x) and all(d is not None and d.is_const for d in w[2:]):
        kernel = [d.value for d in w[2:]]  # type: ignore[union-attr]
    auto_pad = node.attr("auto_pad", "NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if kernel is None or len(kernel) != spatial or auto_pad not in ("NOTSET", "VALID") or node.attr("output_shape"):
        return [tuple(out)], []
    strides = list(node.attr("strides", [1] * spatial))
    dilations = list(node.attr("dilations", [1] * spatial))
    pads = list(node.attr("pads", [0] * 2 * spatial)) if auto_pad == "NOTSET" else [0] * 2 * spatial
    extra = list(node.attr("output_padding", [0] * spatial))
    ceil = bool(node.attr("ceil_mode", 0))
    for i in range(spatial):
        d = x[2 + i]
        if d is None:
            continue
        span = dilations[i] * (kernel[i] - 1) + 1
        padded = pads[i] + pads[i + spatial]
        if node.op_type == "ConvTranspose":
            out[2 + i] = (d - ONE) * Expr.const(strides[i]) + Expr.const(extra[i] + span - padded)
        elif ceil:
            continue  # runtimes differ on a last window that starts in the padding: as declared
        elif d.is_const:
            out[2 + i] = Expr.const((d.value + padded - span) // strides[i] + 1)
        elif strides[i] == 1:
            out[2 + i] = d + Expr.const(padded - span + 1)
    return [tuple(out)], []


@rule("Pad")
def _pad(info: ShapeAnalysis, node: Node) -> ShapeResult:
    """Each padded dim grows by its two pads (negative pads crop), pads from the attribute (opset
    < 11) or a shape value, also when computed from the input's own dims."""
    x = info.shape(node.inputs[0])
    if x is None:
        return None
    rank = len(x)
    if "pads" in node.attributes:
        pads: Elems | None = tuple(Expr.const(int(v)) for v in node.attr("pads"))
    else:
        pads = info.elems(input_at(node, 1))
    axes = info.ints(input_at(node, 3)) if input_at(node, 3) is not None else list(range(rank))
    if pads is None or axes is None or len(pads) != 2 * len(axes):
        return None
    out = list(x)
    for k, axis in enumerate(norm_axis(a, rank) for a in axes):
        begin, end = pads[k], pads[k + len(axes)]
        out[axis] = None if out[axis] is None or begin is None or end is None else out[axis] + begin + end  # type: ignore[operator]
    return [tuple(out)], []


@rule("Resize", "Upsample")
def _resize(info: ShapeAnalysis, node: Node) -> ShapeResult:
    """Output dims from `sizes` (symbolic allowed), or from integral `scales` (exact for any dim)."""
    x = info.shape(node.inputs[0])
    if x is None:
        return None
    rank = len(x)
    axes = [norm_axis(int(a), rank) for a in node.attr("axes", list(range(rank)))]
    out: list[Expr | None] = [x[0], *([None] * (rank - 1))] if rank else []
    sizes = info.elems(input_at(node, 3)) if node.op_type == "Resize" else None
    if sizes is not None and len(sizes) == len(axes):
        out = list(x)
        for axis, size in zip(axes, sizes, strict=True):
            out[axis] = size
        return [tuple(out)], []
    scales_value = input_at(node, 2) if node.op_type == "Resize" else input_at(node, 1)
    scales = _float_constant(scales_value)
    if scales is None and "scales" in node.attributes:
        scales = [float(v) for v in node.attr("scales")]
    if scales is None or len(scales) != len(axes):
        return [tuple(out)], []
    out = list(x)
    for axis, scale in zip(axes, scales, strict=True):
        d = x[axis]
        if d is None:
            out[axis] = None
        elif d.is_const:
            out[axis] = Expr.const(math.floor(d.value * scale))
        elif float(scale).is_integer() and scale > 0:
            out[axis] = d * Expr.const(int(scale))
        else:
            out[axis] = None
    return [tuple(out)], []


def _float_constant(value: Value | None) -> list[float] | None:
    if value is None or not value.is_constant or not isinstance(value.const, Tensor) or not value.const.has_data:
        return None
    try:
        array = value.const.numpy()
    except TensorDataUnavailable:
        return None
    return [float(v) for v in array.reshape(-1)] if array.size else None


__all__ = ["RULES", "rule"]
