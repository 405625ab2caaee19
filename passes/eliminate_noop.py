"""Remove ops that provably hand their data input through unchanged (each line is a rule).

    cast             Cast(x){to = dtype of x}                   -> x
    castlike         CastLike(x, like), like has x's dtype       -> x
    reshape          Reshape(x, c), c names x's own shape         -> x    (0 copies a dim unless allowzero; one -1)
    expand           Expand(x, c), broadcast(shape(x), c) = shape(x) -> x
    slice            Slice(x, ...) selecting every element        -> x    (step 1, start 0, end >= dim)
    pad              Pad(x, pads = 0...)                          -> x    (any mode)
    transpose        Transpose(x){perm = 0, 1, ..., n-1}          -> x
    squeeze          Squeeze(x) without axes, no dim of x is 1    -> x    (empty axes read as none, as onnxruntime does)
    unsqueeze        Unsqueeze(x, axes = [])                      -> x
    concat           Concat(x)                                    -> x
    split            Split(x) into one output                     -> x
    tile             Tile(x, repeats = 1...)                      -> x
    mul-one          Mul(x, 1), Mul(1, x)                         -> x
    div-one          Div(x, 1)                                    -> x
    add-zero         Add(x, 0), Add(0, x)                         -> x
    sub-zero         Sub(x, 0)       (never 0 - x)                -> x

Every rule needs the facts that make it exact: constant operands (initializers no caller can
override) and, where the answer depends on them, the input's dims. A symbolic dim counts only
where its value does not matter (a 0 entry of Reshape copies it, an Expand entry of 1 keeps it).
A candidate that cannot be proven a no-op is kept with a remark.

Arithmetic identities are removed only where the constant neither broadcasts the kept operand to
a larger shape nor changes its dtype (the output must be the kept operand's own type), and only
where the identity is exact in IEEE arithmetic: x * 1 and x / 1 are exact for every float (NaN,
infinities and -0.0 included), and so are x + (-0.0) and x - (+0.0); but x + (+0.0) turns -0.0
into +0.0, and so does x - (-0.0). Exporters write exactly these for every zero-initialized bias
(`MatMul` then `Add(+0.0)`). With `signed_zeros` (default true: honour the sign of zero) such a
node goes only where the sign of a zero cannot change a value downstream: its readers, followed
through the ops that can pass a zero's sign on (layout ops, Add, Mul, MatMul, Conv, Relu, Tanh,
LayerNormalization, a Div's numerator, ...), reach no op that can tell -0.0 from +0.0 by value
(a Div's divisor, Reciprocal, Pow with a non-positive or unknown exponent, an op of another
domain, a sub-graph); ops whose result is the same for both zeros (Exp, Softmax, Sigmoid,
comparisons, Cast to an integer) end the search. A graph output may then hold -0.0 where the
original held +0.0 (equal values); `output_zero_signs` keeps those nodes too (bit-exact outputs).
`signed_zeros=false` removes every x + (+0.0), for models whose consumers do not tell -0.0 from
+0.0 (a documented, deliberate departure from bit-exactness). Integer identities are always
exact.

A removed node whose output is a graph output hands the output's name to x's producer, as in
`eliminate-identity`; it is kept when x is a graph input, a constant, a value of an enclosing
graph or another graph output (the interface needs two distinct names).

The constants the removed nodes read (shapes, pads, the 1 of a Mul) are left in place when they
become unused: `dce`, which the pipelines run last, deletes them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mlc.ir.core import Graph, Node, Value
from mlc.ir.dtypes import DType
from mlc.ir.tensor import Tensor, TensorDataUnavailable
from mlc.ir.types import Dim, TensorType
from mlc.pass_api import Numerics, PassOption, register_pass
from mlc.passes._patterns import dims_of, output_name_blocked
from mlc.rewrite import IRBuilder, Match, Reject, Rule, RulePass

# A Slice end at least this large covers any dim a tensor can have (INT64_MAX and its kin), so it
# selects to the end even where the dim is symbolic; smaller ends are compared with static dims.
_HUGE = 2**62

_ZERO_SIGN = "zero-sign: "  # prefix of the reason an identity is exact but for the sign of zero

# What a matcher answers: (rule, the input that takes the output's place), or the reason a
# candidate is kept (remarked), or None when the node is no candidate at all.
Found = tuple[str, Value] | str | None


def _label(node: Node) -> str:
    return f"{node.op_type} {node.name!r}"



def _dtype(value: Value | None) -> DType | None:
    if value is None or not isinstance(value.type, TensorType) or value.type.dtype == DType.UNDEFINED:
        return None
    return value.type.dtype


def _const_array(value: Value | None) -> np.ndarray | None:
    """The values of a constant no caller can override, or None."""
    if value is None or not value.is_constant or not isinstance(value.const, Tensor):
        return None
    try:
        return value.const.numpy()
    except TensorDataUnavailable:
        return None


def _const_ints(value: Value | None) -> list[int] | None:
    array = _const_array(value)
    if array is None or array.dtype.kind not in "iu":
        return None
    return [int(v) for v in array.reshape(-1)]


def _is_int(dim: Dim) -> bool:
    return isinstance(dim, int)


def _broadcast_keeps(dims: tuple[Dim, ...] | None, other: Sequence[Dim]) -> str | None:
    """None when broadcasting `dims` with the shape `other` gives `dims` back; otherwise why not
    ("differs" when it provably changes the shape, a reason when it cannot be told). A symbolic
    entry of `other` keeps the dim only where it is the same symbol."""
    if dims is None:
        return "the input's rank is unknown"
    if len(other) > len(dims):
        return "differs"
    offset = len(dims) - len(other)
    unknown = False
    for k, entry in enumerate(other):
        dim = dims[offset + k]
        if entry == 1 or (entry is not None and entry == dim):
            continue
        if _is_int(dim) and _is_int(entry):
            return "differs"
        unknown = True
    return f"a dim of the input is symbolic where {list(other)} is not 1" if unknown else None


# ===================================================================== splats
# A value whose every element is one known scalar, whatever its (possibly symbolic) shape: a
# constant, ConstantOfShape, and what layout ops, Expand, Cast and Where make of such values.
_SPLAT_LAYOUT = {"Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Slice", "Expand", "Tile",
                 "Gather"}
_SPLAT_OPS = _SPLAT_LAYOUT | {"ConstantOfShape", "Cast", "CastLike", "Concat", "Where"}


def _splat(value: Value | None, depth: int = 0) -> tuple[np.ndarray, DType, tuple[Dim, ...]] | None:
    """(values, dtype, dims) of an operand whose values are known: a constant's array, or for a
    computed splat a one-element array of its scalar (dims from its type)."""
    if value is None or depth > 12:
        return None
    node = value.producer
    if node is None:
        array = _const_array(value)
        if array is None:
            return None
        assert isinstance(value.const, Tensor)
        return array, value.const.dtype, tuple(value.const.shape)
    if node.op_type not in _SPLAT_OPS or node.domain not in ("", "ai.onnx"):
        return None
    dims, dtype = dims_of(value), _dtype(value)
    if dims is None or dtype is None:
        return None
    if any(a.ref is not None for a in node.attributes.values()):
        return None
    scalar: np.ndarray | None = None
    if node.op_type == "ConstantOfShape":
        fill = node.attr("value")
        scalar = np.zeros(1, np.float32) if fill is None else fill.numpy().reshape(-1)[:1] \
            if isinstance(fill, Tensor) and fill.has_data and fill.size == 1 else None
    elif node.op_type in _SPLAT_LAYOUT:
        scalar = _scalar_of(node.inputs[0], depth)
    elif node.op_type in ("Cast", "CastLike"):
        inner = _scalar_of(node.inputs[0], depth)
        with np.errstate(over="ignore", invalid="ignore"):  # Inf is what a narrowing Cast means
            scalar = None if inner is None or dtype in (DType.STRING, DType.UNDEFINED) or dtype.is_exotic \
                else inner.astype(dtype.numpy)
    elif node.op_type == "Concat":
        parts = [_scalar_of(v, depth) for v in node.inputs if v is not None]
        if parts and all(p is not None for p in parts) and all(_same_bits(p, parts[0]) for p in parts):  # type: ignore[arg-type]
            scalar = parts[0]
    elif node.op_type == "Where" and len(node.inputs) == 3:
        cond = _scalar_of(node.inputs[0], depth)
        if cond is not None:
            scalar = _scalar_of(node.inputs[1] if bool(cond[0]) else node.inputs[2], depth)
    if scalar is None or scalar.size != 1:
        return None
    if scalar.dtype != dtype.numpy:
        return None
    return scalar, dtype, dims


def _scalar_of(value: Value | None, depth: int) -> np.ndarray | None:
    """The one value every element of `value` holds, as a one-element array."""
    found = _splat(value, depth + 1)
    if found is None:
        return None
    array = found[0].reshape(-1)
    if array.size == 0 or not _all_same(array):
        return None
    return array[:1]


def _all_same(array: np.ndarray) -> bool:
    array = np.ascontiguousarray(array)  # a broadcast splat has stride 0: its bytes cannot be viewed (seed 600259)
    first = array[:1]
    return bool(np.all(array.view(np.uint8).reshape(array.size, -1) == first.view(np.uint8).reshape(1, -1))) \
        if array.dtype.kind != "O" else False


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.tobytes() == b.tobytes()


# ===================================================================== the sign of zero
# Ops whose every output may carry a zero's sign from any input (a zero of either sign in, a zero
# of either sign out): the search goes on through them. Ops listed in neither set can tell -0.0
# from +0.0 by value (or are unknown): reaching one keeps x + (+0.0).
_SIGN_PASSES = {
    "Identity", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Concat", "Slice", "Gather",
    "GatherElements", "GatherND", "Split", "Expand", "Tile", "Pad", "Neg", "Mul", "Add", "Sub", "Sum", "Mean",
    "MatMul", "Gemm", "Conv", "ConvTranspose", "Relu", "LeakyRelu", "PRelu", "Elu", "Celu", "Selu", "Gelu",
    "Mish", "HardSwish", "Tanh", "Erf", "Sin", "Sinh", "Asin", "Asinh", "Atan", "Atanh", "Tan", "Sqrt", "Sign",
    "Round", "Floor", "Ceil", "Softsign", "Clip", "Max", "Min", "Dropout", "LayerNormalization",
    "BatchNormalization", "InstanceNormalization", "GroupNormalization", "ReduceSum", "ReduceMean", "ReduceMax",
    "ReduceMin", "ReduceProd", "CumSum", "Einsum", "AveragePool", "MaxPool", "GlobalAveragePool",
    "GlobalMaxPool", "Resize", "DepthToSpace", "SpaceToDepth", "Trilu", "ScatterElements", "ScatterND",
}
# Ops whose outputs are equal for -0.0 and +0.0 inputs (the search stops there).
_SIGN_BLIND = {
    "Exp", "Softmax", "LogSoftmax", "Sigmoid", "HardSigmoid", "Softplus", "Cos", "Cosh", "Log", "Abs",
    "ReduceL1", "ReduceL2", "ReduceSumSquare", "ReduceLogSumExp", "Equal", "Less", "LessOrEqual", "Greater",
    "GreaterOrEqual", "IsNaN", "IsInf", "Shape", "Size", "ArgMax", "ArgMin", "Not", "And", "Or", "Xor",
    "QuantizeLinear", "ConstantOfShape",
}


def _sign_use(node: Node, index: int) -> str:
    """How `node` treats a zero's sign arriving at input `index`: "blind", "passes" or "observes"."""
    if node.domain not in ("", "ai.onnx") or node.subgraphs():
        return "observes"
    op = node.op_type
    if op in ("Cast", "CastLike"):
        out = node.outputs[0]
        dtype = _dtype(out) if out is not None else None
        if dtype is None:
            return "observes"
        return "passes" if dtype.is_float else "blind"
    if op == "Where":
        return "blind" if index == 0 else "passes"
    if op == "Div":
        return "passes" if index == 0 else "observes"  # 1 / -0.0 is -inf
    if op == "Pow":
        if index == 1:
            return "blind"  # b ** (+-0.0) is 1
        exponent = _const_array(node.inputs[1] if len(node.inputs) > 1 else None)
        if exponent is None or exponent.dtype.kind not in "iuf" or not bool(np.all(exponent > 0)):
            return "observes"  # (-0.0) ** -1 is -inf
        return "passes"
    if op in _SIGN_BLIND:
        return "blind"
    if op in _SIGN_PASSES:
        return "passes"
    return "observes"


class _ZeroSigns:
    """Which values can carry a zero's sign to a reader that tells -0.0 from +0.0 by value (and,
    with `outputs`, to a graph output): computed once per graph, readers before producers."""

    def __init__(self, graph: Graph, outputs: bool) -> None:
        self.outputs = outputs
        self._graph = graph
        self._observed: dict[Value, bool] | None = None  # computed on the first question

    def _build(self) -> dict[Value, bool]:
        self._observed = {}
        for node in reversed(self._graph.nodes):
            for value in node.outputs:
                if value is not None:
                    self._observed[value] = self._compute(value, self._graph)
        return self._observed

    def _compute(self, value: Value, graph: Graph) -> bool:
        if value.is_graph_output and (self.outputs or graph.parent is not None):
            return True  # a sub-graph's output flows on into its owner's outputs
        for user, index in value.uses:
            if user.graph is not graph:
                return True  # read inside a sub-graph
            how = _sign_use(user, index)
            if how == "observes":
                return True
            if how == "passes" and any(out is not None and self._observed.get(out, True)  # type: ignore[union-attr]
                                       for out in user.outputs):
                return True
        return False

    def observed(self, value: Value) -> bool:
        observed = self._observed if self._observed is not None else self._build()
        return observed.get(value, True)


# ===================================================================== the rules
def _cast(node: Node) -> Found:
    x, to = node.inputs[0], node.attr("to")
    dtype = _dtype(x)
    if x is None or dtype is None or to is None:
        return None
    return ("cast", x) if int(to) == int(dtype) else None


def _castlike(node: Node) -> Found:
    if len(node.inputs) < 2:
        return None
    x, like = node.inputs[0], node.inputs[1]
    dtype, target = _dtype(x), _dtype(like)
    if x is None or dtype is None or target is None:
        return None
    return ("castlike", x) if dtype == target else None


def _reshape(node: Node) -> Found:
    if len(node.inputs) < 2:
        return None
    x, target = node.inputs[0], _const_ints(node.inputs[1])
    if x is None or target is None:
        return None
    dims = dims_of(x)
    if dims is None:
        return "the input's rank is unknown"
    if len(target) != len(dims) or target.count(-1) > 1:
        return None
    allowzero = bool(node.attr("allowzero", 0))
    unknown = False
    for entry, dim in zip(target, dims, strict=True):
        if entry == -1 or (entry == 0 and not allowzero):
            continue  # -1 is checked below; 0 copies the input's dim, whatever it is
        if _is_int(dim):
            if entry != dim:
                return None
        else:
            unknown = True
    if -1 in target:
        # -1 is the element count over the product of the other dims: x's own dim when those are
        # x's dims and known non-zero (with a zero among them -1 is ill-defined).
        j = target.index(-1)
        if not all(isinstance(d, int) and d > 0 for i, d in enumerate(dims) if i != j):
            return "a -1 entry stands beside symbolic or zero dims"
    if unknown:
        return f"target {target} names a dim that is symbolic in the input"
    return ("reshape", x)


def _expand(node: Node) -> Found:
    if len(node.inputs) < 2:
        return None
    x, shape = node.inputs[0], _const_ints(node.inputs[1])
    if x is None or shape is None:
        return None
    why = _broadcast_keeps(dims_of(x), shape)
    if why == "differs":
        return None
    return why if why is not None else ("expand", x)


def _slice(node: Node) -> Found:
    x = node.inputs[0]
    if x is None:
        return None
    if len(node.inputs) >= 3:  # opset 10 on: starts, ends, axes, steps are inputs
        starts, ends = _const_ints(node.inputs[1]), _const_ints(node.inputs[2])
        axes = _const_ints(node.inputs[3]) if len(node.inputs) > 3 and node.inputs[3] is not None else None
        steps = _const_ints(node.inputs[4]) if len(node.inputs) > 4 and node.inputs[4] is not None else None
        if starts is None or ends is None:
            return None
        if (len(node.inputs) > 3 and node.inputs[3] is not None and axes is None) or (
                len(node.inputs) > 4 and node.inputs[4] is not None and steps is None):
            return None
    else:
        starts, ends, axes, steps = node.attr("starts"), node.attr("ends"), node.attr("axes"), None
        if starts is None or ends is None:
            return None
    axes = list(range(len(starts))) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    if not len(starts) == len(ends) == len(axes) == len(steps):
        return None
    dims = dims_of(x)
    seen: set[int] = set()
    unknown = ""
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        if step != 1:
            return None
        if (start == 0 or start <= -_HUGE) and end >= _HUGE:
            continue  # the whole axis, whatever its length
        if dims is None or not -len(dims) <= axis < len(dims):
            unknown = unknown or "the input's rank is unknown"
            continue
        axis = axis + len(dims) if axis < 0 else axis
        if axis in seen:
            return None
        seen.add(axis)
        dim = dims[axis]
        if not isinstance(dim, int):
            unknown = unknown or f"dim {axis} is symbolic and the slice [{start}:{end}] may end before it"
            continue
        lo = min(max(start + dim if start < 0 else start, 0), dim)
        hi = min(max(end + dim if end < 0 else end, 0), dim)
        if lo != 0 or hi != dim:
            return None
    return unknown if unknown else ("slice", x)


def _pad(node: Node) -> Found:
    x = node.inputs[0]
    if x is None:
        return None
    if len(node.inputs) > 1:  # opset 11 on: pads is an input
        pads = _const_ints(node.inputs[1])
    else:
        pads = node.attr("pads")
    if pads is None or any(p != 0 for p in pads):
        return None
    return ("pad", x)


def _transpose(node: Node) -> Found:
    x = node.inputs[0]
    if x is None:
        return None
    perm = node.attr("perm")
    if perm is None:  # the default reverses the dims: nothing moves for rank 0 and 1
        dims = dims_of(x)
        return ("transpose", x) if dims is not None and len(dims) <= 1 else None
    return ("transpose", x) if list(perm) == list(range(len(perm))) else None


def _axes(node: Node) -> list[int] | str | None:
    """Squeeze/Unsqueeze axes: a list, None when absent, "?" when not a constant."""
    if "axes" in node.attributes:
        return list(node.attr("axes"))
    if len(node.inputs) > 1 and node.inputs[1] is not None:
        axes = _const_ints(node.inputs[1])
        return "?" if axes is None else axes
    return None


def _squeeze(node: Node) -> Found:
    x, axes = node.inputs[0], _axes(node)
    if x is None or (axes is not None and axes != []):
        return None  # named axes are removed: the rank changes
    # No axes (an empty list is read the same way): every dim of size 1 goes.
    dims = dims_of(x)
    if dims is None:
        return "without axes it removes every 1-dim, and the input's rank is unknown"
    if any(d == 1 for d in dims):
        return None
    if not all(_is_int(d) for d in dims):
        return "without axes it removes every 1-dim, and a symbolic dim may be 1"
    return ("squeeze", x)


def _unsqueeze(node: Node) -> Found:
    x, axes = node.inputs[0], _axes(node)
    return ("unsqueeze", x) if x is not None and axes == [] else None


def _concat(node: Node) -> Found:
    x = node.inputs[0] if len(node.inputs) == 1 else None
    return ("concat", x) if x is not None else None


def _split(node: Node) -> Found:
    x = node.inputs[0]
    if x is None or len(node.outputs) != 1:
        return None
    if "split" in node.attributes:
        sizes: list[int] | None = list(node.attr("split"))
    elif len(node.inputs) > 1 and node.inputs[1] is not None:
        sizes = _const_ints(node.inputs[1])
        if sizes is None:
            return None
    else:
        sizes = None
    if sizes is not None:
        if len(sizes) != 1:
            return None
        dims = dims_of(x)
        axis = node.attr("axis", 0)
        if dims is not None and -len(dims) <= axis < len(dims) and _is_int(dims[axis]) and dims[axis] != sizes[0]:
            return None  # not the whole (the model is malformed): leave it to the runtime to say so
    return ("split", x)


def _tile(node: Node) -> Found:
    if len(node.inputs) < 2:
        return None
    x, repeats = node.inputs[0], _const_ints(node.inputs[1])
    if x is None or repeats is None or any(r != 1 for r in repeats):
        return None
    return ("tile", x)


def _identity_element(array: np.ndarray, op: str, position: int, signed_zeros: bool) -> str | None:
    """None when the constant (operand `position`) is an exact identity of `op`; "no" when it is no
    identity at all; otherwise why it is kept."""
    if op in ("And", "Or"):
        if array.dtype != np.bool_:
            return "no"
        identity = bool(np.all(array)) if op == "And" else not bool(np.any(array))
        return None if identity else "no"
    if array.dtype.kind not in "iuf" and not _float_like(array):
        return "no"  # bool, complex, strings
    values = array.reshape(-1).astype(np.float64) if array.dtype.kind not in "iu" else array.reshape(-1)
    if op in ("Mul", "Div"):
        if op == "Div" and position == 0:
            return "no"
        return None if bool(np.all(values == 1)) else "no"
    if op == "Sub" and position == 0:
        return "no"
    if not bool(np.all(values == 0)):
        return "no"
    if array.dtype.kind in "iu" or not signed_zeros:
        return None
    negative = np.signbit(values)
    # x + (-0.0) and x - (+0.0) keep every x; x + (+0.0) and x - (-0.0) turn -0.0 into +0.0.
    exact = bool(np.all(negative)) if op == "Add" else bool(not np.any(negative))
    if exact:
        return None
    zero = "+0.0" if op == "Add" else "-0.0"
    return f"{_ZERO_SIGN}x {'+' if op == 'Add' else '-'} {zero} turns -0.0 into +0.0"


def _float_like(array: np.ndarray) -> bool:
    """ml_dtypes floats (bfloat16, float8, ...) have numpy kind 'V'."""
    try:
        return DType.from_numpy(array.dtype).is_float
    except TypeError:
        return False


def _arithmetic(node: Node, signed_zeros: bool, signs: _ZeroSigns | None = None) -> Found:
    if len(node.inputs) != 2 or node.inputs[0] is None or node.inputs[1] is None:
        return None
    why: str | None = None
    for position in (1, 0):  # prefer x op c: the kept operand is the other one
        constant, x = node.inputs[position], node.inputs[1 - position]
        known = _splat(constant)
        if known is None or x is None:
            continue
        array, cdtype, cdims = known
        verdict = _identity_element(array, node.op_type, position, signed_zeros)
        if verdict == "no":
            continue
        if verdict is not None and verdict.startswith(_ZERO_SIGN):
            out = node.outputs[0]
            if signs is not None and out is not None and not signs.observed(out):
                verdict = None  # no reader can tell the zeros apart by value
            else:
                reach = "a graph output or " if signs is None or signs.outputs else ""
                verdict = verdict[len(_ZERO_SIGN):] + f", and a zero's sign can reach {reach}a reader that tells"
        if verdict is not None:
            why = verdict
            continue
        operand = _dtype(x)
        if operand != cdtype:
            why = (f"the constant is {cdtype.short_name} and the operand is "
                   f"{operand.short_name if operand is not None else 'of unknown type'}")
            continue
        shape_why = _broadcast_keeps(dims_of(x), list(cdims))
        if shape_why == "differs":
            why = f"the constant {list(cdims)} broadcasts the operand to a larger shape"
            continue
        if shape_why is not None:
            why = shape_why
            continue
        rule = {"Mul": "mul-one", "Div": "div-one", "Add": "add-zero", "Sub": "sub-zero", "And": "and-true",
                "Or": "or-false"}[node.op_type]
        return (rule, x)
    return why


def _where(node: Node) -> Found:
    """Where(c, a, b) with c known all true (all false) and the result of a's (b's) shape -> a (b)."""
    if len(node.inputs) != 3 or any(v is None for v in node.inputs):
        return None
    cond = _splat(node.inputs[0])
    if cond is None or cond[1] != DType.BOOL:
        return None
    values = cond[0].reshape(-1)
    if values.size == 0 or not (bool(np.all(values)) or not bool(np.any(values))):
        return None
    picked = node.inputs[1] if bool(values[0]) else node.inputs[2]
    other = node.inputs[2] if bool(values[0]) else node.inputs[1]
    assert picked is not None and other is not None
    dims = dims_of(picked)
    for operand in (node.inputs[0], other):
        shape = dims_of(operand)
        if shape is None:
            return "an operand's rank is unknown"
        why = _broadcast_keeps(dims, list(shape))
        if why == "differs":
            return None
        if why is not None:
            return why
    return ("where-const", picked)


_MATCHERS = {
    "Cast": _cast, "CastLike": _castlike, "Reshape": _reshape, "Expand": _expand, "Slice": _slice, "Pad": _pad,
    "Transpose": _transpose, "Squeeze": _squeeze, "Unsqueeze": _unsqueeze, "Concat": _concat, "Split": _split,
    "Tile": _tile, "Where": _where,
}
_ARITHMETIC = {"Mul", "Div", "Add", "Sub", "And", "Or"}


def match_noop(node: Node, signed_zeros: bool = True, signs: _ZeroSigns | None = None) -> Found:
    """The rule that removes `node` and the input taking its place, a reason it is kept, or None."""
    if node.domain not in ("", "ai.onnx") or not node.inputs or node.inputs[0] is None:
        return None
    if any(a.ref is not None for a in node.attributes.values()):
        return None  # a function body's attribute reference: the value is not known here
    if node.op_type in _ARITHMETIC:
        return _arithmetic(node, signed_zeros, signs)
    matcher = _MATCHERS.get(node.op_type)
    return None if matcher is None else matcher(node)


def _type_mismatch(out: Value, kept: Value) -> str | None:
    """Why the output's declared type rules out the rewrite (it contradicts the kept input's)."""
    a, b = out.type, kept.type
    if not isinstance(a, TensorType) or not isinstance(b, TensorType):
        return None
    if a.dtype != DType.UNDEFINED and b.dtype != DType.UNDEFINED and a.dtype != b.dtype:
        return f"its output is declared {a.dtype.short_name}, its input {b.dtype.short_name}"
    if a.is_static and b.is_static and a.shape != b.shape:
        return f"its output is declared {list(a.shape or ())}, its input {list(b.shape or ())}"
    return None


# op -> (rule name, law): the table the docstring prints, as data
LAWS: dict[str, tuple[str, str]] = {
    "Cast": ("cast", "Cast(x){to = dtype of x} -> x"),
    "CastLike": ("castlike", "CastLike(x, like), like has x's dtype -> x"),
    "Reshape": ("reshape", "Reshape(x, c), c names x's own shape -> x"),
    "Expand": ("expand", "Expand(x, c), broadcast(shape(x), c) = shape(x) -> x"),
    "Slice": ("slice", "Slice(x, ...) selecting every element -> x"),
    "Pad": ("pad", "Pad(x, pads = 0...) -> x"),
    "Transpose": ("transpose", "Transpose(x){perm = 0, 1, ..., n-1} -> x"),
    "Squeeze": ("squeeze", "Squeeze(x) without axes, no dim of x is 1 -> x"),
    "Unsqueeze": ("unsqueeze", "Unsqueeze(x, axes = []) -> x"),
    "Concat": ("concat", "Concat(x) -> x"),
    "Split": ("split", "Split(x) into one output -> x"),
    "Tile": ("tile", "Tile(x, repeats = 1...) -> x"),
    "Where": ("where-const", "Where(all true, a, b) -> a, Where(all false, a, b) -> b"),
    "Mul": ("mul-one", "Mul(x, 1) -> x"),
    "Div": ("div-one", "Div(x, 1) -> x"),
    "Add": ("add-zero", "Add(x, 0) -> x   (a +0.0 only where a zero's sign cannot matter)"),
    "Sub": ("sub-zero", "Sub(x, 0) -> x   (never 0 - x)"),
    "And": ("and-true", "And(x, true) -> x"),
    "Or": ("or-false", "Or(x, false) -> x"),
}


class NoopRule(Rule):
    """The no-op law of one op (`LAWS`): the node's output becomes the input its matcher names."""

    def __init__(self, op: str, signed_zeros: bool, output_zero_signs: bool) -> None:
        self.name, self.law = LAWS[op]
        self.ops = (op,)
        self.signed_zeros, self.output_zero_signs = signed_zeros, output_zero_signs
        self.signs: dict[int, _ZeroSigns] = {}  # per graph, built on first use

    def _signs(self, graph: Graph) -> _ZeroSigns | None:
        if not self.signed_zeros:
            return None
        if id(graph) not in self.signs:
            self.signs[id(graph)] = _ZeroSigns(graph, self.output_zero_signs)
        return self.signs[id(graph)]

    def match(self, node: Node) -> Match | Reject | None:
        assert node.graph is not None
        found = match_noop(node, self.signed_zeros, self._signs(node.graph) if node.op_type in _ARITHMETIC else None)
        if found is None:
            return None
        if isinstance(found, str):
            return self.reject(node, found)
        _, source = found
        out = node.outputs[0]
        if out is None or len(node.outputs) != 1:
            return None
        mismatch = _type_mismatch(out, source)
        if mismatch is not None:
            return self.reject(node, mismatch)
        if output_name_blocked(out, source, node.graph):
            return self.reject(node, "it names a graph output and its input cannot take the name")
        return Match(node, values={"x": source, "y": out})

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        builder.bypass(match.root, match["x"])
        builder.ctx.stats["removed"] += 1


@register_pass
class EliminateNoop(RulePass):
    name = "eliminate-noop"
    description = "Remove ops that do nothing (same-type Cast, full Slice, identity Transpose, x*1, ...)"
    numerics = Numerics.EXACT
    options = (
        PassOption("signed_zeros", bool, True,
                   "honour the sign of zero: keep x + (+0.0) and x - (-0.0), which turn -0.0 into +0.0, where "
                   "the sign of a zero can change a value downstream"),
        PassOption("output_zero_signs", bool, False,
                   "with signed_zeros, also keep them where a zero's sign can reach a graph output (bit-exact)"),
    )
    statistics = ("removed",)

    def rule_set(self) -> list[Rule]:
        signed, outputs = bool(self.option("signed_zeros")), bool(self.option("output_zero_signs"))
        return [NoopRule(op, signed, outputs) for op in LAWS]
