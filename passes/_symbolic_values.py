"""Shape rules of the ops that make shape values: Shape, Size, Constant, ConstantOfShape, Range,
and of Expand, Tile and Split, whose output dims are such a value.

`Shape(x)` holds x's dims (start/end honoured), so the chains exporters compute reshape targets
with stay known symbolically.
"""

from __future__ import annotations

from mlc.ir.core import Node
from mlc.ir.shape_analysis import ShapeAnalysis, ShapeResult, ShapeRule
from mlc.ir.symbolic_dims import ZERO, Expr
from mlc.ir.symbolic_shapes import INT_DTYPES, MAX_ELEMENTS, as_int, broadcast, product
from mlc.ir.tensor import Tensor
from mlc.passes._slicing import shape_range
from mlc.passes._symbolic_common import input_at, norm_axis, registrar

RULES: dict[str, ShapeRule] = {}
rule = registrar(RULES)


@rule("Expand")
def _expand(info: ShapeAnalysis, node: Node) -> ShapeResult:
    x, target = info.shape(node.inputs[0]), info.elems(input_at(node, 1))
    if x is None or target is None:
        return None
    out = broadcast([x, target])
    elems = None
    if out is not None and len(out) <= 1:
        values = info.elems(node.inputs[0])
        size = as_int(out[0]) if out else 1
        if values is not None and len(values) == 1 and size is not None and size <= MAX_ELEMENTS:
            elems = values * size
        elif values is not None and size is not None and len(values) == size:
            elems = values
    return [out], [elems]


@rule("ConstantOfShape")
def _constant_of_shape(info: ShapeAnalysis, node: Node) -> ShapeResult:
    target = info.elems(node.inputs[0])
    if target is None:
        return None
    elems = None
    fill = node.attr("value")
    count = product(target)
    if count is not None and count.is_const and count.value <= MAX_ELEMENTS:
        value = 0
        if isinstance(fill, Tensor) and fill.has_data and fill.dtype in INT_DTYPES:
            value = int(fill.numpy().reshape(-1)[0])
        if fill is None or (isinstance(fill, Tensor) and fill.dtype in INT_DTYPES):
            elems = (Expr.const(value),) * count.value
    return [tuple(target)], [elems]


@rule("Constant")
def _constant(info: ShapeAnalysis, node: Node) -> ShapeResult:
    attr = node.attributes.get("value")
    if attr is not None and attr.ref is None and isinstance(attr.value, Tensor):
        tensor = attr.value
        elems = None
        if tensor.dtype in INT_DTYPES and tensor.size <= MAX_ELEMENTS and tensor.has_data:
            elems = tuple(Expr.const(int(v)) for v in tensor.numpy().reshape(-1))
        return [tuple(Expr.const(d) for d in tensor.shape)], [elems]
    for name in ("value_int", "value_ints"):
        attr = node.attributes.get(name)
        if attr is not None and attr.ref is None:
            values = [attr.value] if name == "value_int" else list(attr.value)
            shape = () if name == "value_int" else (Expr.const(len(values)),)
            return [shape], [tuple(Expr.const(int(v)) for v in values)]
    return None


@rule("Shape")
def _shape(info: ShapeAnalysis, node: Node) -> ShapeResult:
    x = info.shape(node.inputs[0])
    if x is None:
        return None
    start, end = shape_range(node, len(x))
    picked = x[start:end]
    return [(Expr.const(len(picked)),)], [picked]


@rule("Size")
def _size(info: ShapeAnalysis, node: Node) -> ShapeResult:
    x = info.shape(node.inputs[0])
    return [()], [(product(x) if x is not None else None,)]


@rule("Range")
def _range(info: ShapeAnalysis, node: Node) -> ShapeResult:
    start, limit, delta = (info.elems(v) for v in node.inputs[:3])
    if start is None or limit is None or delta is None or len(start) != 1 or len(limit) != 1 or len(delta) != 1:
        return None
    s, lim, d = start[0], limit[0], delta[0]
    if s is None or lim is None or d is None or not d.is_const or d.value == 0:
        return None
    if s.is_const and lim.is_const:
        values = list(range(s.value, lim.value, d.value))
        elems = tuple(Expr.const(v) for v in values) if len(values) <= MAX_ELEMENTS else None
        return [(Expr.const(len(values)),)], [elems]
    if d.value == 1 and s == ZERO and lim.nonnegative:
        return [(lim,)], []
    return None


@rule("Tile")
def _tile(info: ShapeAnalysis, node: Node) -> ShapeResult:
    x, repeats = info.shape(node.inputs[0]), info.elems(node.inputs[1])
    if x is None or repeats is None or len(repeats) != len(x):
        return None
    return [tuple(None if d is None or r is None else d * r for d, r in zip(x, repeats, strict=True))], []


@rule("Split")
def _split(info: ShapeAnalysis, node: Node) -> ShapeResult:
    x = info.shape(node.inputs[0])
    if x is None:
        return None
    axis = norm_axis(node.attr("axis", 0), len(x))
    outputs = len(node.outputs)
    if "split" in node.attributes:
        sizes: list[Expr | None] = [Expr.const(int(s)) for s in node.attr("split")]
    elif input_at(node, 1) is not None:
        values = info.elems(node.inputs[1])
        if values is None:
            return None
        sizes = list(values)
    else:
        dim = x[axis]
        if dim is None:
            return None
        if dim.is_const:
            chunk = -(-dim.value // outputs)
            sizes = [Expr.const(min(chunk, dim.value - i * chunk)) for i in range(outputs)]
        else:
            part = dim.divide(Expr.const(outputs))
            sizes = [part] * outputs
    if len(sizes) != outputs:
        return None
    return [tuple(s if i == axis else d for i, d in enumerate(x)) for s in sizes], []


__all__ = ["RULES", "rule"]
