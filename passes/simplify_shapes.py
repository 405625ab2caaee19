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

from mlc.ir.core import Graph, Node
from mlc.pass_api import Numerics, Pass, PassContext, register_pass
from mlc.passes._patterns import const_ints, dim_source, dims_of, same_dim, shape_source


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
        source = shape_source(node.inputs[0])
        index = const_ints(node.inputs[1])
        out = node.outputs[0]
        if source is None or index is None or out is None or out.is_graph_output or node.attr("axis", 0) != 0:
            return False
        x, offset = source
        dims = dims_of(x)
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
            values = const_ints(part)
            if values is not None:
                if 0 in values:
                    ctx.remark(f"Reshape {node.name!r}: kept, a constant 0 entry would change meaning")
                    return False
                entries.extend(values)
                continue
            source = dim_source(part)
            if source is None:
                ctx.remark(f"Reshape {node.name!r}: kept, entry {position} of its target is not a constant or a dim")
                return False
            x, j = source
            at = len(entries)
            entries.append(0 if same_dim(data, at, x, j) else None)
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
