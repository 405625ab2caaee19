"""quantize-qdq's weights and biases: a constant weight stored as int8 read by one
DequantizeLinear (shared by the readers of one weight with the same scales), a bias as int32 with
scale x_scale · w_scale and zero point 0 (Gemm's beta folded into the values).
"""

from __future__ import annotations

import numpy as np

from mlc.ir.dtypes import DType
from mlc.ir.tensor import Tensor
from mlc.ir.types import TensorType
from mlc.passes._match_basics import const_array
from mlc.passes._qdq_emit import QdqEmitter
from mlc.passes._qdq_marks import BiasMark, WeightMark
from mlc.passes._quant_math import quantize_bias, quantize_weight, weight_scales


class WeightQuantizer(QdqEmitter):
    """Integer weights and int32 biases."""

    def scales(self, weight: WeightMark) -> np.ndarray:
        array = const_array(weight.node.inputs[weight.index])
        assert array is not None
        return weight_scales(array, weight.axis)

    def bias_values(self, bias: BiasMark) -> np.ndarray:
        array = const_array(bias.node.inputs[bias.index])
        assert array is not None
        values = np.asarray(array, dtype=np.float64).reshape(-1) * bias.beta
        return np.broadcast_to(values, (bias.channels,)) if values.size == 1 else values

    def insert_weight(self, weight: WeightMark, scales: np.ndarray) -> None:
        value = weight.node.inputs[weight.index]
        assert value is not None
        key = (id(value), weight.axis, scales.tobytes())
        dq_out = self.dequantized_weights.get(key)
        if dq_out is None:
            array = const_array(value)
            assert array is not None
            stored = self.graph.make_constant(
                Tensor.from_array(quantize_weight(array, scales.astype(np.float64), weight.axis), DType.INT8),
                f"{value.name}_quantized")
            scale = self.scalar(scales, DType.FLOAT, f"{value.name}_scale")
            zero_point = self.scalar(np.zeros(scales.shape, np.int8), DType.INT8, f"{value.name}_zero_point")
            dq = self.emit_node("DequantizeLinear", [stored, scale, zero_point], value.type if isinstance(
                value.type, TensorType) else None, f"{value.name}_dequantized", axis=weight.axis)
            self.graph.insert_before(weight.node, dq)
            dq_out = dq.outputs[0]
            assert dq_out is not None
            self.dequantized_weights[key] = dq_out
            self.ctx.stats["weights_quantized"] += 1
        weight.node.set_input(weight.index, dq_out)
        self.dead.append(value)

    def insert_bias(self, bias: BiasMark, weight_scales_: np.ndarray) -> None:
        value = bias.node.inputs[bias.index]
        assert value is not None
        x_scale = np.float64(np.float32(self.params(bias.x).scale))
        bias_scale = (x_scale * weight_scales_.astype(np.float64)).astype(np.float32)
        if bias_scale.ndim == 0 or bias_scale.size == 1:
            bias_scale = bias_scale.reshape(())
        stored = self.graph.make_constant(
            Tensor.from_array(quantize_bias(self.bias_values(bias), bias_scale.astype(np.float64)), DType.INT32),
            f"{value.name}_quantized")
        scale = self.scalar(bias_scale, DType.FLOAT, f"{value.name}_scale")
        zero_point = self.scalar(np.zeros(bias_scale.shape, np.int32), DType.INT32, f"{value.name}_zero_point")
        axis = 0 if bias_scale.ndim == 1 else None
        dq = self.emit_node("DequantizeLinear", [stored, scale, zero_point],
                            TensorType(DType.FLOAT, (bias.channels,)), f"{value.name}_dequantized", axis=axis)
        self.graph.insert_before(bias.node, dq)
        dq_out = dq.outputs[0]
        assert dq_out is not None
        bias.node.set_input(bias.index, dq_out)
        if bias.node.op_type == "Gemm" and "beta" in bias.node.attributes:
            del bias.node.attributes["beta"]  # folded into the int32 values
        self.ctx.stats["biases_quantized"] += 1
        self.dead.append(value)


__all__ = ["WeightQuantizer"]
