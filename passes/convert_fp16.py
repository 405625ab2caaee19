"""Compute float32 tensors in float16, keeping the model's float32 interface and its numerically
sensitive work in float32. TensorRT 11 is strongly typed (no FP16 builder flag): half precision
must arrive as types and casts in the graph, which this pass writes for every backend.

    y = op(x: f32, w: f32)   ->   y = Cast<f32>(op(Cast<f16>(x), w16))     at the graph's boundary

Every node the rule below allows computes in float16: its float32 outputs become float16 and it
reads its float32 inputs in float16. A float32 constant it reads becomes a float16 initializer
(in place when only float16 nodes read it, else a float16 copy beside it), never a Cast on a
weight; a value computed in float32 (a graph input, the output of a node kept in float32) goes
through one Cast shared by all its float16 readers; a float16 value read by a float32 node or
written as a graph output goes through one Cast back. A graph output keeps its name and float32
type, so the compiled artifact is fed and read exactly like the float32 one. Casts appear only
where a float16 region meets a float32 one: a converted Cast that became Cast(f16 -> f16) is
removed, and Cast(f16 -> f32) -> Cast(f32 -> f16) is bypassed.

The rule, first match wins; each node kept gets a remark `<op> 'name': kept float32, <why>` and is
counted by category in the statistics (`kept_<category>`):

1. `option`: `keep_nodes` (node names) and `keep_ops` (op types), +-separated.
2. `unsupported`: nodes with sub-graphs (If, Loop, Scan) stay float32 with their bodies, which are
   not converted (a body's reads of outer values are served in float32); ops without a rule (other
   domains, ops in neither table of `mlc.passes._fp16_rules`) stay float32, the conservative
   default; so does a node with a tensor of unknown element type.
3. `shape`: a float node computed from Shape/Size outputs and constants alone (sizes, positions
   cast to float and back) stays float32: float16 holds integers exactly only up to 2048 (an
   11-bit significand), so sizes and positions past it would change.
4. `op`: the ops PyTorch's CUDA autocast runs in float32 (its "ops that can autocast to float32":
   layer_norm, group_norm, softmax, log_softmax, sum, prod, cumsum, norm, exp, log, pow,
   reciprocal, rsqrt, __rdiv__, softplus, cosh, sinh, tan, acos, asin). Mixed-precision training
   ran them in float32, so that is the precision the models' numbers were validated in. In ONNX:
   * LayerNormalization, GroupNormalization, InstanceNormalization (a group norm of one channel
     per group), MeanVarianceNormalization, RMSNormalization, LpNormalization: statistics
     accumulated over the normalized elements. TensorRT's own builder warns that a layer norm
     after self-attention can overflow in FP16 and advises running it in FP32
     (NVIDIA/TensorRT#2781, #2564).
   * Softmax, LogSoftmax: a sum of exponentials over an axis.
   * ReduceMean, ReduceSum, ReduceSumSquare, ReduceL1, ReduceL2, ReduceLogSum, ReduceLogSumExp,
     ReduceProd, CumSum: a float16 accumulation of N elements loses about log2(N) of its 11 bits
     and overflows past 65504. ReduceMax/Min and ArgMax/Min select, which float16 does exactly:
     converted, as are the pools (autocast runs avg_pool in float16; the range rule guards them).
   * Exp (overflows above ln 65504 = 11.09), Log (magnifies float16's 2^-10 spacing near 1, and
     gives -inf where an input flushed to 0), Pow (x^2 overflows past |x| = 256), Reciprocal and
     Div with a constant numerator (1/x overflows for |x| < 1.5e-5), Softplus, Cosh, Sinh, Tan,
     Acos, Asin. Sqrt, Erf, Tanh and Sigmoid compress their range: converted.
   * Range: its element count is computed in its own type.
5. `normalization`: the statistics of a decomposed layer norm or RMS norm (the exporters'
   ReduceMean -> Sub -> Pow -> ReduceMean -> Add -> Sqrt -> Div, the RMS norm's Pow -> ReduceMean ->
   Add -> Sqrt | Pow(-0.5) -> Div | Mul, Mul(d, d) for Pow, Reciprocal + Mul for Div) stay float32,
   as the fused LayerNormalization does: the variance is a mean of squares, which overflows for
   |d| > 256, is subnormal for |d| < 7.8e-3 and 0 for |d| < 1.7e-4, and 1/sqrt(var + eps) then
   amplifies what is left (TensorRT's warning names this very pattern). The affine part after it
   (Mul gamma, Add beta) is converted.
6. `constant`: a node reading a float32 constant that float16 cannot hold stays float32: its
   largest finite |x| exceeds `range_limit` (float16's largest finite value is 65504), or more
   than half of its nonzero values lie below float16's smallest normal 2^-14 = 6.1e-5 (subnormal:
   fewer than 10 significant bits; below 2^-25 they round to 0). `torch.finfo(float32).min`
   attention masks are what this catches; Inf and NaN convert exactly (a -inf mask stays -inf).
7. `range`: an activation whose max |x| on sample inputs exceeds `range_limit` is never held in
   float16: the node writing it and every node reading it stay float32 (a Cast to float16 for a
   reader would overflow just the same). The default limit 2^14 = 16384 leaves a 4x headroom below
   65504 for inputs larger than the samples (generated inputs are uniform in [-1, 1]; images
   normalized by ImageNet statistics reach about +-2.6), and a 4x larger tensor still fits.
   The observation is calibration's (`mlc.quantize.calibrate`: the float tensors exposed as
   outputs of one onnxruntime session with its optimizer off, `mlc.quantize.observers.MinMax`) on
   `samples` inputs made by `mlc.numerics.inputs` (seeded, at the dims the numeric checks use
   first) or on `data` (an .npz keyed by input name, a folder of .npz/.npy or random:N, as for
   calibration); a tensor holding Inf or NaN counts as infinitely large. `samples=0` without
   `data` observes nothing (remark).

Integer and bool tensors are never touched, nor are ops that only read a shape (Shape, Size, a
Cast to an integer type). Only the main graph is converted. `lossy`: values change on purpose, so
a pipeline running this pass is judged against the float32 original by the lossy gate (cosine >=
0.99 by default, `mlc.numerics.compare.LossyGate`), and compile states each output's measured max
abs/rel error in the report and in the artifact's manifest.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import replace

import numpy as np

from mlc.errors import BadInputError, MlcError
from mlc.ir.core import Graph, Node
from mlc.pass_api import Numerics, Pass, PassContext, PassOption, register_pass
from mlc.passes._fp16_rewrite import FP16Rewriter
from mlc.passes._fp16_rules import (
    DEFAULT_RANGE_LIMIT,
    Settings,
    observe_magnitudes,
    plan,
)
from mlc.passes._match_basics import label

log = logging.getLogger("mlc")
_CATEGORIES = ("option", "unsupported", "shape", "op", "normalization", "constant", "range", "budget")


def _names(text: str) -> frozenset[str]:
    return frozenset(part.strip() for part in str(text).split("+") if part.strip())


@register_pass
class ConvertFP16(Pass):
    name = "convert-fp16"
    description = "Compute in float16, keeping the float32 interface and the sensitive ops in float32"
    numerics = Numerics.LOSSY
    options = (
        PassOption("keep_ops", str, "", "op types kept in float32, +-separated (e.g. Gemm+Add)"),
        PassOption("keep_nodes", str, "", "node names kept in float32, +-separated"),
        PassOption("range_limit", float, DEFAULT_RANGE_LIMIT,
                   "largest |x| a float16 tensor may hold (constants and observed activations)"),
        PassOption("data", str, "", "sample inputs observed for activation ranges: an .npz keyed by input "
                                    "name, a folder of .npz/.npy, or random[:N] (default: generated inputs)"),
        PassOption("samples", int, 2, "generated sample inputs observed when data is not given (0: none)"),
        PassOption("seed", int, 0, "seed of the generated sample inputs"),
    )
    statistics = ("nodes_converted", "nodes_kept", *(f"kept_{c}" for c in _CATEGORIES), "constants_converted",
                  "casts_inserted", "tensors_observed")

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        limit = float(self.option("range_limit"))
        if not 0.0 < limit <= 65504.0:
            raise BadInputError(f"convert-fp16: range_limit {limit:g}: expected a value in (0, 65504]")
        settings = Settings(_names(self.option("keep_ops")), _names(self.option("keep_nodes")), limit,
                            self._observe(graph, ctx))
        decided = plan(graph, settings)
        converted: list[Node] = []
        for node in decided.converted:
            if ctx.rewrite("fp16"):
                converted.append(node)
            else:
                decided.kept[node] = ("budget", "the rewrite budget (--max-rewrites) is spent")
        for node, (category, why) in decided.kept.items():
            ctx.stats["nodes_kept"] += 1
            ctx.stats[f"kept_{category}"] += 1
            ctx.remark(f"{label(node)}: kept float32, {why}")
        if not converted:
            return False
        FP16Rewriter(graph, ctx, converted).run()
        ctx.stats["nodes_converted"] += len(converted)
        counts = Counter(category for category, _ in decided.kept.values())
        ctx.remark(f"{len(converted)} nodes compute in float16, {len(decided.kept)} stay float32"
                   + (f" ({', '.join(f'{c}: {n}' for c, n in counts.most_common())})" if counts else "")
                   + f", {ctx.stats['casts_inserted']} casts")
        return True

    def _observe(self, graph: Graph, ctx: PassContext) -> dict[str, float]:
        """Observed max |x| per tensor name (module docstring, rule 7); {} when nothing is observed."""
        data, seed = str(self.option("data")), int(self.option("seed"))
        samples: Iterable[dict[str, np.ndarray]]
        if data:
            from mlc.quantize.data import CalibrationData

            loaded = CalibrationData.load(data, graph, seed=seed)
            samples, shown = loaded.batches(16), loaded.description
        elif self.option("samples") > 0:
            from mlc.numerics.inputs import InputSpec, candidate_specs, make_inputs

            count = int(self.option("samples"))
            try:
                spec = next(candidate_specs(graph, InputSpec(seed=seed)))
                samples = [make_inputs(graph, replace(spec, seed=seed + k)) for k in range(count)]
            except MlcError as error:
                ctx.remark(f"activation ranges not observed: no inputs could be generated ({error})")
                return {}
            shown = f"{count} generated inputs (seed {seed})"
        else:
            ctx.remark("activation ranges not observed (samples=0 and no data): only the op and constant rules apply")
            return {}
        try:
            found = observe_magnitudes(graph, samples)
        except MlcError:
            raise
        except Exception as error:  # noqa: BLE001 - onnxruntime cannot run the graph: say so, keep the other rules
            first = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
            log.warning("convert-fp16: activation ranges not observed: onnxruntime cannot run the graph (%s)", first)
            ctx.remark(f"activation ranges not observed: onnxruntime cannot run the graph ({first})")
            return {}
        ctx.stats["tensors_observed"] += len(found)
        ctx.remark(f"activation ranges of {len(found)} tensors observed on {shown}")
        return found


