"""Shape computations that exporters write for dynamic models, reduced to constants.

PyTorch and TensorFlow exporters compute reshape targets at run time even when most of the
answer is known: `x.view(x.size(0), x.size(1), heads, -1)` becomes

    %s = Shape(%x); %b = Gather(%s, 0); %b1 = Unsqueeze(%b, [0]); ... ; %t = Concat(%b1, %n1, [4], [32])
    %y = Reshape(%x, %t)

Once dims are static, `fold-constants` folds the chain. With symbolic dims (dynamic batch and
sequence) it cannot, but Reshape itself can copy a dim: a target entry 0 means "the input's dim
at this position" (when `allowzero` is 0), and one entry may be -1. So:

    dim-of-static-shape:  Gather(Shape(x), c) where dim c of x is a known int   ->  constant
    reshape-copy-dims:    Reshape(d, Concat(parts)) where each part is a constant or dim j of a
                          tensor whose dim j equals d's dim at that position (the same symbol, or
                          the same tensor and position)              ->  Reshape(d, constant) with 0
                          for copied dims and -1 for at most one dim known only as a product

What becomes unused is left to `dce`.
"""

from __future__ import annotations

import numpy as np

from mlc.ir.core import Graph, Node, Value
from mlc.ir.tensor import Tensor
from mlc.ir.types import Dim, TensorType
from mlc.pass_api import Numerics, Pass, PassContext, register_pass


def _const_ints(value: Value | None) -> list[int] | None:
    if value is None or not value.is_constant or not isinstance(value.const, Tensor) or not value.const.has_data:
        return None
    array = value.const.numpy()
    if array.dtype.kind not in "iu":
        return None
    return [int(v) for v in array.reshape(-1)]


def _dims(value: Value | None) -> tuple[Dim, ...] | None:
    if value is None or not isinstance(value.type, TensorType) or value.type.shape is None:
        return None
    return value.type.shape


def _dim_source(part: Value) -> tuple[Value, int] | None:
    """(x, j) when `part` is a 1-element tensor holding dim j of x: Unsqueeze(Gather(Shape(x), j)),
    Gather(Shape(x), [j]), Slice(Shape(x), j, j+1) or Shape(x) {start=j, end=j+1}."""
    node = part.producer
    if node is None:
        return None
    if node.op_type == "Unsqueeze":
        inner = node.inputs[0]
        gather = inner.producer if inner is not None else None
        if gather is None or gather.op_type != "Gather" or gather.attr("axis", 0) != 0:
            return None
        index = _const_ints(gather.inputs[1])
        shape_of = _shape_source(gather.inputs[0])
        if index is None or len(index) != 1 or shape_of is None:
            return None
        x, offset = shape_of
        return _normalized(x, index[0] + offset if index[0] >= 0 else index[0])
    if node.op_type == "Gather" and node.attr("axis", 0) == 0:
        index = _const_ints(node.inputs[1])
        shape_of = _shape_source(node.inputs[0])
        if index is None or len(index) != 1 or shape_of is None or node.inputs[1].const.shape != (1,):  # type: ignore[union-attr]
            return None
        x, offset = shape_of
        return _normalized(x, index[0] + offset if index[0] >= 0 else index[0])
    if node.op_type == "Slice":
        starts, ends = _const_ints(node.inputs[1]), _const_ints(node.inputs[2])
        axes = _const_ints(node.inputs[3]) if len(node.inputs) > 3 else [0]
        steps = _const_ints(node.inputs[4]) if len(node.inputs) > 4 else [1]
        shape_of = _shape_source(node.inputs[0])
        if (shape_of is None or starts is None or ends is None or axes != [0] or steps not in ([1], None)
                or len(starts) != 1 or len(ends) != 1 or starts[0] < 0 or ends[0] != starts[0] + 1):
            return None
        x, offset = shape_of
        return _normalized(x, starts[0] + offset)
    if node.op_type == "Shape":
        shape_of = _shape_source(part)
        dims = _dims(node.inputs[0])
        if shape_of is None or dims is None:
            return None
        x, offset = shape_of
        end = node.attr("end", len(dims))
        end = end + len(dims) if end < 0 else end
        return (x, offset) if min(end, len(dims)) == offset + 1 else None
    return None


def _shape_source(value: Value | None) -> tuple[Value, int] | None:
    """(x, start) when `value` is Shape(x) {start=start}."""
    node = value.producer if value is not None else None
    if node is None or node.op_type != "Shape" or node.inputs[0] is None:
        return None
    dims = _dims(node.inputs[0])
    start = node.attr("start", 0)
    if start < 0:
        if dims is None:
            return None
        start += len(dims)
    return node.inputs[0], start


def _normalized(x: Value, j: int) -> tuple[Value, int] | None:
    dims = _dims(x)
    if j < 0:
        if dims is None:
            return None
        j += len(dims)
    return x, j


def _same_dim(a: Value, i: int, b: Value, j: int) -> bool:
    if a is b and i == j:
        return True
    da, db = _dims(a), _dims(b)
    if da is None or db is None or i >= len(da) or j >= len(db):
        return False
    return da[i] is not None and da[i] == db[j]


@register_pass
class SimplifyShapes(Pass):
    name = "simplify-shapes"
    description = "Turn Shape→Gather→Concat→Reshape chains into constant Reshape targets where dims allow"
    numerics = Numerics.EXACT
    statistics = ("dims_folded", "reshapes_simplified")

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        for sub in list(graph.all_graphs()):
            for node in sub:
                if node.domain not in ("", "ai.onnx"):
                    continue
                if node.op_type == "Gather" and self._fold_static_dim(sub, node, ctx):
                    changed = True
                elif node.op_type == "Reshape" and self._simplify_reshape(sub, node, ctx):
                    changed = True
                if ctx.exhausted:
                    return changed
        return changed

    @staticmethod
    def _fold_static_dim(graph: Graph, node: Node, ctx: PassContext) -> bool:
        source = _shape_source(node.inputs[0])
        index = _const_ints(node.inputs[1])
        out = node.outputs[0]
        if source is None or index is None or out is None or out.is_graph_output or node.attr("axis", 0) != 0:
            return False
        x, offset = source
        dims = _dims(x)
        if dims is None:
            return False
        picked = []
        for i in index:
            position = i + offset if i >= 0 else i + len(dims)
            if not 0 <= position < len(dims) or not isinstance(dims[position], int):
                return False
            picked.append(dims[position])
        scalar = node.inputs[1] is not None and node.inputs[1].const is not None and node.inputs[1].const.shape == ()
        if not ctx.rewrite("dim-of-static-shape"):
            return False
        array = np.array(picked[0] if scalar else picked, dtype=np.int64)
        out.replace_all_uses_with(graph.make_constant(array, out.name))
        graph.remove(node)
        ctx.stats["dims_folded"] += 1
        return True

    @staticmethod
    def _simplify_reshape(graph: Graph, node: Node, ctx: PassContext) -> bool:
        data, target = node.inputs[0], node.inputs[1]
        if data is None or target is None or target.is_constant or node.attr("allowzero", 0):
            return False
        concat = target.producer
        if concat is None or concat.op_type != "Concat":
            return False
        entries: list[int | None] = []
        for position, part in enumerate(concat.inputs):
            if part is None:
                return False
            values = _const_ints(part)
            if values is not None:
                if 0 in values:
                    ctx.remark(f"Reshape {node.name!r}: kept, a constant 0 entry would change meaning")
                    return False
                entries.extend(values)
                continue
            source = _dim_source(part)
            if source is None:
                ctx.remark(f"Reshape {node.name!r}: kept, entry {position} of its target is not a constant or a dim")
                return False
            x, j = source
            at = len(entries)
            entries.append(0 if _same_dim(data, at, x, j) else None)
        unknown = [i for i, e in enumerate(entries) if e is None]
        if len(unknown) > 1 or (unknown and -1 in entries):
            ctx.remark(f"Reshape {node.name!r}: kept, {len(unknown)} target dims are neither constant nor copied")
            return False
        if unknown:
            entries[unknown[0]] = -1
        if not ctx.rewrite("reshape-copy-dims"):
            return False
        node.set_input(1, graph.make_constant(np.array(entries, dtype=np.int64), "shape"))
        ctx.stats["reshapes_simplified"] += 1
        return True
