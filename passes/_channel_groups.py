"""Channel spaces and the groups of them that must be pruned together: the analysis behind
`prune-channels` and `prune-zero-channels` (the rewrite itself is `_channel_surgery.py`).

A *channel space* is the set of output channels one layer creates from constant weights (a
*source*):

    Conv (group=1)    output axis 1;   weight axis 0, bias
    Gemm              output axis 1;   B axis 0 with transB=1 else axis 1, C's last axis
    MatMul, B 2-D     output last axis; B axis 1

The analysis walks the graph in order and follows each space forward. A value carrying channels
has a `Layout`: the spaces laid side by side along its channel axis (one for a plain tensor,
several after a channel Concat) and `repeat`, the number of consecutive elements each channel
covers on that axis (HW after a Flatten of [N, C, H, W]). Ops it follows:

    keep the layout     unary elementwise ops, pooling, Pad/Resize that leave the channel axis
                        alone, BatchNormalization/InstanceNormalization (parameters sliced),
                        elementwise ops with a constant (sliced when it varies per channel),
                        depthwise Conv (group = C, one filter per channel: weight, bias, group)
    couple              an elementwise op of two computed tensors (a residual Add, an SE Mul)
                        puts their spaces in one group: they must lose the same channels
    concatenate         Concat on the channel axis: the inputs' layouts side by side, each
                        still pruned on its own
    re-lay              Flatten, or a Reshape with a constant target, that merges the channel
                        axis with static trailing dims (repeat grows) or splits them off again;
                        Reduce* over other axes (a spatial mean), Squeeze, Unsqueeze (the
                        channel axis moves)
    consume             Conv (group=1), Gemm, MatMul with a constant weight reading the channels
                        on their reduction axis: the weight's input slices go

Anything else that reads a channel space (an op it does not follow, a graph output, a Concat on
another axis, a Conv whose weight is computed, a Reshape it cannot map, a Shape...) blocks the
whole group; so does an operand no prunable layer produces that is coupled with it. The groups
are the connected components of the coupling graph of spaces (networkx). A blocked group keeps
all its channels, and `remarks` says why for each of its layers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from mlc.ir.core import Graph, Node, Value
from mlc.ir.types import TensorType
from mlc.passes._patterns import FLOAT_DTYPES, STANDARD, const_array, const_ints, dtype_of, input_at, label

UNARY = frozenset({
    "Relu", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh",
    "Erf", "Gelu", "Mish", "Softplus", "Softsign", "ThresholdedRelu", "Abs", "Neg", "Exp", "Log", "Sqrt",
    "Reciprocal", "Floor", "Ceil", "Round", "Sign", "Sin", "Cos", "Identity", "Dropout", "Cast",
})
POOLS = frozenset({"MaxPool", "AveragePool", "LpPool", "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"})
ELEMENTWISE = frozenset({"Add", "Sub", "Mul", "Div", "Sum", "Max", "Min", "Mean", "Pow"})
REDUCE = frozenset({"ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum", "ReduceL1", "ReduceL2"})


@dataclass
class Space:
    """Channels created by one source layer (`source`), or by an operand no prunable layer
    produces (`source` None, always blocked)."""

    index: int
    count: int
    source: Node | None
    weight: tuple[Node, int, int] | None = None  # (node, input, axis) of the source's weight
    blocked: str | None = None  # why its group keeps every channel (a clause: "its channels ...")


@dataclass(frozen=True)
class Layout:
    """How channel spaces lie along a value's channel axis."""

    spaces: tuple[int, ...]
    axis: int  # non-negative, of a value of rank `rank`
    rank: int
    repeat: int = 1  # consecutive elements per channel on the axis


@dataclass(frozen=True)
class SliceConstant:
    """Slice the constant input `input` of `node` along `axis` to the channels `layout` keeps.
    role: "out" (a source's weight), "bias", "in" (a consumer's weight), "param" (per channel)."""

    node: Node
    input: int
    axis: int
    layout: Layout
    role: str


@dataclass(frozen=True)
class SetGroup:
    """A depthwise Conv's `group` becomes the number of channels `layout` keeps."""

    node: Node
    layout: Layout


@dataclass(frozen=True)
class ReshapeTarget:
    """Entry `position` of a Reshape's constant target holds the channel count of `layout`."""

    node: Node
    position: int
    layout: Layout


Action = SliceConstant | SetGroup | ReshapeTarget


@dataclass
class Group:
    """Spaces that lose the same channels, or none (`blocker`: the space that blocks them)."""

    spaces: list[Space]
    count: int
    blocker: Space | None = None
    sources: list[Space] = field(default_factory=list)


def rank_of(value: Value | None) -> int | None:
    if value is None or not isinstance(value.type, TensorType) or value.type.shape is None:
        return None
    return len(value.type.shape)


def dim_of(value: Value | None, axis: int) -> int | None:
    """Dim `axis` of the value's type when it is a known int."""
    if value is None or not isinstance(value.type, TensorType) or value.type.shape is None:
        return None
    shape = value.type.shape
    return shape[axis] if 0 <= axis < len(shape) and isinstance(shape[axis], int) else None  # type: ignore[return-value]


def _static_tail(value: Value | None, start: int) -> int | None:
    """The product of the value's dims from `start` on, when they are all known."""
    if value is None or not isinstance(value.type, TensorType) or value.type.shape is None:
        return None
    product = 1
    for d in value.type.shape[start:]:
        if not isinstance(d, int):
            return None
        product *= d
    return product


class ChannelAnalysis:
    """Channel spaces, their layouts, couplings and the rewrite actions of one graph (its main
    graph only: readers inside sub-graphs block what they read)."""

    def __init__(self, graph: Graph, exclude: frozenset[str] = frozenset()) -> None:
        self.graph = graph
        self.exclude = exclude
        self.spaces: list[Space] = []
        self.layouts: dict[Value, Layout] = {}
        self.actions: list[Action] = []
        self.sources: dict[Node, Space] = {}
        self.notes: list[str] = []  # remarks on layers that are no source (computed weight, grouped)
        self._handled: set[tuple[Node, int]] = set()
        self._coupling = nx.Graph()
        handlers = {"Conv": self._conv, "Gemm": self._gemm, "MatMul": self._matmul,
                    "BatchNormalization": self._normalization, "InstanceNormalization": self._normalization,
                    "Concat": self._concat, "Flatten": self._flatten, "Reshape": self._reshape, "Pad": self._pad,
                    "Resize": self._resize}
        for node in graph:
            if node.domain not in STANDARD or node.subgraphs():
                continue
            if node.op_type in handlers:
                handlers[node.op_type](node)
            elif node.op_type in UNARY or node.op_type in POOLS:
                self._passthrough(node)
            elif node.op_type in ELEMENTWISE or node.op_type == "PRelu":
                self._elementwise(node)
            elif node.op_type in REDUCE or node.op_type in ("Squeeze", "Unsqueeze"):
                self._axes(node)
        self._close()

    # ---------------------------------------------------------------- bookkeeping
    def total(self, layout: Layout) -> int:
        return sum(self.spaces[s].count for s in layout.spaces)

    def _space(self, count: int, source: Node | None, blocked: str | None = None) -> Space:
        space = Space(len(self.spaces), count, source, blocked=blocked)
        self.spaces.append(space)
        self._coupling.add_node(space.index)
        return space

    def block(self, layout: Layout, reason: str) -> None:
        for s in layout.spaces:
            if self.spaces[s].blocked is None:
                self.spaces[s].blocked = reason

    def _couple(self, a: int, b: int, via: Node) -> None:
        if a != b:
            self._coupling.add_edge(a, b, via=via)

    def _source(self, node: Node, count: int, weight_axis: int, out: Value, axis: int, rank: int) -> Layout:
        """A new space for `node`'s output channels (blocked when the user excluded the node)."""
        blocked = "excluded by exclude_nodes" if node.name and node.name in self.exclude else None
        space = self._space(count, node, blocked)
        space.weight = (node, 1, weight_axis)
        self.sources[node] = space
        layout = Layout((space.index,), axis, rank)
        self.layouts[out] = layout
        self.actions.append(SliceConstant(node, 1, weight_axis, layout, "out"))
        return layout

    def _reads(self, node: Node, index: int) -> Layout | None:
        """The layout of input `index` when it carries channels (the read is then handled here)."""
        value = input_at(node, index)
        layout = self.layouts.get(value) if value is not None else None
        if layout is not None:
            self._handled.add((node, index))
        return layout

    def _weight_problem(self, node: Node, ndim: int | None = None) -> str | None:
        w = input_at(node, 1)
        array = const_array(w)
        if array is None:
            return "its weight is not a constant"
        if dtype_of(w) not in FLOAT_DTYPES:
            return "its weight is not a floating-point tensor"
        if ndim is not None and array.ndim != ndim:
            return f"its weight is {array.ndim}-D, not {ndim}-D"
        return None

    # ---------------------------------------------------------------- sources and consumers
    def _conv(self, node: Node) -> None:
        out = node.outputs[0]
        w = const_array(input_at(node, 1))
        group = int(node.attr("group", 1))
        layout = self._reads(node, 0)
        if layout is not None:
            total = self.total(layout)
            if layout.axis != 1 or layout.repeat != 1:
                self.block(layout, f"its channels reach {label(node)} on axis {layout.axis}, not its channel axis")
            elif w is None:
                self.block(layout, f"its channels are read by {label(node)}, whose weight is not a constant")
            elif group == 1:
                self.actions.append(SliceConstant(node, 1, 1, layout, "in"))
            elif group == total and w.shape[0] == total and w.ndim >= 3 and w.shape[1] == 1:
                self._depthwise(node, layout)
                return
            else:
                self.block(layout, f"its channels are read by {label(node)}, a grouped Conv (group={group}) "
                                   "that is not depthwise")
        if group != 1:
            if layout is None and out is not None and out.uses:
                self.notes.append(f"{label(node)}: kept all channels, a grouped Conv (group={group}) follows its "
                                  "input's channels, which no prunable layer produces")
            return
        problem = self._weight_problem(node)
        bias = input_at(node, 2)
        rank = rank_of(out)
        if problem is None and bias is not None and const_array(bias) is None:
            problem = "its bias is not a constant"
        if problem is None and (rank is None or rank < 3):
            problem = "its output's rank is unknown"
        if problem is not None or out is None:
            self.notes.append(f"{label(node)}: kept all channels, {problem}")
            return
        assert w is not None and rank is not None
        source = self._source(node, w.shape[0], 0, out, 1, rank)
        if bias is not None:
            self.actions.append(SliceConstant(node, 2, 0, source, "bias"))

    def _depthwise(self, node: Node, layout: Layout) -> None:
        """One filter per channel: channel c of the output is channel c of the input, filtered."""
        bias = input_at(node, 2)
        if bias is not None and const_array(bias) is None:
            self.block(layout, f"its channels are read by depthwise {label(node)}, whose bias is not a constant")
            return
        self.actions.append(SliceConstant(node, 1, 0, layout, "param"))
        if bias is not None:
            self.actions.append(SliceConstant(node, 2, 0, layout, "param"))
        self.actions.append(SetGroup(node, layout))
        out = node.outputs[0]
        if out is not None:
            self.layouts[out] = layout

    def _gemm(self, node: Node) -> None:
        out = node.outputs[0]
        trans_b = bool(node.attr("transB", 0))
        layout = self._reads(node, 0)
        if layout is not None:
            if node.attr("transA", 0) or layout.rank != 2 or layout.axis != 1:
                self.block(layout, f"its channels are read by {label(node)} on an axis it does not reduce")
            elif self._weight_problem(node, 2) is not None:
                self.block(layout, f"its channels are read by {label(node)}, whose weight is not a constant 2-D tensor")
            else:
                self.actions.append(SliceConstant(node, 1, 1 if trans_b else 0, layout, "in"))
        problem = self._weight_problem(node, 2)
        c = input_at(node, 2)
        c_array = const_array(c)
        if problem is None and c is not None and c_array is None:
            problem = "its bias C is not a constant"
        if problem is not None or out is None:
            self.notes.append(f"{label(node)}: kept all channels, {problem}")
            return
        w = const_array(input_at(node, 1))
        assert w is not None
        count = w.shape[0] if trans_b else w.shape[1]
        source = self._source(node, count, 0 if trans_b else 1, out, 1, 2)
        if c_array is not None and c_array.ndim >= 1 and c_array.shape[-1] == count and count > 1:
            self.actions.append(SliceConstant(node, 2, c_array.ndim - 1, source, "bias"))

    def _matmul(self, node: Node) -> None:
        out = node.outputs[0]
        layout = self._reads(node, 0)
        if layout is not None:
            if layout.axis != layout.rank - 1:
                self.block(layout, f"its channels are read by {label(node)} on an axis it does not reduce")
            elif self._weight_problem(node, 2) is not None:
                self.block(layout, f"its channels are read by {label(node)}, whose weight is not a constant 2-D tensor")
            else:
                self.actions.append(SliceConstant(node, 1, 0, layout, "in"))
        problem = self._weight_problem(node, 2)
        rank = rank_of(out)
        if problem is None and (rank is None or rank < 2):
            problem = "its output's rank is unknown"
        if problem is not None or out is None:
            if const_array(input_at(node, 1)) is not None:  # a MatMul of two computed tensors is no layer
                self.notes.append(f"{label(node)}: kept all channels, {problem}")
            return
        w = const_array(input_at(node, 1))
        assert w is not None and rank is not None
        self._source(node, w.shape[1], 1, out, rank - 1, rank)

    # ---------------------------------------------------------------- ops that keep the layout
    def _passthrough(self, node: Node) -> None:
        layout = self._reads(node, 0)
        out = node.outputs[0]
        if layout is None or out is None:
            return
        if node.op_type in POOLS and (layout.axis != 1 or layout.repeat != 1 or layout.rank < 3):
            self.block(layout, f"its channels reach {label(node)} on axis {layout.axis}, not its channel axis")
            return
        for extra in node.outputs[1:]:  # MaxPool's Indices, Dropout's mask
            if extra is not None and (extra.uses or extra.is_graph_output):
                self.block(layout, f"its channels are read by {label(node)}, whose output %{extra.name} is used")
                return
        self.layouts[out] = layout

    def _normalization(self, node: Node) -> None:
        layout = self._reads(node, 0)
        out = node.outputs[0]
        if layout is None or out is None:
            return
        params = (1, 2, 3, 4) if node.op_type == "BatchNormalization" else (1, 2)
        width = self.total(layout) * layout.repeat
        why = None
        if layout.axis != 1 or (node.op_type == "InstanceNormalization" and (layout.repeat != 1 or layout.rank < 3)):
            why = f"which normalizes axis 1, not the channel axis {layout.axis}"
        elif node.attr("training_mode", 0) or any(v is not None and (v.uses or v.is_graph_output)
                                                  for v in node.outputs[1:]):
            why = "which runs in training mode"
        else:
            for i in params:
                array = const_array(input_at(node, i))
                if array is None or array.shape != (width,):
                    why = f"whose parameters are not constant vectors of {width}"
                    break
        if why is not None:
            self.block(layout, f"its channels are read by {label(node)}, {why}")
            return
        self.actions.extend(SliceConstant(node, i, 0, layout, "param") for i in params)
        self.layouts[out] = layout

    def _pad(self, node: Node) -> None:
        layout = self._reads(node, 0)
        out = node.outputs[0]
        if layout is None or out is None:
            return
        pads = const_ints(input_at(node, 1))
        axes_value = input_at(node, 3)
        axes = const_ints(axes_value) if axes_value is not None else list(range(layout.rank))
        if pads is None or axes is None or len(pads) != 2 * len(axes):
            self.block(layout, f"its channels are read by {label(node)}, whose pads are not constant")
            return
        axes = [a + layout.rank if a < 0 else a for a in axes]
        if layout.axis in axes:
            at = axes.index(layout.axis)
            if pads[at] or pads[at + len(axes)]:
                self.block(layout, f"its channels are padded by {label(node)}")
                return
        self.layouts[out] = layout

    def _resize(self, node: Node) -> None:
        layout = self._reads(node, 0)
        out = node.outputs[0]
        if layout is None or out is None:
            return
        scales = const_array(input_at(node, 2)) if input_at(node, 2) is not None else None
        sizes = input_at(node, 3)
        sizes_given = sizes is not None and not (const_array(sizes) is not None and const_array(sizes).size == 0)  # type: ignore[union-attr]
        if (node.attr("axes") is not None or sizes_given or scales is None or scales.shape != (layout.rank,)
                or float(scales[layout.axis]) != 1.0):
            self.block(layout, f"its channels are read by {label(node)}, which may resize the channel axis")
            return
        self.layouts[out] = layout

    def _axes(self, node: Node) -> None:
        """Reduce* over other axes than the channels' (a dynamo export's spatial mean), Squeeze and
        Unsqueeze: the channel axis moves by the axes removed or inserted before it."""
        layout = self._reads(node, 0)
        out = node.outputs[0]
        self._handled.add((node, 1))
        if layout is None or out is None:
            return
        op = node.op_type
        given = input_at(node, 1)
        axes = const_ints(given) if given is not None else node.attr("axes")
        rank, axis = layout.rank, layout.axis
        why = None
        if given is not None and axes is None:
            why = "whose axes are computed at run time"
        elif op == "Unsqueeze":
            out_rank = rank + len(axes or [])
            inserted = sorted(a + out_rank if a < 0 else a for a in axes or [])
            position = axis
            for a in inserted:  # input dims fill the output positions not inserted, in order
                if a <= position:
                    position += 1
            self.layouts[out] = Layout(layout.spaces, position, out_rank, layout.repeat)
            return
        elif not axes:
            if op in REDUCE and node.attr("noop_with_empty_axes", 0):
                self.layouts[out] = layout
                return
            if op == "Squeeze":
                x = input_at(node, 0)
                shape = x.type.shape if x is not None and isinstance(x.type, TensorType) else None
                axes = [j for j, d in enumerate(shape or ()) if d == 1]
                if rank_of(out) is None or len(axes) != rank - rank_of(out):  # type: ignore[operator]
                    why = "whose squeezed axes are not known"
            else:
                why = "which reduces every axis, the channels' included"
        if why is None:
            assert axes is not None
            axes = [a + rank if a < 0 else a for a in axes]
            if axis in axes:
                why = "which removes the channel axis"
        if why is not None:
            self.block(layout, f"its channels are read by {label(node)}, {why}")
            return
        assert axes is not None
        keep = op in REDUCE and node.attr("keepdims", 1)
        before = 0 if keep else sum(1 for a in set(axes) if a < axis)
        self.layouts[out] = Layout(layout.spaces, axis - before, rank if keep else rank - len(set(axes)),
                                   layout.repeat)

    # ---------------------------------------------------------------- couplings
    def _elementwise(self, node: Node) -> None:
        """An elementwise op: computed operands carrying channels are coupled; constants that vary
        per channel are sliced; a computed operand no layer produces blocks them."""
        out = node.outputs[0]
        tracked = [(i, v, self._reads(node, i)) for i, v in enumerate(node.inputs) if v is not None]
        layouts = [(i, layout) for i, _, layout in tracked if layout is not None]
        if not layouts or out is None:
            return
        first = layouts[0][1]
        from_right = first.rank - first.axis
        out_rank = rank_of(out)
        if out_rank is None:
            ranks = [rank_of(v) if const_array(v) is None else const_array(v).ndim for _, v, _ in tracked]  # type: ignore[union-attr]
            out_rank = None if None in ranks else max(r for r in ranks if r is not None)
        for _, layout in layouts[1:]:
            if (layout.rank - layout.axis != from_right or layout.repeat != first.repeat
                    or [self.spaces[s].count for s in layout.spaces] != [self.spaces[s].count for s in first.spaces]):
                for _, each in layouts:
                    self.block(each, f"its channels meet channels laid out differently in {label(node)}")
                return
        if out_rank is None:
            self.block(first, f"its channels reach {label(node)}, whose output's rank is unknown")
            return
        for _, layout in layouts[1:]:
            for a, b in zip(first.spaces, layout.spaces, strict=True):
                self._couple(a, b, node)
        width = self.total(first) * first.repeat
        for i, value, carried in tracked:
            if carried is not None:
                continue
            array = const_array(value)
            rank = array.ndim if array is not None else rank_of(value)
            at = None if rank is None else rank - from_right
            if at is not None and at < 0:
                continue  # it does not reach the channel axis (a scalar)
            dim = (array.shape[at] if array is not None else dim_of(value, at)) if at is not None else None
            if dim == 1:
                continue
            if array is not None and dim == width:
                self.actions.append(SliceConstant(node, i, at, first, "param"))  # type: ignore[arg-type]
                continue
            why = (f"its channels meet a constant of {dim} channels in {label(node)}" if array is not None else
                   f"its channels are coupled through {label(node)} with %{value.name}, which no prunable layer "
                   "produces")
            if array is None and isinstance(dim, int) and len(first.spaces) == 1 and first.repeat == 1:
                opaque = self._space(dim, None, why)
                self._couple(first.spaces[0], opaque.index, node)
            else:
                for _, each in layouts:
                    self.block(each, why)
                return
        self.layouts[out] = Layout(first.spaces, out_rank - from_right, out_rank, first.repeat)

    def _concat(self, node: Node) -> None:
        out = node.outputs[0]
        tracked = [(i, v, self._reads(node, i)) for i, v in enumerate(node.inputs) if v is not None]
        layouts = [layout for _, _, layout in tracked if layout is not None]
        if not layouts or out is None:
            return
        rank = layouts[0].rank
        axis = int(node.attr("axis", 0))
        axis = axis + rank if axis < 0 else axis
        repeat = layouts[0].repeat
        if any(layout.axis != axis for layout in layouts):
            for layout in layouts:
                self.block(layout, f"its channels are concatenated by {label(node)} on axis {axis}, "
                                   "not the channel axis")
            return
        spaces: list[int] = []
        for _, value, carried in tracked:
            if carried is not None and carried.repeat == repeat:
                spaces.extend(carried.spaces)
                continue
            dim = dim_of(value, axis) if carried is None else None
            if dim is None or dim % repeat:
                for each in layouts:
                    self.block(each, f"its channels are concatenated by {label(node)} with %{value.name}, whose "
                                     "channels do not line up")
                return
            spaces.append(self._space(dim // repeat, None, "no prunable layer produces it").index)
        self.layouts[out] = Layout(tuple(spaces), axis, rank, repeat)

    # ---------------------------------------------------------------- re-laying the channel axis
    def _flatten(self, node: Node) -> None:
        """Flatten(x, a) with the channels on axis a: channel c covers repeat*HW consecutive features."""
        layout = self._reads(node, 0)
        x, out = input_at(node, 0), node.outputs[0]
        if layout is None or out is None:
            return
        axis = int(node.attr("axis", 1))
        axis = axis + layout.rank if axis < 0 else axis
        inner = _static_tail(x, layout.axis + 1)
        ones = all(dim_of(x, j) == 1 for j in range(axis, layout.axis))
        if layout.axis < axis or not ones or inner is None:
            self.block(layout, f"its channels are flattened by {label(node)} into features it cannot map "
                               "(dims after the channel axis not static, or the channels in the leading dim)")
            return
        self.layouts[out] = Layout(layout.spaces, 1, 2, layout.repeat * inner)

    def _reshape(self, node: Node) -> None:
        """Reshape that keeps the dims before the channel axis and merges or splits static dims
        after it; a literal channel count in its target is rewritten."""
        layout = self._reads(node, 0)
        x, out = input_at(node, 0), node.outputs[0]
        self._handled.add((node, 1))
        if layout is None or out is None:
            return
        target = const_ints(input_at(node, 1))
        a = layout.axis
        why = None
        inner_in = _static_tail(x, a + 1)
        if target is None:
            why = "whose target shape is computed at run time"
        elif node.attr("allowzero", 0) and 0 in target:
            why = "with allowzero=1"
        elif len(target) <= a or inner_in is None:
            why = "which moves the channel axis"
        if why is None:
            assert target is not None and inner_in is not None
            inner_out = 1
            for j in range(a + 1, len(target)):
                d = dim_of(out, j) if target[j] <= 0 else target[j]
                if d is None:
                    why = "whose dims after the channel axis are not static"
                    break
                inner_out *= d
            per_channel = layout.repeat * inner_in
            for j in range(a):
                same = dim_of(x, j) is not None and dim_of(x, j) == (dim_of(out, j) if target[j] <= 0 else target[j])
                if not (target[j] in (0, -1) or same):
                    why = "which changes the dims before the channel axis"
            if why is None and per_channel % inner_out:
                why = "which splits channels across the channel axis"
            if why is None:
                repeat = per_channel // inner_out
                if target[a] == 0 and repeat != layout.repeat:
                    why = "whose target copies the channel dim"
                elif target[a] > 0 and target[a] != self.total(layout) * repeat:
                    why = "whose target does not hold the channel count"
        if why is not None:
            self.block(layout, f"its channels are reshaped by {label(node)}, {why}")
            return
        assert target is not None
        result = Layout(layout.spaces, a, len(target), repeat)
        if target[a] > 0:
            self.actions.append(ReshapeTarget(node, a, result))
        self.layouts[out] = result

    # ---------------------------------------------------------------- what nobody followed
    def _close(self) -> None:
        for value, layout in self.layouts.items():
            if value.is_graph_output:
                self.block(layout, f"its channels reach the graph output %{value.name}")
            for node, i in value.uses:
                if (node, i) not in self._handled:
                    self.block(layout, f"its channels are read by {label(node)}, which the analysis does not follow")

    # ---------------------------------------------------------------- results
    def groups(self) -> list[Group]:
        """The coupled groups, in the order of their first space (deterministic)."""
        groups = []
        for component in sorted(nx.connected_components(self._coupling), key=min):
            spaces = [self.spaces[i] for i in sorted(component)]
            blocker = next((s for s in spaces if s.blocked is not None), None)
            groups.append(Group(spaces, spaces[0].count, blocker, [s for s in spaces if s.source is not None]))
        return groups

    def remarks(self, group: Group) -> list[str]:
        """One remark per layer of a blocked group: why it keeps every channel."""
        blocker = group.blocker
        if blocker is None:
            return []
        lines = []
        for space in group.sources:
            assert space.source is not None
            if space is blocker:
                lines.append(f"{label(space.source)}: kept all channels, {blocker.blocked}")
                continue
            path = nx.shortest_path(self._coupling, space.index, blocker.index)
            via = self._coupling.edges[path[0], path[1]]["via"]
            other = label(blocker.source) if blocker.source is not None else "an operand"
            lines.append(f"{label(space.source)}: kept all channels, coupled through {label(via)} with {other}: "
                         f"{blocker.blocked}")
        return lines

    def index(self, layout: Layout, kept: dict[int, np.ndarray]) -> np.ndarray | None:
        """The positions along the layout's axis that stay, or None when none of its spaces lose
        a channel. `kept` maps a space to its kept channels (sorted); absent: all kept."""
        parts = []
        offset = 0
        changed = False
        for s in layout.spaces:
            count = self.spaces[s].count
            keep = kept.get(s)
            if keep is None:
                keep = np.arange(count)
            elif len(keep) < count:
                changed = True
            parts.append(np.asarray(keep, dtype=np.int64) + offset)
            offset += count
        if not changed:
            return None
        index = np.concatenate(parts)
        if layout.repeat > 1:
            index = (index[:, None] * layout.repeat + np.arange(layout.repeat)[None, :]).reshape(-1)
        return index
