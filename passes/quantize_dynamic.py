"""Dynamic int8 quantization of MatMul/Gemm with constant weights: onnxruntime's IntegerOps form.

    Y = MatMul(A, W)        ->   a_q, a_scale, a_zp = DynamicQuantizeLinear(A)
                                 Y = Mul(Cast<float>(MatMulInteger(a_q, W_q, a_zp, W_zp)),
                                         Mul(a_scale, W_scale))

No calibration: the activation's range is measured on every run (DynamicQuantizeLinear, uint8
asymmetric), so the scales fit each input instead of the calibration set's worst case, which is
why encoders (token-dependent ranges, LayerNorm outputs) keep more accuracy this way than with
static QDQ, and it needs no calibration data at all. The weight is stored as an int8 initializer,
symmetric over [-127, 127] with zero point 0 (the arithmetic of `_quant_math`, as `quantize-qdq`),
per output column with `per_channel` (W_scale and W_zp of shape [N]: MatMulInteger's
`b_zero_point`, MatMulIntegerToFloat's and DynamicQuantizeMatMul's `b_scale`/`b_zero_point`
accept a 1-D per-column tensor), else per tensor.

The exact chain is what onnxruntime fuses at load (level 2): `MatMulIntegerToFloatFusion`
matches Mul(Cast(MatMulInteger), Mul(a_scale, b_scale)) — the scales' Mul must have the
activation's scale first, as it becomes the kernel's `a_scale` — and takes a following Add of a
constant 1-D bias [N] into the kernel; `DynamicQuantizeMatMulFusion` then folds the
DynamicQuantizeLinear in when its three outputs feed that one kernel only. Hence one
DynamicQuantizeLinear per MatMul, not one per tensor as onnxruntime's `quantize_dynamic` shares:
attention's Q/K/V projections read the same tensor, and a shared quantization would stop at
MatMulIntegerToFloat plus a separate DynamicQuantizeLinear (re-quantizing a [seq, hidden] tensor
three times costs less than the extra kernel launches on the small matrices of an encoder).

Gemm (transA=0, constant B) becomes the same chain on alpha·B (transposed at compile time when
transB) followed by Add of beta·C, kept constant so the fusion takes it as the kernel's bias.
Left in float, with a remark: nodes named in `exclude_nodes`/`keep_float`, op types in
`exclude_ops`, non-float32 operands, weights that are not constant 2-D, Gemm with transA, sub-graphs.
"""

from __future__ import annotations

import numpy as np

from mlc.errors import BadInputError
from mlc.ir.core import Graph, Node, Value
from mlc.ir.dtypes import DType
from mlc.ir.tensor import Tensor
from mlc.ir.types import TensorType, Type
from mlc.pass_api import Numerics, Pass, PassContext, PassOption, register_pass
from mlc.passes._graph_edits import drop_dead_constants
from mlc.passes._match_basics import STANDARD, const_array, input_at, label
from mlc.passes._quant_math import quantize_weight, weight_scales

CANDIDATES = ("MatMul", "Gemm")
DYNAMIC_OPSET = 11  # DynamicQuantizeLinear


def _names(text: object) -> set[str]:
    return {part.strip() for part in str(text).split("+") if part.strip()}


def _is_f32(value: Value | None) -> bool:
    return value is not None and isinstance(value.type, TensorType) and value.type.dtype == DType.FLOAT


def _weight_of(node: Node) -> tuple[np.ndarray | None, str | None]:
    """The float weight [K, N] the integer product reads (Gemm's alpha and transB applied), or
    why the node stays float."""
    a, b = input_at(node, 0), input_at(node, 1)
    if not _is_f32(a) or not _is_f32(b):
        return None, "an operand is not float32"
    array = const_array(b)
    if array is None:
        return None, "its weight is not a constant"
    if array.ndim != 2:
        return None, f"its weight has rank {array.ndim} (MatMulInteger's per-column form needs 2-D)"
    if node.op_type == "MatMul":
        return array, None
    if node.attr("transA", 0):
        return None, "Gemm with transA"
    c = input_at(node, 2)
    if c is not None and (not _is_f32(c) or const_array(c) is None):
        return None, "its C is not a float32 constant"
    weight = array.T if node.attr("transB", 0) else array
    return np.asarray(weight, np.float64) * float(node.attr("alpha", 1.0)), None


@register_pass
class QuantizeDynamic(Pass):
    name = "quantize-dynamic"
    description = "Quantize MatMul/Gemm with constant weights to int8 with run-time activation quantization"
    numerics = Numerics.LOSSY
    options = (
        PassOption("per_channel", bool, True, "symmetric int8 weights with one scale per output column"),
        PassOption("exclude_nodes", str, "", "node names kept in float, +-separated"),
        PassOption("exclude_ops", str, "", "op types kept in float, +-separated"),
        PassOption("keep_float", str, "", "node names kept in float, +-separated (the accuracy search's list)"),
    )
    statistics = ("nodes_quantized", "weights_quantized", "nodes_kept_float")

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        candidates = [n for n in graph if n.op_type in CANDIDATES and n.domain in STANDARD]
        if not candidates:
            return False
        opset = graph.opset_version("")
        if opset is None or opset < DYNAMIC_OPSET:
            raise BadInputError(f"quantize-dynamic: the model's opset {opset} is below {DYNAMIC_OPSET} "
                                f"(DynamicQuantizeLinear); convert the model to opset {DYNAMIC_OPSET} or later first")
        excluded_nodes = _names(self.option("exclude_nodes")) | _names(self.option("keep_float"))
        excluded_ops = _names(self.option("exclude_ops"))
        per_channel = bool(self.option("per_channel"))
        weights: dict[tuple[int, bool], tuple[Value, Value, Value]] = {}  # shared weights quantized once
        dead: list[Value | None] = []
        changed = False
        for node in candidates:
            if node.name in excluded_nodes or node.op_type in excluded_ops:
                why: str | None = "excluded"
                weight = None
            else:
                weight, why = _weight_of(node)
            if weight is None:
                ctx.stats["nodes_kept_float"] += 1
                ctx.remark(f"{label(node)}: kept float, {why}")
                continue
            if not ctx.rewrite(node.op_type.lower()):
                break
            key = (id(node.inputs[1]), node.op_type == "Gemm")
            if key not in weights:
                weights[key] = self._weight(graph, node, weight, per_channel)
                ctx.stats["weights_quantized"] += 1
            dead += [node.inputs[1], input_at(node, 2)]
            self._rewrite(graph, ctx, node, *weights[key])
            ctx.stats["nodes_quantized"] += 1
            changed = True
        drop_dead_constants(dead)
        return changed

    @staticmethod
    def _weight(graph: Graph, node: Node, weight: np.ndarray, per_channel: bool) -> tuple[Value, Value, Value]:
        """int8 W_q [K, N], W_scale and W_zp ([N] per column, else scalars)."""
        axis = 1 if per_channel else None
        scales = weight_scales(weight, axis)
        base = node.inputs[1].name if node.inputs[1] is not None else "w"
        stored = graph.make_constant(Tensor.from_array(quantize_weight(weight, scales, axis), DType.INT8),
                                     f"{base}_quantized")
        scale = graph.make_constant(Tensor.from_array(scales.astype(np.float32), DType.FLOAT), f"{base}_scale")
        zero = graph.make_constant(Tensor.from_array(np.zeros(scales.shape, np.int8), DType.INT8),
                                   f"{base}_zero_point")
        return stored, scale, zero

    @staticmethod
    def _rewrite(graph: Graph, ctx: PassContext, node: Node, w_q: Value, w_scale: Value, w_zero: Value) -> None:
        a, out = node.inputs[0], node.outputs[0]
        assert a is not None and out is not None
        shape = out.type.shape if isinstance(out.type, TensorType) else None
        hint = node.name or out.name
        rule = node.op_type.lower()

        def make(op: str, inputs: list[Value | None], outputs: list[tuple[str, Type | None]],
                 attributes: dict[str, object] | None = None) -> Node:
            made = Node(op, inputs, [Value(graph.unique_name(f"{hint}_{suffix}"), t) for suffix, t in outputs],
                        attributes, name=graph.unique_name(f"{hint}/{op}"))
            return ctx.created(made, (node,), rule)

        a_shape = a.type.shape if isinstance(a.type, TensorType) else None
        dql = make("DynamicQuantizeLinear", [a], [("quantized", TensorType(DType.UINT8, a_shape)),
                                                  ("scale", TensorType(DType.FLOAT, ())),
                                                  ("zero_point", TensorType(DType.UINT8, ()))])
        a_q, a_scale, a_zero = dql.outputs
        product = make("MatMulInteger", [a_q, w_q, a_zero, w_zero], [("int32", TensorType(DType.INT32, shape))])
        cast = make("Cast", [product.outputs[0]], [("float", TensorType(DType.FLOAT, shape))],
                    {"to": int(DType.FLOAT)})
        scale_shape = w_scale.type.shape if isinstance(w_scale.type, TensorType) else None
        scales = make("Mul", [a_scale, w_scale], [("scales", TensorType(DType.FLOAT, scale_shape))])
        chain = [dql, product, cast, scales]
        c = input_at(node, 2) if node.op_type == "Gemm" else None
        if c is None:
            result = make("Mul", [cast.outputs[0], scales.outputs[0]], [("scaled", out.type)])
        else:
            scaled = make("Mul", [cast.outputs[0], scales.outputs[0]], [("scaled", out.type)])
            c_array = const_array(c)
            assert c_array is not None
            beta = float(node.attr("beta", 1.0))
            bias = graph.make_constant(Tensor.from_array((np.asarray(c_array, np.float64) * beta).astype(np.float32),
                                                         DType.FLOAT), f"{c.name}_bias")
            chain.append(scaled)
            result = make("Add", [scaled.outputs[0], bias], [("biased", out.type)])
        chain.append(result)
        graph.insert_before(node, *chain)
        new_out = result.outputs[0]
        assert new_out is not None
        out.replace_all_uses_with(new_out, replace_graph_outputs=True)
        graph.remove(node)
