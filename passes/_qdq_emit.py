"""`QdqEmitter`: what quantize-qdq's rewrite shares: the planner's marks, quantization parameters
per tensor (from the table, the values of a constant, or the input of a layout op), and the
nodes and constants it emits, placed after the producer (or before the first reader).
"""

from __future__ import annotations

import numpy as np

from mlc.ir.core import Graph, Node, Value
from mlc.ir.dtypes import DType
from mlc.ir.tensor import Tensor
from mlc.ir.types import TensorType
from mlc.pass_api import PassContext
from mlc.passes._match_basics import const_array
from mlc.passes._qdq_placement import Planner
from mlc.passes._quant_math import QParams, activation_qparams, constant_qparams


class QdqEmitter:
    """The rewrite's shared state and emission helpers."""

    def __init__(self, graph: Graph, ctx: PassContext, planner: Planner) -> None:
        self.graph, self.ctx, self.planner = graph, ctx, planner
        self.acts = planner.acts
        self.dequantized_weights: dict[tuple[int, int | None, bytes], Value] = {}
        self.dead: list[Value] = []

    def params(self, value: Value) -> QParams:
        act = self.acts[value]
        if act.params is None:
            if act.shared_from is not None:
                act.params = self.params(act.shared_from)
            elif act.range_key is None:
                array = const_array(value)
                assert array is not None
                act.params = constant_qparams(array, self.planner.dtype, self.planner.symmetric)
            else:
                r = self.planner.table.ranges[act.range_key]
                act.params = activation_qparams(r.low, r.high, self.planner.dtype, self.planner.symmetric)
                if act.params.degenerate:
                    self.ctx.remark(f"%{value.name}: degenerate range [{r.low}, {r.high}]; quantized as "
                                    f"the unit range (scale {act.params.scale:.6g})")
        return act.params

    def scalar(self, array: np.ndarray | float, dtype: DType, hint: str) -> Value:
        return self.graph.make_constant(Tensor.from_array(np.asarray(array, dtype=dtype.numpy), dtype), hint)

    def emit_node(self, op: str, inputs: list[Value], out_type: TensorType | None, hint: str,
                  axis: int | None = None, replaced: tuple[Node, ...] = ()) -> Node:
        attributes = {"axis": axis} if axis is not None else None
        node = Node(op, inputs, [Value(self.graph.unique_name(hint), out_type)], attributes,
                    name=self.graph.unique_name(hint.rsplit("_", 1)[0] + f"/{op}"))
        return self.ctx.created(node, replaced, "qdq")

    def insert_at(self, value: Value, readers: list[Node], nodes: list[Node]) -> None:
        producer = value.producer
        if producer is not None and producer.graph is self.graph:
            self.graph.insert_after(producer, *nodes)
        else:  # graph input or constant: just before its first reader
            first = next(n for n in self.graph if n in readers)
            self.graph.insert_before(first, *nodes)


__all__ = ["QdqEmitter"]
