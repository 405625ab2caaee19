"""Constant folding: evaluate at compile time what does not depend on the model's inputs.

    y = Op(c1, c2, ...)            all inputs constant            ->  y is a constant
    y = Shape(x) / Size(x)         the dims asked for are static  ->  y is a constant
    y = Constant<value...>()                                      ->  y is a constant (initializer)
    y = ConstantOfShape(c)                                        ->  a splat constant (no bytes stored)

Values come from onnx's reference evaluator (`mlc.numerics.evaluate`), which follows the node's
opset; Shape, Size, Constant and ConstantOfShape are read off the IR directly, and the layout ops
that keep the values in order (Identity, Reshape, Flatten, Squeeze, Unsqueeze) only reshape, so a
splat stays a splat. Results whose
elements are all equal are stored as splats, which cost one element whatever their shape.

Folding must not turn a small model into a large one (onnxsim's known failure: a 150-byte
`Expand` becomes hundreds of MB), yet a constant computation worth folding often is larger than
its inputs: swin's shifted-window attention mask is `Where(Not(Equal(Sub(a, b), 0)), ...)` over
two 1 KiB vectors, a 16 KiB result that costs five nodes at run time when left alone. The policy:

* no single output above `limit` bytes (4 MiB) is ever made;
* a fold may always grow the model by up to `growth` bytes (1 KiB): shape arithmetic, small
  broadcasts;
* beyond that, folds draw on a budget for the whole run: the net growth of the constants by
  this pass (new constants minus the ones made dead, every fold counted) stays within
  `growth_ratio` (1/10) of the model's constant bytes when the pass starts, and within
  `growth_cap` bytes (16 MiB) whatever the model's size.

A 150-byte model thus never grows by more than 1 KiB at a time, a 560 KB swin folds its 18 KB of
masks, a 100 MB model may gain at most 10 MB of folded constants, and no model more than
16 MiB. What is refused stays a node, with the reason recorded as a remark (a weight cast from
float16 to float32 at load time stays a Cast; a quantized weight stays DequantizeLinear).

A node refused for growth alone may still fold as part of its constant region: the connected
nodes whose inputs are all constants or outputs of one another. The region folds as a whole when
the constants it leaves (the outputs read outside it, static in size) exceed the constants it
makes dead by at most `growth` bytes, or by what the budget has left. The dynamo exporter's
LSTM weights are such a region: four Slices of one weight, reordered by a Concat and
Unsqueezed: each Slice alone adds a copy of a quarter of the weight, the whole replaces the
weight by its reordered self.

Random ops, ops with sub-graphs, ops of other domains and nodes whose output is a graph output
(a graph output cannot be an initializer for every consumer) are never folded, nor a node whose
float16 (or narrower) result overflows to Inf from finite inputs: onnx's semantics round every
intermediate, but onnxruntime runs a float16 op that has no float16 kernel in float32 and drops
the casts between two such ops, so `Mul(x, Add(a, a))` with a = 6e4 is finite there; folded, it
would be Inf in every artifact. Folding computes
in numpy what the runtime would compute with its own kernels: transcendental functions may differ
in the last bit, hence `tolerance`.
"""

from __future__ import annotations

import numpy as np

from mlc.ir.attributes import AttrType
from mlc.ir.core import Graph, Node, Value
from mlc.ir.dtypes import DType
from mlc.ir.tensor import SparseTensor, Tensor, TensorDataUnavailable
from mlc.ir.types import TensorType
from mlc.numerics.evaluate import EvaluationError, evaluate_node
from mlc.pass_api import Numerics, Pass, PassContext, PassOption, register_pass
from mlc.passes._slicing import python_start

_NONDETERMINISTIC = {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial",
                     "Bernoulli", "Dropout"}
_LAYOUT_OPS = {"Identity", "Unsqueeze", "Squeeze", "Flatten", "Reshape"}
_CONSTANT_ATTRS = {"value_float": np.float32, "value_floats": np.float32, "value_int": np.int64,
                   "value_ints": np.int64}


def _label(node: Node) -> str:
    return f"{node.op_type} {node.name!r}" if node.name else node.op_type


def _constant_tensor(value: Value | None) -> Tensor | None:
    if value is None or not value.is_constant or not isinstance(value.const, Tensor):
        return None
    return value.const if value.const.has_data else None


def _shape_dims(node: Node) -> np.ndarray | None:
    """Shape's output when the dims it asks for are static ints."""
    source = node.inputs[0]
    if source is None or not isinstance(source.type, TensorType) or source.type.shape is None:
        return None
    dims = source.type.shape
    rank = len(dims)
    start = node.attr("start", 0)
    end = node.attr("end", rank)
    start = min(max(start + rank if start < 0 else start, 0), rank)
    end = min(max(end + rank if end < 0 else end, 0), rank)
    wanted = dims[start:end]
    if not all(isinstance(d, int) for d in wanted):
        return None
    return np.array(wanted, dtype=np.int64)


def _from_constant_node(node: Node) -> Tensor | None:
    for name, attr in node.attributes.items():
        if attr.ref is not None:
            return None
        if name == "value" and attr.type == AttrType.TENSOR:
            return attr.value  # type: ignore[no-any-return]
        if name in _CONSTANT_ATTRS:
            return Tensor.from_array(np.array(attr.value, dtype=_CONSTANT_ATTRS[name]))
        if name in ("value_string", "value_strings"):
            return Tensor.from_array(np.array(attr.value, dtype=object), DType.STRING)
    return None  # sparse_value stays a node: the IR keeps sparse constants as initializers only


def _as_tensor(array: np.ndarray, dtype: DType) -> Tensor:
    """A splat when every element is equal (cheap to store whatever the shape)."""
    if dtype != DType.STRING and array.size > 1:
        flat = array.reshape(-1)
        first = flat[0]
        same = flat == first
        if dtype.is_float and first != first:  # NaN: equal only to NaNs
            same = flat != flat
        if bool(np.all(same)):
            return Tensor.splat_of(first, dtype, array.shape)
    return Tensor.from_array(array, dtype)


def _axes(node: Node, inputs: list[Tensor | None]) -> list[int] | None:
    """Unsqueeze/Squeeze axes: an attribute before opset 13, the second input from 13 on."""
    if len(inputs) > 1 and inputs[1] is not None:
        return [int(a) for a in inputs[1].numpy().reshape(-1)]
    axes = node.attr("axes")
    return None if axes is None else [int(a) for a in axes]


def _layout_shape(node: Node, inputs: list[Tensor | None]) -> tuple[int, ...] | None:
    """The output shape of a data-preserving layout op (the values keep their order, so a splat
    stays a splat and an array is reshaped), or None when the op is not one of them."""
    op, data = node.op_type, inputs[0]
    assert data is not None
    shape = list(data.shape)
    if op == "Identity":
        return tuple(shape)
    if op == "Unsqueeze":
        axes = _axes(node, inputs)
        if axes is None:
            return None
        rank = len(shape) + len(axes)
        for axis in sorted(a + rank if a < 0 else a for a in axes):
            shape.insert(axis, 1)
        return tuple(shape)
    if op == "Squeeze":
        axes = _axes(node, inputs)
        if axes is None:
            return tuple(d for d in shape if d != 1)
        drop = {a + len(shape) if a < 0 else a for a in axes}
        if any(shape[a] != 1 for a in drop):
            return None
        return tuple(d for i, d in enumerate(shape) if i not in drop)
    if op == "Flatten":
        axis = node.attr("axis", 1)
        axis = axis + len(shape) if axis < 0 else axis
        return (int(np.prod(shape[:axis], dtype=np.int64)), int(np.prod(shape[axis:], dtype=np.int64)))
    if op == "Reshape" and inputs[1] is not None and not node.attr("allowzero", 0):
        target = [int(d) for d in inputs[1].numpy().reshape(-1)]
        target = [shape[i] if d == 0 else d for i, d in enumerate(target)]
        if target.count(-1) == 1:
            known = int(np.prod([d for d in target if d != -1], dtype=np.int64))
            if known == 0:
                return None
            target[target.index(-1)] = data.size // known
        return tuple(target) if int(np.prod(target, dtype=np.int64)) == data.size else None
    return None


def _narrow_overflow(inputs: list[np.ndarray | None], outputs: list[np.ndarray | None]) -> int:
    """How many elements of the narrow-float (float16, bfloat16, float8) outputs are Inf although
    every float input is finite: a folded overflow that the runtime may not make (0 if none)."""
    narrow = [a for a in outputs if a is not None and a.dtype.kind in "fV" and a.dtype.itemsize <= 2
              and a.dtype != np.bool_]
    if not narrow:
        return 0
    for array in inputs:
        if array is not None and array.dtype.kind in "fV" and array.dtype != np.bool_ and array.size \
                and not np.all(np.isfinite(array.astype(np.float32))):
            return 0
    return sum(int(np.isinf(a.astype(np.float32)).sum()) for a in narrow)


def _candidate(node: Node) -> bool:
    """A node folding may evaluate: deterministic standard ops with tensor outputs, none of them a
    graph output (a graph output cannot be an initializer for every consumer)."""
    if node.domain not in ("", "ai.onnx") or node.op_type in _NONDETERMINISTIC or node.subgraphs():
        return False
    outputs = [v for v in node.outputs if v is not None]
    if not outputs or any(v.is_graph_output for v in outputs):
        return False
    return all(isinstance(v.type, TensorType) for v in outputs)  # not sequences, optionals, maps


def _regions(graph: Graph, seeds: list[Node]) -> list[list[Node]]:
    """The constant regions (in graph order) that hold a node refused for growth alone: the nodes
    reachable from it through values, whose inputs are all constants or region outputs."""
    if not seeds:
        return []
    constant_nodes: set[Node] = set()
    for node in graph:  # in order: a node is constant when every input is a constant or a constant node's
        if not _candidate(node):
            continue
        if all(v is None or v.is_constant or (v.producer in constant_nodes) for v in node.inputs):
            constant_nodes.add(node)
    order = {node: i for i, node in enumerate(graph)}
    done: set[Node] = set()
    regions = []
    for seed in seeds:
        if seed in done or seed not in constant_nodes or seed.graph is not graph:
            continue
        region: set[Node] = set()
        stack = [seed]
        while stack:
            node = stack.pop()
            if node in region:
                continue
            region.add(node)
            neighbours = [user for v in node.outputs if v is not None for user, _ in v.uses]
            neighbours += [v.producer for v in node.inputs if v is not None and v.producer is not None]
            stack.extend(n for n in neighbours if n in constant_nodes and n not in region)
        done |= region
        regions.append(sorted(region, key=order.__getitem__))
    return regions


def _stored_bytes(tensor: Tensor) -> int:
    return max(tensor.dtype.bits // 8, 1) if tensor.is_splat else tensor.nbytes


def _model_constant_bytes(graph: Graph) -> int:
    """The bytes of constant data the model carries (what the growth budget is a fraction of)."""
    return sum(_stored_bytes(v.const) for sub in graph.all_graphs() for v in sub.initializers.values()
               if isinstance(v.const, Tensor))


def _onnx_slice_starts(arrays: list[np.ndarray | None]) -> list[np.ndarray | None]:
    """Slice's inputs with the starts Python's slicing reads as ONNX reads them: the reference
    evaluator slices like Python, which empties a negative-step slice whose start lies before the
    axis, where ONNX clamps it to 0 (`mlc.passes._slicing`; fuzz seed 168). Only opset-10+ Slices
    have steps, so only they can differ."""
    if len(arrays) < 5 or any(a is None for a in arrays[:2]) or arrays[4] is None:
        return arrays
    data, starts, steps = arrays[0], arrays[1], arrays[4]
    assert data is not None and starts is not None and steps is not None
    axes = arrays[3] if arrays[3] is not None else np.arange(starts.size)
    fixed = starts.reshape(-1).copy()
    for i, (axis, step) in enumerate(zip(axes.reshape(-1), steps.reshape(-1), strict=False)):
        dim = data.shape[int(axis) % max(data.ndim, 1)] if data.ndim else 0
        fixed[i] = python_start(int(fixed[i]), int(step), dim)
    return [data, fixed.reshape(starts.shape), *arrays[2:]]


@register_pass
class FoldConstants(Pass):
    name = "fold-constants"
    description = "Evaluate nodes whose inputs are constant (and static Shape/Size) at compile time"
    numerics = Numerics.TOLERANCE
    options = (
        PassOption("limit", int, 4 << 20, "largest output (bytes) a folded node may produce"),
        PassOption("growth", int, 1024, "bytes by which one fold may always grow the model's constants"),
        PassOption("growth_ratio", float, 0.1,
                   "beyond `growth`: the most the run's folds may grow the constants, as a fraction of them"),
        PassOption("growth_cap", int, 16 << 20, "beyond `growth`: the most bytes the run's folds may add in all"),
    )
    statistics = ("folded", "folded_in_regions", "skipped_size", "skipped_growth", "skipped_error")
    _budget = 0  # this run's growth budget beyond the per-fold floor (set by run)
    _spent = 0  # the net bytes this run's folds have added so far

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        ratio_budget = int(self.option("growth_ratio") * _model_constant_bytes(graph.root))
        self._budget = max(0, min(ratio_budget, self.option("growth_cap")))
        self._spent = 0  # net bytes this run's folds added so far
        opsets = dict(graph.root.model.opset_imports) if graph.root.model is not None else {"": 17}
        for sub in list(graph.all_graphs()):
            refused: list[Node] = []
            for node in sub:
                if not _candidate(node):
                    continue
                folded = self._evaluate(node, opsets, ctx)
                if folded is None:
                    continue
                why = self._unaffordable(node, folded, ctx)
                if why is not None:
                    if why == "growth":
                        refused.append(node)
                    continue
                if not ctx.rewrite(f"fold-{node.op_type}"):
                    return changed
                self._replace(sub, node, folded, ctx)
                changed = True
            for region in _regions(sub, refused):
                growth = self._region_growth(region, ctx)
                if growth is None:
                    continue
                env: dict[Value, Tensor] = {}
                results = []
                for node in region:  # every node evaluates before any is replaced: all or nothing
                    folded = self._evaluate(node, opsets, ctx, env)
                    if folded is None:
                        break
                    results.append(folded)
                    env.update((v, t) for v, t in zip(node.outputs, folded, strict=True)
                               if v is not None and t is not None)
                if len(results) != len(region):
                    continue
                for node, folded in zip(region, results, strict=True):
                    if not ctx.rewrite(f"fold-{node.op_type}"):
                        return changed
                    self._replace(sub, node, folded, ctx)
                    ctx.stats["folded_in_regions"] += 1
                    changed = True
                self._spent += growth
        return changed

    @staticmethod
    def _replace(sub: Graph, node: Node, folded: list[Tensor | None], ctx: PassContext) -> None:
        for value, tensor in zip(node.outputs, folded, strict=True):
            if value is None or tensor is None:
                continue
            constant = sub.make_constant(tensor, value.name)
            value.replace_all_uses_with(constant)
        inputs = [v for v in node.inputs if v is not None]
        sub.remove(node)
        for value in inputs:  # constants only this node read go with it
            owner = value.graph
            if (not value.uses and value.is_constant and owner is not None and not value.is_graph_output
                    and owner.initializers.get(value.name) is value):
                owner.remove_initializer(value)
        ctx.stats["folded"] += 1

    def _region_growth(self, region: list[Node], ctx: PassContext) -> int | None:
        """By how many bytes folding the region grows the model, when its outputs read outside it
        are static and small enough and the growth is affordable (see the module docstring);
        else None."""
        members = set(region)
        added = 0
        for node in region:
            for value in node.outputs:
                if value is None:
                    continue
                t = value.type
                if not isinstance(t, TensorType) or not t.is_static or t.dtype == DType.STRING:
                    return None  # sizes unknown before evaluating
                size = int(np.prod(t.shape, dtype=np.int64)) * max(t.dtype.bits // 8, 1)  # type: ignore[arg-type]
                if size > self.option("limit"):
                    return None
                if not all(user in members for user, _ in value.uses):
                    added += size
        freed = 0
        seen: set[int] = set()
        for node in region:
            for value in node.inputs:
                if value is None or id(value) in seen or not value.is_constant or isinstance(value.const, SparseTensor):
                    continue
                seen.add(id(value))
                if value.const is not None and all(user in members for user, _ in value.uses):
                    freed += _stored_bytes(value.const)  # type: ignore[arg-type]
        if not self._affordable(added - freed):
            ctx.remark(f"constant region of {len(region)} nodes from {_label(region[0])}: not folded, it would grow "
                       f"the model by {added - freed} bytes ({self._left()} bytes of the growth budget left)")
            return None
        return added - freed

    def _evaluate(self, node: Node, opsets: dict[str, int], ctx: PassContext,
                  env: dict[Value, Tensor] | None = None) -> list[Tensor | None] | None:
        """The node's outputs, from its constant inputs (and the tensors of `env`), or None."""
        op = node.op_type
        out_type = node.outputs[0].type if node.outputs[0] is not None else None
        if op == "Constant":
            tensor = _from_constant_node(node)
            return None if tensor is None else [tensor]
        if op == "Shape":
            dims = _shape_dims(node)
            return None if dims is None else [Tensor.from_array(dims)]
        if op == "Size":
            source = node.inputs[0]
            if source is None or not isinstance(source.type, TensorType) or not source.type.is_static:
                return None
            return [Tensor.from_array(np.array(int(np.prod(source.type.shape, dtype=np.int64)), dtype=np.int64))]
        inputs = [None if v is None else env[v] if env is not None and v in env else _constant_tensor(v)
                  for v in node.inputs]
        if any(t is None for v, t in zip(node.inputs, inputs, strict=True) if v is not None):
            return None
        if op == "ConstantOfShape":
            shape = [int(d) for d in inputs[0].numpy().reshape(-1)]  # type: ignore[union-attr]
            attr = node.attributes.get("value")
            fill = attr.value if attr is not None and attr.ref is None else Tensor.from_array(np.zeros(1, np.float32))
            if fill.dtype == DType.STRING or fill.dtype.is_exotic or min(shape, default=1) < 0:
                return None
            return [Tensor.splat_of(fill.numpy().reshape(-1)[0], fill.dtype, shape)]
        if op in _LAYOUT_OPS and inputs[0] is not None:
            new_shape = _layout_shape(node, inputs)
            if new_shape is not None:
                data = inputs[0]
                if data.is_splat:
                    return [Tensor.splat_of(data.splat_value, data.dtype, new_shape)]
                if data.dtype != DType.STRING and not data.dtype.is_exotic:
                    return [Tensor.from_array(data.numpy().reshape(new_shape), data.dtype)]
        if isinstance(out_type, TensorType) and out_type.is_static and out_type.dtype != DType.STRING:
            size = int(np.prod(out_type.shape, dtype=np.int64)) * max(out_type.dtype.bits // 8, 1)  # type: ignore[arg-type]
            if size > self.option("limit"):
                ctx.stats["skipped_size"] += 1
                ctx.remark(f"{_label(node)}: not folded, its output would take {size} bytes "
                           f"(limit {self.option('limit')})")
                return None
        try:
            arrays = [t.numpy() if t is not None else None for t in inputs]
            if op == "Slice":
                arrays = _onnx_slice_starts(arrays)
            results = evaluate_node(node, arrays, opsets)
        except (EvaluationError, TensorDataUnavailable, TypeError) as error:
            ctx.stats["skipped_error"] += 1
            ctx.remark(f"{_label(node)}: not folded, the reference evaluator failed ({error})")
            return None
        overflow = _narrow_overflow(arrays, results)
        if overflow:
            ctx.remark(f"{_label(node)}: not folded, {overflow} elements of its result overflow to Inf from finite "
                       "inputs (left to run time: onnxruntime computes float16 ops without a float16 kernel in "
                       "float32, unrounded between them)")
            return None
        tensors: list[Tensor | None] = []
        for value, array in zip(node.outputs, results, strict=True):
            if value is None or array is None:
                tensors.append(None)
                continue
            declared = value.type.dtype if isinstance(value.type, TensorType) else DType.from_numpy(array.dtype)
            tensors.append(_as_tensor(array, declared))
        return tensors

    def _unaffordable(self, node: Node, folded: list[Tensor | None], ctx: PassContext) -> str | None:
        """None when within the size limit and not growing the model by more than `growth` bytes,
        else "size" or "growth"."""
        added = sum(_stored_bytes(t) for t in folded if t is not None)
        if any(t is not None and t.nbytes > self.option("limit") and not t.is_splat for t in folded):
            ctx.stats["skipped_size"] += 1
            ctx.remark(f"{_label(node)}: not folded, its output takes {added} bytes (limit {self.option('limit')})")
            return "size"
        freed = 0
        seen: set[int] = set()
        for value in node.inputs:
            if value is None or id(value) in seen or isinstance(value.const, SparseTensor) or value.const is None:
                continue
            seen.add(id(value))
            if all(user is node for user, _ in value.uses) and not value.is_graph_output:
                freed += _stored_bytes(value.const)
        if not self._affordable(added - freed):
            ctx.stats["skipped_growth"] += 1
            ctx.remark(f"{_label(node)}: not folded, it would grow the model by {added - freed} bytes "
                       f"({added} bytes of new constants for {freed} freed; {self._left()} bytes of the "
                       "growth budget left)")
            return "growth"
        self._spent += added - freed
        return None

    def _affordable(self, growth: int) -> bool:
        """Within the per-fold floor, or within what the run's budget has left."""
        return growth <= self.option("growth") or growth <= self._left()

    def _left(self) -> int:
        return max(0, self._budget - self._spent)
