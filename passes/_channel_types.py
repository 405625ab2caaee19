"""The vocabulary of the channel analysis (`_channel_groups`): channel spaces, their layouts along
a value's channel axis, the rewrite actions the analysis records for `_channel_surgery`, the
groups of spaces pruned together, the op families it follows, and the shape queries it asks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mlc.ir.core import Node, Value
from mlc.ir.types import TensorType

UNARY = frozenset({
    "Relu", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh",
    "Erf", "Gelu", "Mish", "Softplus", "Softsign", "ThresholdedRelu", "Abs", "Neg", "Exp", "Log", "Sqrt",
    "Reciprocal", "Floor", "Ceil", "Round", "Sign", "Sin", "Cos", "Identity", "Dropout", "Cast",
})
POOLS = frozenset({"MaxPool", "AveragePool", "LpPool", "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"})
ELEMENTWISE = frozenset({"Add", "Sub", "Mul", "Div", "Sum", "Max", "Min", "Mean", "Pow"})
REDUCE = frozenset({"ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum", "ReduceL1", "ReduceL2"})


@dataclass
class Space:
    """Channels created by one source layer (`source`), or by an operand no prunable layer
    produces (`source` None, always blocked)."""

    index: int
    count: int
    source: Node | None
    weight: tuple[Node, int, int] | None = None  # (node, input, axis) of the source's weight
    blocked: str | None = None  # why its group keeps every channel (a clause: "its channels ...")


@dataclass(frozen=True)
class Layout:
    """How channel spaces lie along a value's channel axis."""

    spaces: tuple[int, ...]
    axis: int  # non-negative, of a value of rank `rank`
    rank: int
    repeat: int = 1  # consecutive elements per channel on the axis


@dataclass(frozen=True)
class SliceConstant:
    """Slice the constant input `input` of `node` along `axis` to the channels `layout` keeps.
    role: "out" (a source's weight), "bias", "in" (a consumer's weight), "param" (per channel)."""

    node: Node
    input: int
    axis: int
    layout: Layout
    role: str


@dataclass(frozen=True)
class SetGroup:
    """A depthwise Conv's `group` becomes the number of channels `layout` keeps."""

    node: Node
    layout: Layout


@dataclass(frozen=True)
class ReshapeTarget:
    """Entry `position` of a Reshape's constant target holds the channel count of `layout`."""

    node: Node
    position: int
    layout: Layout


Action = SliceConstant | SetGroup | ReshapeTarget


@dataclass
class Group:
    """Spaces that lose the same channels, or none (`blocker`: the space that blocks them)."""

    spaces: list[Space]
    count: int
    blocker: Space | None = None
    sources: list[Space] = field(default_factory=list)


def rank_of(value: Value | None) -> int | None:
    if value is None or not isinstance(value.type, TensorType) or value.type.shape is None:
        return None
    return len(value.type.shape)


def dim_of(value: Value | None, axis: int) -> int | None:
    """Dim `axis` of the value's type when it is a known int."""
    if value is None or not isinstance(value.type, TensorType) or value.type.shape is None:
        return None
    shape = value.type.shape
    return shape[axis] if 0 <= axis < len(shape) and isinstance(shape[axis], int) else None  # type: ignore[return-value]


def static_tail(value: Value | None, start: int) -> int | None:
    """The product of the value's dims from `start` on, when they are all known."""
    if value is None or not isinstance(value.type, TensorType) or value.type.shape is None:
        return None
    product = 1
    for d in value.type.shape[start:]:
        if not isinstance(d, int):
            return None
        product *= d
    return product


__all__ = ["ELEMENTWISE", "POOLS", "REDUCE", "UNARY", "Action", "Group", "Layout", "ReshapeTarget", "SetGroup",
           "SliceConstant", "Space", "dim_of", "rank_of", "static_tail"]
