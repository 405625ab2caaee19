"""Slice bounds as ONNX means them, in terms Python's slicing (and numpy's, and TVM's) agree with.

ONNX clamps a Slice start into [0, dim] for a positive step and into [0, dim - 1] for a negative
one, after adding dim to a negative start. Python's `slice(start, end, step).indices(dim)` does the
same except in one case: a negative step with start < -dim, which ONNX clamps to 0 (the slice then
takes element 0) and Python to -1 (the slice is empty). onnxruntime follows ONNX; onnx's reference
evaluator, numpy and TVM's strided_slice follow Python (fuzz seed 168: Slice of a [3, 3, 1] tensor
with start -2, step -1 on the last axis: ONNX takes 1 element, the others none). Writing that start
as 0 makes every reading agree.
"""

from __future__ import annotations

from mlc.ir.core import Node


def python_start(start: int, step: int, dim: int) -> int:
    """A start that Python's slicing reads as ONNX reads `start` (for an axis of `dim` elements)."""
    return 0 if step < 0 and start < -dim else start


def slice_indices(start: int, end: int, step: int, dim: int) -> range:
    """The indices a Slice takes from an axis of `dim` elements, by ONNX's rules."""
    return range(*slice(python_start(start, step, dim), end, step).indices(dim))


def shape_range(node: Node, rank: int) -> tuple[int, int]:
    """The dims [start, end) a Shape node (opset 15's start/end attributes) takes of a rank-`rank`
    input: negative ends count from the back, both clamp into [0, rank]."""
    start, end = node.attr("start", 0), node.attr("end", rank)
    start = min(max(start + rank if start < 0 else start, 0), rank)
    return start, min(max(end + rank if end < 0 else end, 0), rank)
