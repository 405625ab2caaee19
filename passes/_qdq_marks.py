"""What quantize-qdq's placement decides, as data: the op families it quantizes, and the marks it
leaves for the rewrite (`ActMark` a float tensor that gets a QDQ pair, `WeightMark` a constant
weight stored as int8, `BiasMark` a bias stored as int32).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mlc.ir.core import Node, Value
from mlc.ir.dtypes import DType
from mlc.ir.types import TensorType
from mlc.passes._quant_math import QParams

WEIGHTED = ("Conv", "ConvTranspose", "Gemm", "MatMul")
OWN_RANGES = ("Add", "Concat", "GlobalAveragePool")
SHARING = ("MaxPool", "AveragePool", "Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze")
REMOVABLE = ("Relu", "Clip")
CANDIDATES = frozenset(WEIGHTED + OWN_RANGES + SHARING + REMOVABLE)
QDQ_OPSET = 13


def option_names(text: str) -> set[str]:
    return {part.strip() for part in text.split("+") if part.strip()}


def is_f32(value: Value | None) -> bool:
    return value is not None and isinstance(value.type, TensorType) and value.type.dtype == DType.FLOAT


@dataclass
class ActMark:
    """A float tensor that gets a QDQ pair (or, for a constant, an integer initializer + DQ)."""

    range_key: str | None  # the table entry giving its range (None: shared or constant)
    shared_from: Value | None = None  # a layout op's output: the input's parameters
    produced: bool = False  # its producer is quantized: every reader reads the DQ
    readers: list[tuple[Node, int]] = field(default_factory=list)
    params: QParams | None = None
    constants: tuple[Value, Value] | None = None  # scale, zero point


@dataclass
class WeightMark:
    node: Node
    index: int
    axis: int | None


@dataclass
class BiasMark:
    node: Node
    index: int
    x: Value
    weight: WeightMark
    channels: int
    beta: float = 1.0


__all__ = ["CANDIDATES", "OWN_RANGES", "QDQ_OPSET", "REMOVABLE", "SHARING", "WEIGHTED", "ActMark", "BiasMark",
           "WeightMark", "is_f32", "option_names"]
