"""TensorRT's engine layers mapped back to our nodes, and the tensors that survive its fusions.

An engine built from ONNX runs layers, not nodes: TensorRT fuses a Conv with its bias and
activation, point-wise chains into one `PWN(...)` kernel, whole transformer blocks into a Myelin
`{ForeignNode[first...last]}`. Comparing an engine with the reference at every ONNX tensor
(Polygraphy's `mark all`) marks every tensor as an output, which forbids those fusions: the engine
compared is then not the engine shipped (NVIDIA/TensorRT#2232, #2571). mlc instead reads the
engine's own layer list (`IEngineInspector`, JSON, detailed verbosity), and compares only at the
tensors that already exist in it, the outputs of its layers; marking exactly those as outputs
leaves the fusions as they were, which `same_layers` checks on the rebuilt engine.

The layer list names the ONNX nodes a layer stands for in two places: in `Metadata` (TensorRT 10
and later: `[ONNX Layer: NAME]` entries, one per fused node, separated by 0x1F) and in `Name`
(`a + b`, `PWN(a, PWN(b, c))`, `{ForeignNode[a...b]}` which gives only the first and the last of
a range). `Metadata` wins where present; a foreign-node range is expanded over our graph's
topological order. The ONNX mlc hands TensorRT is written from our IR with our node names, and
each of our nodes knows the model nodes it descends from (`Node.origin`), so a layer is reported
as our nodes and as the user's model nodes.

Everything here reads JSON and our IR only (no TensorRT import), so it is tested on machines
without a GPU.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlc.ir.core import Graph, Node

_METADATA_ENTRY = re.compile(r"\[ONNX Layer: ([^\]]*)\]")
_FOREIGN = re.compile(r"\{ForeignNode\[(.*)\]\}")
_RANGE = "..."


@dataclass(frozen=True)
class EngineLayer:
    """One layer of an engine: its name, the ONNX node names it runs, the tensors it writes."""

    name: str
    kind: str
    onnx_nodes: tuple[str, ...]
    outputs: tuple[str, ...]
    node_range: tuple[str, str] | None = None  # a foreign node's first...last, before expansion


@dataclass
class LayerMap:
    """Engine layers against our graph: which of our nodes each layer runs, and the tensors worth
    comparing (outputs of layers that are values of our graph), in our topological order."""

    layers: list[EngineLayer]
    nodes_of_layer: dict[str, tuple[str, ...]]
    layer_of_node: dict[str, str]
    survivors: list[str]
    unmapped_layers: list[str] = field(default_factory=list)

    def fused_away(self, graph: Graph) -> list[str]:
        """Values of our graph that the engine never materializes (computed inside a fused layer)."""
        kept = set(self.survivors)
        return [v.name for n in graph for v in n.outputs if v is not None and v.name and v.name not in kept]

    def describe_layer(self, layer: str, graph: Graph) -> str:
        """`layer 'A + B' (our nodes A, B; model nodes a, b)`."""
        ours = self.nodes_of_layer.get(layer, ())
        by_name = {n.name: n for n in graph}
        model = list(dict.fromkeys(o for name in ours if name in by_name for o in by_name[name].origin))
        text = f"layer {layer!r}"
        if ours:
            text += f" (our nodes {', '.join(ours)}"
            text += f"; model nodes {', '.join(model)})" if model and list(model) != list(ours) else ")"
        return text


def _split_top(text: str, separator: str) -> list[str]:
    """`text` split at `separator` outside parentheses."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(text):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
        elif depth == 0 and text.startswith(separator, i):
            parts.append(text[start:i])
            start = i + len(separator)
            i = start
            continue
        i += 1
    return [*parts, text[start:]]


def _leaf_names(text: str) -> list[str]:
    names = []
    for part in _split_top(text.strip(), " + "):
        part = part.strip()
        if part.startswith("PWN(") and part.endswith(")"):
            for inner in _split_top(part[4:-1], ", "):
                names += _leaf_names(inner)
        elif part:
            names.append(part)
    return names


def _names_in_layer_name(name: str) -> tuple[tuple[str, ...], tuple[str, str] | None]:
    """ONNX node names read off a layer's name: `a + b`, `PWN(a, PWN(b, c))`, `{ForeignNode[a...b]}`."""
    foreign = _FOREIGN.fullmatch(name.strip())
    if foreign:
        first, sep, last = foreign.group(1).partition(_RANGE)
        return ((first, last) if sep else (first,)), ((first, last) if sep else None)
    return tuple(_leaf_names(name)), None


def _is_reformat(name: str, entry: Mapping[str, Any]) -> bool:
    return name.startswith(("Reformatting ", "reformatted ")) or entry.get("LayerType") == "Reformat"


def parse_layers(info: str | Mapping[str, Any]) -> list[EngineLayer]:
    """The layers of `IEngineInspector.get_engine_information(LayerInformationFormat.JSON)`
    (a JSON text or its parsed object). Layers given as bare names (built without detailed
    profiling verbosity) have no outputs: nothing can be compared at them."""
    data = json.loads(info) if isinstance(info, str) else info
    raw = data.get("Layers", []) if isinstance(data, Mapping) else []
    layers = []
    for entry in raw:
        if isinstance(entry, str):
            entry = {"Name": entry}
        name = str(entry.get("Name", ""))
        metadata = str(entry.get("Metadata", "") or "")
        from_metadata = tuple(m.strip() for m in _METADATA_ENTRY.findall(metadata) if m.strip())
        from_name, node_range = _names_in_layer_name(name)
        if _is_reformat(name, entry):  # a copy between layouts: its name quotes the layer it feeds
            from_metadata, from_name, node_range = (), (), None
        outputs = tuple(str(o.get("Name", "")) if isinstance(o, Mapping) else str(o)
                        for o in entry.get("Outputs", []) or [])
        layers.append(EngineLayer(name=name, kind=str(entry.get("LayerType", entry.get("ParameterType", ""))),
                                  onnx_nodes=from_metadata or from_name, outputs=tuple(o for o in outputs if o),
                                  node_range=None if from_metadata else node_range))
    return layers


def _expand_range(order: Sequence[str], first: str, last: str) -> tuple[str, ...]:
    if first not in order or last not in order:
        return tuple(n for n in (first, last) if n in order)
    i, j = order.index(first), order.index(last)
    return tuple(order[min(i, j):max(i, j) + 1])


def map_layers(layers: Iterable[EngineLayer], graph: Graph) -> LayerMap:
    """Our nodes per layer and the surviving tensors, in our graph's topological order. A node
    claimed by two layers (a foreign-node range overlapping another layer) stays with the first."""
    layers = list(layers)
    order = [n.name for n in graph if n.name]
    known = set(order)
    producer = {v.name: n for n in graph for v in n.outputs if v is not None and v.name}
    graph_inputs = {v.name for v in graph.inputs}
    nodes_of_layer: dict[str, tuple[str, ...]] = {}
    layer_of_node: dict[str, str] = {}
    unmapped = []
    for layer in layers:
        names = _expand_range(order, *layer.node_range) if layer.node_range else layer.onnx_nodes
        ours = tuple(n for n in names if n in known and n not in layer_of_node)
        nodes_of_layer[layer.name] = ours
        for name in ours:
            layer_of_node[name] = layer.name
        if not ours and not layer.name.startswith(("Reformatting", "reformatted")):
            unmapped.append(layer.name)
    written = {o for layer in layers for o in layer.outputs}
    rank = {name: i for i, name in enumerate(order)}
    survivors = sorted((t for t in written if t in producer and t not in graph_inputs),
                       key=lambda t: rank.get(producer[t].name, len(rank)))
    return LayerMap(layers, nodes_of_layer, layer_of_node, survivors, unmapped)


def same_layers(measured: Sequence[EngineLayer], rebuilt: Sequence[EngineLayer]) -> list[str]:
    """The layers of the measured engine missing from the rebuilt one (empty: the rebuild, with
    the survivors marked as outputs, fused exactly as the engine being debugged did)."""
    again = {layer.name for layer in rebuilt}
    return [layer.name for layer in measured if layer.name not in again and not layer.name.startswith("Reformatting")]


@dataclass(frozen=True)
class Divergence:
    tensor: str
    layer: str
    detail: str


def first_divergence(survivors: Sequence[str], layer_map: LayerMap, graph: Graph,
                     judge: Any) -> Divergence | None:
    """The first surviving tensor, in topological order, that `judge(name)` (an `OutputCheck`
    or None when not compared) calls a failure; named by the layer that writes it."""
    producer: dict[str, Node] = {v.name: n for n in graph for v in n.outputs if v is not None and v.name}
    for name in survivors:
        check = judge(name)
        if check is None or check.verdict != "fail":
            continue
        node = producer.get(name)
        layer = layer_map.layer_of_node.get(node.name, "") if node is not None else ""
        return Divergence(name, layer, check.describe())
    return None


__all__ = ["Divergence", "EngineLayer", "LayerMap", "first_divergence", "map_layers", "parse_layers", "same_layers"]
