"""quantize-qdq's placement of Relu and Clip: after a quantized op whose output only it reads, the
activation is folded away (the producer's output takes its range: QuantizeLinear's saturation at
the range's low end is the activation), unless activations are symmetric; else QDQ on both sides.
"""

from __future__ import annotations

from mlc.ir.core import Node
from mlc.passes._graph_edits import drop_dead_constants
from mlc.passes._match_basics import const_array, input_at
from mlc.passes._qdq_placement import Planner


def clip_bounds(node: Node) -> tuple[float, float] | None:
    if node.op_type == "Relu":
        return 0.0, float("inf")
    lo, hi = float(node.attr("min", float("-inf"))), float(node.attr("max", float("inf")))
    for index in (1, 2):
        value = input_at(node, index)
        if value is None:
            continue
        array = const_array(value)
        if array is None or array.size != 1:
            return None
        if index == 1:
            lo = float(array.reshape(-1)[0])
        else:
            hi = float(array.reshape(-1)[0])
    return lo, hi


def plan_removable(planner: Planner, node: Node) -> str | None:
    x = input_at(node, 0)
    if x is None or x not in planner.acts or const_array(x) is not None:
        return "its input is not quantized"
    out = node.outputs[0]
    why = planner.output_problem(node)
    if why:
        return why
    assert out is not None
    bounds = clip_bounds(node)
    act = planner.acts[x]
    foldable = (not planner.symmetric and bounds is not None and bounds[0] <= 0.0 <= bounds[1] and act.produced
                and act.shared_from is None and x not in planner.folded and len(x.uses) == 1
                and not x.is_graph_output and x.graph is planner.graph)
    if foldable and planner.ctx.rewrite(f"fold-{node.op_type.lower()}"):
        act.range_key = out.name  # read before a graph output's name moves to x
        bounds_values = list(node.inputs[1:])
        out.replace_all_uses_with(x, replace_graph_outputs=True)
        planner.graph.remove(node)
        drop_dead_constants(bounds_values)
        planner.folded.add(x)
        planner.ctx.stats["activations_folded"] += 1
        return None
    planner.read(node, 0)
    planner.produce(node)
    return None


__all__ = ["clip_bounds", "plan_removable"]
