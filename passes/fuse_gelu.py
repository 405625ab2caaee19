"""Fuse the GELU forms exporters write into one Gelu (ai.onnx opset 20, or onnxruntime's contrib ops).

    erf form   (BERT, torch's exact gelu):
        x * 0.5 * (1 + Erf(x / 1.4142135))       ->  Gelu(x)                          (opset >= 20)
    tanh form  (GPT-2's gelu_new, torch's approximate="tanh"):
        0.5 * x * (1 + Tanh(0.7978846 * (x + 0.044715 * x^3)))
                                                 ->  Gelu(x) {approximate="tanh"}     (opset >= 20)

Every multiplication order and association exporters write matches: the three factors x, 0.5
and (1 + f) in any nesting (`Mul(Mul(x, 0.5), p)`, `Mul(x, Mul(0.5, p))`, `Mul(Mul(x, p), 0.5)`,
operands either side; halving also as Div by 2), x / sqrt(2) also as Mul by 0.70710678, x^3 as
Pow(x, 3) or x*x*x, and 1 + f either way round. Constants match within 1e-4 relative and may be
scalars or one-element tensors, of no higher rank than x: a [1] constant broadcasts a scalar x to
[1], which Gelu(x) would not (fuzz seed 373); x's rank must then be known. Every intermediate
value must be read inside the pattern only; x itself may have any readers.

With the option `contrib` (the onnxruntime target sets it at -O3), the result is onnxruntime's
`com.microsoft::Gelu` (erf form) or `com.microsoft::FastGelu` (tanh form) whatever the model's
opset, and the com.microsoft opset (version 1) is imported into the model; those kernels take
float32 and float16, and FastGelu only tensors of rank 1 or more (onnxruntime 1.31 refuses a
scalar at run time: fuzz seed 2). Without it, a model below opset 20 keeps the pattern, with a remark naming
the option.

Every Erf and Tanh is a candidate: when it does not fuse, a remark `GELU at 'name': not fused,
<why>` says why (`mlc debug -v`), so a Tanh that is an ordinary activation gets one too.

`tolerance`: the fused kernels compute erf/tanh with their own approximations, and the constants
they use are exact where the exporter's were rounded. The constants the pattern read are left
for `dce`, which the pipelines run last.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mlc.ir.core import Graph, Node, Value
from mlc.ir.types import TensorType
from mlc.pass_api import Numerics, Pass, PassContext, PassOption, register_pass
from mlc.passes._patterns import (
    CONTRIB_DTYPES,
    FLOAT_DTYPES,
    MS_DOMAIN,
    dtype_of,
    ensure_ms_opset,
    fused_name,
    is_close,
    is_op,
    other_input,
    producer,
    replace_pattern,
    sole_reader,
    where,
)

SQRT2 = math.sqrt(2.0)
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
CUBIC = 0.044715
GELU_OPSET = 20


@dataclass
class _Gelu:
    x: Value
    tanh: bool
    nodes: list[Node]
    out: Value


def _out(node: Node) -> Value:
    out = node.outputs[0]
    assert out is not None
    return out


def _is_half_of(node: Node, value: Value) -> bool:
    """`node` computes value * 0.5 (Mul either way round, or Div by 2)."""
    if is_op(node, "Mul"):
        other = other_input(node, value)
        return other is not None and other is not value and is_close(other, 0.5)
    return is_op(node, "Div") and node.inputs[0] is value and is_close(node.inputs[1], 2.0)


def _outer(p: Value, x: Value) -> tuple[list[Node], Value] | str:
    """The product 0.5 * x * p around `p` = 1 + f(x): its nodes and output, or why there is none."""
    if p.is_graph_output or len(p.uses) != 1:
        return f"1 + f(x) (%{p.name}) is also read outside the GELU"
    m1 = sole_reader(p, "Mul")
    if m1 is None:
        return "1 + f(x) is not multiplied by x and 0.5"
    o = other_input(m1, p)
    m1_out = _out(m1)
    if o is x:  # (x * p) * 0.5  or  (x * p) / 2
        m2 = sole_reader(m1_out, "Mul", "Div")
        if m1_out.is_graph_output or len(m1_out.uses) != 1:
            return f"x * (1 + f(x)) (%{m1_out.name}) is also read outside the GELU"
        if m2 is None or not _is_half_of(m2, m1_out):
            return "x * (1 + f(x)) is not halved (Mul by 0.5)"
        return [m1, m2], _out(m2)
    if o is not None and is_close(o, 0.5):  # (0.5 * p) * x
        m2 = sole_reader(m1_out, "Mul")
        if m1_out.is_graph_output or len(m1_out.uses) != 1:
            return f"0.5 * (1 + f(x)) (%{m1_out.name}) is also read outside the GELU"
        if m2 is None or other_input(m2, m1_out) is not x:
            return "0.5 * (1 + f(x)) is not multiplied by x"
        return [m1, m2], _out(m2)
    half = o.producer if o is not None else None
    if half is not None and (is_op(half, "Mul", "Div")) and x in half.inputs and _is_half_of(half, x):
        if sole_reader(o) is not m1:  # (x * 0.5) * p
            return "x * 0.5 is also read elsewhere"
        return [half, m1], m1_out
    return "1 + f(x) is not multiplied by x and 0.5"


def _plus_one(f_out: Value) -> Value | str:
    """1 + f for the Erf/Tanh output `f_out`."""
    if f_out.is_graph_output or len(f_out.uses) != 1:
        return f"its output %{f_out.name} is also read outside the GELU"
    add = sole_reader(f_out, "Add")
    if add is None or not is_close(other_input(add, f_out), 1.0):
        return "its output is not added to 1"
    out = add.outputs[0]
    assert out is not None
    return out


def _complete(x: Value, f: Node, tanh: bool, inner: list[Node]) -> _Gelu | str:
    """Both forms end alike: f(...) + 1, then the multiplications by x and 0.5."""
    f_out = f.outputs[0]
    assert f_out is not None
    p = _plus_one(f_out)
    if isinstance(p, str):
        return p
    outer = _outer(p, x)
    if isinstance(outer, str):
        return outer
    nodes, out = outer
    plus = p.producer
    assert plus is not None
    return _Gelu(x, tanh, [*inner, f, plus, *nodes], out)


def _match_erf(erf: Node) -> _Gelu | str:
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


def _match_tanh(tanh: Node) -> _Gelu | str:
    arg = tanh.inputs[0] if tanh.inputs else None
    scaled = producer(arg, "Mul")
    inner: Value | None = None
    if scaled is not None:
        a, b = scaled.inputs[0], scaled.inputs[1]
        inner = a if is_close(b, SQRT_2_OVER_PI) else b if is_close(a, SQRT_2_OVER_PI) else None
    add = producer(inner, "Add")
    if scaled is None or inner is None or add is None:
        return "its input is not 0.7978846 * (x + 0.044715 * x^3)"
    x: Value | None = None
    found: tuple[Node, list[Node]] | None = None
    for term, candidate in ((add.inputs[1], add.inputs[0]), (add.inputs[0], add.inputs[1])):
        mul = producer(term, "Mul")
        if mul is None or candidate is None:
            continue
        cube_value = mul.inputs[1] if is_close(mul.inputs[0], CUBIC) else mul.inputs[0] \
            if is_close(mul.inputs[1], CUBIC) else None
        cube = _cube_of(cube_value)
        if cube is not None and cube[0] is candidate:
            x, found = candidate, (mul, cube[1])
            break
    if x is None or found is None:
        return "its input is not 0.7978846 * (x + 0.044715 * x^3)"
    mul, cube_nodes = found
    for node, reader in ((cube_nodes[-1], mul), (mul, add), (add, scaled), (scaled, tanh)):
        if sole_reader(node.outputs[0]) is not reader:
            return f"%{_out(node).name} is also read outside the GELU"
    return _complete(x, tanh, True, [*cube_nodes, mul, add, scaled])


@register_pass
class FuseGelu(Pass):
    name = "fuse-gelu"
    description = "Fuse the erf and tanh GELU forms into Gelu (opset 20) or onnxruntime's Gelu / FastGelu"
    numerics = Numerics.TOLERANCE
    options = (PassOption("contrib", bool, False,
                          "emit onnxruntime's com.microsoft::Gelu / FastGelu at any opset (onnxruntime target)"),)
    statistics = ("fused",)

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        opset = graph.opset_version("") or 0
        contrib = bool(self.option("contrib"))
        for sub in list(graph.all_graphs()):
            for node in sub:
                if not is_op(node, "Erf", "Tanh"):
                    continue
                match = _match_erf(node) if node.op_type == "Erf" else _match_tanh(node)
                why = match if isinstance(match, str) else self._target_problem(graph, match, opset, contrib)
                if why is not None:
                    ctx.remark(f"GELU at {where(node)}: not fused, {why}")
                    continue
                assert not isinstance(match, str)
                form = "tanh" if match.tanh else "erf"
                rule = f"gelu-{form}-contrib" if contrib else f"gelu-{form}"
                if not ctx.rewrite(rule):
                    return changed
                if contrib:
                    ensure_ms_opset(graph)
                    op_type, domain, attributes = ("FastGelu" if match.tanh else "Gelu"), MS_DOMAIN, {}
                else:
                    op_type, domain = "Gelu", ""
                    attributes = {"approximate": "tanh"} if match.tanh else {}
                replace_pattern(sub, ctx, rule, match.nodes, op_type, [match.x], [match.out], attributes,
                                domain=domain, name=fused_name(node, op_type))
                ctx.stats["fused"] += 1
                changed = True
        return changed

    @staticmethod
    def _target_problem(graph: Graph, match: _Gelu, opset: int, contrib: bool) -> str | None:
        dtype = dtype_of(match.x)
        rank = _rank(match.x)
        broadcast = _broadcasting_constant(match, rank)
        if broadcast is not None:
            return broadcast
        if contrib:
            if dtype not in CONTRIB_DTYPES:
                return "x is not float32/float16 (onnxruntime's Gelu/FastGelu kernels)"
            if match.tanh and (rank is None or rank == 0):
                return "x is a scalar or of unknown rank (onnxruntime's FastGelu takes rank >= 1)"
            if graph.root.model is None:
                return f"the graph has no model to import {MS_DOMAIN} into"
            return None
        if dtype not in FLOAT_DTYPES:
            return "x is not a float tensor of known type"
        if opset < GELU_OPSET:
            return (f"ai.onnx opset {opset} has no Gelu (it needs {GELU_OPSET}); "
                    "the option fuse-gelu{contrib=true} emits onnxruntime's com.microsoft::Gelu/FastGelu instead")
        return None


def _rank(value: Value) -> int | None:
    t = value.type
    return len(t.shape) if isinstance(t, TensorType) and t.shape is not None else None


def _broadcasting_constant(match: _Gelu, rank: int | None) -> str | None:
    """Why the pattern's result is not x's shape: a constant of higher rank than x (a [1] scalar
    stand-in broadcasts a rank-0 x to [1]); None when every constant keeps x's shape."""
    for node in match.nodes:
        for operand in node.inputs:
            if operand is None or operand is match.x or operand.producer is not None:
                continue
            t = operand.type
            if not isinstance(t, TensorType) or t.shape is None:
                return f"the rank of constant %{operand.name} is unknown"
            if rank is None and len(t.shape) > 0:
                return f"x's rank is unknown and constant %{operand.name} could broadcast it"
            if rank is not None and len(t.shape) > rank:
                return f"constant %{operand.name} has rank {len(t.shape)} > x's {rank}: it broadcasts x"
    return None
