"""Model statistics for reports and benchmarks: parameters, sparsity, FLOPs, exported bytes.

    stats = model_stats(graph, {"image": (1, 1, 8, 8)})
    stats.parameters, stats.nonzero_parameters, stats.bytes, stats.flops_total, stats.layers

Conventions (the numbers are compared before and after a pipeline, so they are fixed here):

- `parameters`: elements of the float constants (initializers of every graph, `Constant` nodes'
  tensors, splats by their shape), plus the integer constants that are quantized weights or biases
  (read as data by DequantizeLinear or by an integer kernel: MatMulInteger, ConvInteger,
  QLinearConv, QLinearMatMul, MatMulIntegerToFloat, DynamicQuantizeMatMul), so that quantizing a
  model does not make its weights disappear from the count. Shape and index constants are not
  parameters. `nonzero_parameters` counts the stored values that are not 0.
- `bytes`: the size of the model as `mlc.onnx_io.export_onnx` serializes it (weights inline, the
  same bytes `save_onnx` writes for a model under 2 GB). Zeroed weights take as many bytes as any
  others there (ONNX stores dense tensors), so pruning does not change it; with `compressed=True`,
  `compressed_bytes` is the zlib (level 6) size of those bytes, where the zeros do show.
- `flops`: 2 x the multiply-accumulates of the ops that carry them, per op type:
      Conv, FusedConv, ConvInteger, QLinearConv   2 * |Y| * (C_in/group) * prod(kernel)
                                                  = 2*N*C_out*H_out*W_out*(C_in/group)*kh*kw
      ConvTranspose                               2 * |X| * (C_out/group) * prod(kernel)
      Gemm, FusedGemm                             2 * M * N * K
      MatMul and its fused/integer forms          2 * |Y| * K   (broadcast batch dims included)
  Everything else (elementwise ops, pooling, normalization, bias adds, activations) counts 0:
  those are memory-bound and small next to the products. Ops that do multiply matrices but are
  not modelled here (Einsum, Attention, recurrent cells) are listed in `uncounted`, and nodes
  whose shapes stay unknown in `flops_unknown`; only the main graph is counted.
- Shapes come from the value types. Graph input dims that are symbolic or unknown are bound to
  the `input_shapes` given, else to 1 (listed in `assumed_dims`: FLOPs of an image model with
  dynamic height and width are then those of a 1x1 image, so give its shape), and the
  `infer-shapes` pass and onnx's shape inference run on a copy of the graph to carry them
  through; the graph itself is not modified.
- `layers`: one row per Conv/ConvTranspose/Gemm/MatMul (and their fused or integer forms) of the
  main graph whose weight is a constant, directly or through a DequantizeLinear: its weight's
  element count and zeros (a quantized weight's zeros are the entries equal to its zero point).
"""

from __future__ import annotations

import math
import zlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlc.errors import BadInputError
from mlc.ir.attributes import AttrType
from mlc.ir.core import Graph, Node, Value
from mlc.ir.dtypes import DType
from mlc.ir.tensor import SparseTensor, Tensor, TensorDataUnavailable
from mlc.ir.types import Dim, TensorType
from mlc.onnx_io import export_onnx
from mlc.onnx_io.infer import refine_types
from mlc.pass_api import PassContext, parse_pass_spec

FLOAT_DTYPES = (DType.FLOAT, DType.FLOAT16, DType.DOUBLE, DType.BFLOAT16, DType.FLOAT8E4M3FN,
                DType.FLOAT8E4M3FNUZ, DType.FLOAT8E5M2, DType.FLOAT8E5M2FNUZ, DType.FLOAT4E2M1)
# op type -> positions of its inputs that are quantized data (weights, biases) when constant
QUANTIZED_DATA = {"DequantizeLinear": (0,), "MatMulInteger": (1,), "ConvInteger": (1,), "QLinearConv": (3, 8),
                  "QLinearMatMul": (3,), "MatMulIntegerToFloat": (1,), "DynamicQuantizeMatMul": (1,)}
# op type -> position of the weight (layers' rows); the FLOPs formula is chosen by _flops
WEIGHT_INPUT = {"Conv": 1, "FusedConv": 1, "ConvInteger": 1, "QLinearConv": 3, "ConvTranspose": 1,
                "Gemm": 1, "FusedGemm": 1, "MatMul": 1, "FusedMatMul": 1, "MatMulInteger": 1, "QLinearMatMul": 3,
                "MatMulIntegerToFloat": 1, "DynamicQuantizeMatMul": 1}
UNCOUNTED = ("Einsum", "Attention", "MultiHeadAttention", "GroupQueryAttention", "LSTM", "GRU", "RNN",
             "ConvTransposeWithDynamicPads", "QAttention", "DeformConv")


@dataclass(frozen=True)
class LayerStats:
    """One weighted layer: its node, weight, how many of the weight's entries are zero, its FLOPs."""

    name: str  # the node's name, or its first output's when the node has none
    op_type: str
    weight: str  # the weight value's name (the constant, or the DequantizeLinear's input)
    weight_elements: int
    zeros: int
    flops: int | None  # None when its shapes are unknown

    @property
    def sparsity(self) -> float:
        return self.zeros / self.weight_elements if self.weight_elements else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "op_type": self.op_type, "weight": self.weight,
                "weight_elements": self.weight_elements, "zeros": self.zeros,
                "sparsity": round(self.sparsity, 6), "flops": self.flops}


@dataclass
class ModelStats:
    """What `model_stats` measured (module docstring for the conventions)."""

    parameters: int
    nonzero_parameters: int
    bytes: int | None  # None when a constant has no values (a digest parsed from text)
    flops: dict[str, int]
    layers: list[LayerStats]
    assumed_dims: dict[str, int] = field(default_factory=dict)  # input dims bound to 1 for lack of input_shapes
    flops_unknown: list[str] = field(default_factory=list)  # nodes whose FLOPs need shapes that stayed unknown
    uncounted: dict[str, int] = field(default_factory=dict)  # op type -> nodes whose products are not counted
    notes: list[str] = field(default_factory=list)
    compressed_bytes: int | None = None  # zlib size of the serialized model, when asked for

    @property
    def flops_total(self) -> int:
        return sum(self.flops.values())

    @property
    def sparsity(self) -> float:
        """Fraction of the parameters that are zero."""
        return 1.0 - self.nonzero_parameters / self.parameters if self.parameters else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"parameters": self.parameters, "nonzero_parameters": self.nonzero_parameters,
                "sparsity": round(self.sparsity, 6), "bytes": self.bytes,
                "compressed_bytes": self.compressed_bytes, "flops": dict(self.flops),
                "flops_total": self.flops_total, "layers": [layer.to_json() for layer in self.layers],
                "assumed_dims": dict(self.assumed_dims), "flops_unknown": list(self.flops_unknown),
                "uncounted": dict(self.uncounted), "notes": list(self.notes)}


# ===================================================================== parameters
def _array(value: Value | None) -> np.ndarray | None:
    """The constant's values (initializers that are inputs included: they are stored in the model)."""
    if value is None or not isinstance(value.const, Tensor) or not value.const.has_data:
        return None
    try:
        return value.const.numpy()
    except TensorDataUnavailable:
        return None


def _nonzero(tensor: Tensor) -> int | None:
    """Nonzero entries of a tensor; None for a digest (no values)."""
    if tensor.is_splat:
        return 0 if float(np.asarray(tensor.splat_value, np.float64)) == 0.0 else tensor.size
    try:
        return int(np.count_nonzero(tensor.numpy()))
    except TensorDataUnavailable:
        return None


def _quantized_data(graph: Graph) -> set[int]:
    """ids of the integer constants that some node reads as quantized weights or biases."""
    found: set[int] = set()
    for node in graph.all_nodes():
        for index in QUANTIZED_DATA.get(node.op_type, ()):
            value = node.inputs[index] if index < len(node.inputs) else None
            if value is not None and value.const is not None:
                found.add(id(value))
    return found


def _count_parameters(graph: Graph, notes: list[str]) -> tuple[int, int]:
    quantized = _quantized_data(graph)
    tensors: list[Tensor | SparseTensor] = []
    for sub in graph.all_graphs():
        for value in [*sub.initializers.values(), *sub.sparse_initializers.values()]:
            const = value.const
            if const is not None and (const.dtype in FLOAT_DTYPES or id(value) in quantized):
                tensors.append(const)
        for node in sub:
            attr = node.attributes.get("value") if node.op_type == "Constant" else None
            if attr is not None and attr.type in (AttrType.TENSOR, AttrType.SPARSE_TENSOR) \
                    and attr.value.dtype in FLOAT_DTYPES:
                tensors.append(attr.value)
    total = nonzero = 0
    digests = 0
    for tensor in tensors:
        if isinstance(tensor, SparseTensor):
            total += math.prod(tensor.dims)
            nonzero += int(np.count_nonzero(tensor.values.numpy()))
            continue
        total += tensor.size
        count = _nonzero(tensor)
        if count is None:
            digests += 1
            count = tensor.size
        nonzero += count
    if digests:
        notes.append(f"{digests} constants have no values (digests from the text form): counted as nonzero")
    return total, nonzero


# ===================================================================== shapes
def _bind_inputs(graph: Graph, input_shapes: Mapping[str, Sequence[int]]) -> tuple[dict[str, int], dict[str, int]]:
    """Give the (copied) graph's inputs static shapes; returns (the dims assumed to be 1, the
    size bound to every symbolic dim)."""
    inputs = {v.name: v for v in graph.inputs}
    for name in input_shapes:
        if name not in inputs:
            raise BadInputError(f"model_stats: input_shapes names {name!r}, which is not a graph input "
                                f"(inputs: {', '.join(inputs) or 'none'})")
    symbols: dict[str, int] = {}
    for name, given in input_shapes.items():
        declared = inputs[name].type
        fixed = tuple(int(d) for d in given)
        if not isinstance(declared, TensorType) or not declared.accepts_shape(fixed):
            shown = declared.shape_text() if isinstance(declared, TensorType) else "not a tensor"
            raise BadInputError(f"model_stats: input {name!r} is declared {shown}, "
                                f"input_shapes gives {list(fixed)}")
        for dim, size in zip(declared.shape or (), fixed, strict=True):
            if isinstance(dim, str):
                symbols.setdefault(dim, size)
        inputs[name].type = TensorType(declared.dtype, fixed)
    assumed: dict[str, int] = {}
    for value in graph.inputs:
        declared = value.type
        if value.name in input_shapes or not isinstance(declared, TensorType) or declared.shape is None:
            continue
        dims: list[int] = []
        for axis, dim in enumerate(declared.shape):
            if isinstance(dim, int):
                dims.append(dim)
            elif isinstance(dim, str) and dim in symbols:
                dims.append(symbols[dim])
            else:
                key = dim if isinstance(dim, str) else f"{value.name}[{axis}]"
                assumed[key] = symbols[key] = 1
                dims.append(1)
        value.type = TensorType(declared.dtype, tuple(dims))
    return assumed, symbols


def _shape(value: Value | None, symbols: Mapping[str, int]) -> tuple[int, ...] | None:
    """The value's dims as ints (symbols bound as the inputs were), or None."""
    if value is None:
        return None
    if value.const is not None and isinstance(value.const, Tensor):
        return value.const.shape
    if not isinstance(value.type, TensorType) or value.type.shape is None:
        return None
    dims: list[int] = []
    for dim in value.type.shape:
        size = _dim(dim, symbols)
        if size is None:
            return None
        dims.append(size)
    return tuple(dims)


def _dim(dim: Dim, symbols: Mapping[str, int]) -> int | None:
    if isinstance(dim, int):
        return dim
    return symbols.get(dim) if isinstance(dim, str) else None


def _infer_shapes(graph: Graph, *, onnx_inference: bool) -> None:
    """Carry the bound input dims through the (copied) graph: mlc's symbolic inference first (it
    follows Shape->Gather->Concat->Reshape chains that onnx's leaves as `unk__` dims in exported
    transformers), then onnx's, which turns what is now computable into ints (it needs an export,
    so not for a graph whose constants are digests)."""
    infer = parse_pass_spec("infer-shapes")
    infer.run(graph, PassContext(infer.name))
    if onnx_inference:
        refine_types(graph)


# ===================================================================== FLOPs
def _flops(node: Node, symbols: Mapping[str, int]) -> int | None:
    """2 x multiply-accumulates of `node` (module docstring), None when a shape is unknown."""
    op = node.op_type
    inputs = node.inputs
    out = _shape(node.outputs[0] if node.outputs else None, symbols)
    if op in ("Conv", "FusedConv", "ConvInteger", "QLinearConv", "ConvTranspose"):
        index = WEIGHT_INPUT[op]
        weight = _shape(inputs[index] if index < len(inputs) else None, symbols)
        reads = _shape(inputs[0], symbols) if op == "ConvTranspose" else out
        if weight is None or reads is None or len(weight) < 2:
            return None
        return 2 * math.prod(reads) * math.prod(weight[1:])
    a = _shape(inputs[0] if inputs else None, symbols)
    if out is None or a is None or not a:
        return None
    if op in ("Gemm", "FusedGemm"):
        if len(a) != 2:
            return None
        k = a[0] if node.attr("transA", 0) else a[1]
    else:  # the MatMul family: K is A's last dim (the second-last with FusedMatMul's transA)
        k = a[-2] if op == "FusedMatMul" and node.attr("transA", 0) and len(a) >= 2 else a[-1]
    return 2 * math.prod(out) * k


def _weight(node: Node) -> tuple[str, int, int] | None:
    """(the weight constant's name, its elements, its zeros) of a layer, or None when the weight
    is not constant. A digest (text form, no values) counts as dense."""
    index = WEIGHT_INPUT[node.op_type]
    value = node.inputs[index] if index < len(node.inputs) else None
    if value is not None and isinstance(value.const, Tensor) and value.const.dtype in FLOAT_DTYPES:
        count = _nonzero(value.const)
        return value.name, value.const.size, value.const.size - (value.const.size if count is None else count)
    dq = value.producer if value is not None else None
    if dq is None or dq.op_type != "DequantizeLinear":
        return None
    data = dq.inputs[0]
    array = _array(data)
    if data is None or array is None:
        return None
    zero_point = _array(dq.inputs[2]) if len(dq.inputs) > 2 else None
    if zero_point is None or zero_point.size == 1:
        zeros = array == (zero_point.reshape(()) if zero_point is not None else 0)
    elif zero_point.ndim == 1 and array.ndim:
        axis = int(dq.attr("axis", 1)) % array.ndim
        zeros = array == zero_point.reshape([-1 if i == axis else 1 for i in range(array.ndim)])
    else:
        zeros = array == zero_point  # blocked: same rank; np raises when they do not broadcast
    return data.name, int(array.size), int(np.count_nonzero(zeros))


def _layer_name(node: Node) -> str:
    if node.name:
        return node.name
    out = node.outputs[0] if node.outputs else None
    return out.name if out is not None else node.op_type


# ===================================================================== the entry point
def model_stats(graph: Graph, input_shapes: Mapping[str, Sequence[int]] | None = None, *,
                compressed: bool = False) -> ModelStats:
    """Parameters, sparsity, exported bytes, FLOPs and per-layer rows of `graph` (not modified);
    `compressed` adds the zlib size of the exported model (seconds for a model of 100s of MB)."""
    if graph.model is None:
        raise BadInputError("model_stats: needs a main graph (this one is a sub-graph)")
    notes: list[str] = []
    parameters, nonzero = _count_parameters(graph, notes)
    size: int | None = None
    packed: int | None = None
    digests = any(isinstance(v.const, Tensor) and v.const.is_digest for g in graph.all_graphs()
                  for v in g.initializers.values())
    if digests:
        notes.append("bytes unknown: some constants have no values (digests from the text form)")
    else:
        proto = export_onnx(graph)
        if compressed:
            data = proto.SerializeToString()
            size, packed = len(data), len(zlib.compress(data, 6))
        else:
            size = proto.ByteSize()

    work = graph.clone()
    assumed, symbols = _bind_inputs(work, input_shapes or {})
    _infer_shapes(work, onnx_inference=not digests)
    if assumed:
        notes.append("symbolic or unknown input dims bound to 1: " + ", ".join(sorted(assumed))
                     + " (give input_shapes to count another size)")

    flops: Counter[str] = Counter()
    unknown: list[str] = []
    uncounted: Counter[str] = Counter()
    layers: list[LayerStats] = []
    for node in work:
        if node.op_type in UNCOUNTED:
            uncounted[node.op_type] += 1
            continue
        if node.op_type not in WEIGHT_INPUT:
            continue
        count = _flops(node, symbols)
        if count is None:
            unknown.append(_layer_name(node))
        else:
            flops[node.op_type] += count
        weight = _weight(node)
        if weight is not None:
            layers.append(LayerStats(_layer_name(node), node.op_type, *weight, count))
    if any(n.op_type in WEIGHT_INPUT for sub in graph.all_graphs() if sub is not graph for n in sub):
        notes.append("nodes inside sub-graphs (If/Loop/Scan bodies) are not counted in flops or layers")
    return ModelStats(parameters, nonzero, size, dict(flops), layers, assumed, unknown, dict(uncounted), notes,
                      packed)
