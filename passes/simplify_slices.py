"""Slice, Concat and Split chains that only move data around, shortened (each line is a rule).

    slice-noop       Slice(x) whose every sliced axis runs over the whole dim with step 1, where a
                     bound is computed (`x[:, :x.size(1)]`): the end is the dim itself -> x
    concat-slices    Concat(..., Slice(x, a, b), Slice(x, b, c), ...) along the sliced axis, each
                     Slice read only there                   -> Concat(..., Slice(x, a, c), ...)
                     (x itself where the slices cover the whole dim and nothing else is concatenated)
    split-concat     Concat(..., o_i, o_i+1, ..., o_j, ...) of consecutive outputs of one Split
                     along its axis, each read only there    -> a Slice of the Split's input
                     (the input itself for all the outputs and nothing else)
    slice-slice      Slice(Slice(x, s1, e1), s2, e2), step 1, non-negative constant bounds
                                                             -> Slice(x, s1 + s2, min(e1, s1 + e2))
                     (on different axes, any constant bounds and steps: one Slice with both), the
                     inner Slice read only by Slices that all merge with it: swin's patch merging
                     x[:, 0::2, 1::2] and its three siblings share the row Slices
    concat-concat    Concat(..., Concat(a, b), ...) on the same axis, the inner Concat read only
                     by the outer one                        -> Concat(..., a, b, ...)
                     (the sizes of a Resize: Concat(Slice(Shape(y), 0, 2), Concat(h, w)))
    concat-slices    also counts Unsqueeze(Gather(x, k, axis=a), [a]), k a constant scalar, as
                     x's rows [k, k+1) along a: Concat(Unsqueeze(Gather(s, 2)), Unsqueeze(Gather(
                     s, 3))) -> Slice(s, 2, 4) (one such row alone -> Slice(s, k, k+1) where its
                     Gather goes with it)
    concat-shapes    Concat(Shape(x, a, b), Shape(x, b, c))  -> Shape(x, a, c)
    slice-shape      Slice(Shape(x), a, b), step 1, constant bounds, the Shape read only there
                     -> Shape(x, start=a, end=b)

Shape takes `start` and `end` from opset 15 on: before, the two Shape rules only make whole
shapes. The Gather and Shape rules are what the TorchScript and dynamo exporters write for
`F.interpolate(x, size=y.shape[2:])`: the sizes vector becomes one Concat of two Shapes.

Bounds are compared symbolically (`mlc.passes._symbolic`): slices of `x[:, :n]` and `x[:, n:]`
are adjacent for a computed n, and a bound equal to the dim is the dim's end. A Slice bound is
clamped to [0, dim]: two slices are adjacent only where their clamped bounds provably meet.
Constant slices are left to fold-constants. What becomes unused is left to `dce`, but for
the pieces of a Shape a Concat rewrite replaces: they go at once, so that the Shape is left to
the new Slice alone (and slice-shape applies).

The analysis of a graph is built once, when the pass enters it, and only where a candidate is
(`mlc.passes._slice_bounds`); the Slice rules are `mlc.passes._slice_rules`, the Concat rule
`mlc.passes._concat_rules` (its plan `_concat_plan`, the pieces it merges `_concat_pieces`).
"""

from __future__ import annotations

from mlc.pass_api import Numerics, register_pass
from mlc.passes._concat_rules import ConcatRule
from mlc.passes._slice_bounds import SliceShapes
from mlc.passes._slice_rules import SliceNoop, SliceSlice
from mlc.passes._slice_shape_rule import SliceShape
from mlc.rewrite import Rule, RulePass


@register_pass
class SimplifySlices(RulePass):
    name = "simplify-slices"
    description = "Shorten Slice/Concat/Split chains: full Slices, Concats of adjacent Slices or of Split outputs"
    numerics = Numerics.EXACT
    statistics = ("slices_removed", "concats_simplified", "concats_spliced", "slices_merged")

    def rule_set(self) -> tuple[Rule, ...]:
        shapes = SliceShapes()  # one run's analyses, shared by the rules
        return SliceNoop(shapes), SliceSlice(shapes), SliceShape(shapes), ConcatRule(shapes)
