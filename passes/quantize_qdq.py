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

The arithmetic (ranges widened to hold 0, degenerate ranges, zero weight channels, int32 bias
overflow) is in `_quant_math`. QuantizeLinear/DequantizeLinear with an `axis` need opset 13: a
model of an older default-domain opset is raised to 13 when none of its ops changes meaning
between the two versions, and refused with one line otherwise. The table must have been made for
this graph (its `graph` digest), or tensor names could silently point at other tensors.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mlc.errors import BadInputError
from mlc.ir.core import Graph, Node, Value
from mlc.ir.dtypes import DType
from mlc.ir.tensor import Tensor
from mlc.ir.types import TensorType
from mlc.onnx_io.functions import same_meaning
from mlc.pass_api import Numerics, Pass, PassContext, PassOption, register_pass
from mlc.passes._patterns import STANDARD, const_array, drop_dead_constants, input_at, label
from mlc.passes._quant_math import (
    QParams,
    activation_qparams,
    constant_qparams,
    fit_bias,
    quantize,
    quantize_bias,
    quantize_weight,
    weight_scales,
)
from mlc.quantize.cache import CalibrationTable, graph_digest, load_table

_WEIGHTED = ("Conv", "ConvTranspose", "Gemm", "MatMul")
_OWN_RANGES = ("Add", "Concat", "GlobalAveragePool")
_SHARING = ("MaxPool", "AveragePool", "Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze")
_REMOVABLE = ("Relu", "Clip")
CANDIDATES = frozenset(_WEIGHTED + _OWN_RANGES + _SHARING + _REMOVABLE)
QDQ_OPSET = 13


def _names(text: str) -> set[str]:
    return {part.strip() for part in text.split("+") if part.strip()}


def _is_f32(value: Value | None) -> bool:
    return value is not None and isinstance(value.type, TensorType) and value.type.dtype == DType.FLOAT


@dataclass
class _Act:
    """A float tensor that gets a QDQ pair (or, for a constant, an integer initializer + DQ)."""

    range_key: str | None  # the table entry giving its range (None: shared or constant)
    shared_from: Value | None = None  # a layout op's output: the input's parameters
    produced: bool = False  # its producer is quantized: every reader reads the DQ
    readers: list[tuple[Node, int]] = field(default_factory=list)
    params: QParams | None = None
    constants: tuple[Value, Value] | None = None  # scale, zero point


@dataclass
class _Weight:
    node: Node
    index: int
    axis: int | None


@dataclass
class _Bias:
    node: Node
    index: int
    x: Value
    weight: _Weight
    channels: int
    beta: float = 1.0


class _Planner:
    """Walks the main graph in order and decides, node by node, what is quantized."""

    def __init__(self, graph: Graph, table: CalibrationTable, ctx: PassContext, *, per_channel: bool,
                 dtype: DType, symmetric: bool, excluded_nodes: set[str], excluded_ops: set[str],
                 float_outputs: bool = True) -> None:
        self.graph, self.table, self.ctx = graph, table, ctx
        self.per_channel, self.dtype, self.symmetric = per_channel, dtype, symmetric
        self.float_outputs = float_outputs
        self.excluded_nodes, self.excluded_ops = excluded_nodes, excluded_ops
        self.acts: dict[Value, _Act] = {}
        self.weights: list[_Weight] = []
        self.biases: list[_Bias] = []
        self.folded: set[Value] = set()  # producers' outputs whose Relu/Clip was folded

    # ------------------------------------------------------------ queries
    def _range_problem(self, value: Value | None) -> str | None:
        """Why `value` cannot be read as a quantized activation, or None."""
        if value is None:
            return "an input is missing"
        if not _is_f32(value):
            return f"%{value.name} is not float32"
        if value in self.acts or value.name in self.table.ranges or const_array(value) is not None:
            return None
        return f"no calibration range for %{value.name}"

    def _output_problem(self, node: Node) -> str | None:
        outs = [o for o in node.outputs if o is not None]
        if len(outs) != 1 or node.outputs[0] is None:
            return "it has more than one output"
        out = node.outputs[0]
        if not _is_f32(out):
            return f"%{out.name} is not float32"
        return None if out.name in self.table.ranges else f"no calibration range for %{out.name}"

    # ------------------------------------------------------------ marks
    def _read(self, node: Node, index: int) -> None:
        value = node.inputs[index]
        assert value is not None
        act = self.acts.get(value)
        if act is None:
            constant = const_array(value) is not None
            act = self.acts[value] = _Act(None if constant else value.name)
        act.readers.append((node, index))

    def _produce(self, node: Node, shared_from: Value | None = None) -> None:
        out = node.outputs[0]
        assert out is not None
        self.acts[out] = _Act(None if shared_from is not None else out.name, shared_from, produced=True)

    # ------------------------------------------------------------ nodes
    def plan(self, node: Node) -> str | None:
        """Quantize `node` (record its marks) or say why it stays float."""
        op = node.op_type
        if node.name and node.name in self.excluded_nodes:
            return "excluded by name"
        if op in self.excluded_ops:
            return "excluded by op type"
        if op in _WEIGHTED:
            return self._weighted(node)
        if op in _OWN_RANGES:
            return self._own_ranges(node)
        if op in _SHARING:
            return self._sharing(node)
        return self._removable(node)

    def _weighted(self, node: Node) -> str | None:
        op = node.op_type
        why = self._output_problem(node)
        if why:
            return why
        if op == "MatMul":
            left, right = input_at(node, 0), input_at(node, 1)
            if const_array(left) is not None and const_array(right) is not None:
                return "both operands are constants (fold-constants' work)"
            for value in (left, right):
                why = self._range_problem(value)
                if why:
                    return why
            for index, value in enumerate((left, right)):
                w = const_array(value)
                if w is not None:
                    axis = 1 if self.per_channel and index == 1 and w.ndim == 2 else None
                    self.weights.append(_Weight(node, index, axis))
                else:
                    self._read(node, index)
            self._produce_weighted(node)
            return None
        x, w_value, bias = input_at(node, 0), input_at(node, 1), input_at(node, 2)
        why = self._range_problem(x)
        if why:
            return why
        assert x is not None
        if const_array(x) is not None:
            return f"its input %{x.name} is a constant"
        w = const_array(w_value)
        if w is None or not _is_f32(w_value):
            return "its weight is not a float32 constant"
        b = const_array(bias)
        if bias is not None and (b is None or not _is_f32(bias)):
            return "its bias is not a float32 constant"
        if op == "Gemm":
            if w.ndim != 2:
                return "its weight is not 2-D"
            trans_b = bool(node.attr("transB", 0))
            axis = 0 if trans_b else 1
            channels = w.shape[axis]
            row = b is None or (b.ndim <= 2 and b.size in (1, channels) and (b.ndim < 2 or b.shape[0] == 1))
            if b is not None and not row:
                return f"its C {list(b.shape)} is not a row of {channels} (or one value)"
        else:
            if w.ndim < 3:
                return "its weight has rank < 3"
            group = int(node.attr("group", 1))
            axis = 0 if op == "Conv" else (1 if group == 1 else None)
            if axis is None:
                channels = 0
            else:
                channels = w.shape[axis]
            if b is not None and (b.ndim != 1 or (axis is not None and b.size != channels)):
                return f"its bias {list(b.shape)} is not one value per output channel"
        weight = _Weight(node, 1, axis if self.per_channel else None)
        self._read(node, 0)
        self.weights.append(weight)
        if bias is not None and b is not None:
            if axis is None:  # ConvTranspose with groups: one weight scale, so one bias scale
                channels = b.size
            beta = float(node.attr("beta", 1.0)) if op == "Gemm" else 1.0
            self.biases.append(_Bias(node, 2, x, weight, channels, beta))
        self._produce_weighted(node)
        return None

    def _produce_weighted(self, node: Node) -> None:
        """Mark a quantized Conv/Gemm/MatMul's output: int8, except a Gemm's or MatMul's that is a
        graph output (with `float_outputs`): their int8 kernels can write float (onnxruntime's QGemm
        without an output scale, MatMulIntegerToFloat), so a QDQ pair there would only round the
        model's final numbers (a classifier's logits) to 256 levels: two near-tied logits that
        round to one level make argmax pick by position."""
        out = node.outputs[0]
        assert out is not None
        if self.float_outputs and node.op_type in ("Gemm", "MatMul") and out.is_graph_output:
            self.ctx.stats["float_outputs"] += 1
            return
        self._produce(node)

    def _own_ranges(self, node: Node) -> str | None:
        why = self._output_problem(node)
        if why:
            return why
        inputs = list(node.inputs)
        if not inputs or all(const_array(v) is not None for v in inputs):
            return "its inputs are constants"
        if not any(v is not None and v in self.acts and self.acts[v].produced for v in inputs):
            return "no input is int8 already (a float add/concat of float producers stays float)"
        for value in inputs:
            why = self._range_problem(value)
            if why:
                return why
        for index in range(len(inputs)):
            self._read(node, index)
        self._produce(node)
        return None

    def _sharing(self, node: Node) -> str | None:
        x = input_at(node, 0)
        if x is None or x not in self.acts or const_array(x) is not None:
            return "its input is not quantized"
        if node.outputs[0] is None or any(o is not None and (o.uses or o.is_graph_output) for o in node.outputs[1:]):
            return "it has more than one output in use"
        out = node.outputs[0]
        if not _is_f32(out):
            return f"%{out.name} is not float32"
        self._read(node, 0)
        self._produce(node, shared_from=x)
        return None

    def _clip_bounds(self, node: Node) -> tuple[float, float] | None:
        if node.op_type == "Relu":
            return 0.0, float("inf")
        lo, hi = float(node.attr("min", float("-inf"))), float(node.attr("max", float("inf")))
        for index in (1, 2):
            value = input_at(node, index)
            if value is None:
                continue
            array = const_array(value)
            if array is None or array.size != 1:
                return None
            if index == 1:
                lo = float(array.reshape(-1)[0])
            else:
                hi = float(array.reshape(-1)[0])
        return lo, hi

    def _removable(self, node: Node) -> str | None:
        x = input_at(node, 0)
        if x is None or x not in self.acts or const_array(x) is not None:
            return "its input is not quantized"
        out = node.outputs[0]
        why = self._output_problem(node)
        if why:
            return why
        assert out is not None
        bounds = self._clip_bounds(node)
        act = self.acts[x]
        foldable = (not self.symmetric and bounds is not None and bounds[0] <= 0.0 <= bounds[1] and act.produced
                    and act.shared_from is None and x not in self.folded and len(x.uses) == 1
                    and not x.is_graph_output and x.graph is self.graph)
        if foldable and self.ctx.rewrite(f"fold-{node.op_type.lower()}"):
            act.range_key = out.name  # read before a graph output's name moves to x
            bounds_values = list(node.inputs[1:])
            out.replace_all_uses_with(x, replace_graph_outputs=True)
            self.graph.remove(node)
            drop_dead_constants(bounds_values)
            self.folded.add(x)
            self.ctx.stats["activations_folded"] += 1
            return None
        self._read(node, 0)
        self._produce(node)
        return None


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
        planner = _Planner(graph, table, ctx, per_channel=bool(self.option("per_channel")),
                           dtype=DType.UINT8 if activations == "u8" else DType.INT8,
                           symmetric=bool(self.option("symmetric_activations")),
                           excluded_nodes=_names(self.option("exclude_nodes")) | _names(self.option("keep_float")),
                           excluded_ops=_names(self.option("exclude_ops")),
                           float_outputs=bool(self.option("float_outputs")))
        for node in candidates:
            if node.graph is not graph:
                continue
            why = planner.plan(node)
            if why is None:
                ctx.stats["nodes_quantized"] += 1
            else:
                ctx.stats["nodes_kept_float"] += 1
                ctx.remark(f"{label(node)}: kept float, {why}")
        if not self.option("int32_bias"):
            planner.biases.clear()
        changed = bool(planner.folded)
        changed |= _Rewriter(graph, ctx, planner).run()
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
        key = "ai.onnx" if "ai.onnx" in model.opset_imports and "" not in model.opset_imports else ""
        model.opset_imports[key] = QDQ_OPSET


class _Rewriter:
    """Turns the planner's marks into QDQ pairs, integer weights and int32 biases."""

    def __init__(self, graph: Graph, ctx: PassContext, planner: _Planner) -> None:
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

    def run(self) -> bool:
        changed = False
        weight_scales_of: dict[int, np.ndarray] = {}
        for bias in self.planner.biases:  # weight scales first: a bias may widen them
            x_scale = self.params(bias.x).scale
            scales = self._scales(bias.weight)
            b = self._bias_values(bias)
            weight_scales_of[id(bias.weight)] = fit_bias(scales, x_scale, b).astype(np.float32)
        for value, act in list(self.acts.items()):
            if value in self.planner.folded or self.ctx.rewrite("qdq"):
                self._insert_pair(value, act)
                changed = True
        for weight in self.planner.weights:
            fitted = weight_scales_of.get(id(weight))
            scales = self._scales(weight).astype(np.float32) if fitted is None else fitted
            if self.ctx.rewrite("weight"):
                self._insert_weight(weight, scales)
                changed = True
                for bias in self.planner.biases:
                    if bias.weight is weight and self.ctx.rewrite("bias"):
                        self._insert_bias(bias, scales)
        drop_dead_constants(self.dead)
        return changed

    # ------------------------------------------------------------ helpers
    def _scalar(self, array: np.ndarray | float, dtype: DType, hint: str) -> Value:
        return self.graph.make_constant(Tensor.from_array(np.asarray(array, dtype=dtype.numpy), dtype), hint)

    def _node(self, op: str, inputs: list[Value], out_type: TensorType | None, hint: str,
              axis: int | None = None, replaced: tuple[Node, ...] = ()) -> Node:
        attributes = {"axis": axis} if axis is not None else None
        node = Node(op, inputs, [Value(self.graph.unique_name(hint), out_type)], attributes,
                    name=self.graph.unique_name(hint.rsplit("_", 1)[0] + f"/{op}"))
        return self.ctx.created(node, replaced, "qdq")

    def _insert_at(self, value: Value, readers: list[Node], nodes: list[Node]) -> None:
        producer = value.producer
        if producer is not None and producer.graph is self.graph:
            self.graph.insert_after(producer, *nodes)
        else:  # graph input or constant: just before its first reader
            first = next(n for n in self.graph if n in readers)
            self.graph.insert_before(first, *nodes)

    # ------------------------------------------------------------ activations
    def _insert_pair(self, value: Value, act: _Act) -> None:
        params = self.params(value)
        if act.shared_from is not None and self.acts[act.shared_from].constants is not None:
            act.constants = self.acts[act.shared_from].constants
        if act.constants is None:
            act.constants = (self._scalar(params.scale, DType.FLOAT, f"{value.name}_scale"),
                             self._scalar(params.zero_point, params.dtype, f"{value.name}_zero_point"))
        scale, zero_point = act.constants
        shape = value.type.shape if isinstance(value.type, TensorType) else None
        readers = [n for n, _ in act.readers]
        array = const_array(value)
        self.ctx.stats["tensors_quantized"] += 1
        if array is not None:  # a constant operand: stored quantized, one DQ
            stored = self.graph.make_constant(Tensor.from_array(quantize(array, params), params.dtype),
                                              f"{value.name}_quantized")
            dq = self._node("DequantizeLinear", [stored, scale, zero_point], TensorType(DType.FLOAT, shape),
                            f"{value.name}_dequantized")
            self._insert_at(value, readers, [dq])
            for node, index in act.readers:
                node.set_input(index, dq.outputs[0])
            self.dead.append(value)
            return
        q = self._node("QuantizeLinear", [value, scale, zero_point], TensorType(params.dtype, shape),
                       f"{value.name}_quantized", replaced=(value.producer,) if value.producer else ())
        q_out = q.outputs[0]
        assert q_out is not None
        dq = self._node("DequantizeLinear", [q_out, scale, zero_point], TensorType(DType.FLOAT, shape),
                        f"{value.name}_dequantized", replaced=(value.producer,) if value.producer else ())
        dq_out = dq.outputs[0]
        assert dq_out is not None
        self._insert_at(value, readers, [q, dq])
        if act.produced:  # the int8 kernel writes int8 only: every reader, outputs too, reads the DQ
            value.replace_all_uses_with(dq_out, replace_graph_outputs=True)
            q.set_input(0, value)
        else:
            for node, index in act.readers:
                node.set_input(index, dq_out)

    # ------------------------------------------------------------ weights and biases
    def _scales(self, weight: _Weight) -> np.ndarray:
        array = const_array(weight.node.inputs[weight.index])
        assert array is not None
        return weight_scales(array, weight.axis)

    def _bias_values(self, bias: _Bias) -> np.ndarray:
        array = const_array(bias.node.inputs[bias.index])
        assert array is not None
        values = np.asarray(array, dtype=np.float64).reshape(-1) * bias.beta
        return np.broadcast_to(values, (bias.channels,)) if values.size == 1 else values

    def _insert_weight(self, weight: _Weight, scales: np.ndarray) -> None:
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
            scale = self._scalar(scales, DType.FLOAT, f"{value.name}_scale")
            zero_point = self._scalar(np.zeros(scales.shape, np.int8), DType.INT8, f"{value.name}_zero_point")
            dq = self._node("DequantizeLinear", [stored, scale, zero_point], value.type if isinstance(
                value.type, TensorType) else None, f"{value.name}_dequantized", axis=weight.axis)
            self.graph.insert_before(weight.node, dq)
            dq_out = dq.outputs[0]
            assert dq_out is not None
            self.dequantized_weights[key] = dq_out
            self.ctx.stats["weights_quantized"] += 1
        weight.node.set_input(weight.index, dq_out)
        self.dead.append(value)

    def _insert_bias(self, bias: _Bias, weight_scales_: np.ndarray) -> None:
        value = bias.node.inputs[bias.index]
        assert value is not None
        x_scale = np.float64(np.float32(self.params(bias.x).scale))
        bias_scale = (x_scale * weight_scales_.astype(np.float64)).astype(np.float32)
        if bias_scale.ndim == 0 or bias_scale.size == 1:
            bias_scale = bias_scale.reshape(())
        stored = self.graph.make_constant(
            Tensor.from_array(quantize_bias(self._bias_values(bias), bias_scale.astype(np.float64)), DType.INT32),
            f"{value.name}_quantized")
        scale = self._scalar(bias_scale, DType.FLOAT, f"{value.name}_scale")
        zero_point = self._scalar(np.zeros(bias_scale.shape, np.int32), DType.INT32, f"{value.name}_zero_point")
        axis = 0 if bias_scale.ndim == 1 else None
        dq = self._node("DequantizeLinear", [stored, scale, zero_point],
                        TensorType(DType.FLOAT, (bias.channels,)), f"{value.name}_dequantized", axis=axis)
        self.graph.insert_before(bias.node, dq)
        dq_out = dq.outputs[0]
        assert dq_out is not None
        bias.node.set_input(bias.index, dq_out)
        if bias.node.op_type == "Gemm" and "beta" in bias.node.attributes:
            del bias.node.attributes["beta"]  # folded into the int32 values
        self.ctx.stats["biases_quantized"] += 1
        self.dead.append(value)
