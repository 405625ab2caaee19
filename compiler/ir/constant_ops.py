"""Constant evaluation in numpy for the ops folding meets most: one kernel per standard op.

Folding evaluates one node at a time, and onnx's reference evaluator (behind
`mlc.numerics.evaluate.evaluate_node`) builds and runs a one-node model for each: about
0.1 ms of proto building and dispatch around what is, for the shape arithmetic, masks, casts
and dim concatenations of real exports, a single numpy call. Each kernel here makes the very numpy
call the reference evaluator (onnx 1.23) makes, so results are bit-identical (the golden replay
compares digests of folded constants), and returns None whenever it cannot be sure: a dtype outside
its list, an attribute or opset it does not know, inputs the reference evaluator would refuse. None
means: ask the reference evaluator. Numpy and the IR only, so any layer may use it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from mlc.ir.core import Node
from mlc.ir.dtypes import DType

Array = np.ndarray
Kernel = Callable[[Node, list[Array | None]], list[Array] | None]  # inputs: None where omitted

_FLOATS = frozenset(np.dtype(t) for t in (np.float16, np.float32, np.float64))
_SIGNED = frozenset(np.dtype(t) for t in (np.int8, np.int16, np.int32, np.int64))
_INTS = _SIGNED | frozenset(np.dtype(t) for t in (np.uint8, np.uint16, np.uint32, np.uint64))
_NUMERIC = _FLOATS | _INTS
_BOOL = frozenset({np.dtype(np.bool_)})
_PLAIN = _NUMERIC | _BOOL  # the dtypes numpy holds natively (no strings, no ml_dtypes)
_INDICES = frozenset(np.dtype(t) for t in (np.int32, np.int64))
_CAST_TARGETS = frozenset(int(DType.from_numpy(t)) for t in _PLAIN)  # the ONNX codes of those dtypes


def _same(inputs: Sequence[Array], dtypes: frozenset[np.dtype]) -> bool:
    """All inputs of one dtype, in `dtypes` (the reference evaluator refuses mixed binary inputs)."""
    return all(a.dtype == inputs[0].dtype for a in inputs) and inputs[0].dtype in dtypes


def _given(kernel: Callable[[Node, list[Array]], list[Array] | None]) -> Kernel:
    """A kernel for nodes with every input given (an omitted one: the reference evaluator decides)."""
    def checked(node: Node, inputs: list[Array | None]) -> list[Array] | None:
        arrays = [a for a in inputs if a is not None]
        return kernel(node, arrays) if len(arrays) == len(inputs) else None
    return checked


def _elementwise(function: Callable[..., Array], dtypes: frozenset[np.dtype], arity: int) -> Kernel:
    def kernel(node: Node, inputs: list[Array]) -> list[Array] | None:
        return [function(*inputs)] if len(inputs) == arity and _same(inputs, dtypes) else None
    return _given(kernel)


def _as_input(function: Callable[[Array], Array]) -> Callable[[Array], Array]:
    """Sqrt and Exp: the result cast back to the input's dtype, as the reference evaluator does."""
    return lambda x: function(x).astype(x.dtype)


def _divide(x: Array, y: Array) -> Array:
    """Div: integers truncate toward zero (C), in integer arithmetic, by the reference's formula."""
    if x.dtype not in _INTS:
        return np.asarray(np.divide(x, y))
    quotient: Array = np.floor_divide(x, y)
    adjust: Array = (np.remainder(x, y) != 0) & ((x < 0) ^ (y < 0))
    return np.asarray(quotient + adjust.astype(quotient.dtype))


def _where(node: Node, inputs: list[Array]) -> list[Array] | None:
    if len(inputs) != 3 or inputs[0].dtype not in _BOOL or not _same(inputs[1:], _PLAIN):
        return None
    condition, x, y = inputs
    return [np.where(condition, x, y).astype(x.dtype)]


def _fits(x: Array, target: np.dtype) -> bool:
    """A float -> integer cast whose every value truncates into the target's range (NaN, Inf and
    out-of-range values are left to the reference evaluator: C leaves them undefined)."""
    info = np.iinfo(target)
    wide = x.astype(np.float64)
    return bool(np.all((wide > float(info.min) - 1) & (wide < float(info.max) + 1)))


def _cast(node: Node, inputs: list[Array]) -> list[Array] | None:
    code = node.attr("to")
    if len(inputs) != 1 or type(code) is not int or code not in _CAST_TARGETS:  # opset 1's string `to`: no
        return None
    x, target = inputs[0], DType(code).numpy
    if x.dtype not in _PLAIN or (x.dtype in _FLOATS and target in _INTS and not _fits(x, target)):
        return None
    return [x.astype(target)]  # Cast_1/_19/_24 all come down to astype for these dtypes


def _concat(node: Node, inputs: list[Array]) -> list[Array] | None:
    axis = node.attr("axis")
    if not inputs or not isinstance(axis, int) or not _same(inputs, _PLAIN) \
            or any(not -a.ndim <= axis < a.ndim for a in inputs):  # rank 0 included: the reference refuses
        return None
    return [np.concatenate(inputs, axis)]


def _gather(node: Node, inputs: list[Array]) -> list[Array] | None:
    axis = node.attr("axis", 0)
    if len(inputs) != 2 or not isinstance(axis, int) or inputs[0].dtype not in _PLAIN \
            or inputs[1].dtype not in _INDICES:
        return None
    return [np.take(inputs[0], inputs[1], axis=axis)]  # negative indices count from the end, as in ONNX


def _transpose(node: Node, inputs: list[Array]) -> list[Array] | None:
    perm = node.attr("perm")
    if len(inputs) != 1 or inputs[0].dtype not in _PLAIN:
        return None
    if not perm:
        return [np.transpose(inputs[0])]
    return [np.transpose(inputs[0], perm)] if len(perm) == inputs[0].ndim else None


def _slice(node: Node, inputs: list[Array | None]) -> list[Array] | None:
    """Slice (10+) as the reference evaluator slices: like Python, where a negative step's start past
    the axis differs from ONNX (fold-constants moves such starts first); no axes: the leading ones."""
    data, starts, ends, axes, steps = [*inputs, None, None][:5]
    if data is None or starts is None or ends is None or data.dtype not in _PLAIN \
            or any(a is not None and a.dtype not in _INDICES for a in inputs[1:]):
        return None
    starts, ends = starts.reshape(-1) if starts.ndim == 0 else starts, ends.reshape(-1) if ends.ndim == 0 else ends
    n = len(starts)
    if starts.ndim != 1 or ends.shape != (n,) or any(a is not None and a.shape != (n,) for a in (axes, steps)):
        return None  # malformed: the reference evaluator's zip would drop the extra ones
    slices = [slice(0, d) for d in data.shape]
    for i in range(n):
        slices[i if axes is None else axes[i]] = slice(starts[i], ends[i], None if steps is None else steps[i])
    return [data[tuple(slices)]]


# op type -> (the first opset whose semantics the kernel has, the attributes it reads, the kernel)
TABLE: dict[str, tuple[int, frozenset[str], Kernel]] = {
    "Add": (7, frozenset(), _elementwise(np.add, _NUMERIC, 2)),
    "Sub": (7, frozenset(), _elementwise(np.subtract, _NUMERIC, 2)),
    "Mul": (7, frozenset(), _elementwise(np.multiply, _NUMERIC, 2)),
    "Div": (7, frozenset(), _elementwise(_divide, _NUMERIC, 2)),
    "Neg": (6, frozenset(), _elementwise(np.negative, _FLOATS | _SIGNED, 1)),
    "Abs": (6, frozenset(), _elementwise(np.absolute, _NUMERIC, 1)),
    "Sqrt": (6, frozenset(), _elementwise(_as_input(np.sqrt), _FLOATS, 1)),
    "Exp": (6, frozenset(), _elementwise(_as_input(np.exp), _FLOATS, 1)),
    "Equal": (7, frozenset(), _elementwise(np.equal, _PLAIN, 2)),
    "Less": (7, frozenset(), _elementwise(np.less, _NUMERIC, 2)),
    "Greater": (7, frozenset(), _elementwise(np.greater, _NUMERIC, 2)),
    "Not": (1, frozenset(), _elementwise(np.logical_not, _BOOL, 1)),
    "And": (7, frozenset(), _elementwise(np.logical_and, _BOOL, 2)),
    "Or": (7, frozenset(), _elementwise(np.logical_or, _BOOL, 2)),
    "Where": (9, frozenset(), _given(_where)),
    "Cast": (6, frozenset({"to", "saturate"}), _given(_cast)),  # saturate: float8 targets only, not handled here
    "Concat": (4, frozenset({"axis"}), _given(_concat)),
    "Gather": (1, frozenset({"axis"}), _given(_gather)),
    "Transpose": (1, frozenset({"perm"}), _given(_transpose)),
    "Slice": (10, frozenset(), _slice),
}


def evaluate_constant(node: Node, inputs: Sequence[Array | None], opset: int | None) -> list[Array] | None:
    """The outputs of a standard-domain node of TABLE at `opset` (the model's default-domain
    version) computed in numpy, one array per output; None where the reference evaluator must."""
    entry = TABLE.get(node.op_type)
    if entry is None or node.domain != "" or opset is None or opset < entry[0]:
        return None
    _, known, kernel = entry
    if len(node.outputs) != 1 or node.outputs[0] is None or any(a.ref is not None or name not in known
                                                                 for name, a in node.attributes.items()):
        return None
    if len(inputs) != len(node.inputs):
        return None
    try:
        with np.errstate(all="ignore"):  # overflow, division by zero: the values numpy gives, no warning
            result = kernel(node, list(inputs))
    except (ValueError, IndexError, TypeError):  # what the reference evaluator refuses as well
        return None
    return None if result is None else [np.asarray(r) for r in result]
