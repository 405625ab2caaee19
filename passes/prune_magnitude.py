"""Magnitude pruning: zero the smallest weights of Conv, ConvTranspose, Gemm and MatMul (lossy).

    Conv(x, W, b)  ->  Conv(x, W * mask, b)        mask[i] = 0 for the weights of smallest |W|

Three ways to choose the mask, all on the constant weight (input 1) only; biases are never touched:

    scope=layer    each weight loses floor(sparsity * size) of its entries, the smallest |w|
    scope=global   one magnitude threshold over every prunable weight together: floor(sparsity *
                   total) entries go, so layers with small weights lose more (and may lose all)
    pattern=N:M    in every M consecutive weights along the reduction axis the N largest |w| stay
                   (`sparsity` and `scope` are then ignored: the sparsity is 1 - N/M):
                     Conv    W [O, I/g, k...]: along I, for each (o, k...) (NVIDIA's 2:4 layout)
                     ConvTranspose  W [I, O/g, k...]: along I within each group, for each (o, k...)
                     Gemm    B [N, K] with transB=1: along axis 1; B [K, N] with transB=0: axis 0
                     MatMul  B [K, N] (or batched [..., K, N]): along axis -2; a 1-D B: axis 0
                   (com.microsoft FusedConv/FusedGemm/FusedMatMul, what the fusion passes make of
                   them, are pruned alike: FusedMatMul's transB=1 reduces along the last axis)
                   When the reduction size is not a multiple of M, the last (size mod M) weights of
                   each row stay dense, with a remark (sparse kernels need whole groups of M).

Ties are deterministic: entries are ordered by |w| and then by position (C order, and in global
scope the order in which the layers appear), and the first ones in that order are zeroed. Zeros
already in a weight count towards its target, so running the pass twice changes nothing more.

A weight read by several prunable nodes is pruned once, the same way for all of them (with N:M
only when they agree on the reduction axis). Left dense, each with a remark: weights that are not
constant float tensors (graph inputs, initializers a caller may override, computed weights),
weights also read by any other op or position (a Transpose, a Gemm's C) or exported as a graph
output, nodes named in `exclude_nodes`, and weights with fewer than `min_size` entries. The
default `min_size` of 0 prunes every layer; a few thousand keeps the small ones (a first Conv over
the image channels, a narrow classifier), which carry few weights and much of the accuracy.

The pruned weight keeps its name and dtype (a new tensor replaces the constant; the old one, which
clones may share, is not written to), so per-layer sparsity can be read back from the graph
(`mlc.prune.stats`). Lossy: judged on data (an accuracy budget), not by equivalence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from mlc.errors import BadInputError
from mlc.ir.core import Graph, Node, Value
from mlc.ir.dtypes import DType
from mlc.ir.tensor import Tensor
from mlc.pass_api import Numerics, Pass, PassContext, PassOption, register_pass
from mlc.passes._match_basics import FLOAT_DTYPES, STANDARD, const_array, input_at, label
from mlc.passes._transformer_match import MS_DOMAIN

# op type -> domains; the com.microsoft forms are what fuse-conv-activation/fuse-gemm-activation
# make of them, so the pass prunes the same weights whether it runs before or after those fusions
PRUNABLE = {"Conv": STANDARD, "ConvTranspose": STANDARD, "Gemm": STANDARD, "MatMul": STANDARD,
            "FusedConv": (MS_DOMAIN,), "FusedGemm": (MS_DOMAIN,), "FusedMatMul": (MS_DOMAIN,)}


def parse_pattern(text: str) -> tuple[int, int] | None:
    """`"2:4"` -> (2, 4); `""` -> None (unstructured)."""
    text = text.strip()
    if not text:
        return None
    n, colon, m = text.partition(":")
    try:
        pattern = (int(n), int(m))
    except ValueError:
        pattern = (0, 0)
    if not colon or not 0 < pattern[0] < pattern[1]:
        raise BadInputError(f"prune-magnitude: bad pattern {text!r}; expected N:M with 0 < N < M (e.g. 2:4)")
    return pattern


def reduction_axis(node: Node, rank: int) -> int:
    """The axis of the weight (input 1) that `node` sums over, non-negative (ConvTranspose: axis 0
    holds the groups one after the other; `nm_mask` is given each group's part)."""
    if node.op_type in ("Conv", "FusedConv"):
        return 1
    if node.op_type == "ConvTranspose":
        return 0
    if node.op_type in ("Gemm", "FusedGemm"):
        return 1 if node.attr("transB", 0) else 0
    if rank < 2:
        return 0
    return rank - 1 if node.op_type == "FusedMatMul" and node.attr("transB", 0) else rank - 2


def smallest(magnitudes: np.ndarray, k: int) -> np.ndarray:
    """Mask of the `k` smallest entries of the 1-D `magnitudes`, ties by position (lower first);
    NaN counts as the largest. Linear time (a partition, not a sort)."""
    mask = np.zeros(magnitudes.shape, dtype=bool)
    if k <= 0:
        return mask
    if k >= magnitudes.size:
        mask[:] = True
        return mask
    magnitudes = np.where(np.isnan(magnitudes), np.inf, magnitudes)
    threshold = np.partition(magnitudes, k - 1)[k - 1]
    mask = np.asarray(magnitudes < threshold)
    mask[np.flatnonzero(magnitudes == threshold)[: k - int(mask.sum())]] = True
    return mask


def nm_mask(weight: np.ndarray, axis: int, n: int, m: int, groups: int = 1) -> tuple[np.ndarray, int]:
    """(mask of the entries to zero, ragged tail length): in each run of `m` consecutive entries
    along `axis` the `m - n` smallest |w| (ties by position) are zeroed; the last
    (size mod m) entries of every row along `axis` are left alone. With `groups`, the axis is
    cut into that many equal parts first and no run crosses from one into the next."""
    if groups > 1:
        shape = weight.shape
        split = weight.reshape(*shape[:axis], groups, shape[axis] // groups, *shape[axis + 1:])
        mask, ragged = nm_mask(split, axis + 1, n, m)
        return mask.reshape(shape), ragged
    moved = np.moveaxis(_magnitudes(weight), axis, -1)
    size = moved.shape[-1]
    full = size // m * m
    rows = moved.reshape(-1, size)
    mask = np.zeros(rows.shape, dtype=bool)
    if full:
        blocks = rows[:, :full].reshape(rows.shape[0], full // m, m)
        order = np.argsort(blocks, axis=-1, kind="stable")  # NaN sorts last: kept
        drop = np.zeros(blocks.shape, dtype=bool)
        np.put_along_axis(drop, order[..., : m - n], True, axis=-1)
        mask[:, :full] = drop.reshape(rows.shape[0], full)
    return np.moveaxis(mask.reshape(moved.shape), -1, axis), size - full


def _magnitudes(array: np.ndarray) -> np.ndarray:
    """|w| in a float type that orders the weight's values exactly (float64 for doubles)."""
    wide = np.float64 if array.dtype == np.float64 else np.float32
    return np.asarray(np.abs(np.asarray(array, dtype=wide)))


def target_count(sparsity: float, size: int) -> int:
    """floor(sparsity * size), with 0.29 * 100 = 28.999999999999996 counted as 29."""
    return math.floor(round(sparsity * size, 6))


def _names(text: str) -> set[str]:
    return {part.strip() for part in text.split("+") if part.strip()}


@dataclass
class _Weight:
    """A constant weight and the prunable nodes that read it."""

    value: Value
    readers: list[Node] = field(default_factory=list)
    array: np.ndarray | None = None
    axis: int = 0
    groups: int = 1  # ConvTranspose's group: its reduction axis holds one run per group

    @property
    def first(self) -> str:
        return f"{label(self.readers[0])}: weight %{self.value.name}"


@register_pass
class PruneMagnitude(Pass):
    name = "prune-magnitude"
    description = "Zero the smallest-magnitude weights of Conv/ConvTranspose/Gemm/MatMul (per layer, global, N:M)"
    numerics = Numerics.LOSSY
    options = (
        PassOption("sparsity", float, 0.5, "fraction of the weights zeroed, in [0, 1) (ignored with pattern)"),
        PassOption("pattern", str, "", "N:M keeps the N largest of every M weights along the reduction axis "
                                       "(e.g. 2:4); empty: unstructured"),
        PassOption("scope", str, "layer", "layer: sparsity per weight; global: one threshold over all weights"),
        PassOption("exclude_nodes", str, "", "node names whose weights stay dense, +-separated"),
        PassOption("min_size", int, 0, "weights with fewer entries stay dense (0: prune every layer)"),
    )
    statistics = ("weights_zeroed", "layers_pruned", "layers_left_dense")

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        sparsity = float(self.option("sparsity"))
        pattern = parse_pattern(self.option("pattern"))
        scope = self.option("scope")
        if scope not in ("layer", "global"):
            raise BadInputError(f"prune-magnitude: scope must be layer or global, got {scope!r}")
        if pattern is None and not 0.0 <= sparsity < 1.0:
            raise BadInputError(f"prune-magnitude: sparsity must be in [0, 1), got {sparsity:g}")
        weights = self._candidates(graph, ctx)
        if pattern is None and sparsity == 0.0:
            return False
        masks: list[tuple[_Weight, np.ndarray]] = []
        if pattern is not None:
            n, m = pattern
            for weight in weights:
                assert weight.array is not None
                mask, ragged = nm_mask(weight.array, weight.axis, n, m, weight.groups)
                size = weight.array.shape[weight.axis] // weight.groups
                if ragged == size:
                    ctx.stats["layers_left_dense"] += len(weight.readers)
                    ctx.remark(f"{weight.first} left dense, its reduction axis has {size} weights, fewer than {m}")
                    continue
                if ragged:
                    ctx.remark(f"{weight.first}: the last {ragged} of {size} weights along the reduction axis "
                               f"are left dense ({size} is not a multiple of {m})")
                masks.append((weight, mask))
        elif scope == "layer":
            for weight in weights:
                assert weight.array is not None
                k = target_count(sparsity, weight.array.size)
                masks.append((weight, smallest(_magnitudes(weight.array).reshape(-1), k)
                               .reshape(weight.array.shape)))
        elif weights:
            arrays = [w.array for w in weights if w.array is not None]
            wide = np.float64 if any(a.dtype == np.float64 for a in arrays) else np.float32
            pool = np.concatenate([_magnitudes(a).astype(wide).reshape(-1) for a in arrays])
            mask = smallest(pool, target_count(sparsity, pool.size))
            offsets = np.cumsum([0, *(a.size for a in arrays)])
            masks = [(w, mask[offsets[i]:offsets[i + 1]].reshape(a.shape))
                     for i, (w, a) in enumerate(zip(weights, arrays, strict=True))]
        return self._apply(masks, ctx, "prune-nm" if pattern is not None else f"prune-{scope}")

    def _candidates(self, graph: Graph, ctx: PassContext) -> list[_Weight]:
        """The prunable weights, in the order their first reader appears; remarks for the rest."""
        excluded = _names(self.option("exclude_nodes"))
        found: dict[int, _Weight] = {}
        names: set[str] = set()
        for node in graph.all_nodes():
            names.add(node.name)
            value = input_at(node, 1)
            if node.domain not in PRUNABLE.get(node.op_type, ()) or value is None:
                continue
            found.setdefault(id(value), _Weight(value)).readers.append(node)
        for name in sorted(excluded - names):
            ctx.remark(f"exclude_nodes: the graph has no node named {name!r}")
        weights: list[_Weight] = []
        for weight in found.values():
            why = self._dense_reason(weight, excluded)
            if why is not None:
                ctx.stats["layers_left_dense"] += len(weight.readers)
                ctx.remark(f"{weight.first} left dense, {why}")
            elif weight.array is not None and weight.array.size:
                weights.append(weight)
        return weights

    def _dense_reason(self, weight: _Weight, excluded: set[str]) -> str | None:
        """Why `weight` stays dense, or None (then its array and reduction axis are set)."""
        value = weight.value
        names = [n.name for n in weight.readers if n.name in excluded]
        if names:
            return f"{names[0]!r} is in exclude_nodes"
        array = const_array(value)
        if array is None:
            return "it is not a constant (a graph input, an overridable initializer or computed)"
        if not isinstance(value.const, Tensor) or value.const.dtype not in FLOAT_DTYPES:
            return "it is not a float tensor"
        readers = {id(n) for n in weight.readers}
        for node, index in value.uses:
            if id(node) not in readers or index != 1:
                return f"it is also read by {label(node)} (input {index}), which is not pruned"
        if value.is_graph_output:
            return "it is also a graph output"
        if array.size < int(self.option("min_size")):
            return f"it has {array.size} weights, fewer than min_size={self.option('min_size')}"
        convs = [n.op_type for n in weight.readers if n.op_type in ("Conv", "FusedConv", "ConvTranspose")]
        if convs and array.ndim < 3:
            return f"a {convs[0]} weight of rank {array.ndim}"
        if any(n.attr("transBatchB", 0) for n in weight.readers):
            return "a FusedMatMul with transBatchB"
        layouts = {(reduction_axis(n, array.ndim), int(n.attr("group", 1)) if n.op_type == "ConvTranspose" else 1)
                   for n in weight.readers}
        if len(layouts) > 1 and parse_pattern(self.option("pattern")) is not None:
            axes = ", ".join(f"{a}" if g == 1 else f"{a} in {g} groups" for a, g in sorted(layouts))
            return f"its readers sum over different axes ({axes}): no one N:M layout"
        (weight.axis, weight.groups), *_ = sorted(layouts)
        if weight.groups < 1 or array.shape[weight.axis] % weight.groups:
            return f"its axis {weight.axis} does not split into group={weight.groups} parts"
        weight.array = array
        return None

    @staticmethod
    def _apply(masks: list[tuple[_Weight, np.ndarray]], ctx: PassContext, rule: str) -> bool:
        changed = False
        for weight, mask in masks:
            array, const = weight.array, weight.value.const
            assert array is not None and isinstance(const, Tensor)
            zeroed = int(np.count_nonzero(mask & (array != 0)))
            if not zeroed:
                continue  # already this sparse
            if not ctx.rewrite(rule):
                break
            pruned = np.array(array, copy=True)
            pruned[mask] = 0
            weight.value.const = Tensor.from_array(pruned, DType(const.dtype), name=const.name)
            ctx.stats["weights_zeroed"] += zeroed
            ctx.stats["layers_pruned"] += len(weight.readers)
            changed = True
        return changed
