"""The activation functions of LSTM / GRU / RNN: which the spec lists, their alpha/beta, and how
each lowers to primitive ops (legalize-rnn).

`clip` bounds the inputs of the gate activations f and g, not the input of h (whose argument is
the cell state), as onnxruntime does. activation_alpha/beta are consumed in the order of the
activation list across both directions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlc.ir.core import Node, Value
from mlc.ir.dtypes import DType
from mlc.passes._rnn_emit import Emitter, Operand, shape_of

DEFAULT_ACTIVATIONS = {"LSTM": ("Sigmoid", "Tanh", "Tanh"), "GRU": ("Sigmoid", "Tanh"), "RNN": ("Tanh",)}

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
_ALPHA_OPS = {"leakyrelu": "LeakyRelu", "elu": "Elu"}


@dataclass(frozen=True)
class Activation:
    name: str  # lower case
    alpha: float
    beta: float


def text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def parse_activations(node: Node, count: int, directions: int) -> tuple[tuple[Activation, ...], ...] | str:
    """Activation functions per direction, or why they cannot be decomposed."""
    given = node.attr("activations")
    names = [text(n) for n in given] if given is not None else list(DEFAULT_ACTIVATIONS[node.op_type]) * directions
    if len(names) < count * directions:
        return f"{len(names)} activations given, {count * directions} expected"
    alphas = iter(node.attr("activation_alpha") or [])
    betas = iter(node.attr("activation_beta") or [])
    parsed: list[Activation] = []
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
        parsed.append(Activation(name.lower(), float(alpha), float(beta)))
    return tuple(tuple(parsed[d * count:(d + 1) * count]) for d in range(directions))


def clip(e: Emitter, x: Operand, bound: float | None) -> Operand:
    """x bounded to [-bound, bound] (bounds as attributes before opset 11)."""
    if bound is None:
        return x
    if e.opset < 11:
        return e.op("Clip", [x], shape_of(x), {"min": -bound, "max": bound})
    return e.op("Clip", [x, e.scalar(-bound), e.scalar(bound)], shape_of(x))


def activate(e: Emitter, act: Activation, x: Operand, bound: float | None = None) -> Value:
    """act(clip(x, bound)): the gate activations pass the node's `clip`, h passes None."""
    x = clip(e, x, bound)
    shape = shape_of(x)
    name = act.name
    if name in _UNARY_OPS:
        return e.op(_UNARY_OPS[name], [x], shape)
    if name == "hardsigmoid":
        return e.op("HardSigmoid", [x], shape, {"alpha": act.alpha, "beta": act.beta})
    if name in _ALPHA_OPS:
        return e.op(_ALPHA_OPS[name], [x], shape, {"alpha": act.alpha})
    if name == "thresholdedrelu":
        if e.opset >= 10:
            return e.op("ThresholdedRelu", [x], shape, {"alpha": act.alpha})
        above = e.op("Greater", [x, e.scalar(act.alpha)], shape, dtype=DType.BOOL)
        mask = e.op("Cast", [above], shape, {"to": int(e.dtype)})
        return e.op("Mul", [x, mask], shape)
    if name == "affine":
        return e.op("Add", [e.op("Mul", [x, e.scalar(act.alpha)], shape), e.scalar(act.beta)], shape)
    if name == "scaledtanh":
        inner = e.op("Tanh", [e.op("Mul", [x, e.scalar(act.beta)], shape)], shape)
        return e.op("Mul", [inner, e.scalar(act.alpha)], shape)
    raise AssertionError(f"activation {name} passed the checks but has no lowering")


__all__ = ["DEFAULT_ACTIVATIONS", "Activation", "activate", "clip", "parse_activations", "text"]
