"""Replace ops that ONNX defines as functions by their function body.

    Celu(x) {alpha=2.0}   ->   the nodes of Celu's body in the ONNX schema, with @alpha = 2.0:
                               Constant, CastLike, Div, Elu, Mul, ...

Many standard ops come with a definition in simpler ops in the ONNX operator schemas (Celu, Mish,
LayerNormalization, SoftmaxCrossEntropyLoss, Attention, RotaryEmbedding, ...). A backend whose
frontend lacks such an op can still compile the model once the op is replaced by its body; the
TVM backend runs this pass on the ops its frontend cannot convert.

The body is instantiated for the node (`mlc.onnx_io.functions.expand_node`): attribute
references take the node's values or the schema's defaults, bodies built from the node and its
input types are built for it, internal values get fresh names and the types onnx's shape
inference gives them. Ops of a body that are themselves in `ops` are expanded in turn (an op is
never expanded inside its own body). A node is left alone, with a remark, when its op has no
body at the model's opset, when the body is written for an older opset in which one of its ops
meant something else, or when the body cannot be typed.

Option `ops`: the op types to expand, separated by commas (or `;`, `|`, `+`, spaces: a pass spec
on the command line splits options at commas, so write `expand-functions{ops=Celu;Mish}` there);
`*` expands every deterministic op that has a function body (random ops such as Bernoulli only
when named). Empty (the default): nothing.
"""

from __future__ import annotations

import re
from collections import deque

from mlc.ir.core import Graph, Node
from mlc.onnx_io.functions import expand_node, has_function_body
from mlc.pass_api import Numerics, Pass, PassContext, PassOption, register_pass

_MAX_DEPTH = 8  # nested bodies expanded at most this deep (ONNX's own nest two or three levels)
# Random ops: their bodies draw from other random ops, so the numbers change with the expansion
# (`*` leaves them; naming one expands it). The schemas' own determinism flags are not reliable
# (AffineGrid and SequenceMap are marked non-deterministic, DepthToSpace unknown).
_RANDOM = {"Bernoulli", "Dropout", "Multinomial", "RandomNormal", "RandomNormalLike", "RandomUniform",
           "RandomUniformLike"}


def parse_ops(text: str) -> set[str]:
    """The op types of the `ops` option (commas cannot be used inside a pass spec's braces)."""
    return {item for item in re.split(r"[,;|+\s]+", text) if item}


class _Names:
    """Fresh value names: readable (the hint itself when free), never one the model uses."""

    def __init__(self, graph: Graph) -> None:
        self.taken: set[str] = set()
        for g in graph.all_graphs():
            self.taken.update(v.name for v in g.inputs)
            self.taken.update(g.initializers)
            self.taken.update(g.sparse_initializers)
            for node in g:
                self.taken.update(v.name for v in node.outputs if v is not None)

    def __call__(self, hint: str) -> str:
        hint = re.sub(r"[^A-Za-z0-9_.\-/]", "_", hint) or "v"
        name, counter = hint, 0
        while name in self.taken:
            counter += 1
            name = f"{hint}_{counter}"
        self.taken.add(name)
        return name


def _all_nodes(nodes: list[Node]) -> list[Node]:
    found = []
    for node in nodes:
        found.append(node)
        for sub in node.subgraphs():
            found.extend(sub.all_nodes())
    return found


def _drop_subgraphs(node: Node) -> None:
    """Empty the sub-graphs of a node about to be removed: `Graph.remove` drops the node's own
    reads, not those its sub-graph nodes make of enclosing values, which would stay on their
    use lists."""
    for sub in node.subgraphs():
        for inner in reversed(sub.nodes):
            _drop_subgraphs(inner)
            sub.remove(inner, detach_uses=True)


@register_pass
class ExpandFunctions(Pass):
    name = "expand-functions"
    description = "Replace ops that the ONNX schemas define as functions by their function body"
    numerics = Numerics.TOLERANCE
    options = (PassOption("ops", str, "", "op types to expand, separated by , ; | + or spaces; * = every "
                                          "deterministic op with a function body; empty = none"),)
    statistics = ("expanded",)

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        wanted = parse_ops(self.option("ops"))
        model = graph.root.model
        if not wanted or model is None:
            return False
        every = "*" in wanted
        opsets = model.opset_imports  # the importer spells the standard domain ""
        local = {(f.domain, f.name) for f in model.functions}
        fresh = _Names(graph)

        def candidate(node: Node) -> bool:
            if (node.domain, node.op_type) in local:
                return False
            if node.op_type in wanted:
                return True
            if not every:
                return False
            version = opsets.get(node.domain)
            return (node.op_type not in _RANDOM and version is not None
                    and has_function_body(node.op_type, node.domain, version))

        work: deque[tuple[Node, tuple[str, ...]]] = deque(
            (node, ()) for node in graph.all_nodes() if candidate(node))
        changed = False
        while work:
            node, chain = work.popleft()
            sub = node.graph
            if sub is None:
                continue  # inside a body that was replaced
            label = f"{node.name} ({node.op_type})" if node.name else node.op_type
            if node.op_type in chain or len(chain) >= _MAX_DEPTH:
                ctx.remark(f"{label}: kept, it is inside the body of {' > '.join(chain)}")
                continue
            expansion = expand_node(node, opsets, fresh)
            if isinstance(expansion, str):
                ctx.remark(f"{label}: kept, {expansion}")
                continue
            lost = [old.name for old, new in zip(node.outputs, expansion.outputs, strict=True)
                    if old is not None and new is None and (old.uses or old.is_graph_output)]
            if lost:
                expansion.discard()
                ctx.remark(f"{label}: kept, its body does not compute {', '.join(lost)}")
                continue
            rule = node.op_type
            if not ctx.rewrite(rule):
                expansion.discard()
                return changed
            sub.move_before(node, expansion.nodes)
            for new_node in _all_nodes(expansion.nodes):
                ctx.created(new_node, [node], rule)
            for old, new in zip(node.outputs, expansion.outputs, strict=True):
                if old is not None and new is not None:
                    if not old.is_graph_output:  # the new value takes over the name (graph outputs swap on their own)
                        old.name, new.name = new.name, old.name
                    old.replace_all_uses_with(new, replace_graph_outputs=True)
            _drop_subgraphs(node)
            sub.remove(node)
            ctx.stats["expanded"] += 1
            changed = True
            inner = (*chain, node.op_type)
            work.extendleft(reversed([(n, inner) for n in _all_nodes(expansion.nodes) if candidate(n)]))
        return changed
