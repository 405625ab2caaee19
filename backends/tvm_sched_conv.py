"""A dlight rule that schedules TVM's 2-D convolutions (NCHW data, OIHW weights) for CPUs.

LegalizeOps turns `relax.nn.conv2d` into a PrimFunc with a padding block (`pad_temp`), the
convolution block `conv2d_nchw` / `group_conv2d_nchw` (iterators `n, f, y, x` spatial and
`rc, ry, rx` reduction) and, after FuseOps + FuseTIR, the epilogue blocks the graph had after it
(bias add, relu/clip, residual add, hardswish...). TVM compiles those loops as they are: scalar,
one core, the accumulator in memory, each epilogue a full pass over the output.

The schedule keeps NCHW at the function's boundary (a layout change between kernels would need
Relax-level rewriting). A tile of output channels x output columns is computed with the reduction
loops `rc, ry, rx` outside it, so that its accumulators stay in registers for the whole reduction;
`n, f/tile, y` are fused and parallel over the cores; the epilogue blocks are inlined into the last
one, which is computed at the tile (`reverse_compute_at`), so the convolution's result never goes
through memory (without an epilogue the tile is written through a `cache_write`); the
accumulator's initialization is split off and vectorized. Two kinds of tile:

* static width: vectors over `V` output columns, `V` the largest divisor of the width up to the
  target's float32 lanes (16 with AVX-512, else 8), up to 16 output channels (unrolled) per tile.
  In NCHW the input row is contiguous along the output width and the weight is one scalar per
  (f, rc, ry, rx): plain vector loads and one broadcast per weight, no repacking, no tail (a tail
  puts a bounds test in the vector loop and TVM then emits it scalar). Narrow widths get narrow
  vectors (ResNet-18 at 64x64 ends at 2 columns); there the weights are what costs, and reading
  them once beat the channel tile below, whose repack reads and writes them again, by 4-9x on
  that layer (`min_columns` sets the narrowest column vector; narrower ones take the channel tile);
* symbolic width (ONNX models exported with dynamic H, W): vectors over `lanes` output
  channels, 4 output columns (unrolled) per tile. For the channel vector to be contiguous the
  accumulator is laid out channels-last inside the function and the weights are repacked
  OIHW -> IHWO on every call (a parallel copy of the weights: constants are parameters here, so
  it cannot be folded at compile time; it dominates the layers with large weights and few
  pixels).

Depthwise convolutions (one input channel per group) are left to TVM's loops (None): the tile
above shares nothing between channels there, and a rows x columns tile per channel measured
between 0.7x and 1.5x of TVM's loops (which LLVM vectorizes itself) on MobileNet's shapes.

The padding block stays a stage of its own (parallel, vectorized): inlined, its bounds test would
sit in the innermost loop; computed at the tile, it would be redone for every channel tile. A
padding block that only copies (no padding) is inlined. Each output is summed in the same order
(rc, ry, rx) as TVM's default loops (measured: the same outputs, bit for bit).

Kernels it does not take (None): anything but one conv2d block with spatial blocks before and after
it (an epilogue that cannot be inlined included), a symbolic channel count or kernel size,
depthwise convolutions.
"""

from __future__ import annotations

from typing import Any

import tvm
from tvm import s_tir, tirx
from tvm.s_tir.dlight.analysis import get_root_block
from tvm.s_tir.dlight.cpu.base import CPUScheduleRule
from tvm.s_tir.schedule import ScheduleError
from tvm.target import Target

# Block names TOPI gives the convolution (conv2d_nchw, group_conv2d_nchw, depthwise_conv2d_nchw).
_CONV_BLOCKS = ("conv2d_nchw", "group_conv2d_nchw", "depthwise_conv2d_nchw")
# CPU names whose float32 vectors are 16 lanes (AVX-512) when no mattr says otherwise.
_AVX512_CPUS = ("skylake-avx512", "cascadelake", "cooperlake", "cannonlake", "icelake-client",
                "icelake-server", "tigerlake", "rocketlake", "sapphirerapids", "emeraldrapids",
                "graniterapids", "graniterapids-d", "diamondrapids", "znver4", "znver5", "x86-64-v4")
_MIN_COLUMNS = 1  # narrower vectors over columns than this: vectors over channels instead


def vector_lanes(target: Target) -> int:
    """float32 lanes of the target's vectors: 16 where mattr or mcpu says AVX-512, else 8.

    Why 8 as the fallback: every x86-64 CPU this project compiles for has AVX2 (and on one without
    it, an 8-lane LLVM vector is split into two SSE halves, still correct)."""
    attrs = target.attrs
    mattr = [str(item) for item in attrs.get("mattr", [])]
    if any(item.startswith("-avx512f") for item in mattr):
        return 8
    if any(item.startswith("+avx512f") for item in mattr):
        return 16
    return 16 if str(attrs.get("mcpu", "")) in _AVX512_CPUS else 8


def _width_block(width: int | None, lanes: int, least: int = 4) -> int | None:
    """The output columns per vector: the largest divisor of `width` up to `lanes`, so that the
    vector loop has no tail (a split with a tail puts a bounds test in the vector loop, and TVM
    then emits it scalar). None when the width is symbolic or has no divisor of at least `least`."""
    if width is None:
        return None
    best = max(d for d in range(1, min(width, lanes) + 1) if width % d == 0)
    return best if best >= least else None


def is_copy(sch: s_tir.Schedule, block: Any) -> bool:
    """Whether the block only copies a value (a padding block with no padding)."""
    body = sch.get(block).body
    return isinstance(body, tirx.BufferStore) and isinstance(body.value, tvm.ir.TensorLoad)


def _int(expr: Any) -> int | None:
    return int(expr) if isinstance(expr, tirx.IntImm) else None


def _extent(sch: s_tir.Schedule, loop: Any) -> int | None:
    return _int(sch.get(loop).extent)


def _vectorize_static(sch: s_tir.Schedule, loop: Any) -> None:
    """Vectorize a loop of constant extent; LLVM targets have no vectors of symbolic length."""
    if (_extent(sch, loop) or 0) > 1:
        sch.vectorize(loop)


def one_reduction(sch: s_tir.Schedule) -> tuple[list[Any], int, str] | None:
    """The root's child blocks, the index of the one reduction block among them and its iterator
    kinds ("S" spatial, "R" reduction, "?" other, e.g. "SSSSRRR"); None unless exactly one block
    reduces. Not dlight's normalize_prim_func: it drops unit iterators (batch 1, a depthwise conv's
    one input channel, a 1x1 kernel), and the conv rules need to know which loop is which."""
    blocks = list(sch.get_child_blocks(get_root_block(sch)))
    kinds = ["".join("S" if iv.iter_type == tirx.IterVar.DataPar else
                     "R" if iv.iter_type == tirx.IterVar.CommReduce else "?"
                     for iv in sch.get(b).iter_vars) for b in blocks]
    reductions = [i for i, kind in enumerate(kinds) if "R" in kind or "?" in kind]
    if len(reductions) != 1:
        return None
    return blocks, reductions[0], kinds[reductions[0]]


class ConvScheduleRule(CPUScheduleRule):
    """What the conv rules share: a PrimFunc on a CPU target goes to `_schedule`; a step TVM
    refuses leaves the kernel to the next rule (or TVM's default loops)."""

    def apply(self, func: Any, target: Target, _tunable: bool) -> s_tir.Schedule | None:
        if not isinstance(func, tirx.PrimFunc) or not self.is_target_available(target):
            return None
        try:
            return self._schedule(func, target)
        except (ScheduleError, RuntimeError, ValueError):  # TVM refused a step: its default loops stay
            return None

    def _schedule(self, func: tirx.PrimFunc, target: Target) -> s_tir.Schedule | None:
        raise NotImplementedError


class Conv2dRule(ConvScheduleRule):
    """Schedules a PrimFunc whose one reduction is a 2-D NCHW convolution (see the module doc)."""

    def __init__(self, channel_block: int = 16, columns: int = 4, min_columns: int = _MIN_COLUMNS) -> None:
        self.min_columns = min_columns
        self.channel_block = channel_block  # output channels per tile (at most), vectors over columns
        self.columns = columns  # output columns per tile, vectors over channels

    def _schedule(self, func: tirx.PrimFunc, target: Target) -> s_tir.Schedule | None:
        sch = s_tir.Schedule(func)
        found = one_reduction(sch)
        if found is None:
            return None
        blocks, at, kind = found
        block = blocks[at]
        if sch.get(block).name_hint not in _CONV_BLOCKS or kind != "SSSSRRR":
            return None
        before, after = blocks[:at], blocks[at + 1:]
        loops = sch.get_loops(block)
        if len(loops) != 7:
            return None
        extents = [_extent(sch, loop) for loop in loops]
        n, f, y, x, rc, ry, rx = loops
        channels, width = extents[1], extents[3]
        if channels is None or any(e is None for e in extents[4:]):  # batch, height, width may be symbolic
            return None
        if extents[4] == 1 and sch.get(block).name_hint != "conv2d_nchw":
            return None  # depthwise (one input channel per group): see the module doc

        # The epilogue: every block after the convolution inlined into the last one.
        for other in after[:-1]:
            sch.compute_inline(other)
        epilogue = after[-1] if after else sch.cache_write(block, 0, "global")

        lanes = vector_lanes(target)
        v = _width_block(width, lanes, self.min_columns)
        if v is not None:  # vectors over output columns, a tile of up to 16 channels x v columns
            fb = next(b for b in range(self.channel_block, 0, -1) if channels % b == 0)
            fo, fi = sch.split(f, [None, fb])
            xo, xi = sch.split(x, [None, v])
            sch.reorder(n, fo, y, xo, rc, ry, rx, fi, xi)
            sch.unroll(fi)
            sch.vectorize(xi)
        else:  # vectors over output channels, a tile of `lanes` channels x 4 columns
            weight = sch.get(block).reads[1].source  # TOPI's conv reads data, then weights
            if len(weight.shape) != 4 or _int(weight.shape[0]) != channels:
                return None
            fb = next(b for b in range(lanes, 0, -1) if channels % b == 0)
            fo, fi = sch.split(f, [None, fb])
            xo, xi = sch.split(x, [None, self.columns])
            sch.reorder(n, fo, y, xo, rc, ry, rx, xi, fi)
            # The accumulator channels-last and the weights repacked OIHW -> IHWO once per call
            # (parallel), so that the vector over channels is contiguous in both.
            sch.transform_layout(block, ("write", 0), lambda b, c, h, w: (b, h, w, c))
            packed = sch.cache_read(block, 1, "global")
            sch.transform_layout(packed, ("write", 0), lambda o, c, h, w: (c, h, w, o))
            o, *chw = sch.get_loops(packed)
            sch.reorder(*chw, o)  # contiguous stores along o
            self._parallel_vectorized(sch, packed, lanes)
            sch.unroll(xi)
            sch.vectorize(fi)
        sch.parallel(sch.fuse(n, fo, y))

        sch.reverse_compute_at(epilogue, xo, preserve_unit_loops=True)
        _vectorize_static(sch, sch.get_loops(epilogue)[-1])
        init = sch.decompose_reduction(block, rc)
        _vectorize_static(sch, sch.get_loops(init)[-1])

        for producer in before:  # padding: a stage of its own, parallel and vectorized
            if is_copy(sch, producer):  # no padding at all (1x1, pads 0): read the input itself
                sch.compute_inline(producer)
            else:
                self._parallel_vectorized(sch, producer, lanes)
        return sch

    @staticmethod
    def _parallel_vectorized(sch: s_tir.Schedule, block: Any, lanes: int) -> None:
        """Outer loops fused and parallel; the innermost vectorized when its extent is constant,
        split by a divisor (no tail) when longer than a vector."""
        loops = sch.get_loops(block)
        if len(loops) > 1:
            sch.parallel(sch.fuse(*loops[:-1]))
        inner = _extent(sch, loops[-1])
        if inner is None or inner <= lanes:
            _vectorize_static(sch, loops[-1])
            return
        v = _width_block(inner, lanes)
        if v is not None:
            sch.vectorize(sch.split(loops[-1], [None, v])[1])
