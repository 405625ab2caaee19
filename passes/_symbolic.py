"""Symbolic shapes and shape values, shared by `infer-shapes`, `simplify-shapes` and `simplify-slices`.

`ShapeInfo(graph)` is the IR layer's `ShapeAnalysis` (`mlc.ir.shape_analysis`: dims as canonical
polynomials over dim names, `mlc.ir.symbolic_dims`; declared types reconciled with derived dims,
`mlc.ir.declared_dims`) with the standard ops' shape rules, which live here in the passes layer
by family (`mlc.passes._symbolic_elementwise`, `_layout`, `_slicing`, `_values`, `_nn`,
`_windows`: the Slice rule reads `mlc.passes._slicing`). This module is their one table, and the
one place the analysis is imported from: every name it offered before the split still is.

The rules assume a valid model: every op's inputs have shapes the op accepts (so in
`Add(a[batch], b[64])` batch is 1 or 64 and the result is 64), and dims are never negative.
"""

from __future__ import annotations

from collections.abc import Mapping

from mlc.ir.shape_analysis import ShapeAnalysis, ShapeResult, ShapeRule, first_sources
from mlc.ir.symbolic_dims import ONE, ZERO, Expr, Mono
from mlc.ir.symbolic_shapes import (
    INT_DTYPES,
    MAX_ELEMENTS,
    Elems,
    Shape,
    as_int,
    broadcast,
    elems_array,
    known_count,
    product,
    static,
)
from mlc.passes._symbolic_elementwise import RULES as ELEMENTWISE_RULES
from mlc.passes._symbolic_layout import RULES as LAYOUT_RULES
from mlc.passes._symbolic_layout import reshape_dims
from mlc.passes._symbolic_nn import RULES as NN_RULES
from mlc.passes._symbolic_slicing import HUGE, slice_range
from mlc.passes._symbolic_slicing import RULES as SLICING_RULES
from mlc.passes._symbolic_values import RULES as VALUE_RULES
from mlc.passes._symbolic_windows import RULES as WINDOW_RULES

SHAPE_RULES: Mapping[str, ShapeRule] = {**ELEMENTWISE_RULES, **NN_RULES, **LAYOUT_RULES, **SLICING_RULES,
                                        **VALUE_RULES, **WINDOW_RULES}

Result = ShapeResult  # the names these had before the split
Rule = ShapeRule


class ShapeInfo(ShapeAnalysis):
    """Symbolic shapes and shape values of a graph's values, by the standard ops' rules."""

    rules = SHAPE_RULES


__all__ = ["HUGE", "INT_DTYPES", "MAX_ELEMENTS", "ONE", "SHAPE_RULES", "ZERO", "Elems", "Expr", "Mono", "Result",
           "Rule", "Shape", "ShapeInfo", "as_int", "broadcast", "elems_array", "first_sources", "known_count",
           "product", "reshape_dims", "slice_range", "static"]
