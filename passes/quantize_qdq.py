"""Insert QuantizeLinear/DequantizeLinear (QDQ) from a calibration table: the int8 graph every backend reads.

onnxruntime picks its int8 kernels (QLinearConv, QLinearMatMul, QGemm, QLinearAdd, ...) and
TensorRT builds int8 layers by matching node units `DQ -> op -> Q`; the placement follows
onnxruntime's own quantizer (`onnxruntime/quantization/qdq_quantizer.py`, `registry.py`,
`operators/`) so that the same fusions fire:

* Conv, ConvTranspose, Gemm, MatMul: a QDQ pair on the activation input(s) and on the output
  (always, MatMul's too: without a QuantizeLinear after it, onnxruntime's level-1 MatMulAddFusion
  turns a static-shape MatMul + bias Add into a float Gemm on dequantized weights before its QDQ
  fusions run);
  a constant weight is stored as an int8 initializer read by one DequantizeLinear (symmetric,
  per output channel with `per_channel`: axis 0 of a Conv weight, 1 of a ConvTranspose weight
  with group 1, the column axis of a Gemm/MatMul weight — 0 with transB, else 1); a constant bias
  (Conv's B, Gemm's C broadcast to [N], times beta, then beta=1) is stored as int32 with
  scale = x_scale · w_scale and zero point 0, which the int8 kernels add to their accumulators
  (with `int32_bias=false`, TensorRT's form, the bias stays a float constant: TensorRT fuses it
  into the int8 layer's epilogue itself).
* Add, Concat, GlobalAveragePool: QDQ on every input and on the output, each with its own range
  (QLinearAdd, QLinearConcat, QLinearGlobalAveragePool requantize), when at least one input is
  int8 already (written by a quantized Conv/Gemm/Add...: ResNet's residual adds); of float
  producers only, they stay float (quantizing them would add a requantization, not remove one).
  A constant operand is stored quantized with the range of its values.
* MaxPool, AveragePool, Reshape, Transpose, Flatten, Squeeze, Unsqueeze: when their input is
  quantized, the output gets a QDQ pair with the input's very scale and zero point constants, so
  onnxruntime drops the pair around the op and runs it on int8 (no requantization).
* Relu, and Clip with constant bounds lo <= 0 <= hi, after a quantized op whose output it alone
  reads: folded (removed), the producer's output taking the activation's range. With an
  asymmetric range whose low end is 0 (or lo), QuantizeLinear's saturation is the activation.
  With symmetric activations the op stays, with QDQ on both sides, as onnxruntime does.

A quantized op's output goes through its QDQ pair for every reader (float ones too, and a graph
output keeps its name on the DequantizeLinear), since the int8 kernel writes int8 only. The
exception (`float_outputs`, on by default; onnxruntime's quantizer has no such rule): a Gemm or
MatMul that writes a graph output writes it in float, since onnxruntime's QGemm and
MatMulIntegerToFloat dequantize in their epilogue; rounding a classifier's logits to 256 levels
costs accuracy (near-tied logits become equal and argmax picks by position) and buys nothing. A tensor
that a float op produces and a quantized op reads gets QDQ for the quantized readers only; the
others keep reading the float tensor. Nodes named in `exclude_nodes`/`keep_float` and op types
in `exclude_ops` are kept in float entirely (no QDQ around them of their own); so is a node whose
tensors have no range in the table (remark naming them), whose tensors are not float32, or whose
weight is not a constant. Only the main graph is quantized (sub-graphs stay float).

The placement is `_qdq_placement` (with `_qdq_weighted`, `_qdq_fold`; the marks it leaves are
`_qdq_marks`), the rewrite `_qdq_rewrite` (with `_qdq_emit`, `_qdq_weights`); the arithmetic
(ranges widened to hold 0, degenerate ranges, zero weight channels, int32 bias overflow) is in
`_quant_math`. QuantizeLinear/DequantizeLinear with an `axis` need opset 13: a
model of an older default-domain opset is raised to 13 when none of its ops changes meaning
between the two versions, and refused with one line otherwise. The table must have been made for
this graph (its `graph` digest), or tensor names could silently point at other tensors.
"""

from __future__ import annotations

from mlc.errors import BadInputError
from mlc.ir.core import Graph, Node
from mlc.ir.dtypes import DType
from mlc.onnx_io.functions import same_meaning
from mlc.pass_api import Numerics, Pass, PassContext, PassOption, register_pass
from mlc.passes._match_basics import STANDARD, label
from mlc.passes._qdq_fold import plan_removable
from mlc.passes._qdq_marks import CANDIDATES, OWN_RANGES, QDQ_OPSET, SHARING, WEIGHTED, option_names
from mlc.passes._qdq_placement import Planner
from mlc.passes._qdq_rewrite import Rewriter
from mlc.passes._qdq_weighted import plan_weighted
from mlc.quantize.cache import CalibrationTable, graph_digest, load_table


def plan_node(planner: Planner, node: Node) -> str | None:
    """Quantize `node` (record its marks) or say why it stays float."""
    op = node.op_type
    if node.name and node.name in planner.excluded_nodes:
        return "excluded by name"
    if op in planner.excluded_ops:
        return "excluded by op type"
    if op in WEIGHTED:
        return plan_weighted(planner, node)
    if op in OWN_RANGES:
        return planner.own_ranges(node)
    if op in SHARING:
        return planner.sharing(node)
    return plan_removable(planner, node)


@register_pass
class QuantizeQDQ(Pass):
    name = "quantize-qdq"
    description = "Quantize to int8 with QuantizeLinear/DequantizeLinear pairs from a calibration table"
    numerics = Numerics.LOSSY
    options = (
        PassOption("calibration", str, "", "path of the calibration table (mlc.quantize.cache)"),
        PassOption("per_channel", bool, True, "symmetric int8 weights with one scale per output channel"),
        PassOption("activations", str, "u8", "activation type: u8 or s8"),
        PassOption("symmetric_activations", bool, False, "symmetric activation ranges (zero point 0 / 128)"),
        PassOption("exclude_nodes", str, "", "node names kept in float, +-separated"),
        PassOption("exclude_ops", str, "", "op types kept in float, +-separated"),
        PassOption("keep_float", str, "", "node names kept in float, +-separated (the accuracy search's list)"),
        PassOption("float_outputs", bool, True, "a Gemm/MatMul writing a graph output writes it in float"),
        PassOption("int32_bias", bool, True, "store Conv/Gemm biases as int32 read by a DequantizeLinear (off: the "
                   "bias stays float, for TensorRT, whose parser dequantizes int8/fp8/int4 only)"),
    )
    statistics = ("nodes_quantized", "tensors_quantized", "weights_quantized", "biases_quantized",
                  "activations_folded", "nodes_kept_float", "float_outputs")

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        table = self._table(graph)
        activations = str(self.option("activations")).lower()
        if activations not in ("u8", "s8"):
            raise BadInputError(f"quantize-qdq: activations must be u8 or s8, not {activations!r}")
        candidates = [n for n in graph if n.op_type in CANDIDATES and n.domain in STANDARD]
        if not candidates:
            return False
        self._ensure_opset(graph)
        planner = Planner(graph, table, ctx, per_channel=bool(self.option("per_channel")),
                          dtype=DType.UINT8 if activations == "u8" else DType.INT8,
                          symmetric=bool(self.option("symmetric_activations")),
                          excluded_nodes=option_names(self.option("exclude_nodes"))
                          | option_names(self.option("keep_float")),
                          excluded_ops=option_names(self.option("exclude_ops")),
                          float_outputs=bool(self.option("float_outputs")))
        for node in candidates:
            if node.graph is not graph:
                continue
            why = plan_node(planner, node)
            if why is None:
                ctx.stats["nodes_quantized"] += 1
            else:
                ctx.stats["nodes_kept_float"] += 1
                ctx.remark(f"{label(node)}: kept float, {why}")
        if not self.option("int32_bias"):
            planner.biases.clear()
        changed = bool(planner.folded)
        changed |= Rewriter(graph, ctx, planner).run()
        return changed

    # ------------------------------------------------------------ preconditions
    def _table(self, graph: Graph) -> CalibrationTable:
        path = str(self.option("calibration"))
        if not path:
            raise BadInputError("quantize-qdq: option calibration (the calibration table's path) is required")
        table = load_table(path)
        if table.graph != graph_digest(graph):
            raise BadInputError(f"{path}: this calibration table was made for another graph "
                                "(calibrate the graph as it is before quantize-qdq)")
        return table

    @staticmethod
    def _ensure_opset(graph: Graph) -> None:
        model = graph.root.model
        opset = graph.opset_version("")
        if model is None or opset is None:
            raise BadInputError("quantize-qdq: the graph imports no default-domain opset")
        if opset >= QDQ_OPSET:
            return
        changed = sorted({n.op_type for g in graph.all_graphs() for n in g if n.domain in STANDARD
                          and not same_meaning(n.op_type, "", opset, QDQ_OPSET)})
        if changed:
            raise BadInputError(f"quantize-qdq: the model's opset {opset} is below {QDQ_OPSET} (per-channel "
                                f"QuantizeLinear/DequantizeLinear) and {', '.join(changed)} change meaning by "
                                f"{QDQ_OPSET}; convert the model to opset {QDQ_OPSET} or later first")
        model.opset_imports[""] = QDQ_OPSET  # the importer spells the standard domain ""


__all__ = ["CANDIDATES", "QDQ_OPSET", "QuantizeQDQ", "plan_node"]
