"""The GELU forms exporters write, recognized from their Erf or Tanh node outwards (`fuse-gelu`).

    erf form:   x * 0.5 * (1 + Erf(x / 1.4142135))
    tanh form:  0.5 * x * (1 + Tanh(0.7978846 * (x + 0.044715 * x^3)))

`match_erf` / `match_tanh` answer with the pattern (x, its nodes, its output) or why the node is
no GELU's; the multiplication orders, Div for the halving and the cube's spellings are read here.
What the target can run (opset, element types, ranks) is the rule's business, in `fuse_gelu.py`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mlc.ir.core import Node, Value
from mlc.passes._chain_match import output_of, read_outside
from mlc.passes._transformer_match import is_close, is_op, other_input, producer, sole_reader

SQRT2 = math.sqrt(2.0)
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
CUBIC = 0.044715


@dataclass
class GeluPattern:
    x: Value
    tanh: bool
    nodes: list[Node]
    out: Value


def _is_half_of(node: Node, value: Value) -> bool:
    """`node` computes value * 0.5 (Mul either way round, or Div by 2)."""
    if is_op(node, "Mul"):
        other = other_input(node, value)
        return other is not None and other is not value and is_close(other, 0.5)
    return is_op(node, "Div") and node.inputs[0] is value and is_close(node.inputs[1], 2.0)


def _outer(p: Value, x: Value) -> tuple[list[Node], Value] | str:
    """The product 0.5 * x * p around `p` = 1 + f(x): its nodes and output, or why there is none."""
    why = read_outside(p, "1 + f(x)", "GELU")
    m1 = sole_reader(p, "Mul")
    if why is not None or m1 is None:
        return why or "1 + f(x) is not multiplied by x and 0.5"
    o = other_input(m1, p)
    m1_out = output_of(m1)
    if o is x:  # (x * p) * 0.5  or  (x * p) / 2
        m2 = sole_reader(m1_out, "Mul", "Div")
        why = read_outside(m1_out, "x * (1 + f(x))", "GELU")
        if why is not None or m2 is None or not _is_half_of(m2, m1_out):
            return why or "x * (1 + f(x)) is not halved (Mul by 0.5)"
        return [m1, m2], output_of(m2)
    if o is not None and is_close(o, 0.5):  # (0.5 * p) * x
        m2 = sole_reader(m1_out, "Mul")
        why = read_outside(m1_out, "0.5 * (1 + f(x))", "GELU")
        if why is not None or m2 is None or other_input(m2, m1_out) is not x:
            return why or "0.5 * (1 + f(x)) is not multiplied by x"
        return [m1, m2], output_of(m2)
    half = o.producer if o is not None else None
    if half is not None and (is_op(half, "Mul", "Div")) and x in half.inputs and _is_half_of(half, x):
        if sole_reader(o) is not m1:  # (x * 0.5) * p
            return "x * 0.5 is also read elsewhere"
        return [half, m1], m1_out
    return "1 + f(x) is not multiplied by x and 0.5"


def _complete(x: Value, f: Node, tanh: bool, inner: list[Node]) -> GeluPattern | str:
    """Both forms end alike: f(...) + 1, then the multiplications by x and 0.5."""
    f_out = output_of(f)
    if f_out.is_graph_output or len(f_out.uses) != 1:
        return f"its output %{f_out.name} is also read outside the GELU"
    plus = sole_reader(f_out, "Add")
    if plus is None or not is_close(other_input(plus, f_out), 1.0):
        return "its output is not added to 1"
    outer = _outer(output_of(plus), x)
    if isinstance(outer, str):
        return outer
    nodes, out = outer
    return GeluPattern(x, tanh, [*inner, f, plus, *nodes], out)


def match_erf(erf: Node) -> GeluPattern | str:
    arg = erf.inputs[0] if erf.inputs else None
    scale = producer(arg, "Div", "Mul")
    x: Value | None = None
    if scale is not None and scale.op_type == "Div" and is_close(scale.inputs[1], SQRT2):
        x = scale.inputs[0]
    elif scale is not None and scale.op_type == "Mul":
        a, b = scale.inputs[0], scale.inputs[1]
        x = a if is_close(b, 1 / SQRT2) else b if is_close(a, 1 / SQRT2) else None
    if x is None or scale is None:
        return "its input is not x / sqrt(2) (Div by 1.4142135 or Mul by 0.70710678)"
    if sole_reader(arg) is not erf:
        return "x / sqrt(2) is also read elsewhere"
    return _complete(x, erf, False, [scale])


def _cube_of(value: Value | None) -> tuple[Value, list[Node]] | None:
    """(x, nodes) when `value` is Pow(x, 3), Mul(x, Mul(x, x)) or Mul(Mul(x, x), x)."""
    node = producer(value, "Pow", "Mul")
    if node is None:
        return None
    if node.op_type == "Pow":
        x = node.inputs[0]
        return (x, [node]) if x is not None and is_close(node.inputs[1], 3.0) else None
    for square_in, x in ((node.inputs[0], node.inputs[1]), (node.inputs[1], node.inputs[0])):
        square = producer(square_in, "Mul")
        if (square is not None and x is not None and square.inputs[0] is x and square.inputs[1] is x
                and sole_reader(square_in) is node):
            return x, [square, node]
    return None


def _cubic_term(add: Node) -> tuple[Value, Node, list[Node]] | None:
    """(x, the Mul by 0.044715, the cube's nodes) when Add `add` is x + 0.044715 * x^3 (either order)."""
    for term, candidate in ((add.inputs[1], add.inputs[0]), (add.inputs[0], add.inputs[1])):
        mul = producer(term, "Mul")
        if mul is None or candidate is None:
            continue
        cube_value = mul.inputs[1] if is_close(mul.inputs[0], CUBIC) else mul.inputs[0] \
            if is_close(mul.inputs[1], CUBIC) else None
        cube = _cube_of(cube_value)
        if cube is not None and cube[0] is candidate:
            return candidate, mul, cube[1]
    return None


def match_tanh(tanh: Node) -> GeluPattern | str:
    arg = tanh.inputs[0] if tanh.inputs else None
    scaled = producer(arg, "Mul")
    inner: Value | None = None
    if scaled is not None:
        a, b = scaled.inputs[0], scaled.inputs[1]
        inner = a if is_close(b, SQRT_2_OVER_PI) else b if is_close(a, SQRT_2_OVER_PI) else None
    add = producer(inner, "Add")
    found = _cubic_term(add) if add is not None else None
    if scaled is None or add is None or found is None:
        return "its input is not 0.7978846 * (x + 0.044715 * x^3)"
    x, mul, cube_nodes = found
    for node, reader in ((cube_nodes[-1], mul), (mul, add), (add, scaled), (scaled, tanh)):
        if sole_reader(node.outputs[0]) is not reader:
            return f"%{output_of(node).name} is also read outside the GELU"
    return _complete(x, tanh, True, [*cube_nodes, mul, add, scaled])


__all__ = ["CUBIC", "SQRT2", "SQRT_2_OVER_PI", "GeluPattern", "match_erf", "match_tanh"]
