"""`Rewriter`: turns quantize-qdq's marks into QDQ pairs, integer weights and int32 biases, in one
pass over the marks (weight scales first: an int32 bias may widen them). A quantized op's output
goes through its pair for every reader; a float tensor read by quantized ops gets the pair for
those readers only; a constant operand is stored quantized, read by one DequantizeLinear.
"""

from __future__ import annotations

import numpy as np

from mlc.ir.core import Value
from mlc.ir.dtypes import DType
from mlc.ir.tensor import Tensor
from mlc.ir.types import TensorType
from mlc.passes._graph_edits import drop_dead_constants
from mlc.passes._match_basics import const_array
from mlc.passes._qdq_marks import ActMark
from mlc.passes._qdq_weights import WeightQuantizer
from mlc.passes._quant_math import fit_bias, quantize


class Rewriter(WeightQuantizer):
    """Turns the planner's marks into QDQ pairs, integer weights and int32 biases."""

    def run(self) -> bool:
        changed = False
        weight_scales_of: dict[int, np.ndarray] = {}
        for bias in self.planner.biases:  # weight scales first: a bias may widen them
            x_scale = self.params(bias.x).scale
            scales = self.scales(bias.weight)
            b = self.bias_values(bias)
            weight_scales_of[id(bias.weight)] = fit_bias(scales, x_scale, b).astype(np.float32)
        for value, act in list(self.acts.items()):
            if value in self.planner.folded or self.ctx.rewrite("qdq"):
                self.insert_pair(value, act)
                changed = True
        for weight in self.planner.weights:
            fitted = weight_scales_of.get(id(weight))
            scales = self.scales(weight).astype(np.float32) if fitted is None else fitted
            if self.ctx.rewrite("weight"):
                self.insert_weight(weight, scales)
                changed = True
                for bias in self.planner.biases:
                    if bias.weight is weight and self.ctx.rewrite("bias"):
                        self.insert_bias(bias, scales)
        drop_dead_constants(self.dead)
        return changed

    def insert_pair(self, value: Value, act: ActMark) -> None:
        params = self.params(value)
        if act.shared_from is not None and self.acts[act.shared_from].constants is not None:
            act.constants = self.acts[act.shared_from].constants
        if act.constants is None:
            act.constants = (self.scalar(params.scale, DType.FLOAT, f"{value.name}_scale"),
                             self.scalar(params.zero_point, params.dtype, f"{value.name}_zero_point"))
        scale, zero_point = act.constants
        shape = value.type.shape if isinstance(value.type, TensorType) else None
        readers = [n for n, _ in act.readers]
        array = const_array(value)
        self.ctx.stats["tensors_quantized"] += 1
        if array is not None:  # a constant operand: stored quantized, one DQ
            stored = self.graph.make_constant(Tensor.from_array(quantize(array, params), params.dtype),
                                              f"{value.name}_quantized")
            dq = self.emit_node("DequantizeLinear", [stored, scale, zero_point], TensorType(DType.FLOAT, shape),
                                f"{value.name}_dequantized")
            self.insert_at(value, readers, [dq])
            for node, index in act.readers:
                node.set_input(index, dq.outputs[0])
            self.dead.append(value)
            return
        q = self.emit_node("QuantizeLinear", [value, scale, zero_point], TensorType(params.dtype, shape),
                           f"{value.name}_quantized", replaced=(value.producer,) if value.producer else ())
        q_out = q.outputs[0]
        assert q_out is not None
        dq = self.emit_node("DequantizeLinear", [q_out, scale, zero_point], TensorType(DType.FLOAT, shape),
                            f"{value.name}_dequantized", replaced=(value.producer,) if value.producer else ())
        dq_out = dq.outputs[0]
        assert dq_out is not None
        self.insert_at(value, readers, [q, dq])
        if act.produced:  # the int8 kernel writes int8 only: every reader, outputs too, reads the DQ
            value.replace_all_uses_with(dq_out, replace_graph_outputs=True)
            q.set_input(0, value)
        else:
            for node, index in act.readers:
                node.set_input(index, dq_out)


__all__ = ["Rewriter"]
