"""Unroll LSTM, GRU and RNN over a static sequence length into primitive ONNX ops.

Apache TVM's ONNX frontend has no converter for the recurrent ops, so a model that contains one
cannot be compiled at all. With a static sequence length the recurrence is a fixed chain of
steps, and each step is a handful of MatMul / Add / Mul / Sigmoid / Tanh nodes:

    XW  = X · W_dᵀ + bias                     one MatMul for all time steps of a direction
    x_t = Gather(XW, t)                        [batch, gates*hidden]
    LSTM: i,o,f,c = Split(x_t + H·R_dᵀ)        ONNX gate order iofc (peepholes P in iof order)
          C = f⊙C + i⊙g(c);  H = f(o + Po⊙C)⊙h(C)
    GRU:  z,r,h (zrh order), linear_before_reset 0: h = g(x_h + (r⊙H)·R_hᵀ)
                             linear_before_reset 1: h = g(x_h + r⊙(H·R_hᵀ + Rb_h))
          H = (1-z)⊙h + z⊙H
    RNN:  H = f(x_t + H·R_dᵀ)
    Y   = Reshape(Concat(H_t for t, d)),  Y_h / Y_c = Reshape(Concat(last state for d))

Missing B, initial_h, initial_c and P are zeros; zero initial states are not materialized (the
first step just omits the recurrent terms), so a symbolic batch dim is fine. Weight slices,
transposes and bias sums of constant inputs are computed here in numpy (the weights do not
move per step); non-constant weights get Gather/Transpose/Split nodes instead. Only ops whose
signature is the same in opsets 7 to 22 are emitted, except Split (sizes as an attribute before
opset 13), Clip (bounds as attributes before opset 11) and ThresholdedRelu (an op from opset 10).

Semantics follow the ONNX spec where onnxruntime agrees with it: `clip` bounds the inputs of the
gate activations f and g (not the input of h, whose argument is the cell state), LSTM
`input_forget` couples the gates as f = 1 - i, and activation_alpha/beta are consumed in the
order of the activation list across both directions.

Left alone (with a remark): dynamic sequence length, a `sequence_lens` that is not a constant
equal to the full length for every batch item, activations outside the spec's list, Affine /
ScaledTanh / ThresholdedRelu without explicit alpha (beta) (onnxruntime uses 0 where the ONNX ops
default to 1), element types other than f16/f32/f64, and malformed nodes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np

from mlc.ir.core import Graph, Node, Value
from mlc.ir.dtypes import DType
from mlc.ir.printer import format_type
from mlc.ir.types import Dim, Shape, TensorType
from mlc.pass_api import Numerics, Pass, PassContext, PassOption, register_pass
from mlc.passes._patterns import const_array

Operand: TypeAlias = Value | np.ndarray  # an np.ndarray is a constant not yet materialized as an initializer

_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
_DEFAULT_ACTIVATIONS = {"LSTM": ("Sigmoid", "Tanh", "Tanh"), "GRU": ("Sigmoid", "Tanh"), "RNN": ("Tanh",)}
_DIRECTIONS = {"forward": 1, "reverse": 1, "bidirectional": 2}
_FLOATS = (DType.FLOAT, DType.FLOAT16, DType.DOUBLE)

# lower-case name -> (uses alpha, uses beta, default alpha, default beta). A default of None means
# the value must be given: onnxruntime falls back to 0 where the ONNX operator of that name
# defaults to 1 (ThresholdedRelu) or has no default (Affine, ScaledTanh), so any choice would
# disagree with some runtime.
_ACTIVATION_ARGS: dict[str, tuple[bool, bool, float | None, float | None]] = {
    "relu": (False, False, 0.0, 0.0),
    "tanh": (False, False, 0.0, 0.0),
    "sigmoid": (False, False, 0.0, 0.0),
    "softsign": (False, False, 0.0, 0.0),
    "softplus": (False, False, 0.0, 0.0),
    "leakyrelu": (True, False, 0.01, 0.0),
    "elu": (True, False, 1.0, 0.0),
    "hardsigmoid": (True, True, 0.2, 0.5),
    "thresholdedrelu": (True, False, None, 0.0),
    "affine": (True, True, None, None),
    "scaledtanh": (True, True, None, None),
}
_UNARY_OPS = {"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid", "softsign": "Softsign", "softplus": "Softplus"}


@dataclass(frozen=True)
class _Activation:
    name: str  # lower case
    alpha: float
    beta: float


@dataclass(frozen=True)
class _Plan:
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
    activations: tuple[tuple[_Activation, ...], ...]  # per direction
    linear_before_reset: bool
    input_forget: bool

    @property
    def gates(self) -> int:
        return _GATES[self.op]


# ===================================================================== checks
def _const_array(value: Value | None) -> np.ndarray | None:
    """The values of a constant input (initializer or Constant node), or None."""
    return const_array(value, constant_nodes=True)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


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


def _activations(node: Node, count: int, directions: int) -> tuple[tuple[_Activation, ...], ...] | str:
    """Activation functions per direction, or why they cannot be decomposed."""
    given = node.attr("activations")
    names = [_text(n) for n in given] if given is not None else list(_DEFAULT_ACTIVATIONS[node.op_type]) * directions
    if len(names) < count * directions:
        return f"{len(names)} activations given, {count * directions} expected"
    alphas = iter(node.attr("activation_alpha") or [])
    betas = iter(node.attr("activation_beta") or [])
    parsed: list[_Activation] = []
    for name in names[:count * directions]:
        args = _ACTIVATION_ARGS.get(name.lower())
        if args is None:
            return f"activation {name!r} is not supported"
        uses_alpha, uses_beta, default_alpha, default_beta = args
        alpha = next(alphas, None) if uses_alpha else 0.0
        beta = next(betas, None) if uses_beta else 0.0
        alpha = default_alpha if alpha is None else alpha
        beta = default_beta if beta is None else beta
        if alpha is None or beta is None:
            return (f"activation {name!r} has no activation_alpha/activation_beta value and runtimes disagree "
                    "on its default")
        parsed.append(_Activation(name.lower(), float(alpha), float(beta)))
    return tuple(tuple(parsed[d * count:(d + 1) * count]) for d in range(directions))


def _plan(node: Node, graph: Graph) -> _Plan | str:
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
    direction = _text(node.attr("direction", "forward"))
    if direction not in _DIRECTIONS:
        return f"direction {direction!r} is unknown"
    num_directions = _DIRECTIONS[direction]
    gates = _GATES[op]
    hidden = node.attr("hidden_size")
    if hidden is None:
        r_shape = _static_shape(r)
        hidden = r_shape[2] if r_shape is not None and len(r_shape) == 3 else None
        if not isinstance(hidden, int):
            return "hidden_size is not given and R's shape does not tell it"
    hidden = int(hidden)
    if hidden <= 0:
        return f"hidden_size={hidden}"
    expected_shapes: dict[int, tuple[Dim, ...]] = {
        1: (num_directions, gates * hidden, input_size), 2: (num_directions, gates * hidden, hidden),
        3: (num_directions, 2 * gates * hidden), 7: (num_directions, 3 * hidden),
        5: (num_directions, batch, hidden) if layout == 0 else (batch, num_directions, hidden),
        6: (num_directions, batch, hidden) if layout == 0 else (batch, num_directions, hidden),
    }
    for index, expected in expected_shapes.items():
        value = inputs[index]
        if value is None or (index in (6, 7) and op != "LSTM"):
            continue
        if _shape_conflict(expected, _static_shape(value)):
            wanted = format_type(TensorType(dtype, expected))
            return f"input %{value.name} is {format_type(value.type)}, expected {wanted}"
    sequence_lens = inputs[4]
    if sequence_lens is not None:
        lengths = _const_array(sequence_lens)
        if lengths is None:
            return f"sequence_lens %{sequence_lens.name} is not a constant (padded batches are not unrolled)"
        if lengths.size == 0 or not np.all(lengths == seq):
            return f"sequence_lens {lengths.reshape(-1).tolist()} is not the full length {seq} for every batch item"
    activations = _activations(node, {"LSTM": 3, "GRU": 2, "RNN": 1}[op], num_directions)
    if isinstance(activations, str):
        return activations
    clip = node.attr("clip")
    if clip is not None and not float(clip) > 0:
        return f"clip={clip} is not positive"
    backwards = {"forward": (False,), "reverse": (True,), "bidirectional": (False, True)}[direction]
    return _Plan(op=op, opset=opset, dtype=dtype, seq=seq, batch=batch, input_size=input_size, hidden=hidden,
                 directions=backwards, layout=layout, clip=None if clip is None else float(clip),
                 activations=activations, linear_before_reset=bool(node.attr("linear_before_reset", 0)),
                 input_forget=bool(node.attr("input_forget", 0)))


def _default_recurrence(node: Node) -> bool:
    """True when the node uses the default activations and has no sequence_lens (what `keep_ops`
    leaves to a backend's kernel)."""
    if len(node.inputs) > 4 and node.inputs[4] is not None:
        return False
    given = node.attr("activations")
    if given is None:
        return True
    directions = _DIRECTIONS.get(_text(node.attr("direction", "forward")), 1)
    defaults = [n.lower() for n in _DEFAULT_ACTIVATIONS[node.op_type]] * directions
    return [_text(n).lower() for n in given] == defaults


# ===================================================================== building
def _shape(x: Operand) -> Shape | None:
    if isinstance(x, np.ndarray):
        return tuple(int(d) for d in x.shape)
    return x.type.shape if isinstance(x.type, TensorType) else None


def _broadcast(a: Shape | None, b: Shape | None) -> Shape | None:
    """Numpy-style broadcast of two shapes (None: unknown rank)."""
    if a is None or b is None:
        return None
    rank = max(len(a), len(b))
    pa, pb = (1,) * (rank - len(a)) + tuple(a), (1,) * (rank - len(b)) + tuple(b)
    dims: list[Dim] = []
    for da, db in zip(pa, pb, strict=True):
        if da == 1:
            dims.append(db)
        elif db == 1 or da == db:
            dims.append(da)
        else:
            dims.append(da if isinstance(da, int) else db if isinstance(db, int) else None)
    return tuple(dims)


def _product(*dims: Dim) -> Dim:
    total = 1
    for dim in dims:
        if not isinstance(dim, int):
            return None
        total *= dim
    return total


class _Builder:
    """Makes the replacement nodes (typed, stamped with provenance) and folds weight preparation
    of constant operands in numpy, so that constant weights become ready-to-use initializers."""

    def __init__(self, graph: Graph, ctx: PassContext, source: Node, plan: _Plan, rule: str) -> None:
        self.graph, self.ctx, self.source, self.plan, self.rule = graph, ctx, source, plan, rule
        self.nodes: list[Node] = []
        self.constants: list[Value] = []
        self._small: dict[tuple[str, tuple[int, ...], bytes], Value] = {}
        self.hint = (source.name or source.op_type.lower()).replace("/", "_")

    # ---------------------------------------------------------------- values
    def value(self, x: Operand) -> Value:
        """Materialize a numpy operand as an initializer (small ones shared within the rewrite)."""
        if isinstance(x, Value):
            return x
        array = np.array(x, order="C")  # a copy that keeps 0-d scalars 0-d (ascontiguousarray makes them 1-d)
        key = (array.dtype.str, array.shape, array.tobytes()) if array.size <= 16 else None
        if key is not None and key in self._small:
            return self._small[key]
        made = self.graph.make_constant(array, f"{self.hint}_const")
        self.constants.append(made)
        if key is not None:
            self._small[key] = made
        return made

    def scalar(self, number: float) -> np.ndarray:
        return np.asarray(number, dtype=self.plan.dtype.numpy)

    def emit(self, op: str, inputs: Sequence[Operand | None], shapes: Sequence[Shape | None],
             attributes: dict[str, Any] | None = None, dtype: DType | None = None) -> list[Value]:
        out_type = dtype or self.plan.dtype
        outputs = [Value(self.graph.unique_name(f"{self.hint}_{op.lower()}"), TensorType(out_type, shape))
                   for shape in shapes]
        node = Node(op, [None if x is None else self.value(x) for x in inputs], outputs, attributes)
        self.ctx.created(node, [self.source], self.rule)
        self.nodes.append(node)
        return outputs

    def op(self, op: str, inputs: Sequence[Operand | None], shape: Shape | None,
           attributes: dict[str, Any] | None = None, dtype: DType | None = None) -> Value:
        return self.emit(op, inputs, [shape], attributes, dtype)[0]

    # ---------------------------------------------------------------- ops that fold
    def gather(self, x: Operand, index: int, axis: int, shape: Shape) -> Operand:
        """x[index] along `axis` (the axis goes away)."""
        if isinstance(x, np.ndarray):
            return np.take(x, index, axis=axis)
        return self.op("Gather", [x, np.asarray(index, dtype=np.int64)], shape, {"axis": axis})

    def transpose(self, x: Operand, shape: Shape) -> Operand:
        """The transpose of a matrix."""
        if isinstance(x, np.ndarray):
            return np.ascontiguousarray(x.T)
        return self.op("Transpose", [x], shape, {"perm": [1, 0]})

    def split(self, x: Operand, sizes: Sequence[int], axis: int) -> list[Operand]:
        """Cut `x` along `axis` into pieces of the given sizes (always explicit: valid in every opset)."""
        if isinstance(x, np.ndarray):
            return list(np.split(x, np.cumsum(sizes)[:-1].tolist(), axis=axis))
        shape = _shape(x)
        shapes: list[Shape | None] = []
        for size in sizes:
            if shape is None:
                shapes.append(None)
            else:
                dims = list(shape)
                dims[axis] = size
                shapes.append(tuple(dims))
        if self.plan.opset < 13:
            return list(self.emit("Split", [x], shapes, {"axis": axis, "split": list(sizes)}))
        return list(self.emit("Split", [x, np.asarray(sizes, dtype=np.int64)], shapes, {"axis": axis}))

    def binary(self, op: str, a: Operand, b: Operand) -> Operand:
        """Add / Sub / Mul with numpy broadcasting."""
        if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
            folded = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply}[op](a, b)
            return np.asarray(folded, dtype=self.plan.dtype.numpy)
        return self.op(op, [a, b], _broadcast(_shape(a), _shape(b)))

    def add(self, a: Operand, b: Operand) -> Operand:
        return self.binary("Add", a, b)

    def mul(self, a: Operand, b: Operand) -> Operand:
        return self.binary("Mul", a, b)

    def matmul(self, a: Operand, b: Operand, shape: Shape | None) -> Value:
        return self.op("MatMul", [a, b], shape)

    # ---------------------------------------------------------------- activations
    def clip(self, x: Operand) -> Operand:
        bound = self.plan.clip
        if bound is None:
            return x
        if self.plan.opset < 11:
            return self.op("Clip", [x], _shape(x), {"min": -bound, "max": bound})
        return self.op("Clip", [x, self.scalar(-bound), self.scalar(bound)], _shape(x))

    def activate(self, act: _Activation, x: Operand, *, clip: bool = True) -> Value:
        """act(clip(x)): `clip` bounds the input of the gate activations."""
        if clip:
            x = self.clip(x)
        shape = _shape(x)
        name = act.name
        if name in _UNARY_OPS:
            return self.op(_UNARY_OPS[name], [x], shape)
        if name == "hardsigmoid":
            return self.op("HardSigmoid", [x], shape, {"alpha": act.alpha, "beta": act.beta})
        if name == "leakyrelu":
            return self.op("LeakyRelu", [x], shape, {"alpha": act.alpha})
        if name == "elu":
            return self.op("Elu", [x], shape, {"alpha": act.alpha})
        if name == "thresholdedrelu":
            if self.plan.opset >= 10:
                return self.op("ThresholdedRelu", [x], shape, {"alpha": act.alpha})
            above = self.op("Greater", [x, self.scalar(act.alpha)], shape, dtype=DType.BOOL)
            mask = self.op("Cast", [above], shape, {"to": int(self.plan.dtype)})
            return self.op("Mul", [x, mask], shape)
        if name == "affine":
            return self.op("Add", [self.op("Mul", [x, self.scalar(act.alpha)], shape), self.scalar(act.beta)], shape)
        if name == "scaledtanh":
            inner = self.op("Tanh", [self.op("Mul", [x, self.scalar(act.beta)], shape)], shape)
            return self.op("Mul", [inner, self.scalar(act.alpha)], shape)
        raise AssertionError(f"activation {name} passed the checks but has no lowering")

    # ---------------------------------------------------------------- finishing
    def prune(self, keep: Sequence[Value]) -> list[Node]:
        """The created nodes that `keep` needs, in order; the others are dropped with their constants."""
        live = {id(v) for v in keep}
        kept: list[Node] = []
        for node in reversed(self.nodes):
            if any(v is not None and id(v) in live for v in node.outputs):
                kept.append(node)
                live.update(id(v) for v in node.inputs if v is not None)
            else:
                for i in range(len(node.inputs)):
                    node.set_input(i, None)
        for constant in self.constants:
            if not constant.uses:
                self.graph.remove_initializer(constant)
        return kept[::-1]


# ===================================================================== the recurrences
class _Unroller:
    """Builds the unrolled recurrence of one LSTM / GRU / RNN node."""

    def __init__(self, b: _Builder, node: Node) -> None:
        self.b, self.node, self.plan = b, node, b.plan
        self.inputs: list[Operand | None] = []
        for value in list(node.inputs) + [None] * (8 - len(node.inputs)):
            array = _const_array(value)
            self.inputs.append(array if array is not None else value)

    def direction_weights(self, d: int) -> dict[str, Any]:
        """Per-direction weights: transposed W and R, folded biases, peepholes, initial states."""
        p, b = self.plan, self.b
        hidden, width = p.hidden, p.gates * p.hidden
        w, r, bias = self.inputs[1], self.inputs[2], self.inputs[3]
        assert w is not None and r is not None
        found: dict[str, Any] = {
            "WT": b.transpose(b.gather(w, d, 0, (width, p.input_size)), (p.input_size, width)),
            "RT": b.transpose(b.gather(r, d, 0, (width, hidden)), (hidden, width)),
            "in_bias": None, "rec_bias": None,
        }
        if bias is not None:
            wb, rb = b.split(b.gather(bias, d, 0, (2 * width,)), [width, width], 0)
            if p.op == "GRU" and p.linear_before_reset:
                found["in_bias"], found["rec_bias"] = wb, rb  # Rb_h sits inside r ⊙ (...)
            else:
                found["in_bias"] = b.add(wb, rb)
        if p.op == "GRU" and not p.linear_before_reset:
            rzr, rh = b.split(found["RT"], [2 * hidden, hidden], 1)  # r ⊙ H comes before the h-gate MatMul
            found["RzrT"], found["RhT"] = rzr, rh
        state_axis = 0 if p.layout == 0 else 1
        for key, index in (("h0", 5), ("c0", 6)):
            initial = self.inputs[index] if index == 5 or p.op == "LSTM" else None
            found[key] = None if initial is None else b.gather(initial, d, state_axis, (p.batch, hidden))
        peepholes = self.inputs[7] if p.op == "LSTM" else None
        found["P"] = None if peepholes is None else b.split(b.gather(peepholes, d, 0, (3 * hidden,)),
                                                             [hidden] * 3, 0)
        return found

    def run(self, needed: Sequence[bool]) -> list[Value | None]:
        """New values for the outputs Y, Y_h, Y_c (None where not needed)."""
        p, b = self.plan, self.b
        x = self.inputs[0]
        assert x is not None
        width = p.gates * p.hidden
        time_axis = 0 if p.layout == 0 else 1
        projected_shape: Shape = (p.seq, p.batch, width) if p.layout == 0 else (p.batch, p.seq, width)
        outputs: list[list[Value]] = []  # per direction, H by time index
        last_h: list[Value] = []
        last_c: list[Value] = []
        for d, backwards in enumerate(p.directions):
            weights = self.direction_weights(d)
            projected: Operand = b.matmul(x, weights["WT"], projected_shape)
            if weights["in_bias"] is not None:
                projected = b.add(projected, weights["in_bias"])
            h: Operand | None = weights["h0"]
            c: Operand | None = weights["c0"]
            by_time: dict[int, Value] = {}
            for t in (reversed(range(p.seq)) if backwards else range(p.seq)):
                x_t = b.gather(projected, t, time_axis, (p.batch, width))
                if p.op == "LSTM":
                    h, c = self.lstm_step(x_t, h, c, weights, p.activations[d])
                elif p.op == "GRU":
                    h = self.gru_step(x_t, h, weights, p.activations[d])
                else:
                    h = self.rnn_step(x_t, h, weights, p.activations[d])
                assert isinstance(h, Value)
                by_time[t] = h
            outputs.append([by_time[t] for t in range(p.seq)])
            last_h.append(by_time[0 if backwards else p.seq - 1])
            if isinstance(c, Value):
                last_c.append(c)
        results: list[Value | None] = [None, None, None]
        if needed[0]:
            results[0] = self.stack([outputs[d][t] for t in range(p.seq) for d in range(len(p.directions))],
                                    p.seq)
        if needed[1]:
            results[1] = self.stack(last_h, None)
        if len(needed) > 2 and needed[2]:
            results[2] = self.stack(last_c, None)
        return results

    def stack(self, states: Sequence[Value], seq: int | None) -> Value:
        """[batch, hidden] states (time-major, then direction) -> Y ([seq,] dirs, batch, hidden) in the layout."""
        p, b = self.plan, self.b
        dirs, hidden = len(p.directions), p.hidden
        batch_dim = p.batch if isinstance(p.batch, int) else -1
        steps = () if seq is None else (seq,)
        if p.layout == 0:
            joined_shape: Shape = (_product(len(states), p.batch), hidden)
            target = [*steps, dirs, batch_dim, hidden]
            final: Shape = (*steps, dirs, p.batch, hidden)
            axis = 0
        else:
            joined_shape = (p.batch, len(states) * hidden)
            target = [batch_dim, *steps, dirs, hidden]
            final = (p.batch, *steps, dirs, hidden)
            axis = 1
        joined = states[0] if len(states) == 1 else b.op("Concat", list(states), joined_shape, {"axis": axis})
        return b.op("Reshape", [joined, np.asarray(target, dtype=np.int64)], final)

    def lstm_step(self, x_t: Operand, h: Operand | None, c: Operand | None, weights: dict[str, Any],
                  acts: tuple[_Activation, ...]) -> tuple[Value, Value]:
        p, b = self.plan, self.b
        f, g, act_h = acts
        hidden = p.hidden
        gates = x_t if h is None else b.add(x_t, b.matmul(h, weights["RT"], (p.batch, 4 * hidden)))
        i_pre, o_pre, f_pre, c_pre = b.split(gates, [hidden] * 4, 1)  # ONNX order: i, o, f, c
        peep = weights["P"]  # i, o, f
        if peep is not None and c is not None:
            i_pre = b.add(i_pre, b.mul(peep[0], c))
        i_gate = b.activate(f, i_pre)
        candidate = b.activate(g, c_pre)
        new_c = b.mul(i_gate, candidate)
        if c is not None:
            if p.input_forget:
                forget: Operand = b.binary("Sub", b.scalar(1.0), i_gate)
            else:
                if peep is not None:
                    f_pre = b.add(f_pre, b.mul(peep[2], c))
                forget = b.activate(f, f_pre)
            new_c = b.add(b.mul(forget, c), new_c)
        if peep is not None:
            o_pre = b.add(o_pre, b.mul(peep[1], new_c))
        o_gate = b.activate(f, o_pre)
        new_h = b.mul(o_gate, b.activate(act_h, new_c, clip=False))  # onnxruntime does not clip C before h
        assert isinstance(new_h, Value) and isinstance(new_c, Value)
        return new_h, new_c

    def gru_step(self, x_t: Operand, h: Operand | None, weights: dict[str, Any],
                 acts: tuple[_Activation, ...]) -> Value:
        p, b = self.plan, self.b
        f, g = acts
        hidden = p.hidden
        xz, xr, xh = b.split(x_t, [hidden] * 3, 1)  # ONNX order: z, r, h
        candidate_pre: Operand
        if p.linear_before_reset:
            if h is None:
                recurrent: Operand | None = weights["rec_bias"]  # H = 0: only Rb remains
            else:
                recurrent = b.matmul(h, weights["RT"], (p.batch, 3 * hidden))
                if weights["rec_bias"] is not None:
                    recurrent = b.add(recurrent, weights["rec_bias"])
            if recurrent is None:
                z = b.activate(f, xz)
                candidate_pre = xh
            else:
                hz, hr, hh = b.split(recurrent, [hidden] * 3, -1)
                z = b.activate(f, b.add(xz, hz))
                r = b.activate(f, b.add(xr, hr))
                candidate_pre = b.add(xh, b.mul(r, hh))
        elif h is None:
            z = b.activate(f, xz)
            candidate_pre = xh  # r ⊙ 0 = 0
        else:
            hz, hr = b.split(b.matmul(h, weights["RzrT"], (p.batch, 2 * hidden)), [hidden, hidden], 1)
            z = b.activate(f, b.add(xz, hz))
            r = b.activate(f, b.add(xr, hr))
            candidate_pre = b.add(xh, b.matmul(b.mul(r, h), weights["RhT"], (p.batch, hidden)))
        candidate = b.activate(g, candidate_pre)
        new_h = b.mul(b.binary("Sub", b.scalar(1.0), z), candidate)
        if h is not None:
            new_h = b.add(new_h, b.mul(z, h))
        assert isinstance(new_h, Value)
        return new_h

    def rnn_step(self, x_t: Operand, h: Operand | None, weights: dict[str, Any],
                 acts: tuple[_Activation, ...]) -> Value:
        b = self.b
        pre = x_t if h is None else b.add(x_t, b.matmul(h, weights["RT"], (self.plan.batch, self.plan.hidden)))
        return b.activate(acts[0], pre)


# ===================================================================== the pass
@register_pass
class LegalizeRnn(Pass):
    name = "legalize-rnn"
    description = "Unroll LSTM, GRU and RNN with a static sequence length into MatMul and elementwise ops"
    numerics = Numerics.TOLERANCE
    statistics = ("lstm", "gru", "rnn", "steps", "kept")
    options = (PassOption("keep_ops", str, "",
                          "op types (LSTM, GRU, RNN; separated by , + or spaces) left alone where their "
                          "activations are the ONNX defaults and sequence_lens is absent: a backend with a loop "
                          "kernel of its own runs those faster than the unrolled steps (TVM: 8x on a 2-layer "
                          "bidirectional LSTM)"),)

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        keep = set(str(self.values["keep_ops"]).replace(",", " ").replace("+", " ").split())
        for sub in graph.all_graphs():
            for node in sub:
                if node.op_type not in _GATES or node.domain not in ("", "ai.onnx"):
                    continue
                if node.op_type in keep and _default_recurrence(node):
                    ctx.remark(f"{node.name or node.op_type}: kept for the backend's recurrence kernel (keep_ops)")
                    ctx.stats["kept"] += 1
                    continue
                plan = _plan(node, sub)
                label = node.name or node.op_type
                if isinstance(plan, str):
                    ctx.remark(f"{label}: kept, {plan}")
                    continue
                rule = node.op_type.lower()
                if not ctx.rewrite(rule):
                    return changed
                self._rewrite(sub, ctx, node, plan, rule)
                ctx.stats[rule] += 1
                ctx.stats["steps"] += plan.seq * len(plan.directions)
                changed = True
        return changed

    @staticmethod
    def _rewrite(graph: Graph, ctx: PassContext, node: Node, plan: _Plan, rule: str) -> None:
        olds = [node.outputs[i] if i < len(node.outputs) else None for i in range(3 if plan.op == "LSTM" else 2)]
        needed = [v is not None and (bool(v.uses) or v.is_graph_output) for v in olds]
        builder = _Builder(graph, ctx, node, plan, rule)
        news = _Unroller(builder, node).run(needed)
        keep = [v for v in news if v is not None]
        graph.insert_before(node, *builder.prune(keep))
        for old, new in zip(olds, news, strict=False):
            if old is not None and new is not None:
                old.replace_all_uses_with(new, replace_graph_outputs=True)
        graph.remove(node)
