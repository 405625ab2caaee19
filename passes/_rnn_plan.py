"""Whether an LSTM / GRU / RNN node can be unrolled, and how: the checks of legalize-rnn, made
before any node is emitted, as a `Plan` or the reason the node stays.

Left alone: dynamic sequence length, a `sequence_lens` that is not a constant equal to the full
length for every batch item, activations outside the spec's list (or without the alpha/beta
runtimes disagree on), element types other than f16/f32/f64, and malformed nodes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mlc.ir.core import Graph, Node, Value
from mlc.ir.dtypes import DType
from mlc.ir.printer import format_type
from mlc.ir.types import Dim, TensorType
from mlc.passes._match_basics import const_array
from mlc.passes._rnn_activations import DEFAULT_ACTIVATIONS, Activation, parse_activations, text

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
_ACTIVATION_COUNT = {"LSTM": 3, "GRU": 2, "RNN": 1}
_BACKWARDS = {"forward": (False,), "reverse": (True,), "bidirectional": (False, True)}
_FLOATS = (DType.FLOAT, DType.FLOAT16, DType.DOUBLE)


@dataclass(frozen=True)
class Plan:
    """Everything the unrolling needs, checked before any node is made."""

    op: str
    opset: int
    dtype: DType
    seq: int
    batch: Dim
    input_size: Dim
    hidden: int
    directions: tuple[bool, ...]  # per direction: runs backwards in time
    layout: int
    clip: float | None
    activations: tuple[tuple[Activation, ...], ...]  # per direction
    linear_before_reset: bool
    input_forget: bool

    @property
    def gates(self) -> int:
        return GATES[self.op]


def constant_input(value: Value | None) -> np.ndarray | None:
    """The values of a constant input (initializer or Constant node), or None."""
    return const_array(value, constant_nodes=True)


def _static_shape(value: Value | None) -> tuple[Dim, ...] | None:
    if value is None or not isinstance(value.type, TensorType) or value.type.shape is None:
        return None
    return value.type.shape


def _shape_conflict(expected: Sequence[Dim], actual: Sequence[Dim] | None) -> bool:
    """True when a known dim of `actual` contradicts a known dim of `expected`."""
    if actual is None:
        return False
    if len(actual) != len(expected):
        return True
    return any(isinstance(e, int) and isinstance(a, int) and e != a for e, a in zip(expected, actual, strict=True))


def _hidden_size(node: Node, r: Value) -> int | str:
    hidden = node.attr("hidden_size")
    if hidden is None:
        r_shape = _static_shape(r)
        hidden = r_shape[2] if r_shape is not None and len(r_shape) == 3 else None
        if not isinstance(hidden, int):
            return "hidden_size is not given and R's shape does not tell it"
    return int(hidden) if int(hidden) > 0 else f"hidden_size={int(hidden)}"


def _shape_problem(op: str, inputs: Sequence[Value | None], dtype: DType, directions: int, batch: Dim,
                   input_size: Dim, hidden: int, layout: int) -> str | None:
    """Why an input's known shape contradicts X's and hidden_size, or None."""
    width = GATES[op] * hidden
    state = (directions, batch, hidden) if layout == 0 else (batch, directions, hidden)
    expected_shapes: dict[int, tuple[Dim, ...]] = {
        1: (directions, width, input_size), 2: (directions, width, hidden), 3: (directions, 2 * width),
        7: (directions, 3 * hidden), 5: state, 6: state}
    for index, expected in expected_shapes.items():
        value = inputs[index]
        if value is None or (index in (6, 7) and op != "LSTM"):
            continue
        if _shape_conflict(expected, _static_shape(value)):
            wanted = format_type(TensorType(dtype, expected))
            return f"input %{value.name} is {format_type(value.type)}, expected {wanted}"
    return None


def _lengths_problem(sequence_lens: Value | None, seq: int) -> str | None:
    if sequence_lens is None:
        return None
    lengths = constant_input(sequence_lens)
    if lengths is None:
        return f"sequence_lens %{sequence_lens.name} is not a constant (padded batches are not unrolled)"
    if lengths.size == 0 or not np.all(lengths == seq):
        return f"sequence_lens {lengths.reshape(-1).tolist()} is not the full length {seq} for every batch item"
    return None


def plan_recurrence(node: Node, graph: Graph) -> Plan | str:
    """The unrolling plan, or the reason the node stays."""
    op = node.op_type
    opset = graph.opset_version("")
    if opset is None:
        return "the model's ai.onnx opset is unknown"
    if opset < 7:
        return f"ai.onnx opset {opset} predates the {op}-7 semantics this pass implements"
    inputs = list(node.inputs) + [None] * (8 - len(node.inputs))
    x, w, r = inputs[0], inputs[1], inputs[2]
    if x is None or w is None or r is None:
        return "X, W or R is missing"
    if not isinstance(x.type, TensorType) or x.type.shape is None or len(x.type.shape) != 3:
        return f"X has no known rank-3 shape ({format_type(x.type)})"
    x_shape, dtype = x.type.shape, x.type.dtype
    if dtype not in _FLOATS:
        return f"element type {dtype.short_name} is not f16, f32 or f64"
    for other in inputs[1:4] + inputs[5:8]:
        if other is not None and isinstance(other.type, TensorType) and other.type.dtype != dtype:
            return f"input %{other.name} is {other.type.dtype.short_name}, X is {dtype.short_name}"
    layout = int(node.attr("layout", 0))
    if layout not in (0, 1):
        return f"layout={layout} is neither 0 nor 1"
    seq, batch, input_size = x_shape[layout], x_shape[1 - layout], x_shape[2]
    if not isinstance(seq, int):
        return f"the sequence length is not static (X is {format_type(x.type)})"
    if seq <= 0:
        return "the sequence is empty"
    direction = text(node.attr("direction", "forward"))
    if direction not in _BACKWARDS:
        return f"direction {direction!r} is unknown"
    backwards = _BACKWARDS[direction]
    hidden = _hidden_size(node, r)
    if isinstance(hidden, str):
        return hidden
    why = (_shape_problem(op, inputs, dtype, len(backwards), batch, input_size, hidden, layout)
           or _lengths_problem(inputs[4], seq))
    if why is not None:
        return why
    activations = parse_activations(node, _ACTIVATION_COUNT[op], len(backwards))
    if isinstance(activations, str):
        return activations
    clip = node.attr("clip")
    if clip is not None and not float(clip) > 0:
        return f"clip={clip} is not positive"
    return Plan(op=op, opset=opset, dtype=dtype, seq=seq, batch=batch, input_size=input_size, hidden=hidden,
                directions=backwards, layout=layout, clip=None if clip is None else float(clip),
                activations=activations, linear_before_reset=bool(node.attr("linear_before_reset", 0)),
                input_forget=bool(node.attr("input_forget", 0)))


def default_recurrence(node: Node) -> bool:
    """True when the node uses the default activations and has no sequence_lens (what `keep_ops`
    leaves to a backend's kernel)."""
    if len(node.inputs) > 4 and node.inputs[4] is not None:
        return False
    given = node.attr("activations")
    if given is None:
        return True
    directions = len(_BACKWARDS.get(text(node.attr("direction", "forward")), (False,)))
    defaults = [n.lower() for n in DEFAULT_ACTIVATIONS[node.op_type]] * directions
    return [text(n).lower() for n in given] == defaults


__all__ = ["GATES", "Plan", "constant_input", "default_recurrence", "plan_recurrence"]
