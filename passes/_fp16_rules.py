"""The analysis of `convert-fp16`: which nodes compute in float16 and why the others stay in
float32. The rule and the facts behind it are stated in `mlc.passes.convert_fp16`'s docstring;
this module holds the op tables, the constant checks, the decomposed-normalization detector, the
shape-arithmetic detector and the observation of activation magnitudes on sample inputs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from mlc.errors import BadInputError
from mlc.ir.core import Graph, Node, Value
from mlc.ir.dtypes import DType
from mlc.ir.types import TensorType
from mlc.passes._match_basics import STANDARD, const_array, label
from mlc.passes._transformer_match import is_close, is_op, other_input, producer

FP16_MAX = 65504.0  # float16's largest finite value
FP16_SMALLEST_NORMAL = 2.0 ** -14  # 6.1e-5: below it float16 is subnormal (fewer than 10 bits), below 2**-25 zero
DEFAULT_RANGE_LIMIT = 16384.0  # 2**14: a 4x headroom below FP16_MAX

# ops computed in float16: the matrix products (PyTorch autocast's float16 list), elementwise and
# selection ops (autocast runs them in their inputs' type), pooling, and data movement (exact)
CONVERTED = frozenset({
    "MatMul", "Gemm", "Conv", "ConvTranspose", "Einsum",
    "Add", "Sub", "Mul", "Div", "Neg", "Abs", "Sqrt", "Relu", "LeakyRelu", "PRelu", "Sigmoid", "HardSigmoid",
    "HardSwish", "Tanh", "Erf", "Gelu", "Elu", "Selu", "Celu", "Mish", "Softsign", "ThresholdedRelu", "Clip",
    "Min", "Max", "Mean", "Sum", "Sign", "Floor", "Ceil", "Round", "Sin", "Cos", "Atan", "Where",
    "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "IsNaN", "IsInf",
    "ReduceMax", "ReduceMin", "ArgMax", "ArgMin", "TopK", "Hardmax", "MaxPool", "GlobalMaxPool",
    "AveragePool", "GlobalAveragePool", "BatchNormalization",
    "Identity", "Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Concat", "Split", "Slice", "Gather",
    "GatherElements", "GatherND", "ScatterND", "ScatterElements", "Expand", "Tile", "Pad", "DepthToSpace",
    "SpaceToDepth", "Resize", "Upsample", "Dropout", "Trilu", "Cast",
})

_NORMALIZATION = "normalization statistics: a mean and a variance accumulated over the normalized elements"
_REDUCTION = "a reduction: float16 accumulation over many elements loses bits and overflows past 65504"
# ops kept in float32, each with its reason (PyTorch autocast's float32 list, mapped to ONNX)
KEPT: dict[str, str] = {
    "LayerNormalization": _NORMALIZATION, "GroupNormalization": _NORMALIZATION,
    "InstanceNormalization": _NORMALIZATION, "MeanVarianceNormalization": _NORMALIZATION,
    "RMSNormalization": "normalization statistics: a mean of squares accumulated over the normalized elements",
    "LpNormalization": "a norm over an axis (a sum of powers)",
    "Softmax": "softmax: a sum of exponentials over an axis", "LogSoftmax": "log-softmax: a sum of exponentials "
    "over an axis", **{op: _REDUCTION for op in ("ReduceMean", "ReduceSum", "ReduceSumSquare", "ReduceL1",
                                                  "ReduceL2", "ReduceLogSum", "ReduceLogSumExp")},
    "ReduceProd": "a product over many elements (overflows or flushes to 0 in float16)",
    "CumSum": "a running sum over an axis", "Range": "its element count comes from (limit - start) / delta, "
    "which float16 rounds",
    "Exp": "a range amplifier: exp(x) overflows float16 above ln(65504) = 11.09",
    "Log": "a range amplifier: log magnifies float16's rounding near 1 (spacing 2^-10) and its flush to 0 below "
    "6e-8",
    "Pow": "a range amplifier: x^y multiplies the exponent range (x^2 overflows float16 for |x| > 256)",
    "Reciprocal": "a range amplifier: 1/x overflows float16 for |x| < 1.5e-5",
    "Softplus": "a range amplifier: log(1 + exp(x))",
    **{op: "a range amplifier: exponential growth" for op in ("Cosh", "Sinh")},
    **{op: "steep near its poles or domain ends" for op in ("Tan", "Acos", "Asin")},
}
_RDIV = "c / x, a reciprocal: overflows float16 for small |x|"

# inputs of the converted type variable T where not every float input is (Resize's roi is its own
# T2 and its scales are float32 by the spec; a Cast reads any type)
_T_INPUTS: dict[str, tuple[int, ...]] = {"Resize": (0,), "Upsample": (0,), "Cast": ()}
AGNOSTIC_READERS = frozenset({"Shape", "Size", "Cast"})  # read float16 or float32 alike


def is_f32(value: Value | None) -> bool:
    return value is not None and isinstance(value.type, TensorType) and value.type.dtype == DType.FLOAT


def _unknown(value: Value | None) -> bool:
    return value is not None and (not isinstance(value.type, TensorType) or value.type.dtype == DType.UNDEFINED)


def t_inputs(node: Node) -> list[int]:
    """The input positions of the converted type variable (float32 ones only)."""
    positions = _T_INPUTS.get(node.op_type, range(len(node.inputs))) if node.domain in STANDARD else ()
    return [i for i in positions if i < len(node.inputs) and is_f32(node.inputs[i])]


def is_constant(value: Value | None) -> bool:
    return const_array(value, constant_nodes=True) is not None


def constant_problem(array: np.ndarray, limit: float) -> str | None:
    """Why a float32 constant cannot be held in float16: values beyond the range limit, or most
    of its nonzero values below float16's smallest normal. Inf and NaN are float16 too."""
    finite = np.abs(array[np.isfinite(array)].astype(np.float64))
    if finite.size == 0:
        return None
    largest = float(finite.max())
    if largest > limit:
        past = "float16's largest 65504" if largest > FP16_MAX else f"the range limit {limit:g}"
        return f"max |x| {largest:.4g} exceeds {past}"
    nonzero = finite[finite > 0]
    tiny = int(np.count_nonzero(nonzero < FP16_SMALLEST_NORMAL))
    if nonzero.size and 2 * tiny > nonzero.size:
        return (f"{tiny} of its {nonzero.size} nonzero values lie below float16's smallest normal 6.1e-05 "
                "(subnormal or 0 in float16)")
    return None


# ===================================================================== decomposed normalizations
def _square_of(node: Node | None) -> Value | None:
    """d when `node` is Pow(d, 2) or Mul(d, d)."""
    if is_op(node, "Pow") and node is not None and is_close(node.inputs[1], 2.0):
        return node.inputs[0]
    if is_op(node, "Mul") and node is not None and node.inputs[0] is node.inputs[1]:
        return node.inputs[0]
    return None


def _readers(value: Value | None, *op_types: str) -> list[Node]:
    return [n for n, _ in (value.uses if value is not None else []) if is_op(n, *op_types)]


def normalization_statistics(graph: Graph) -> dict[Node, str]:
    """The nodes computing the statistics of a decomposed layer norm or RMS norm, each with its reason:

        mean = ReduceMean(x); d = Sub(x, mean)          (layer norm only; RMS norm: d = x)
        var = ReduceMean(Pow(d, 2) | Mul(d, d))
        std = Sqrt(Add(var, eps)) | Pow(Add(var, eps), 0.5)     r = Pow(Add(var, eps), -0.5) | Reciprocal(std)
        n = Div(d, std)  |  Mul(d, r)

    are all kept; the affine part after n (Mul gamma, Add beta) is not statistics."""
    found: dict[Node, str] = {}
    for var_node in graph:
        if not is_op(var_node, "ReduceMean") or not var_node.inputs:
            continue
        square = var_node.inputs[0].producer if var_node.inputs[0] is not None else None
        d = _square_of(square)
        if square is None or d is None:
            continue
        nodes = [square, var_node]
        center = producer(d, "Sub")
        mean_node = producer(center.inputs[1], "ReduceMean") if center is not None else None
        layer = center is not None and mean_node is not None and mean_node.inputs[0] is center.inputs[0]
        if layer:
            assert center is not None and mean_node is not None
            nodes[:0] = [mean_node, center]
        nodes += _normalize_chain(var_node, d)
        kind = "layer norm" if layer else "RMS norm"
        for node in nodes:
            found.setdefault(node, f"statistics of the decomposed {kind} at {label(var_node)}")
    return found


def _multipliers(value: Value | None, d: Value) -> list[Node]:
    """The Mul(d, value) readers of `value`."""
    return [n for n in _readers(value, "Mul") if value is not None and other_input(n, value) is d]


def _normalize_chain(var_node: Node, d: Value) -> list[Node]:
    """Add(var, eps), the root or inverse root, and the Div/Mul that normalizes d, as far as they match."""
    chain: list[Node] = []
    var = var_node.outputs[0]
    adds = [n for n in _readers(var, "Add") if var is not None and is_constant(other_input(n, var))]
    if not adds:
        return chain
    chain.append(adds[0])
    shifted = adds[0].outputs[0]
    for root in _readers(shifted, "Sqrt", "Pow"):
        if root.inputs[0] is not shifted:
            continue
        if root.op_type == "Pow" and is_close(root.inputs[1], -0.5):  # r = 1 / std
            chain += [root, *_multipliers(root.outputs[0], d)]
            continue
        if root.op_type == "Pow" and not is_close(root.inputs[1], 0.5):
            continue
        chain.append(root)
        std = root.outputs[0]
        chain += [n for n in _readers(std, "Div") if n.inputs[0] is d and n.inputs[1] is std]
        for inverse in _readers(std, "Reciprocal"):
            chain += [inverse, *_multipliers(inverse.outputs[0], d)]
    return chain


# ===================================================================== shape arithmetic
def shape_values(graph: Graph) -> set[Value]:
    """Values computed from tensor shapes alone: Shape/Size outputs, and the outputs of nodes
    whose non-constant inputs all are such values."""
    derived: set[Value] = set()
    for node in graph:
        inputs = [v for v in node.inputs if v is not None and not is_constant(v)]
        if (is_op(node, "Shape", "Size") or (inputs and all(v in derived for v in inputs))) and not node.subgraphs():
            derived.update(v for v in node.outputs if v is not None)
    return derived


def is_shape_arithmetic(node: Node, derived: set[Value]) -> bool:
    """A float node computing from shapes alone (sizes or positions as floats)."""
    inputs = [v for v in node.inputs if v is not None and not is_constant(v)]
    if node.op_type == "Cast":
        return bool(inputs) and inputs[0] in derived
    return any(is_f32(v) for v in inputs) and all(v in derived for v in inputs)


# ===================================================================== the plan
@dataclass
class Plan:
    """What convert-fp16 does: the nodes converted, in graph order, and those kept with (category, why)."""

    converted: list[Node] = field(default_factory=list)
    kept: dict[Node, tuple[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Settings:
    keep_ops: frozenset[str]
    keep_nodes: frozenset[str]
    range_limit: float
    magnitudes: dict[str, float]  # observed max |x| by tensor name (empty: not observed)


def _has_float_work(node: Node) -> bool:
    """Whether the node reads or writes float32 at a position the conversion would change."""
    if any(is_f32(v) for v in node.outputs) or t_inputs(node):
        return True
    return any(is_f32(v) for sub in node.subgraphs() for inner in sub.all_nodes() for v in inner.outputs)


def _magnitude(value: Value, settings: Settings) -> float | None:
    return settings.magnitudes.get(value.name)


def _classify(node: Node, settings: Settings, statistics: dict[Node, str],
              derived: set[Value]) -> tuple[str, str] | None:
    """(category, why) for a node kept in float32, None for a node converted."""
    op = node.op_type
    if node.name and node.name in settings.keep_nodes:
        return "option", "named in keep_nodes"
    if op in settings.keep_ops:
        return "option", "its op type is in keep_ops"
    if node.subgraphs():
        return "unsupported", "its sub-graphs are not converted (If/Loop/Scan bodies stay float32)"
    if node.domain not in STANDARD or (op not in CONVERTED and op not in KEPT):
        shown = f"{node.domain}::{op}" if node.domain not in STANDARD else op
        return "unsupported", f"no float16 rule for {shown} (ops without one stay float32)"
    if any(_unknown(v) for v in node.outputs) or any(_unknown(node.inputs[i]) for i in
                                                      _T_INPUTS.get(op, range(len(node.inputs)))
                                                      if i < len(node.inputs)):
        return "unsupported", "a tensor's element type is unknown (run infer-shapes first)"
    if is_shape_arithmetic(node, derived):
        return "shape", "shape arithmetic (computed from tensor shapes; float16 holds integers exactly only to 2048)"
    if node in statistics:
        return "normalization", statistics[node]
    if op in KEPT:
        return "op", KEPT[op]
    if op == "Div" and is_constant(node.inputs[0]):
        return "op", _RDIV
    for i in t_inputs(node):
        value = node.inputs[i]
        assert value is not None
        array = const_array(value, constant_nodes=True)
        if array is not None:
            why = constant_problem(array, settings.range_limit)
            if why:
                return "constant", f"reads the constant %{value.name}: {why}"
            continue
        seen = _magnitude(value, settings)
        if seen is not None and seen > settings.range_limit:
            return "range", f"reads %{value.name}, observed max |x| {seen:.4g} > range limit {settings.range_limit:g}"
    for value in node.outputs:
        seen = _magnitude(value, settings) if is_f32(value) and value is not None else None
        if seen is not None and seen > settings.range_limit:
            assert value is not None
            return "range", f"writes %{value.name}, observed max |x| {seen:.4g} > range limit {settings.range_limit:g}"
    return None


def plan(graph: Graph, settings: Settings) -> Plan:
    """Decide, node by node of the main graph, what is converted (module docstring of convert_fp16)."""
    result = Plan()
    statistics = normalization_statistics(graph)
    derived = shape_values(graph)
    for node in graph:
        if is_op(node, "Constant", "Shape", "Size") or not _has_float_work(node):
            continue
        why = _classify(node, settings, statistics, derived)
        if why is None:
            result.converted.append(node)
        else:
            result.kept[node] = why
    return result


# ===================================================================== observed magnitudes
def observe_magnitudes(graph: Graph, samples: Iterable[dict[str, np.ndarray]]) -> dict[str, float]:
    """The largest |x| of every float tensor calibration observes, over the sample feeds: the
    tensors, the exposure as outputs, the onnxruntime session (optimizer off) and the min-max
    observers are calibration's (`mlc.quantize.calibrate`). A tensor holding Inf or NaN, which
    the observers refuse as a quantization range, gets inf: it is no float16 tensor either."""
    from mlc.numerics.reference import WeightCache, expose_values, reference_session
    from mlc.quantize.calibrate import calibrated_values
    from mlc.quantize.observers import MinMax

    prepared = WeightCache().prepare(graph)
    defined = {i.name for i in prepared.proto.graph.input} | {o for n in prepared.proto.graph.node for o in n.output}
    names = [v.name for v in calibrated_values(graph) if v.name and v.name in defined]
    observers = {name: MinMax(name) for name in names}
    session = reference_session(expose_values(prepared.proto, names), (prepared.names, prepared.values))
    wanted = {i.name for i in session.get_inputs()}
    broken: set[str] = set()
    for feeds in samples:
        results = session.run(names, {k: v for k, v in feeds.items() if k in wanted})
        for name, array in zip(names, results, strict=True):
            if name in broken:
                continue
            try:
                observers[name].observe(np.asarray(array))
            except BadInputError:
                broken.add(name)
        del results
    found = {name: max(-o.low, o.high) for name, o in observers.items() if o.count and name not in broken}
    return found | {name: float("inf") for name in broken}
