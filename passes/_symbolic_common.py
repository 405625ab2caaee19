"""What the families of op shape rules (`mlc.passes._symbolic_*`) share.

Each family module keeps its own table, op type -> rule, filled by `registrar(table)` used as a
decorator; `mlc.passes._symbolic` merges the tables into the one `ShapeInfo` reads. The helpers
read operands and axes the way every rule must (an optional input may be absent, axes are an
attribute before opset 13 and an input after) and hand known elements to numpy as a grid, so that
a rule can index, transpose and broadcast them as the op would.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from mlc.ir.core import Node, Value
from mlc.ir.shape_analysis import ShapeAnalysis, ShapeRule
from mlc.ir.symbolic_shapes import Elems, static


def registrar(table: dict[str, ShapeRule]) -> Callable[..., Callable[[ShapeRule], ShapeRule]]:
    """A decorator factory: `@rule("Op", ...)` enters the function in `table` for those ops."""
    def rule(*ops: str) -> Callable[[ShapeRule], ShapeRule]:
        def register(fn: ShapeRule) -> ShapeRule:
            for op in ops:
                table[op] = fn
            return fn
        return register
    return rule


def input_at(node: Node, i: int) -> Value | None:
    return node.inputs[i] if i < len(node.inputs) else None


def axes_of(info: ShapeAnalysis, node: Node, index: int) -> list[int] | None:
    """Axes from the attribute (older opsets) or the input `index` (a constant)."""
    if "axes" in node.attributes:
        return [int(a) for a in node.attr("axes")]
    value = input_at(node, index)
    if value is None:
        return None
    return info.ints(value)


def norm_axis(axis: int, rank: int) -> int:
    axis = axis + rank if axis < 0 else axis
    if not 0 <= axis < rank:
        raise ValueError(f"axis {axis} out of range for rank {rank}")
    return axis


def elem_grid(info: ShapeAnalysis, value: Value | None) -> np.ndarray | None:
    """A value's known elements as a numpy object array of its (static) shape, to index,
    transpose and broadcast as the op would."""
    elems, dims = info.elems(value), static(info.shape(value))
    if elems is None or dims is None or math.prod(dims) != len(elems):
        return None
    grid = np.empty(len(elems), dtype=object)
    grid[:] = list(elems)
    return grid.reshape(dims)


def flat_elems(grid: np.ndarray) -> Elems:
    return tuple(grid.reshape(-1).tolist())


__all__ = ["axes_of", "elem_grid", "flat_elems", "input_at", "norm_axis", "registrar"]
