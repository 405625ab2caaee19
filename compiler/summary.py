"""What `mlc inspect` reports about a graph: interface, op histogram, parameters, opsets, producer."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from mlc.ir.attributes import AttrType
from mlc.ir.core import Graph, Value
from mlc.ir.printer import format_type
from mlc.ir.tensor import SparseTensor, Tensor


@dataclass
class GraphSummary:
    name: str
    ir_version: int | None
    producer: str
    opsets: dict[str, int]
    inputs: list[tuple[str, str, bool]]  # name, type, has an overridable default
    outputs: list[tuple[str, str]]
    nodes: int
    subgraph_nodes: int
    ops: Counter[str] = field(default_factory=Counter)
    parameters: int = 0
    parameter_bytes: int = 0
    constants: int = 0
    functions: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ir_version": self.ir_version,
            "producer": self.producer,
            "opsets": self.opsets,
            "inputs": [{"name": n, "type": t, "default": d} for n, t, d in self.inputs],
            "outputs": [{"name": n, "type": t} for n, t in self.outputs],
            "nodes": self.nodes,
            "subgraph_nodes": self.subgraph_nodes,
            "ops": dict(self.ops.most_common()),
            "parameters": self.parameters,
            "parameter_bytes": self.parameter_bytes,
            "constants": self.constants,
            "functions": self.functions,
        }


def _op_name(domain: str, op_type: str) -> str:
    return f"{domain}::{op_type}" if domain else op_type


def _tensor_size(const: Tensor | SparseTensor) -> tuple[int, int]:
    if isinstance(const, SparseTensor):
        return const.values.size, const.values.nbytes + const.indices.nbytes
    return const.size, const.nbytes


def summarize(graph: Graph) -> GraphSummary:
    """Counts over the main graph and its sub-graphs; parameters are initializers and the
    tensors of Constant nodes (a splat counts its logical size)."""
    model = graph.model
    producer = ""
    if model is not None:
        producer = " ".join(p for p in (model.producer_name, model.producer_version) if p)
    summary = GraphSummary(
        name=graph.name,
        ir_version=model.ir_version if model else None,
        producer=producer,
        opsets=dict(model.opset_imports) if model else {},
        inputs=[(v.name, format_type(v.type), v.const is not None) for v in graph.inputs],
        outputs=[(v.name, format_type(v.type)) for v in graph.outputs],
        nodes=len(graph),
        subgraph_nodes=0,
        functions=[f"{f.domain}::{f.name}" for f in (model.functions if model else [])],
    )
    seen: set[int] = set()

    def count(value: Value) -> None:
        if id(value) in seen or value.const is None:
            return
        seen.add(id(value))
        size, nbytes = _tensor_size(value.const)
        summary.parameters += size
        summary.parameter_bytes += nbytes
        summary.constants += 1

    for sub in graph.all_graphs():
        for value in [*sub.initializers.values(), *sub.sparse_initializers.values()]:
            count(value)
        for node in sub:
            summary.ops[_op_name(node.domain, node.op_type)] += 1
            if sub is not graph:
                summary.subgraph_nodes += 1
            if node.op_type == "Constant" and node.domain == "":
                for attr in node.attributes.values():
                    if attr.type in (AttrType.TENSOR, AttrType.SPARSE_TENSOR) and attr.value is not None:
                        size, nbytes = _tensor_size(attr.value)
                        summary.parameters += size
                        summary.parameter_bytes += nbytes
                        summary.constants += 1
    return summary


def human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"
