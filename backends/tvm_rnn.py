"""LSTM, GRU and RNN for TVM as one loop kernel each: a converter for TVM's ONNX frontend.

TVM 0.27's relax ONNX frontend has no converter for the recurrent ops (nor for Loop or Scan), and
`legalize-rnn` can unroll a recurrence only when its length is known. Here each node becomes one
TIR kernel with a serial loop over the sequence, so the sequence and batch dims stay symbolic.
Per direction, step t and batch row (all local accumulators have the static size gates*hidden,
so nothing is allocated at a symbolic size):

    XW = X_t · Wᵀ + Wb (+ Rb where it is additive)   Wᵀ transposed once, in numpy for constants
    A  = H_prev · Rᵀ (+ Rb of GRU lbr 1's h gate)     the inner loops run along the gate dim, contiguous
                                                      in Wᵀ/Rᵀ: LLVM vectorizes them (AVX-512 FMAs seen)
    LSTM  i,o,f,c: C = f⊙C + i⊙g(c), H = o⊙h(C)     (peepholes P: i,f see C_prev, o sees C)
    GRU   z,r,h:   lbr 0: h = g(x_h + (r⊙H)·R_hᵀ + Rb_h), lbr 1: h = g(x_h + r⊙(H·R_hᵀ + Rb_h));
                   H = (1-z)⊙h + z⊙H
    RNN   H = f(x + A)

The input projection is inside the kernel rather than one relax matmul for all steps: TVM's
untuned matmul made a bidirectional LSTM layer (seq 20, batch 3, input 96, hidden 48) take 1.8 ms,
the kernel with its own vectorized projection 0.58 ms. Y is written step by step and is the state
the next step reads; Y_c is updated in place; Y_h is copied from Y's last step at the end.
`layout` 1 is transposes around the kernel. Covered: forward / reverse / bidirectional, both
layouts, absent B, initial_h, initial_c, P, GRU `linear_before_reset` 0 and 1, LSTM
`input_forget`, `clip` (on the inputs of the gate activations f and g, not of h, as onnxruntime
and `legalize-rnn` do). Refused in one line (`refusal`): activations other than the ONNX
defaults, `sequence_lens` (padded batches), element types other than f16/f32/f64 (f16 is
accumulated in f32). The kernel has no GPU schedule (llvm only).

`recurrent_converters()` adds the converters to the frontend's table for the duration of one
`from_onnx` call (the frontend looks its table up through the module-level `_get_convert_map`);
the table is restored afterwards, so nothing else in the process sees it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

RECURRENT_OPS = ("LSTM", "GRU", "RNN")
_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
_DEFAULT_ACTIVATIONS = {"LSTM": ("sigmoid", "tanh", "tanh"), "GRU": ("sigmoid", "tanh"), "RNN": ("tanh",)}
_DIRECTIONS = {"forward": (False,), "reverse": (True,), "bidirectional": (False, True)}
_DTYPES = ("float16", "float32", "float64")


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def refusal(op: str, attrs: Mapping[str, Any], has_sequence_lens: bool) -> str | None:
    """Why the kernel cannot run this recurrent node (one phrase), or None. `attrs` maps attribute
    names to values (bytes or str for strings) as either mlc's IR or TVM's frontend gives them."""
    direction = _text(attrs.get("direction", "forward"))
    if direction not in _DIRECTIONS:
        return f"direction {direction!r} is unknown"
    layout = int(attrs.get("layout", 0))
    if layout not in (0, 1):
        return f"layout={layout} is neither 0 nor 1"
    given = attrs.get("activations")
    if given is not None:
        names = tuple(_text(n).lower() for n in given)
        if names != _DEFAULT_ACTIVATIONS[op] * len(_DIRECTIONS[direction]):
            return (f"activations {', '.join(_text(n) for n in given)} are not the defaults "
                    f"({', '.join(n.capitalize() for n in _DEFAULT_ACTIVATIONS[op])}), the only ones the TVM "
                    "recurrence kernel implements")
    clip = attrs.get("clip")
    if clip is not None and not float(clip) > 0:
        return f"clip={clip} is not positive"
    if has_sequence_lens:
        return "sequence_lens is given (padded batches are not supported by the TVM recurrence kernel)"
    return None


@dataclass(frozen=True)
class KernelSpec:
    """What one recurrence kernel computes; the rest (sizes) comes from its buffers."""

    op: str
    hidden: int
    backwards: tuple[bool, ...]  # per direction
    dtype: str
    clip: float | None = None
    linear_before_reset: bool = False
    input_forget: bool = False
    has_wb: bool = False
    has_rb: bool = False
    has_h0: bool = False
    has_c0: bool = False
    has_p: bool = False

    @property
    def gates(self) -> int:
        return _GATES[self.op]

    @property
    def acc_dtype(self) -> str:
        return "float64" if self.dtype == "float64" else "float32"


# ===================================================================== the kernel
def kernel_ir(spec: KernelSpec, ins: list[Any], outs: list[Any]) -> Any:
    """The TIR statement of the recurrence. ins: X [S, N, I], Wᵀ [D, I, G·H], Rᵀ [D, H, G·H], then
    Wb [D, G·H], Rb [D, G·H], H0 [D, N, H], C0 [D, N, H], P [D, 3H] where the spec has them; outs:
    Y [S, D, N, H], Y_h [D, N, H] and, for LSTM, Y_c [D, N, H]."""
    from tvm import tirx
    from tvm.script.ir_builder import IRBuilder
    from tvm.script.ir_builder import tirx as T

    hidden, width, acc_dtype = spec.hidden, spec.gates * spec.hidden, spec.acc_dtype
    given = iter(ins[3:])
    x, wt, rt = T.buffer_proxy(ins[0]), T.buffer_proxy(ins[1]), T.buffer_proxy(ins[2])
    wb = T.buffer_proxy(next(given)) if spec.has_wb else None
    rb = T.buffer_proxy(next(given)) if spec.has_rb else None
    h0 = T.buffer_proxy(next(given)) if spec.has_h0 else None
    c0 = T.buffer_proxy(next(given)) if spec.has_c0 else None
    p = T.buffer_proxy(next(given)) if spec.has_p else None
    y, yh = T.buffer_proxy(outs[0]), T.buffer_proxy(outs[1])
    yc = T.buffer_proxy(outs[2]) if spec.op == "LSTM" else None
    seq, batch, inputs = ins[0].shape[0], ins[0].shape[1], ins[0].shape[2]

    def cast(x: Any, dtype: str = acc_dtype) -> Any:
        return x if str(x.ty) == dtype else tirx.Cast(dtype, x)

    def clip(x: Any) -> Any:
        if spec.clip is None:
            return x
        bound = tirx.const(spec.clip, acc_dtype)
        return tirx.max(tirx.min(x, bound), -bound)

    def f(x: Any) -> Any:  # the gate activation (Sigmoid; Tanh for RNN)
        return tirx.tanh(clip(x)) if spec.op == "RNN" else tirx.sigmoid(clip(x))

    def g(x: Any) -> Any:  # the candidate activation (Tanh)
        return tirx.tanh(clip(x))

    one = tirx.const(1.0, acc_dtype)

    def step(d: int, t: Any, prev: Callable[[Any, Any], Any] | None) -> None:
        """One time step of direction d at time t; prev(b, k) reads H_prev (None: H_prev = 0)."""
        with T.serial(0, batch) as b:
            xw = T.buffer_proxy(T.decl_buffer([width], acc_dtype, scope="local"))  # X_t · Wᵀ + Wb
            with T.serial(0, width) as j:
                xw[j] = cast(wb[d, j]) if wb is not None else tirx.const(0.0, acc_dtype)
            with T.serial(0, inputs) as k:
                xk = cast(x[t, b, k])
                with T.serial(0, width) as j:
                    xw[j] = xw[j] + xk * cast(wt[d, k, j])
            acc = T.buffer_proxy(T.decl_buffer([width], acc_dtype, scope="local"))  # H_prev · Rᵀ + Rb
            with T.serial(0, width) as j:
                acc[j] = cast(rb[d, j]) if rb is not None else tirx.const(0.0, acc_dtype)
            # GRU lbr 0 multiplies H by r before the candidate's matmul: only z, r here
            columns = 2 * hidden if spec.op == "GRU" and not spec.linear_before_reset else width
            if prev is not None:
                with T.serial(0, hidden) as k:
                    hk = cast(prev(b, k))
                    with T.serial(0, columns) as j:
                        acc[j] = acc[j] + hk * cast(rt[d, k, j])
                if columns != width:
                    rh = T.buffer_proxy(T.decl_buffer([hidden], acc_dtype, scope="local"))
                    with T.serial(0, hidden) as k:
                        rh[k] = f(xw[hidden + k] + acc[hidden + k]) * cast(prev(b, k))
                    with T.serial(0, hidden) as k:
                        with T.serial(0, hidden) as j:
                            acc[2 * hidden + j] = acc[2 * hidden + j] + rh[k] * cast(rt[d, k, 2 * hidden + j])
            with T.serial(0, hidden) as j:
                def pre(gate: int) -> Any:
                    return xw[gate * hidden + j] + acc[gate * hidden + j]

                h_prev = cast(prev(b, j)) if prev is not None else None
                if spec.op == "LSTM":
                    assert yc is not None
                    c_prev = cast(yc[d, b, j])
                    i_pre, o_pre, f_pre = pre(0), pre(1), pre(2)
                    if p is not None:
                        i_pre = i_pre + cast(p[d, j]) * c_prev
                        f_pre = f_pre + cast(p[d, 2 * hidden + j]) * c_prev
                    i_gate = f(i_pre)
                    forget = one - i_gate if spec.input_forget else f(f_pre)
                    yc[d, b, j] = cast(forget * c_prev + i_gate * g(pre(3)), spec.dtype)
                    c_new = cast(yc[d, b, j])  # read back: an expression would read the new yc
                    if p is not None:
                        o_pre = o_pre + cast(p[d, hidden + j]) * c_new
                    y[t, d, b, j] = cast(f(o_pre) * tirx.tanh(c_new), spec.dtype)
                elif spec.op == "GRU":
                    z = f(pre(0))
                    xh = xw[2 * hidden + j]
                    if spec.linear_before_reset:
                        candidate = g(xh + f(pre(1)) * acc[2 * hidden + j])
                    else:
                        candidate = g(xh + acc[2 * hidden + j])
                    new_h = (one - z) * candidate
                    if h_prev is not None:
                        new_h = new_h + z * h_prev
                    y[t, d, b, j] = cast(new_h, spec.dtype)
                else:
                    y[t, d, b, j] = cast(f(pre(0)), spec.dtype)

    dirs = len(spec.backwards)
    with IRBuilder() as ib:
        with T.serial(0, dirs) as d:  # one frame at the top (IRBuilder keeps a single result)
            # 1 where direction d runs backwards in time: t = s forwards, seq-1-s backwards
            back = d if spec.backwards == (False, True) else int(spec.backwards[0])
            if yc is not None:
                with T.serial(0, batch) as b:
                    with T.serial(0, hidden) as j:
                        yc[d, b, j] = c0[d, b, j] if c0 is not None else tirx.const(0.0, spec.dtype)
            with T.serial(0, seq) as s:
                t = s + (seq - 1 - 2 * s) * back
                before = t - 1 + 2 * back
                with T.If(s == 0):
                    with T.Then():
                        step(d, t, None if h0 is None else (lambda b, k: h0[d, b, k]))
                    with T.Else():
                        step(d, t, lambda b, k: y[before, d, b, k])
            last = tirx.max((seq - 1) * (1 - back), 0)
            with T.serial(0, batch) as b:
                with T.serial(0, hidden) as j:
                    initial = h0[d, b, j] if h0 is not None else tirx.const(0.0, spec.dtype)
                    yh[d, b, j] = tirx.if_then_else(seq > 0, y[last, d, b, j], initial)
        return ib.get()


def emit_recurrence(bb: Any, spec: KernelSpec, operands: list[Any]) -> Any:
    """Emit the kernel through TE (`te.extern`): a call_tir whose output shapes follow the
    symbolic sequence and batch dims of X."""
    from tvm import te

    def compute(*tensors: Any) -> Any:
        x, wt = tensors[0], tensors[1]
        dirs, seq, batch = wt.shape[0], x.shape[0], x.shape[1]
        state = (dirs, batch, spec.hidden)
        shapes = [(seq, dirs, batch, spec.hidden), state] + ([state] if spec.op == "LSTM" else [])
        return te.extern(shapes, list(tensors), lambda ins, outs: kernel_ir(spec, list(ins), list(outs)),
                         name=f"{spec.op.lower()}_recurrence", dtype=[spec.dtype] * len(shapes))

    return bb.emit_te(compute, *operands, primfunc_name_hint=f"{spec.op.lower()}_recurrence")


# ===================================================================== the converter
def _constant(value: Any) -> np.ndarray | None:
    import tvm

    return value.value.numpy() if isinstance(value, tvm.ir.GenericConst) else None


def convert(op: str, bb: Any, inputs: list[Any], attrs: Mapping[str, Any]) -> Any:
    """The relax expression (a tuple Y, Y_h[, Y_c]) for one LSTM / GRU / RNN node."""
    from tvm import relax

    name = attrs.get("tvm_custom", {}).get("name") or ""
    label = f"{op} {name!r}" if name else op
    inputs = list(inputs) + [None] * (8 - len(inputs))
    x, w, r, bias, lens, h0, c0, p = inputs[:8]
    reason = refusal(op, attrs, lens is not None)
    dtype = str(x.ty.dtype)
    if reason is None and dtype not in _DTYPES:
        reason = f"element type {dtype} is not float16, float32 or float64"
    if reason is not None:
        raise ValueError(f"{label}: {reason}")
    layout = int(attrs.get("layout", 0))
    backwards = _DIRECTIONS[_text(attrs.get("direction", "forward"))]
    hidden = attrs.get("hidden_size")
    if hidden is None:
        hidden = int(r.ty.shape[2])
    hidden = int(hidden)
    width = _GATES[op] * hidden
    if op != "LSTM":
        c0 = p = None

    if layout == 1:  # [batch, seq, in] -> [seq, batch, in]; states [batch, dirs, H] -> [dirs, batch, H]
        x = bb.emit(relax.op.permute_dims(x, [1, 0, 2]))
        h0 = None if h0 is None else bb.emit(relax.op.permute_dims(h0, [1, 0, 2]))
        c0 = None if c0 is None else bb.emit(relax.op.permute_dims(c0, [1, 0, 2]))

    def transposed(weights: Any) -> Any:  # [D, rows, cols] -> [D, cols, rows], in numpy when constant
        array = _constant(weights)
        if array is not None:
            return relax.const(np.ascontiguousarray(array.transpose(0, 2, 1)), dtype)
        return bb.emit(relax.op.permute_dims(weights, [0, 2, 1]))

    wb = rb = None
    if bias is not None:
        array = _constant(bias)
        if array is not None:  # Rb folds into Wb except GRU lbr 1's h part, which r multiplies
            folded, kept = array[:, :width] + array[:, width:], np.zeros_like(array[:, width:])
            if op == "GRU" and attrs.get("linear_before_reset", 0):
                folded[:, 2 * hidden:] = array[:, 2 * hidden:width]
                kept[:, 2 * hidden:] = array[:, width + 2 * hidden:]
            wb = relax.const(np.ascontiguousarray(folded), dtype)
            rb = relax.const(np.ascontiguousarray(kept), dtype) if np.any(kept) else None
        else:
            wb = bb.emit(relax.op.strided_slice(bias, [1], [0], [width]))
            rb = bb.emit(relax.op.strided_slice(bias, [1], [width], [2 * width]))
    operands = [x, transposed(w), transposed(r)] + [v for v in (wb, rb, h0, c0, p) if v is not None]
    clip = attrs.get("clip")
    spec = KernelSpec(op=op, hidden=hidden, backwards=backwards, dtype=dtype,
                      clip=None if clip is None else float(clip),
                      linear_before_reset=bool(attrs.get("linear_before_reset", 0)),
                      input_forget=bool(attrs.get("input_forget", 0)),
                      has_wb=wb is not None, has_rb=rb is not None, has_h0=h0 is not None, has_c0=c0 is not None,
                      has_p=p is not None)
    result = emit_recurrence(bb, spec, operands)
    outputs = [bb.emit(relax.TupleGetItem(result, i)) for i in range(3 if op == "LSTM" else 2)]
    if layout == 1:  # Y [S, D, N, H] -> [N, S, D, H]; states [D, N, H] -> [N, D, H]
        outputs = [bb.emit(relax.op.permute_dims(outputs[0], [2, 0, 1, 3]))] + [
            bb.emit(relax.op.permute_dims(v, [1, 0, 2])) for v in outputs[1:]]
    return relax.Tuple(outputs)


def _converter_class(op: str) -> type:
    """A class with the frontend's converter interface (`get_converter(opset)`) for `op`."""

    class Converter:
        @classmethod
        def get_converter(cls, opset: int) -> Callable[..., Any]:
            def impl(bb: Any, inputs: list[Any], attrs: dict[str, Any], params: Any) -> Any:
                return convert(op, bb, inputs, attrs)

            return impl

    Converter.__name__ = f"{op}Recurrence"
    return Converter


@contextlib.contextmanager
def recurrent_converters() -> Iterator[None]:
    """Within the block, TVM's ONNX frontend converts LSTM, GRU and RNN with the kernel above
    (where it has its own converter for one, in a later TVM, that one is kept)."""
    from tvm.relax.frontend.onnx import onnx_frontend

    original = onnx_frontend._get_convert_map

    def extended() -> dict[str, Any]:
        table = original()
        for op in RECURRENT_OPS:
            table.setdefault(op, _converter_class(op))
        return dict(table)

    onnx_frontend._get_convert_map = extended
    try:
        yield
    finally:
        onnx_frontend._get_convert_map = original
