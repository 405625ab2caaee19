"""The fallback dlight rule for TVM's `llvm` target: spatial kernels on all cores, in vectors.

What it takes (tried last, after the conv, matmul, GEMV and reduction rules): a PrimFunc whose
blocks are all spatial (elementwise, broadcast, transpose / reshape copies, padding, the
non-reduction parts of a split softmax) or window reductions (pooling: reduction axes of small
static extent inside the spatial ones, like max-pool's 3 x 3):

    OUT[s0, .., sn] = f(IN[g(s0, .., sn)], ...)               (spatial)
    OUT[s0, .., sn] = max/sum over w in WINDOW of IN[g(s, w)]   (window, |WINDOW| small, static)

TVM's default loops for these run on one core and vectorize only where LLVM finds it can. The
schedule, per block left after inlining the others into their consumers:

* the innermost spatial loop is cut into whole vectors (16 float32 lanes with AVX-512, else 8; a
  smaller power of two that divides a short loop) and vectorized; a symbolic or indivisible
  innermost extent is left scalar (a tail predicate would make LLVM scalarize the loop anyway),
  and so is a window block (its strided window reads would be gathers);
* the leading spatial loops, fused until they make `PARALLEL_MIN_CHUNKS` chunks, run in parallel
  over the cores when the block has enough work (`PARALLEL_MIN_ELEMENTS` iterations, a symbolic
  extent counted as `SYMBOLIC_EXTENT`): a parallel launch costs microseconds, which small
  kernels cannot repay;
* a window block keeps its producers (the pool's padding) as their own loop nests.

It returns None for a function with any other reduction (dlight's `cpu.Reduction` and the matmul
rule own those), a reduction over a single element included. It is deterministic: the same
PrimFunc and target give the same schedule.
"""

from __future__ import annotations

from typing import Any

from tvm import s_tir, tirx
from tvm.s_tir.dlight.analysis import normalize_prim_func
from tvm.s_tir.dlight.base import ScheduleRule, try_inline
from tvm.target import Target

from mlc.backends.tvm_sched_matmul import static, vector_lanes

# Iterations below which a block stays on one core. These kernels are memory-bound: up to ~1 MB of
# float32 they run from L2 in tens of microseconds, which a parallel launch and join (microseconds,
# far more on busy cores) does not repay: at 200k elements (add + relu) two threads on this
# project's 2-core machine ran no faster than one, and a max-pool 13% slower.
PARALLEL_MIN_ELEMENTS = 1 << 18
# Parallel chunks wanted (the leading loops fused until they make this many).
PARALLEL_MIN_CHUNKS = 64
# What a symbolic extent (dynamic batch, sequence, image size) counts for in that estimate.
SYMBOLIC_EXTENT = 8
# Window reductions this rule takes: each axis static and at most this long, the window at most
# WINDOW_MAX_SIZE iterations (pooling windows; anything longer is a real reduction).
WINDOW_MAX_AXIS = 16
WINDOW_MAX_SIZE = 256


def _is_window(kind: str, extents: list[int | None]) -> bool:
    """Spatial iterators first, then reduction iterators of small static extent."""
    spatial = len(kind) - len(kind.lstrip("S"))
    reduce = kind[spatial:]
    if not reduce:
        return True
    if set(reduce) != {"R"} or spatial == 0:
        return False
    window = extents[spatial:]
    if any(e is None or e > WINDOW_MAX_AXIS for e in window):
        return False
    size = 1
    for e in window:
        size *= int(e)  # type: ignore[arg-type]
    return size <= WINDOW_MAX_SIZE


def vector_factor(extent: int | None, lanes: int) -> int:
    """The vector width for an innermost loop of `extent`: the widest power of two up to `lanes`
    (at least 4) that divides it, the whole loop when it is shorter than `lanes`, else 0 (none)."""
    if extent is None or extent < 2:
        return 0
    width = lanes
    while width >= 4:
        if extent % width == 0:
            return width
        width //= 2
    return extent if extent <= lanes else 0


class ElementwiseRule(ScheduleRule):
    """Parallel, vectorized loops for spatial-only kernels and window reductions (pooling)."""

    def apply(self, func: tirx.PrimFunc, target: Target, _tunable: bool) -> s_tir.Schedule | None:
        if not isinstance(func, tirx.PrimFunc) or target.kind.name != "llvm":
            return None
        sch = s_tir.Schedule(func)
        infos = normalize_prim_func(sch)
        if not infos:
            return None
        for info in infos:
            loops = sch.get_loops(info.block_rv)
            kind = info.dom_kind()
            if "O" in kind or len(loops) != len(kind):
                return None
            if "R" not in kind and sch.get(info.block_rv).init is not None:
                # A reduction whose reduction extent is 1 (MatMul with an inner dim of 1, ReduceMean
                # over an axis of 1): normalization dropped its unit loop, so it reads as spatial,
                # but its `T.init` is still there, and an epilogue inlined into it would run in
                # both the init and the update: `y = b + (b + x*w)` (fuzz seeds 53, 40, 15).
                return None
            if not _is_window(kind, [static(sch.get(loop).extent) for loop in loops]):
                return None
        if any(info.dom_kind().endswith("R") for info in infos):
            # A window reduction keeps its producers (the padding of a pool): inlined, their
            # bounds test would run once per window element (3x slower measured on max-pool).
            remaining = list(infos)
        else:
            remaining = try_inline(sch, list(infos))
        lanes = vector_lanes(target)
        try:
            for info in remaining:
                self._schedule_block(sch, info.block_rv, len(info.dom_kind().rstrip("R")), lanes)
        except s_tir.ScheduleError:
            return None
        return sch

    @staticmethod
    def _schedule_block(sch: s_tir.Schedule, block: Any, spatial: int, lanes: int) -> None:
        loops = sch.get_loops(block)
        if len(loops) < spatial or spatial == 0:
            return
        outer, inner, window = loops[:spatial - 1], loops[spatial - 1], loops[spatial:]
        extents = [static(sch.get(loop).extent) for loop in loops]
        work = 1
        for extent in extents:
            work *= SYMBOLIC_EXTENT if extent is None else extent
        # A window block stays scalar: its strided window reads make vectors gathers (1.6x slower
        # than TVM's scalar loop measured on a 3x3 stride-2 max-pool).
        width = 0 if window else vector_factor(extents[spatial - 1], lanes)
        if width and width != extents[spatial - 1]:
            rest, vector = sch.split(inner, factors=[None, width])
            outer = [*outer, rest]
        elif width:
            vector = inner
        else:
            vector, outer = None, [*outer, inner]
        if outer and work >= PARALLEL_MIN_ELEMENTS:
            # Fuse only the leading loops that make enough chunks: every fused loop costs a
            # division per iteration to recover its index, too much for a short loop body.
            chunks, count = 1, 0
            for loop in outer:
                extent = static(sch.get(loop).extent)
                chunks *= SYMBOLIC_EXTENT if extent is None else extent
                count += 1
                if chunks >= PARALLEL_MIN_CHUNKS:
                    break
            lead = outer[:count]
            sch.parallel(sch.fuse(*lead) if len(lead) > 1 else lead[0])
        if vector is not None:
            sch.vectorize(vector)
