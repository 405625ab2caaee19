"""One time step of each recurrent cell, as primitive ops (legalize-rnn's per-op laws).

    LSTM: i,o,f,c = Split(x_t + H·R_dᵀ)        ONNX gate order iofc (peepholes P in iof order)
          C = f⊙C + i⊙g(c);  H = f(o + Po⊙C)⊙h(C)    (input_forget: f = 1 - i)
    GRU:  z,r,h (zrh order), linear_before_reset 0: h = g(x_h + (r⊙H)·R_hᵀ)
                             linear_before_reset 1: h = g(x_h + r⊙(H·R_hᵀ + Rb_h))
          H = (1-z)⊙h + z⊙H
    RNN:  H = f(x_t + H·R_dᵀ)

A zero initial state is None: the first step omits the recurrent terms. Every step has the same
signature, `(emitter, plan, x_t, H, C, weights, activations) -> (H, C)`; C is None but for LSTM.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

from mlc.ir.core import Value
from mlc.passes._rnn_activations import Activation, activate
from mlc.passes._rnn_emit import Emitter, Operand
from mlc.passes._rnn_plan import Plan

Weights: TypeAlias = Mapping[str, Any]
Step: TypeAlias = Callable[[Emitter, Plan, Operand, "Operand | None", "Operand | None", Weights,
                            tuple[Activation, ...]], tuple[Value, "Value | None"]]


def lstm_step(e: Emitter, p: Plan, x_t: Operand, h: Operand | None, c: Operand | None, weights: Weights,
              acts: tuple[Activation, ...]) -> tuple[Value, Value | None]:
    f, g, act_h = acts
    hidden = p.hidden
    gates = x_t if h is None else e.add(x_t, e.matmul(h, weights["RT"], (p.batch, 4 * hidden)))
    i_pre, o_pre, f_pre, c_pre = e.split(gates, [hidden] * 4, 1)  # ONNX order: i, o, f, c
    peep = weights["P"]  # i, o, f
    if peep is not None and c is not None:
        i_pre = e.add(i_pre, e.mul(peep[0], c))
    i_gate = activate(e, f, i_pre, p.clip)
    candidate = activate(e, g, c_pre, p.clip)
    new_c = e.mul(i_gate, candidate)
    if c is not None:
        if p.input_forget:
            forget: Operand = e.binary("Sub", e.scalar(1.0), i_gate)
        else:
            if peep is not None:
                f_pre = e.add(f_pre, e.mul(peep[2], c))
            forget = activate(e, f, f_pre, p.clip)
        new_c = e.add(e.mul(forget, c), new_c)
    if peep is not None:
        o_pre = e.add(o_pre, e.mul(peep[1], new_c))
    o_gate = activate(e, f, o_pre, p.clip)
    new_h = e.mul(o_gate, activate(e, act_h, new_c))  # onnxruntime does not clip C before h
    assert isinstance(new_h, Value) and isinstance(new_c, Value)
    return new_h, new_c


def _gru_gates(e: Emitter, p: Plan, x_t: Operand, h: Operand | None, weights: Weights,
               f: Activation) -> tuple[Operand, Operand]:
    """The update gate z and the candidate's pre-activation."""
    hidden = p.hidden
    xz, xr, xh = e.split(x_t, [hidden] * 3, 1)  # ONNX order: z, r, h
    if p.linear_before_reset:
        if h is None:
            recurrent: Operand | None = weights["rec_bias"]  # H = 0: only Rb remains
        else:
            recurrent = e.matmul(h, weights["RT"], (p.batch, 3 * hidden))
            if weights["rec_bias"] is not None:
                recurrent = e.add(recurrent, weights["rec_bias"])
        if recurrent is None:
            return activate(e, f, xz, p.clip), xh
        hz, hr, hh = e.split(recurrent, [hidden] * 3, -1)
        z = activate(e, f, e.add(xz, hz), p.clip)
        r = activate(e, f, e.add(xr, hr), p.clip)
        return z, e.add(xh, e.mul(r, hh))
    if h is None:
        return activate(e, f, xz, p.clip), xh  # r ⊙ 0 = 0
    hz, hr = e.split(e.matmul(h, weights["RzrT"], (p.batch, 2 * hidden)), [hidden, hidden], 1)
    z = activate(e, f, e.add(xz, hz), p.clip)
    r = activate(e, f, e.add(xr, hr), p.clip)
    return z, e.add(xh, e.matmul(e.mul(r, h), weights["RhT"], (p.batch, hidden)))


def gru_step(e: Emitter, p: Plan, x_t: Operand, h: Operand | None, c: Operand | None, weights: Weights,
             acts: tuple[Activation, ...]) -> tuple[Value, Value | None]:
    f, g = acts
    z, candidate_pre = _gru_gates(e, p, x_t, h, weights, f)
    candidate = activate(e, g, candidate_pre, p.clip)
    new_h = e.mul(e.binary("Sub", e.scalar(1.0), z), candidate)
    if h is not None:
        new_h = e.add(new_h, e.mul(z, h))
    assert isinstance(new_h, Value)
    return new_h, None


def rnn_step(e: Emitter, p: Plan, x_t: Operand, h: Operand | None, c: Operand | None, weights: Weights,
             acts: tuple[Activation, ...]) -> tuple[Value, Value | None]:
    pre = x_t if h is None else e.add(x_t, e.matmul(h, weights["RT"], (p.batch, p.hidden)))
    return activate(e, acts[0], pre, p.clip), None


__all__ = ["Step", "Weights", "gru_step", "lstm_step", "rnn_step"]
