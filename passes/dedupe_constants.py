"""Share equal constants.

    c1 = const T;  c2 = const T (same dtype, shape and bytes)   ->   c2's readers read c1

Candidates are grouped by dtype and shape first, so only tensors that could be equal are hashed.
Graph inputs with defaults are overridable and never merged.
"""

from __future__ import annotations

from collections import defaultdict

from mlc.ir.core import Graph, Value
from mlc.ir.tensor import Tensor
from mlc.pass_api import Numerics, Pass, PassContext, register_pass


@register_pass
class DedupeConstants(Pass):
    name = "dedupe-constants"
    description = "Make equal constants one shared constant"
    numerics = Numerics.EXACT
    statistics = ("merged", "bytes_saved")

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        for sub in graph.all_graphs():
            groups: dict[tuple[object, ...], list[Value]] = defaultdict(list)
            for value in sub.initializers.values():
                if isinstance(value.const, Tensor) and value.is_constant and not value.is_graph_output:
                    groups[(value.const.dtype, value.const.shape)].append(value)
            for members in groups.values():
                if len(members) < 2:
                    continue
                by_digest: dict[str, Value] = {}
                for value in members:
                    tensor = value.const
                    assert isinstance(tensor, Tensor)
                    first = by_digest.setdefault(tensor.digest(), value)
                    if first is value:
                        continue
                    assert isinstance(first.const, Tensor)
                    if not first.const.equals(tensor) or value.type != first.type:
                        continue
                    if not ctx.rewrite("equal-constant"):
                        return changed
                    value.replace_all_uses_with(first)
                    sub.remove_initializer(value)
                    ctx.stats["merged"] += 1
                    ctx.stats["bytes_saved"] += tensor.nbytes
                    changed = True
        return changed
