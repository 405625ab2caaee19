"""A dlight rule for matmul kernels on TVM's `llvm` target: register tiles, vectors, cores.

What it takes: a PrimFunc that LegalizeOps / FuseTIR made from Relax `matmul` (2-D dense, batched
matmul such as attention's Q.K^T and P.V, a matmul with a constant weight), optionally followed by
spatial epilogues (bias add, gelu/erf, residual add, scaling, a transpose/reshape of the result):

    C[b.., m, n] += A[b.., m, k] * B[b.., k, n]      (A, B indexed by any of b.., m/n and k)
    OUT[...] = epilogue(C[...], ...)

TVM's default pipeline compiles these as naive scalar loops on one core. The schedule:

* tile M x N for registers: `mr` rows by `nr` columns, the columns vectorized at the target's
  vector width (16 float32 lanes with AVX-512, else 8), the `mr` rows and `nr / lanes` vectors
  unrolled, so that the `mr * nr / lanes` accumulators stay in vector registers;
* the reduction loop K runs outside the register tile (each step: one broadcast of A per row,
  one vector load of B per vector, `mr * nr / lanes` fused multiply-adds);
* the accumulator tile is a small per-tile buffer (a `cache_write`, or the matmul's own
  intermediate once the epilogue is computed at the tile), written once per tile, so the
  epilogue runs while the tile is hot;
* the batch loops and the M tiles are fused and run in parallel over the cores when the kernel
  is large enough to pay for the thread launch.

Symbolic batch, M and K (dynamic batch and sequence) are fine: M is split with a fixed factor and
a tail predicate that does not touch the vector lanes, so the kernel compiles for every size. The
rule returns None (leaves the kernel to later rules or TVM's loops) when the function is not one
reduction block of the form above with only spatial blocks around it, when its reduction has more
than one axis, when N is symbolic (whole vectors would need a tail predicate on the lanes, which
LLVM scalarizes: Q.K^T went 8x slower; TVM's own loop, K innermost, does well there), and for a
single-row product whose weight is contiguous along K (dlight's GEMV rule handles that form).
It is deterministic: the same PrimFunc and target give the same schedule.
"""

from __future__ import annotations

from typing import Any

import tvm_ffi
from tvm import ir, s_tir, tirx
from tvm.s_tir.dlight.analysis import normalize_prim_func
from tvm.s_tir.dlight.base import ScheduleRule, try_inline
from tvm.target import Target
from tvm.target.codegen import llvm_cpu_has_features

# Work (multiply-adds) below which a kernel stays on one core: a parallel launch costs a few
# microseconds, about what 64k multiply-adds take on one core.
PARALLEL_MIN_WORK = 1 << 16


def vector_lanes(target: Target, bits: int = 32) -> int:
    """Lanes of one vector register for `bits`-wide elements: 512-bit with AVX-512, else 256-bit
    (the project's x86 targets have AVX2 at least; LLVM splits a wider vector on a narrower ISA)."""
    try:
        wide = bool(llvm_cpu_has_features("avx512f", target))
    except Exception:  # noqa: BLE001 - a non-x86 triple has no such feature name
        wide = False
    return (512 if wide else 256) // bits


def static(extent: Any) -> int | None:
    """The extent as an int, None when it is symbolic."""
    return int(extent) if isinstance(extent, tirx.IntImm | int) else None


def _vars_in(expr: Any) -> set[Any]:
    found: set[Any] = set()
    tvm_ffi.structural_walk(expr, (tirx.Var, found.add), order="post")
    return found


def _loads(expr: Any) -> list[Any]:
    """The buffer loads in `expr` (TVM 0.27: `ir.TensorLoad`, its buffer is `.source`)."""
    loads: list[Any] = []
    tvm_ffi.structural_walk(expr, (ir.TensorLoad, loads.append), order="post")
    return loads


def store_dtype(block: Any) -> str:
    """The element type the block writes."""
    return str(block.writes[0].source.dtype)


class MatmulShape:
    """Which block iterators of a matmul block are batch, M, N and K, and how B is laid out."""

    def __init__(self, block: Any) -> None:
        self.ok = False
        self.b_contiguous_k = False
        self.has_m = True
        store = block.body
        if not isinstance(store, tirx.BufferStore) or not isinstance(store.value, tirx.Add):
            return
        iters = list(block.iter_vars)
        spatial = [iv.var for iv in iters if iv.iter_type == tirx.IterVar.DataPar]
        reduce = [iv.var for iv in iters if iv.iter_type == tirx.IterVar.CommReduce]
        if len(reduce) != 1 or not spatial or len(spatial) + 1 != len(iters):
            return
        # C[s..] = C[s..] + f(A[..], B[..]): the output indexed by the spatial iterators in order
        # (normalize_prim_func has dropped unit iterators: their index is a constant).
        indices = [i for i in store.indices if not isinstance(i, tirx.IntImm)]
        if len(indices) != len(spatial) or not all(i.same_as(v) for i, v in zip(indices, spatial, strict=True)):
            return
        lhs, rhs = store.value.a, store.value.b
        if not (isinstance(lhs, ir.TensorLoad) and lhs.source.same_as(store.buffer)):
            return
        operands = [load for load in _loads(rhs) if not load.source.same_as(store.buffer)]
        if len({load.source.name for load in operands}) != 2 or len(operands) != 2:
            return
        # One spatial iterator: a single-row product (M = 1, dropped as a unit iterator), C[n] += A[k] * B[k, n].
        k, n = reduce[0], spatial[-1]
        m = spatial[-2] if len(spatial) > 1 else None
        self.has_m = m is not None
        used = [set().union(*(_vars_in(i) for i in load.indices)) for load in operands]
        a_index = [i for i, u in enumerate(used) if (m is None or m in u) and n not in u and k in u]
        b_index = [i for i, u in enumerate(used) if n in u and (m is None or m not in u) and k in u]
        if len(a_index) != 1 or len(b_index) != 1 or a_index == b_index:
            return
        b_load = operands[b_index[0]]
        last = b_load.indices[-1]
        self.b_contiguous_k = isinstance(last, tirx.Var) and last.same_as(k)
        self.ok = True


class MatmulRule(ScheduleRule):
    """Register-tiled, vectorized, parallel schedule for matmul PrimFuncs with fused epilogues."""

    def apply(self, func: tirx.PrimFunc, target: Target, _tunable: bool) -> s_tir.Schedule | None:
        if not isinstance(func, tirx.PrimFunc) or target.kind.name != "llvm":
            return None
        sch = s_tir.Schedule(func)
        infos = normalize_prim_func(sch)
        if infos is None:
            return None
        reductions = [info for info in infos if not info.is_injective()]
        if len(reductions) != 1 or reductions[0].dom_kind()[-1] != "R" or reductions[0].dom_kind().count("R") != 1:
            return None
        matmul = reductions[0].block_rv
        others = try_inline(sch, [info for info in infos if info.block_rv is not matmul])
        if len(others) > 1:
            return None
        block = sch.get(matmul)
        shape = MatmulShape(block)
        if not shape.ok or store_dtype(block) != "float32":
            return None
        loops = sch.get_loops(matmul)
        if len(loops) != len(block.iter_vars):
            return None
        extents = [static(sch.get(loop).extent) for loop in loops]
        if shape.has_m:
            *batch, m, n, k = loops
            m_ext, n_ext = extents[-3], extents[-2]
        else:  # a single row: M's loop is a unit loop added above N, so the tiling below stays one code path
            *batch, n, k = loops
            m = sch.add_unit_loop(n)
            m_ext, n_ext = 1, extents[-2]
        if m_ext == 1 and shape.b_contiguous_k:
            return None  # a matrix-vector product with a K-contiguous weight: dlight's GEMV
        epilogue = others[0].block_rv if others else None
        if epilogue is not None and sch.get(epilogue).name_hint not in {
                sch.get(c).name_hint for c in sch.get_consumers(matmul)}:
            return None  # the remaining spatial block is not the matmul's consumer
        work: int | None = 1
        for extent in extents:
            work = work * extent if extent is not None and work is not None else None
        parallel = work is None or work >= PARALLEL_MIN_WORK
        if n_ext is None:
            # A symbolic N cannot be cut into whole vectors without a tail predicate, which makes
            # LLVM scalarize the tile (Q.K^T at 128 tokens: 0.07 ms -> 0.56 ms); TVM's loop nest
            # (K innermost, unrolled and vectorized by LLVM) is better. Spreading it over the
            # cores alone cost more than it gave at BERT-sized inputs here.
            return None
        lanes = vector_lanes(target)
        mr, nr = self._register_tile(m_ext, n_ext, lanes)
        try:
            self._schedule(sch, matmul, epilogue, batch, m, n, k, mr, nr, lanes, parallel=parallel)
        except s_tir.ScheduleError:
            return None  # an epilogue the tile cannot carry (its reads do not follow the tile)
        return sch

    @staticmethod
    def _register_tile(m_ext: int | None, n_ext: int, lanes: int) -> tuple[int, int]:
        """(mr, nr): nr columns (the widest of 2, 1 or 1/2 vectors, or 4, that divides N; else one
        vector with a tail), mr rows, at most 8 accumulator vectors (half the registers: the rest
        hold B's vectors and A's broadcasts)."""
        nr = next((c for c in (2 * lanes, lanes, lanes // 2, 4) if n_ext % c == 0 and c <= n_ext), 0)
        if nr == 0:
            nr = lanes if n_ext > lanes else n_ext
        vectors = max(1, nr // lanes)
        mr = max(1, 8 // vectors) if nr >= lanes else 8
        if m_ext is not None:
            mr = min(mr, m_ext)
        return mr, nr

    @staticmethod
    def _schedule(sch: s_tir.Schedule, matmul: Any, epilogue: Any, batch: list[Any], m: Any, n: Any, k: Any,
                  mr: int, nr: int, lanes: int, *, parallel: bool) -> None:
        mo, mi = sch.split(m, factors=[None, mr])
        no, ni = sch.split(n, factors=[None, nr])
        if nr > lanes and nr % lanes == 0:
            nv, nl = sch.split(ni, factors=[None, lanes])
            sch.reorder(*batch, mo, no, k, mi, nv, nl)
            inner_unroll = [mi, nv]
        else:
            nl = ni
            sch.reorder(*batch, mo, no, k, mi, nl)
            inner_unroll = [mi]
        outer = sch.fuse(*batch, mo) if batch else mo
        if epilogue is None:
            writer = sch.cache_write(matmul, 0, "global")
        else:
            writer = epilogue
        sch.reverse_compute_at(writer, no, preserve_unit_loops=True)
        # Loop kinds first: `parallel` and `vectorize` need the subtree's blocks to be complete or
        # reduction blocks, which the update block is no longer once the init is split off.
        if parallel:
            sch.parallel(outer)
        for loop in inner_unroll:
            sch.unroll(loop)
        sch.vectorize(nl)
        tail = sch.get_loops(writer)[-1]
        if static(sch.get(tail).extent) is not None and int(sch.get(tail).extent) <= 4 * lanes:
            sch.vectorize(tail)
        sch.decompose_reduction(matmul, k)
