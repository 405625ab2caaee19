"""The laws of eliminate-noop as a table: op -> (rule, law), and op -> the matcher that proves it.

The matchers live by op family: `mlc.passes._noop_laws_shape` (Reshape, Expand, Slice, Pad, Tile),
`_noop_laws_layout` (Transpose, Squeeze, Unsqueeze, Concat, Split) and `_noop_laws_arith` (Cast,
CastLike, Where and the arithmetic identities). `match_noop` asks the node's matcher; a match
still needs the output's declared type to agree with the kept input's (`type_mismatch`).
"""

from __future__ import annotations

from collections.abc import Callable

from mlc.ir.core import Node, Value
from mlc.ir.dtypes import DType
from mlc.ir.types import TensorType
from mlc.passes._noop_facts import Found
from mlc.passes._noop_laws_arith import noop_arithmetic, noop_cast, noop_castlike, noop_where
from mlc.passes._noop_laws_layout import noop_concat, noop_split, noop_squeeze, noop_transpose, noop_unsqueeze
from mlc.passes._noop_laws_shape import noop_expand, noop_pad, noop_reshape, noop_slice, noop_tile
from mlc.passes._zero_signs import ZeroSigns

MATCHERS: dict[str, Callable[[Node], Found]] = {
    "Cast": noop_cast, "CastLike": noop_castlike, "Reshape": noop_reshape, "Expand": noop_expand,
    "Slice": noop_slice, "Pad": noop_pad, "Transpose": noop_transpose, "Squeeze": noop_squeeze,
    "Unsqueeze": noop_unsqueeze, "Concat": noop_concat, "Split": noop_split, "Tile": noop_tile, "Where": noop_where,
}
ARITHMETIC = {"Mul", "Div", "Add", "Sub", "And", "Or"}


def match_noop(node: Node, signed_zeros: bool = True, signs: ZeroSigns | None = None) -> Found:
    """The rule that removes `node` and the input taking its place, a reason it is kept, or None."""
    if node.domain != "" or not node.inputs or node.inputs[0] is None:
        return None
    if any(a.ref is not None for a in node.attributes.values()):
        return None  # a function body's attribute reference: the value is not known here
    if node.op_type in ARITHMETIC:
        return noop_arithmetic(node, signed_zeros, signs)
    matcher = MATCHERS.get(node.op_type)
    return None if matcher is None else matcher(node)


def type_mismatch(out: Value, kept: Value) -> str | None:
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


__all__ = ["ARITHMETIC", "LAWS", "MATCHERS", "match_noop", "type_mismatch"]
