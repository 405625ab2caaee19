"""The no-op laws of dtypes and arithmetic: Cast, CastLike, x * 1, x / 1, x + 0, x - 0, And/Or, Where.

An identity is removed only where the constant (a splat, `mlc.passes._noop_splats`) neither
broadcasts the kept operand to a larger shape nor changes its dtype, and only where it is exact in
IEEE arithmetic; x + (+0.0) and x - (-0.0) also need the sign of zero not to matter
(`mlc.passes._zero_signs`) unless `signed_zeros` is off.
"""

from __future__ import annotations

import numpy as np

from mlc.ir.core import Node
from mlc.ir.dtypes import DType
from mlc.passes._noop_facts import Found, broadcast_keeps, dtype_of
from mlc.passes._noop_splats import splat
from mlc.passes._transformer_match import dims_of
from mlc.passes._zero_signs import ZeroSigns

ZERO_SIGN = "zero-sign: "  # prefix of the reason an identity is exact but for the sign of zero

def noop_cast(node: Node) -> Found:
    x, to = node.inputs[0], node.attr("to")
    dtype = dtype_of(x)
    if x is None or dtype is None or to is None:
        return None
    return ("cast", x) if int(to) == int(dtype) else None


def noop_castlike(node: Node) -> Found:
    if len(node.inputs) < 2:
        return None
    x, like = node.inputs[0], node.inputs[1]
    dtype, target = dtype_of(x), dtype_of(like)
    if x is None or dtype is None or target is None:
        return None
    return ("castlike", x) if dtype == target else None


def identity_element(array: np.ndarray, op: str, position: int, signed_zeros: bool) -> str | None:
    """None when the constant (operand `position`) is an exact identity of `op`; "no" when it is no
    identity at all; otherwise why it is kept."""
    if op in ("And", "Or"):
        if array.dtype != np.bool_:
            return "no"
        identity = bool(np.all(array)) if op == "And" else not bool(np.any(array))
        return None if identity else "no"
    if array.dtype.kind not in "iuf" and not float_like(array):
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
    return f"{ZERO_SIGN}x {'+' if op == 'Add' else '-'} {zero} turns -0.0 into +0.0"


def float_like(array: np.ndarray) -> bool:
    """ml_dtypes floats (bfloat16, float8, ...) have numpy kind 'V'."""
    try:
        return DType.from_numpy(array.dtype).is_float
    except TypeError:
        return False


def noop_arithmetic(node: Node, signed_zeros: bool, signs: ZeroSigns | None = None) -> Found:
    if len(node.inputs) != 2 or node.inputs[0] is None or node.inputs[1] is None:
        return None
    why: str | None = None
    for position in (1, 0):  # prefer x op c: the kept operand is the other one
        constant, x = node.inputs[position], node.inputs[1 - position]
        known = splat(constant)
        if known is None or x is None:
            continue
        array, cdtype, cdims = known
        verdict = identity_element(array, node.op_type, position, signed_zeros)
        if verdict == "no":
            continue
        if verdict is not None and verdict.startswith(ZERO_SIGN):
            out = node.outputs[0]
            if signs is not None and out is not None and not signs.observed(out):
                verdict = None  # no reader can tell the zeros apart by value
            else:
                reach = "a graph output or " if signs is None or signs.outputs else ""
                verdict = verdict[len(ZERO_SIGN):] + f", and a zero's sign can reach {reach}a reader that tells"
        if verdict is not None:
            why = verdict
            continue
        operand = dtype_of(x)
        if operand != cdtype:
            why = (f"the constant is {cdtype.short_name} and the operand is "
                   f"{operand.short_name if operand is not None else 'of unknown type'}")
            continue
        shape_why = broadcast_keeps(dims_of(x), list(cdims))
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


def noop_where(node: Node) -> Found:
    """Where(c, a, b) with c known all true (all false) and the result of a's (b's) shape -> a (b)."""
    if len(node.inputs) != 3 or any(v is None for v in node.inputs):
        return None
    cond = splat(node.inputs[0])
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
        why = broadcast_keeps(dims, list(shape))
        if why == "differs":
            return None
        if why is not None:
            return why
    return ("where-const", picked)


__all__ = ["ZERO_SIGN", "float_like", "identity_element", "noop_arithmetic", "noop_cast", "noop_castlike",
           "noop_where"]
