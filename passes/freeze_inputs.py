"""Freeze overridable defaults: a graph input that has an initializer becomes a constant.

    input %w : f32[4] = <default>   (listed in graph.input and graph.initializer)   ->  constant %w

From IR version 4 on, an initializer also listed as a graph input is a default the caller may
override, so no pass may fold it. A user who knows nobody overrides it (`--freeze-inputs`) turns
it into a constant here; the first pass of the pipeline, so it shows in the pass log and
`mlc debug` replays it. Numerically exact: the numeric checks never feed defaults.
"""

from __future__ import annotations

from mlc.ir.core import Graph
from mlc.pass_api import Numerics, Pass, PassContext, register_pass


@register_pass
class FreezeInputs(Pass):
    name = "freeze-inputs"
    description = "Turn graph inputs that have a default (initializer) into constants (--freeze-inputs)"
    numerics = Numerics.EXACT
    statistics = ("frozen",)

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        for value in list(graph.inputs):
            if value.const is None or value.is_graph_output:
                continue
            if not ctx.rewrite("freeze-default"):
                break
            graph.inputs.remove(value)
            ctx.stats["frozen"] += 1
            changed = True
        return changed
