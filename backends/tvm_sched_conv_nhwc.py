"""A dlight rule that schedules TVM's 2-D convolutions in NHWC (channels-last) data with HWIO weights.

Why channels-last: in NCHW the only contiguous axis of a convolution's output is its width, which
is narrow (7 columns in ResNet's last stage), unknown at compile time in exports with dynamic
image sizes, and meaningless for depthwise convolutions. In NHWC the channels are innermost: a
static count (64, 96, 512 ...), so every convolution, dense, pointwise or depthwise, gets the same
vectors over output channels, whatever the image size. `tvm_schedules.fusion_passes` converts
the model (Relax `ConvertLayout`, conv2d -> NHWC/HWIO) before legalization: the transposes land
at the model's edges (layout-agnostic ops between convolutions, elementwise and pooling, follow
the layout) and the weights' HWIO copies are constants folded at compile time, so no repacking
runs per call.

TOPI's generic convolution (`topi.nn.conv`) legalizes it to a padding block (`pad_temp`), the
block `conv2d_nhwc` / `group_conv2d_nhwc` (iterators `n, y, x, f` spatial, then `ry, rx, rc`)
and, after fusion, the epilogue blocks (bias, relu/clip, residual add, hardswish...). The
schedule:

* a tile of up to 8 output columns (6 where vectors are 256-bit: 16 registers) x up to 2 vectors
  of output channels (16 float32 lanes with AVX-512, else 8), its accumulators kept in registers
  for the whole reduction: the reduction loops `ry, rx, rc` run outside the tile, so per step the
  tile loads one input scalar per column (broadcast) and one weight vector per channel vector
  (contiguous in HWIO) and does columns x vectors fused multiply-adds. A static width gets the
  widest tile without a tail: the whole row when it is at most 8 (ResNet's 7x7 stage: one tile of
  7 columns; a 1-column tile, the largest divisor of 7 up to 6, made those convolutions 3x slower);
* the channel blocks outermost, fused with `n, y` and parallel over the cores: a block's weights
  (up to 590 KB for 512 channels 3x3) stay in the core's L2 while it computes every row; constant
  weights are packed so that each block's are contiguous (`_pack_weights`, done at compile time:
  ResNet-18 at 224x224 went from 0.31 to 0.41 of onnxruntime's speed);
* the epilogue blocks are inlined into the last one, computed at the tile and vectorized over the
  channels (the convolution's result never goes through memory; without an epilogue the tile is
  written through a `cache_write`); the accumulator's initialization is split off and vectorized;
* the padding block is a stage of its own (parallel, vectorized over channels); one that only
  copies (no padding) is inlined.

A symbolic width (exports with dynamic image sizes) cannot be cut into whole tiles as TOPI
legalizes it: the tile's columns get a bounds test, and with it the accumulators no longer stay in
registers (3-5x slower per kernel). `tvm_conv_legalize` therefore computes such convolutions over
the width rounded up to whole tiles (extra columns repeat the last one, a crop block copies the real
ones out); the rule sees a width that provably divides by the tile (`_provable_divisor`) and gives
it the full tile, the bounds test landing on the crop's stores only (ResNet-18's 64-channel 3x3 at
56x56: 4.2 -> 1.4 ms, as fast as with the width fixed). A symbolic width that was not rounded up
(TOPI's legalization) still gets a schedule: convolutions with a short reduction (at most
`SHORT_REDUCTION` multiply-adds per output) a 1-column tile (no test) with up to 4 channel vectors,
longer ones 6 columns and the test. Fixing the input shapes (`--input-shape`) still saves the
wasted columns, the crop and the shape arithmetic.
Kernels it does not take (None): anything but one such convolution block with
spatial blocks around it, grouped convolutions other than depthwise (their channel index is not
contiguous), a symbolic channel count or kernel size, fewer than 4 lanes' worth of output channels
per vector (the first convolution's 3 input channels are fine: only output channels are vectorized).
"""

from __future__ import annotations

from typing import Any

from tvm import s_tir, sym, tirx
from tvm.target import Target

from mlc.backends.tvm_sched_conv import ConvScheduleRule, is_copy, one_reduction, vector_lanes

_CONV_BLOCKS = ("conv2d_nhwc", "group_conv2d_nhwc")
# Reduction length (kernel height x width x input channels per group) up to which a convolution
# with a symbolic width gets a one-column tile (see the module doc).
SHORT_REDUCTION = 256


COLUMNS = 8  # output columns per tile at most with 32 vector registers (AVX-512)


def tile_columns(target: Target, columns: int = COLUMNS) -> int:
    """Output columns per tile at most on `target`: `columns` with 32 vector registers (AVX-512),
    3/4 of it with 16 (AVX2: 6 columns x 2 vectors of accumulators + 2 weight vectors + 1 broadcast)."""
    return columns if vector_lanes(target) == 16 else columns * 3 // 4


def _provable_divisor(extent: Any, most: int) -> int:
    """The largest tile width up to `most` that provably divides a symbolic `extent` (one that
    `tvm_conv_legalize` rounded up to whole tiles), else 1."""
    analyzer = sym.Analyzer()
    return next((c for c in range(most, 1, -1) if analyzer.can_prove(tirx.floormod(extent, c) == 0)), 1)


def _int(expr: Any) -> int | None:
    return int(expr) if isinstance(expr, tirx.IntImm) else None


def _largest_divisor(value: int, most: int) -> int:
    return max(d for d in range(1, min(value, most) + 1) if value % d == 0)


class Conv2dNHWCRule(ConvScheduleRule):
    """Schedules a PrimFunc whose one reduction is a channels-last 2-D convolution (module doc)."""

    def __init__(self, columns: int = 8, vectors: int = 2, dynamic_columns: int = 6) -> None:
        self.columns = columns  # output columns per tile at most (unrolled), 3/4 of it on 16-register ISAs
        self.vectors = vectors  # channel vectors per tile at most (unrolled)
        self.dynamic_columns = dynamic_columns  # columns per tile when the width is symbolic

    @staticmethod
    def _pack_weights(sch: s_tir.Schedule, func: tirx.PrimFunc, block: Any, block_channels: int) -> None:
        """Weights HWIO -> (O / block, H, W, I, block): one channel block's weights contiguous.

        In HWIO a block of 32 output channels is 128 bytes out of every 2 KB (512 channels): its
        4608 steps touch 2304 pages, and the TLB, not the arithmetic, set the pace (ResNet-18's
        512-channel convolutions ran at a quarter of its 64-channel ones' rate). Only for a weight
        the model holds as a constant (TVM's `layout_free_buffers`, from
        `AttachAttrLayoutFreeBuffers`): the packing block is marked as a layout-rewrite
        preprocess, which `SplitLayoutRewritePreproc` moves into a function of its own and
        `FoldConstant` runs at compile time (`tvm_schedules.relax_pipeline`)."""
        free = func.attrs.get("layout_free_buffers") if func.attrs is not None else None
        if not free:
            return
        weight = sch.get(block).reads[1].source
        index = next((i for i, param in enumerate(func.params) if param.same_as(weight)), None)
        if index is None or index not in [int(i) for i in free] or len(weight.shape) != 4:
            return
        packed = sch.cache_read(block, 1, "global")
        sch.annotate(packed, "meta_schedule.layout_rewrite_preproc", True)
        sch.transform_layout(packed, ("write", 0),
                             lambda h, w, i, o: (o // block_channels, h, w, i, o % block_channels))

    def _schedule(self, func: tirx.PrimFunc, target: Target) -> s_tir.Schedule | None:
        sch = s_tir.Schedule(func)
        found = one_reduction(sch)
        if found is None:
            return None
        blocks, at, kind = found
        block = blocks[at]
        name = sch.get(block).name_hint
        if name not in _CONV_BLOCKS or kind != "SSSSRRR":
            return None
        loops = sch.get_loops(block)
        if len(loops) != 7:
            return None
        n, y, x, f, ry, rx, rc = loops
        channels = _int(sch.get(f).extent)
        if channels is None or any(_int(sch.get(loop).extent) is None for loop in (ry, rx, rc)):
            return None
        if name.startswith("group_") and _int(sch.get(rc).extent) != 1:
            return None  # grouped, not depthwise: each channel block reads another slice of the input
        width = _int(sch.get(x).extent)
        lanes = vector_lanes(target)
        most_columns = tile_columns(target, self.columns)
        whole_tiles = _provable_divisor(sch.get(x).extent, most_columns) if width is None else 1
        if width is not None:
            lane = _largest_divisor(channels, lanes)
            columns = width if width <= most_columns else _largest_divisor(width, most_columns)
            vectors = _largest_divisor(channels // lane, self.vectors) if lane >= 4 else 1
        else:
            lane = next((p for p in (16, 8, 4) if p <= lanes and channels % p == 0), 0)
            reduction = int(sch.get(ry).extent) * int(sch.get(rx).extent) * int(sch.get(rc).extent)
            if whole_tiles > 1:  # rounded up by tvm_conv_legalize: whole tiles, no bounds test
                columns, vectors = whole_tiles, _largest_divisor(channels // lane, self.vectors) if lane else 1
            elif reduction <= SHORT_REDUCTION:
                columns, vectors = 1, _largest_divisor(channels // lane, 2 * self.vectors) if lane else 1
            else:
                columns, vectors = self.dynamic_columns, _largest_divisor(channels // lane, self.vectors) if lane else 1
        if lane < 4:
            return None

        before, after = blocks[:at], blocks[at + 1:]
        for other in after[:-1]:
            sch.compute_inline(other)
        epilogue = after[-1] if after else sch.cache_write(block, 0, "global")

        self._pack_weights(sch, func, block, vectors * lane)
        fo, fv, fl = sch.split(f, [None, vectors, lane])
        xo, xi = sch.split(x, [None, columns])
        sch.reorder(fo, n, y, xo, ry, rx, rc, xi, fv, fl)
        sch.parallel(sch.fuse(fo, n, y))
        sch.unroll(xi)
        sch.unroll(fv)
        sch.vectorize(fl)

        sch.reverse_compute_at(epilogue, xo, preserve_unit_loops=True)
        tile = sch.get_loops(epilogue)[-2:]  # the tile's columns x channels, channels innermost
        inner = _int(sch.get(tile[-1]).extent) or 0
        if inner > lane and inner % lane == 0:
            sch.vectorize(sch.split(tile[-1], [None, lane])[1])
        elif inner > 1:
            sch.vectorize(tile[-1])
        init = sch.decompose_reduction(block, ry)
        init_loops = sch.get_loops(init)
        sch.vectorize(init_loops[-1])

        for producer in before:  # padding: a stage of its own, parallel and vectorized
            if is_copy(sch, producer):
                sch.compute_inline(producer)  # no padding at all: read the input itself
                continue
            pad_loops = sch.get_loops(producer)
            if len(pad_loops) > 1:
                sch.parallel(sch.fuse(*pad_loops[:-1]))
            if (_int(sch.get(pad_loops[-1]).extent) or 0) > 1:
                sch.vectorize(pad_loops[-1])
        return sch
