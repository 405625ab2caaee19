"""The unrolled recurrence of one LSTM / GRU / RNN node over its static sequence (legalize-rnn):

    XW  = X · W_dᵀ + bias                     one MatMul for all time steps of a direction
    x_t = Gather(XW, t)                        [batch, gates*hidden], then the cell's step
    Y   = Reshape(Concat(H_t for t, d)),  Y_h / Y_c = Reshape(Concat(last state for d))

Missing B, initial_h, initial_c and P are zeros; zero initial states are not materialized, so a
symbolic batch dim is fine. The cells' step laws are `_rnn_cells`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mlc.ir.core import Node, Value
from mlc.ir.types import Shape
from mlc.passes._rnn_cells import Step
from mlc.passes._rnn_emit import Emitter, Operand, product
from mlc.passes._rnn_plan import Plan, constant_input


def _operands(node: Node) -> list[Operand | None]:
    """The eight inputs, constants as numpy arrays (their preparation folds)."""
    found: list[Operand | None] = []
    for value in list(node.inputs) + [None] * (8 - len(node.inputs)):
        array = constant_input(value)
        found.append(array if array is not None else value)
    return found


def direction_weights(e: Emitter, p: Plan, inputs: Sequence[Operand | None], d: int) -> dict[str, Any]:
    """Per-direction weights: transposed W and R, folded biases, peepholes, initial states."""
    hidden, width = p.hidden, p.gates * p.hidden
    w, r, bias = inputs[1], inputs[2], inputs[3]
    assert w is not None and r is not None
    found: dict[str, Any] = {
        "WT": e.transpose(e.gather(w, d, 0, (width, p.input_size)), (p.input_size, width)),
        "RT": e.transpose(e.gather(r, d, 0, (width, hidden)), (hidden, width)),
        "in_bias": None, "rec_bias": None,
    }
    if bias is not None:
        wb, rb = e.split(e.gather(bias, d, 0, (2 * width,)), [width, width], 0)
        if p.op == "GRU" and p.linear_before_reset:
            found["in_bias"], found["rec_bias"] = wb, rb  # Rb_h sits inside r ⊙ (...)
        else:
            found["in_bias"] = e.add(wb, rb)
    if p.op == "GRU" and not p.linear_before_reset:
        rzr, rh = e.split(found["RT"], [2 * hidden, hidden], 1)  # r ⊙ H comes before the h-gate MatMul
        found["RzrT"], found["RhT"] = rzr, rh
    state_axis = 0 if p.layout == 0 else 1
    for key, index in (("h0", 5), ("c0", 6)):
        initial = inputs[index] if index == 5 or p.op == "LSTM" else None
        found[key] = None if initial is None else e.gather(initial, d, state_axis, (p.batch, hidden))
    peepholes = inputs[7] if p.op == "LSTM" else None
    found["P"] = None if peepholes is None else e.split(e.gather(peepholes, d, 0, (3 * hidden,)), [hidden] * 3, 0)
    return found


def stack(e: Emitter, p: Plan, states: Sequence[Value], seq: int | None) -> Value:
    """[batch, hidden] states (time-major, then direction) -> Y ([seq,] dirs, batch, hidden) in the layout."""
    dirs, hidden = len(p.directions), p.hidden
    batch_dim = p.batch if isinstance(p.batch, int) else -1
    steps = () if seq is None else (seq,)
    if p.layout == 0:
        joined_shape: Shape = (product(len(states), p.batch), hidden)
        target = [*steps, dirs, batch_dim, hidden]
        final: Shape = (*steps, dirs, p.batch, hidden)
        axis = 0
    else:
        joined_shape = (p.batch, len(states) * hidden)
        target = [batch_dim, *steps, dirs, hidden]
        final = (p.batch, *steps, dirs, hidden)
        axis = 1
    joined = states[0] if len(states) == 1 else e.op("Concat", list(states), joined_shape, {"axis": axis})
    return e.op("Reshape", [joined, np.asarray(target, dtype=np.int64)], final)


def unroll(e: Emitter, p: Plan, node: Node, step: Step, needed: Sequence[bool]) -> list[Value | None]:
    """New values for the outputs Y, Y_h, Y_c (None where not needed)."""
    inputs = _operands(node)
    x = inputs[0]
    assert x is not None
    width = p.gates * p.hidden
    time_axis = 0 if p.layout == 0 else 1
    projected_shape: Shape = (p.seq, p.batch, width) if p.layout == 0 else (p.batch, p.seq, width)
    outputs: list[list[Value]] = []  # per direction, H by time index
    last_h: list[Value] = []
    last_c: list[Value] = []
    for d, backwards in enumerate(p.directions):
        weights = direction_weights(e, p, inputs, d)
        projected: Operand = e.matmul(x, weights["WT"], projected_shape)
        if weights["in_bias"] is not None:
            projected = e.add(projected, weights["in_bias"])
        h: Operand | None = weights["h0"]
        c: Operand | None = weights["c0"]
        by_time: dict[int, Value] = {}
        for t in (reversed(range(p.seq)) if backwards else range(p.seq)):
            x_t = e.gather(projected, t, time_axis, (p.batch, width))
            state, c = step(e, p, x_t, h, c, weights, p.activations[d])
            by_time[t] = h = state
        outputs.append([by_time[t] for t in range(p.seq)])
        last_h.append(by_time[0 if backwards else p.seq - 1])
        if isinstance(c, Value):
            last_c.append(c)
    results: list[Value | None] = [None, None, None]
    if needed[0]:
        results[0] = stack(e, p, [outputs[d][t] for t in range(p.seq) for d in range(len(p.directions))], p.seq)
    if needed[1]:
        results[1] = stack(e, p, last_h, None)
    if len(needed) > 2 and needed[2]:
        results[2] = stack(e, p, last_c, None)
    return results


__all__ = ["direction_weights", "stack", "unroll"]
