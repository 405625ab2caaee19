"""legalize-qlinear's emission: quantization parameters and (de)quantization through IRBuilder, and
the match/rewrite frame the four decomposition rules share.

Scales and zero points become scalars or 1-D tensors of their type (constants folded, others
reshaped and cast), each made once per rewrite; small constants are shared within a rewrite.
QuantizeLinear always gets a zero point: the output type is the zero point's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mlc.ir.core import Graph, Node, Value
from mlc.ir.dtypes import DType
from mlc.ir.types import Shape, TensorType
from mlc.passes._graph_edits import drop_dead_constants
from mlc.passes._match_basics import dtype_of
from mlc.passes._qlinear_params import Param, Quant, Unsupported, shape_of
from mlc.rewrite import IRBuilder, Match, Reject, Rule


class QuantEmitter:
    """Typed nodes and shared constants of one rewrite, through its IRBuilder."""

    def __init__(self, builder: IRBuilder, anchor: Node) -> None:
        self.builder = builder
        self.hint = (anchor.name or anchor.op_type.lower()).replace("/", "_")
        self._params: dict[int, Value | None] = {}  # id(Param) -> its value
        self._small: dict[tuple[str, tuple[int, ...], bytes], Value] = {}

    def op(self, op_type: str, inputs: Sequence[Value | None], dtype: DType, shape: Shape | None,
           attributes: dict[str, Any] | None = None) -> Value:
        return self.builder.op(op_type, inputs, attributes, type=TensorType(dtype, shape))

    def const(self, array: np.ndarray, hint: str) -> Value:
        """A new initializer (small ones shared within the rewrite)."""
        array = np.array(array, order="C")  # a copy that keeps 0-d arrays 0-d
        key = (array.dtype.str, array.shape, array.tobytes()) if array.size <= 16 else None
        if key is not None and key in self._small:
            return self._small[key]
        made = self.builder.constant(array, f"{self.hint}_{hint}")
        if key is not None:
            self._small[key] = made
        return made

    def cast(self, value: Value, dtype: DType) -> Value:
        if dtype_of(value) == dtype:
            return value
        return self.op("Cast", [value], dtype, shape_of(value), {"to": int(dtype)})

    def reshape(self, value: Value, shape: tuple[int, ...], dtype: DType) -> Value:
        if shape_of(value) == shape:
            return value
        return self.op("Reshape", [value, self.const(np.array(shape, dtype=np.int64), "shape")], dtype, shape)

    def param(self, param: Param) -> Value | None:
        """The parameter as a scalar or 1-D tensor of its type; None for an omitted zero point
        that DequantizeLinear defaults correctly."""
        if id(param) not in self._params:
            self._params[id(param)] = self._param(param)
        return self._params[id(param)]

    def _param(self, param: Param) -> Value | None:
        shape: tuple[int, ...] = () if param.length is None else (param.length,)
        if param.value is None:
            return None if param.length is None else self.const(np.zeros(shape, param.dtype.numpy), "zero")
        if param.array is not None:
            flat = param.array.reshape(-1) if param.array.size > 1 else param.array.reshape(())
            array = np.broadcast_to(flat, shape).astype(param.dtype.numpy)
            if param.value.is_constant and shape_of(param.value) == shape and dtype_of(param.value) == param.dtype:
                return param.value
            return self.const(array, "scale" if param.dtype.is_float else "zero_point")
        return self.reshape(self.cast(param.value, param.dtype), shape, param.dtype)

    def dequantize(self, data: Value, quant: Quant) -> Value:
        scale, zero = self.param(quant.scale), self.param(quant.zero)
        assert scale is not None
        inputs = [data, scale] + ([zero] if zero is not None else [])
        attributes = {"axis": quant.axis} if quant.axis is not None else None
        return self.op("DequantizeLinear", inputs, DType.FLOAT, shape_of(data), attributes)

    def quantize(self, data: Value, quant: Quant) -> Value:
        scale, zero = self.param(quant.scale), self.param(quant.zero)
        assert scale is not None
        if zero is None:  # the output type is the zero point's: always give one
            zero = self.const(np.zeros((), quant.zero.dtype.numpy), "zero")
        attributes = {"axis": quant.axis} if quant.axis is not None else None
        return self.op("QuantizeLinear", [data, scale, zero], quant.zero.dtype, shape_of(data), attributes)


def match_plan(rule: Rule, node: Node, plan: Callable[[Node, Graph], Any]) -> Match | Reject:
    """A match carrying the plan of a node with one output, or the reason `plan` raised."""
    try:
        if not node.outputs or node.outputs[0] is None or len(node.outputs) != 1:
            raise Unsupported("it has no single output")
        graph = node.graph
        assert graph is not None
        return Match(node, facts={"plan": plan(node, graph)})
    except Unsupported as why:
        return rule.reject(node, str(why))


def decompose(builder: IRBuilder, node: Node, emit: Callable[[QuantEmitter, Node, Any], Value], plan: Any) -> None:
    """The node's output replaced by what `emit` builds; the node and the constants only it read go."""
    new = emit(QuantEmitter(builder, node), node, plan)
    read = [v for v in node.inputs if v is not None]
    builder.bypass(node, new)
    drop_dead_constants(dict.fromkeys(read))
    builder.ctx.stats[builder.rule] += 1


__all__ = ["QuantEmitter", "decompose", "match_plan"]
