"""Rewrite dynamic-shape computations into forms whose dims TVM's ONNX frontend can follow.

TVM 0.27's Relax frontend tracks symbolic dims through Shape (with start/end), Gather, Slice and
Concat of shapes, ConstantOfShape, Expand, Reshape and elementwise broadcasting. Four patterns of
real exports (dynamo and TorchScript BERT / GPT-2 / Llama masks and positions, UNet and DeepLabV3
decoders) leave it; one rule each, in the module that explains it:

    Range(0, dim, 1)           ->  positions along the dim `dim` was read from   `_tvm_shape_rules`
    Reshape(x, [.., -1, ..])   ->  the known output dim in place of -1           `_tvm_shape_rules`
    Resize on dynamic dims     ->  Gathers at the spec's coordinates             `_resize_gather`
                                   (which axes, which lengths: `_resize_plan`)
    Concat of derived dims     ->  Reshapes onto the earliest input's dims       `_tvm_concat_rule`

Where a shape element comes from is `_shape_elements`; how shape tensors are emitted, `_shape_emit`.
Only ai.onnx opset 13 and later (Shape with start/end from 15; a Slice of the Shape before). The
pass is in no `-O` pipeline; the TVM backend appends it to the pipeline of its targets.
"""

from __future__ import annotations

from mlc.ir.core import Graph
from mlc.pass_api import Numerics, PassContext, register_pass
from mlc.passes._resize_gather import ResizeGatherRule
from mlc.passes._shape_elements import elements, partial_elements
from mlc.passes._shape_emit import MIN_OPSET
from mlc.passes._tvm_concat_rule import ConcatSameDimsRule
from mlc.passes._tvm_shape_rules import RangeOverDimRule, ReshapeKnownDimRule
from mlc.rewrite import RulePass


@register_pass
class LegalizeTvmShapes(RulePass):
    name = "legalize-tvm-shapes"
    description = ("Make dynamic shapes TVM's frontend can follow: Range over a dim, Reshape -1 with a known "
                   "dim, Resize on dynamic dims as Gathers, Concat inputs on the same dims")
    numerics = Numerics.TOLERANCE
    statistics = ("range", "reshape", "resize", "concat")
    rules = (ConcatSameDimsRule(), RangeOverDimRule(), ReshapeKnownDimRule(), ResizeGatherRule())

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        opset = graph.opset_version("") or 0
        if opset < MIN_OPSET:
            ctx.remark(f"ai.onnx opset {opset}: the rewrites need opset {MIN_OPSET} or later")
            return False
        return super().run(graph, ctx)


__all__ = ["LegalizeTvmShapes", "elements", "partial_elements"]
