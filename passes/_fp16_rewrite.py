"""How convert-fp16 rewrites the graph once it knows which nodes compute in float16: the converted
nodes are retyped, constants they read become float16 initializers, and every float32 value is
served in the precision each reader needs, through one Cast per value and direction (none that
cancel). The planning (which nodes convert, and why the others stay) is `_fp16_rules`.
"""

from __future__ import annotations

import numpy as np

from mlc.ir.attributes import Attr
from mlc.ir.core import Graph, Node, Value
from mlc.ir.dtypes import DType
from mlc.ir.tensor import Tensor
from mlc.ir.types import TensorType
from mlc.pass_api import PassContext
from mlc.passes._fp16_rules import (
    AGNOSTIC_READERS,
    is_f32,
    t_inputs,
)
from mlc.passes._match_basics import const_array
from mlc.passes._transformer_match import is_op


def typed(value: Value, dtype: DType) -> TensorType:
    shape = value.type.shape if isinstance(value.type, TensorType) else None
    return TensorType(dtype, shape)


def top_node(node: Node, graph: Graph) -> Node:
    """The node of `graph` that holds `node` (itself, or the If/Loop/Scan whose body holds it)."""
    while node.graph is not graph and node.graph is not None and node.graph.parent is not None:
        node = node.graph.parent
    return node


class FP16Rewriter:
    """Retypes the converted nodes and serves every float32 value in the precision each reader
    needs: float16 constants, and one Cast per value and direction."""

    def __init__(self, graph: Graph, ctx: PassContext, converted: list[Node]) -> None:
        self.graph, self.ctx = graph, ctx
        self.converted = set(converted)
        self.order = converted
        self.positions = {node: set(t_inputs(node)) for node in converted}
        self.to_half: list[Node] = []  # the Casts to float16 inserted
        self.inserted: set[Node] = set()

    def _need(self, node: Node, index: int) -> str:
        """What a use reads: "f16", "f32" or "any"."""
        top = top_node(node, self.graph)
        if top is not node:
            return "f32"  # a sub-graph's read of an outer value
        if node in self.converted:
            return "f16" if index in self.positions[node] else "any" if node.op_type == "Cast" else "f32"
        return "any" if is_op(node, *AGNOSTIC_READERS) else "f32"

    def run(self) -> None:
        graph = self.graph
        values = [*graph.inputs, *graph.initializers.values(), *(o for n in graph for o in n.outputs if o is not None)]
        work = []
        for value in dict.fromkeys(values):
            if not is_f32(value):
                continue
            uses = value.uses
            needs = {use: self._need(*use) for use in uses}
            half = value.producer in self.converted
            if half or "f16" in needs.values():
                work.append((value, half, uses, needs))
        for node in self.order:
            for out in node.outputs:
                if is_f32(out):
                    assert out is not None
                    out.type = typed(out, DType.FLOAT16)
            if node.op_type == "Cast":
                node.attributes["to"] = Attr.infer("to", int(DType.FLOAT16))
        for value, half, uses, needs in work:
            if const_array(value, constant_nodes=True) is not None:
                self._constant(value, needs)
            elif half:
                self._back_to_float(value, uses, needs)
            else:
                self._to_half(value, needs)
        self._tidy()

    # ------------------------------------------------------------ values
    def _cast(self, value: Value, dtype: DType, hint: str) -> Node:
        node = Node("Cast", [value], [Value(self.graph.unique_name(hint), typed(value, dtype))],
                    {"to": int(dtype)}, name=self.graph.unique_name(f"{value.name}/Cast_to_{dtype.short_name}"))
        self.ctx.created(node, (value.producer,) if value.producer is not None else (), "cast")
        self.ctx.stats["casts_inserted"] += 1
        self.inserted.add(node)
        return node

    def _constant(self, value: Value, needs: dict[tuple[Node, int], str]) -> None:
        """A float16 initializer for the float16 readers: this one in place when nothing else reads it."""
        array = const_array(value, constant_nodes=True)
        assert array is not None
        tensor = Tensor.from_array(array.astype(np.float16), DType.FLOAT16)
        self.ctx.stats["constants_converted"] += 1
        alone = value.producer is None and not value.is_graph_output and all(n != "f32" for n in needs.values())
        if alone:
            value.const, value.type = tensor, typed(value, DType.FLOAT16)
            return
        copy = self.graph.make_constant(tensor, f"{value.name}_fp16")
        for (node, index), need in needs.items():
            if need == "f16":
                node.set_input(index, copy)
        producer = value.producer
        if producer is not None and not value.uses and not value.is_graph_output:  # a Constant node now unread
            self.graph.remove(producer)

    def _back_to_float(self, value: Value, uses: list[tuple[Node, int]], needs: dict[tuple[Node, int], str]) -> None:
        """A float16 value (its producer converted): one Cast to float32 for the float32 readers and
        for the graph output, which keeps its name."""
        readers = [use for use in uses if needs[use] == "f32"]
        if not readers and not value.is_graph_output:
            return
        # a graph output's name moves to the Cast's output: the float16 value gets the `_fp16` name
        cast = self._cast(value, DType.FLOAT, f"{value.name}_fp{16 if value.is_graph_output else 32}")
        assert value.producer is not None
        self.graph.insert_after(value.producer, cast)
        out = cast.outputs[0]
        assert out is not None
        if value.is_graph_output:
            value.replace_all_uses_with(out, replace_graph_outputs=True)  # the output keeps its name
            cast.set_input(0, value)
            for node, index in uses:
                if needs[(node, index)] != "f32":
                    node.set_input(index, value)
        else:
            for node, index in readers:
                node.set_input(index, out)

    def _to_half(self, value: Value, needs: dict[tuple[Node, int], str]) -> None:
        """A float32 value read by float16 nodes: one Cast to float16 shared by them."""
        readers = [use for use, need in needs.items() if need == "f16"]
        cast = self._cast(value, DType.FLOAT16, f"{value.name}_fp16")
        if value.producer is not None and value.producer.graph is self.graph:
            self.graph.insert_after(value.producer, cast)
        else:  # a graph input: just before its first float16 reader
            first = {node for node, _ in readers}
            self.graph.insert_before(next(n for n in self.graph if n in first), cast)
        out = cast.outputs[0]
        assert out is not None
        for node, index in readers:
            node.set_input(index, out)
        self.to_half.append(cast)

    # ------------------------------------------------------------ casts that do nothing
    def _tidy(self) -> None:
        """Remove converted Casts that became f16 -> f16, and bypass Cast(f16 -> f32) -> Cast(f32 -> f16)."""
        dead: list[Value] = []
        for node in [n for n in self.order if n.op_type == "Cast"] + self.to_half:
            source, out = node.inputs[0], node.outputs[0]
            if node.graph is not self.graph or source is None or out is None or out.is_graph_output:
                continue
            before = source.producer
            if not is_half(source) and is_op(before, "Cast") and before is not None and is_half(before.inputs[0]):
                source = before.inputs[0]  # Cast(f16 -> f32) -> Cast(f32 -> f16): read the f16 value itself
            if not is_half(source):
                continue
            assert source is not None
            out.replace_all_uses_with(source)
            self._remove(node)
            if before is not None and before.op_type == "Cast" and before.graph is self.graph:
                dead.extend(v for v in before.outputs if v is not None)
        for value in dead:
            producer = value.producer
            if producer is not None and producer.graph is self.graph and not value.uses and not value.is_graph_output:
                self._remove(producer)

    def _remove(self, node: Node) -> None:
        self.graph.remove(node)
        if node in self.inserted:
            self.ctx.stats["casts_inserted"] -= 1


def is_half(value: Value | None) -> bool:
    return value is not None and isinstance(value.type, TensorType) and value.type.dtype == DType.FLOAT16
