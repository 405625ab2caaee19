"""Shape computations that exporters write for dynamic models, reduced to constants.

PyTorch and TensorFlow exporters compute reshape targets at run time even when most of the
answer is known: `x.view(x.size(0), x.size(1), heads, -1)` becomes

    %s = Shape(%x); %b = Gather(%s, 0); %b1 = Unsqueeze(%b, [0]); ... ; %t = Concat(%b1, %n1, [4], [-1])
    %y = Reshape(%x, %t)

Once dims are static, `fold-constants` folds the chain. With symbolic dims (dynamic batch and
sequence) it cannot, but the chain's values are known symbolically (`mlc.passes._symbolic`:
`%t` is [batch, sequence, 4, -1] for x: [batch, sequence, 64]), and Reshape itself can copy a
dim: a target entry 0 means "the input's dim at this position" (when `allowzero` is 0), and one
entry may be -1. The rules:

    fold-shape-value   an integer or boolean value whose every element is known and constant
                       (Gather(Shape(x), 1) with x's dim 1 static, Slice(Shape(x), -1) likewise,
                       Equal(Concat(batch, -1), -1) = [false, true] since a dim is never -1,
                       Where over it, arithmetic on such values), read by a node that does not
                       fold itself                                  ->  a constant
    reshape-copy-dims  Reshape(x, t), t computed: the output dims derived from t and x's dims
                       (its -1 solved from the element count) -> Reshape(x, constant): each
                       output dim that is static is written out, each that is x's own dim at
                       the same position is 0, and at most one other is -1 (`allowzero` goes
                       where a 0 entry copies and no output dim is a literal 0: it changes
                       nothing else)
    reshape-noop       Reshape(x, t) whose output dims provably are x's dims     ->  x
    expand-noop        Expand(x, s) with s computed, broadcasting x to x's own dims   ->  x

Every dim used is equal by construction (the same symbolic expression), so the rewrites hold for
every shape the model accepts. With the analysis built, the pass first gives every value the dims
it derives, as `infer-shapes` does (option `refine_types`, on by default), so that the passes
after it compare dims by one name. The Shape→Gather→Concat chains its rewrites orphan go with it
(a dead Shape still reads its tensor, and a layout merge after this pass would count it as a
reader); unused constants are left to `dce`.
"""

from __future__ import annotations

import numpy as np

from mlc.ir.core import Graph, Node, Value
from mlc.ir.types import TensorType
from mlc.pass_api import Numerics, Pass, PassContext, PassOption, register_pass
from mlc.passes._patterns import label, output_name_blocked, remove_dead_producers
from mlc.passes._symbolic import INT_DTYPES, ShapeInfo, broadcast, elems_array, reshape_dims
from mlc.passes.infer_shapes import refine_types


@register_pass
class SimplifyShapes(Pass):
    name = "simplify-shapes"
    description = "Turn Shape→Gather→Concat→Reshape chains into constant Reshape targets where dims allow"
    numerics = Numerics.EXACT
    options = (PassOption("refine_types", bool, True,
                          "also give values the dims the analysis derives, as infer-shapes does"),)
    statistics = ("dims_folded", "reshapes_simplified", "reshapes_removed", "expands_removed", "values_refined",
                  "dims_refined", "dead_nodes_removed")

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        self._orphans: list[Value] = []  # values whose readers moved away: their chains may be dead now
        try:
            changed = self._run(graph, ctx)
        finally:
            ctx.stats["dead_nodes_removed"] += remove_dead_producers(self._orphans)
            self._orphans = []
        return changed

    def _run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        for sub in list(graph.all_graphs()):
            info = ShapeInfo(sub)
            if self.option("refine_types"):
                changed |= refine_types(sub, info, ctx)
            foldable = _foldable(sub, info)
            for node in sub:
                if node.domain not in ("", "ai.onnx"):
                    continue
                if node in foldable and self._fold(sub, node, info, foldable, ctx):
                    changed = True
                elif node.op_type == "Reshape" and self._simplify_reshape(sub, node, info, ctx):
                    changed = True
                elif node.op_type == "Expand" and self._expand_noop(sub, node, info, ctx):
                    changed = True
                if ctx.exhausted:
                    return changed
        return changed

    def _fold(self, graph: Graph, node: Node, info: ShapeInfo, foldable: dict[Node, dict[Value, np.ndarray]],
              ctx: PassContext) -> bool:
        """Replace the node's outputs whose values are all known constants, where a node that is not
        folded itself reads them (the rest of a folded chain is left to dce)."""
        done = False
        for out, array in foldable[node].items():
            if all(user in foldable for user, _ in out.uses):
                continue
            if not ctx.rewrite("fold-shape-value"):
                return done
            out.replace_all_uses_with(graph.make_constant(array, out.name))
            self._orphans.append(out)
            ctx.stats["dims_folded"] += 1
            done = True
        return done

    def _simplify_reshape(self, graph: Graph, node: Node, info: ShapeInfo, ctx: PassContext) -> bool:
        data, target, out = node.inputs[0], node.inputs[1] if len(node.inputs) > 1 else None, node.outputs[0]
        if data is None or target is None or out is None:
            return False
        allowzero = bool(node.attr("allowzero", 0))
        x = info.shape(data)
        elems = info.elems(target)
        if x is None or elems is None:
            return False
        dims = reshape_dims(x, elems, allowzero)
        if dims is None:
            return False
        if len(dims) == len(x) and all(d is not None and d == e for d, e in zip(dims, x, strict=True)):
            if output_name_blocked(out, data, graph):
                ctx.remark(f"{label(node)}: a no-op kept, it names a graph output its input cannot take")
                return False
            if not ctx.rewrite("reshape-noop"):
                return False
            out.replace_all_uses_with(data, replace_graph_outputs=True)
            graph.remove(node)
            self._orphans.append(target)
            ctx.stats["reshapes_removed"] += 1
            return True
        if target.is_constant:
            return False
        # A 0 entry copies the input's dim unless allowzero: where no output dim is a literal 0,
        # allowzero makes no difference but to forbid the copy, and it is dropped for one.
        copy = not allowzero or not any(d is not None and d.is_const and d.value == 0 for d in dims)
        entries: list[int | None] = []
        for i, d in enumerate(dims):
            if d is not None and d.is_const and (d.value != 0 or allowzero):
                entries.append(d.value)
            elif copy and d is not None and i < len(x) and x[i] == d:
                entries.append(0)
            else:
                entries.append(None)
        unknown = [i for i, e in enumerate(entries) if e is None]
        if len(unknown) > 1:
            ctx.remark(f"Reshape {node.name!r}: kept, {len(unknown)} target dims are neither constant nor copied")
            return False
        if unknown:
            entries[unknown[0]] = -1
        if not ctx.rewrite("reshape-copy-dims"):
            return False
        node.set_input(1, graph.make_constant(np.array(entries, dtype=np.int64), "shape"))
        self._orphans.append(target)
        if allowzero and 0 in entries:
            del node.attributes["allowzero"]
        ctx.stats["reshapes_simplified"] += 1
        return True

    def _expand_noop(self, graph: Graph, node: Node, info: ShapeInfo, ctx: PassContext) -> bool:
        data, shape, out = node.inputs[0], node.inputs[1] if len(node.inputs) > 1 else None, node.outputs[0]
        if data is None or shape is None or out is None or shape.is_constant:
            return False  # a constant shape is eliminate-noop's
        x, elems = info.shape(data), info.elems(shape)
        if x is None or elems is None:
            return False
        result = broadcast([x, elems])
        if result is None or len(result) != len(x) or any(r is None or r != d for r, d in zip(result, x, strict=True)):
            return False
        if any(e is None for e in elems):
            return False
        if output_name_blocked(out, data, graph):
            return False
        if not ctx.rewrite("expand-noop"):
            return False
        out.replace_all_uses_with(data, replace_graph_outputs=True)
        graph.remove(node)
        self._orphans.append(shape)
        ctx.stats["expands_removed"] += 1
        return True


def _foldable(graph: Graph, info: ShapeInfo) -> dict[Node, dict[Value, np.ndarray]]:
    """The nodes with outputs whose values are all known constants (and those values)."""
    found: dict[Node, dict[Value, np.ndarray]] = {}
    for node in graph:
        if node.domain not in ("", "ai.onnx") or node.op_type == "Constant":
            continue
        arrays = {}
        for out in node.outputs:
            if out is None or out.is_graph_output or not isinstance(out.type, TensorType):
                continue
            if out.type.dtype not in INT_DTYPES:
                continue
            elems, shape = info.elems(out), info.shape(out)
            array = elems_array(elems, out.type.dtype, shape) if elems is not None and shape is not None else None
            if array is not None:
                arrays[out] = array
        if arrays:
            found[node] = arrays
    return found
