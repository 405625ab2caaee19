"""Pattern helpers shared by the fusion passes: constants, single-reader checks, replacing a
chain of nodes by one, and folding a per-channel affine map y = x*s + t into the weights of the
linear op (Conv, ConvTranspose, Gemm, MatMul) that produces x."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from mlc.ir.core import Graph, Node, Value
from mlc.ir.dtypes import DType
from mlc.ir.tensor import Tensor, TensorDataUnavailable
from mlc.ir.types import Dim, TensorType
from mlc.pass_api import PassContext

STANDARD = ("", "ai.onnx")
FLOAT_DTYPES = (DType.FLOAT, DType.FLOAT16, DType.DOUBLE, DType.BFLOAT16)
AFFINE_PRODUCERS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def label(node: Node) -> str:
    """How remarks name a node: `Conv 'c1'`, or the bare op type when it has no name."""
    return f"{node.op_type} {node.name!r}" if node.name else node.op_type


def const_array(value: Value | None, *, constant_nodes: bool = False) -> np.ndarray | None:
    """The values of a constant no caller can override, or None (graph inputs with defaults,
    node outputs, digests without data are not constants a fusion may bake in). With
    `constant_nodes`, the output of a `Constant` node with a tensor `value` counts too (for passes
    that run before fold-constants has turned those into initializers)."""
    if value is None:
        return None
    try:
        if constant_nodes and value.producer is not None:
            node = value.producer
            tensor = node.attr("value") if node.op_type == "Constant" and node.domain in STANDARD else None
            return tensor.numpy() if isinstance(tensor, Tensor) and tensor.has_data else None
        if not value.is_constant or not isinstance(value.const, Tensor) or not value.const.has_data:
            return None
        return value.const.numpy()
    except TensorDataUnavailable:  # external data that cannot be read: not a constant to bake in
        return None


def input_at(node: Node, index: int) -> Value | None:
    """Input `index`, or None when it is omitted or past the end."""
    return node.inputs[index] if index < len(node.inputs) else None


def static_shape(value: Value | None) -> tuple[int, ...] | None:
    """The value's shape when every dim is a known int."""
    if value is None or not isinstance(value.type, TensorType) or not value.type.is_static:
        return None
    assert value.type.shape is not None
    return tuple(int(d) for d in value.type.shape)  # type: ignore[arg-type]


def dtype_of(value: Value | None) -> DType | None:
    if value is None or not isinstance(value.type, TensorType):
        return None
    return value.type.dtype


def output_name_blocked(out: Value, source: Value, graph: Graph) -> bool:
    """When a node passing `source` through is removed and `out` is a graph output, `source` must
    take its name: impossible when `source` is a graph input, a constant, another graph output or
    a value of an enclosing graph (the interface needs two distinct names)."""
    return out.is_graph_output and (source.producer is None or source.is_graph_output or source.graph is not graph)


def reader_problem(value: Value) -> str | None:
    """Why a fusion cannot swallow the node producing `value`: someone else needs the value."""
    if value.is_graph_output:
        return "its output is a graph output"
    count = len(value.uses)
    if count != 1:
        return f"its output has {count} readers"
    return None


def replace_chain(graph: Graph, ctx: PassContext, rule: str, chain: Sequence[Node], op_type: str,
                  inputs: Sequence[Value | None], attributes: dict[str, Any], *, domain: str = "",
                  name: str | None = None) -> Node:
    """Replace the single-reader chain `chain` (first → last) by one new node that computes the
    last node's first output. The new node is inserted where the last one was, so every value
    the chain read is still defined before it; the chain is then removed, last node first."""
    last = chain[-1]
    out = last.outputs[0]
    assert out is not None
    node = Node(op_type, inputs, [Value(out.name, out.type)], attributes, domain=domain,
                name=chain[0].name if name is None else name)
    ctx.created(node, chain, rule)
    graph.insert_before(last, node)
    new_out = node.outputs[0]
    assert new_out is not None
    out.replace_all_uses_with(new_out, replace_graph_outputs=True)
    for old in reversed(chain):
        graph.remove(old)
    return node


def drop_dead_constants(values: Iterable[Value | None]) -> None:
    """Remove the constants among `values` that nothing reads any more (a weight the fusion
    replaced), so that the result needs no `dce` to be tidy; shared ones stay."""
    for value in values:
        if value is None or not value.is_constant or value.uses or value.is_graph_output:
            continue
        owner = value.graph
        if owner is not None and owner.initializers.get(value.name) is value:
            owner.remove_initializer(value)


def new_constant(graph: Graph, array: np.ndarray, like: Value | None, hint: str) -> Value:
    name = like.name if like is not None and like.name else hint
    return graph.make_constant(array, name)


# ===================================================================== folding y = P(x)*s + t
def out_channels(producer: Node) -> int | None:
    """Number of output channels of a Conv/ConvTranspose/Gemm/MatMul whose weight shape is static."""
    shape = static_shape(input_at(producer, 1))
    if shape is None:
        return None
    op = producer.op_type
    if op == "Conv" and len(shape) >= 3:
        return shape[0]
    if op == "ConvTranspose" and len(shape) >= 3:
        return int(producer.attr("group", 1)) * shape[1]
    if op == "Gemm" and len(shape) == 2:
        return shape[0] if producer.attr("transB", 0) else shape[1]
    if op == "MatMul" and len(shape) == 2:
        return shape[1]
    return None


def fold_problem(producer: Node, channels: int, *, scales: bool, shifts: bool) -> str | None:
    """Why y*s + t (per output channel, `channels` of them) cannot be folded into `producer`'s
    constants; None when it can. `scales` / `shifts` say whether s / t are present."""
    op = producer.op_type
    w = input_at(producer, 1)
    wdtype = dtype_of(w)
    if wdtype not in FLOAT_DTYPES:
        return "its weight is not a floating-point tensor of known type"
    have = out_channels(producer)
    if have is None:
        return "its weight's shape is not static"
    if have != channels:
        return f"it has {have} output channels, the per-channel constant has {channels}"
    if scales and const_array(w) is None:
        return "its weight is not a constant"
    if op == "ConvTranspose":
        group = int(producer.attr("group", 1))
        shape = static_shape(w)
        assert shape is not None
        if group < 1 or shape[0] % group:
            return f"its weight has {shape[0]} input channels, not a multiple of group={group}"
    if op in ("Conv", "ConvTranspose", "Gemm"):
        bias = input_at(producer, 2)
        if bias is not None and const_array(bias) is None:
            return "its bias is not a constant"
    if op == "MatMul" and shifts:
        return "a bias on MatMul needs an Add (fuse-matmul-add makes Gemm)"
    return None


def channel_factor(producer: Node, w: np.ndarray, s: np.ndarray) -> np.ndarray:
    """s laid out to multiply the weight `w` elementwise."""
    op = producer.op_type
    if op == "Conv":
        return s.reshape(-1, *([1] * (w.ndim - 1)))
    if op == "ConvTranspose":
        group = int(producer.attr("group", 1))
        per_group = s.reshape(group, -1)  # [group, M/group]
        factor = np.repeat(per_group, w.shape[0] // group, axis=0)  # [C_in, M/group]
        return factor.reshape(*factor.shape, *([1] * (w.ndim - 2)))
    if op == "Gemm" and producer.attr("transB", 0):
        return s.reshape(-1, 1)
    return s.reshape(1, -1)  # Gemm (B is [K, N]) and MatMul


def fold_affine(graph: Graph, ctx: PassContext, rule: str, producer: Node, consumer: Node,
                scale: np.ndarray | None, shift: np.ndarray | None) -> None:
    """Replace `consumer(producer(...))`, which computes producer(...)*scale + shift per output
    channel, by one producer with new constants. Check `fold_problem` first. `scale` / `shift`
    are float64 vectors of the channel count (None: 1 / 0)."""
    op = producer.op_type
    inputs: list[Value | None] = list(producer.inputs)
    attributes: dict[str, Any] = dict(producer.attributes)
    w = inputs[1]
    assert w is not None
    wdtype = dtype_of(w)
    assert wdtype is not None
    np_dtype = wdtype.numpy
    old = [*inputs[1:], *consumer.inputs]  # the consumer's constants (BN parameters, Mul's factor) too
    if scale is not None:
        weight = const_array(w)
        assert weight is not None
        scaled = weight.astype(np.float64) * channel_factor(producer, weight, scale)
        inputs[1] = new_constant(graph, scaled.astype(np_dtype), w, "weight")

    if op == "MatMul":
        assert shift is None
        replace_chain(graph, ctx, rule, [producer, consumer], "MatMul", inputs, attributes)
        drop_dead_constants(old)
        return

    bias_value = input_at(producer, 2)
    bias = const_array(bias_value)
    if op == "Gemm" and bias is not None:
        bias = bias.astype(np.float64) * float(producer.attr("beta", 1.0))
    new_bias: np.ndarray | None = None
    if bias is not None and (scale is not None or shift is not None):
        new_bias = bias.astype(np.float64)
        if scale is not None:
            new_bias = new_bias * (scale if op != "Gemm" else scale.reshape(1, -1))
        if shift is not None:
            new_bias = new_bias + (shift if op != "Gemm" else shift.reshape(1, -1))
        if op == "Gemm" and bias.ndim < 2:  # keep C's rank when it was [N] or a scalar
            new_bias = new_bias.reshape(-1)
    elif bias is None and shift is not None:
        new_bias = shift
    if new_bias is not None:
        while len(inputs) < 3:
            inputs.append(None)
        inputs[2] = new_constant(graph, np.ascontiguousarray(new_bias).astype(np_dtype), bias_value, "bias")
        if op == "Gemm":
            attributes.pop("beta", None)  # beta*C is folded in: the default 1.0 applies
    replace_chain(graph, ctx, rule, [producer, consumer], op, inputs, attributes)
    drop_dead_constants(old)


# ===================================================================== transformer-fusion helpers
MS_DOMAIN = "com.microsoft"
# onnxruntime's CPU kernels of Gelu, BiasGelu and SkipLayerNormalization take float32 and float16
# (double Gelu falls back to a function body whose Erf has no double kernel).
CONTRIB_DTYPES = (DType.FLOAT, DType.FLOAT16)
# Constants of a pattern (0.5, sqrt 2, 0.7978845, 0.044715, ...) match within this relative
# tolerance: exporters and hand-written models round them to 5 or 6 significant digits.
CONST_RTOL = 1e-4


def where(node: Node) -> str:
    """How remarks name a node: its name quoted, or its op and output when it has none."""
    if node.name:
        return repr(node.name)
    out = node.outputs[0] if node.outputs else None
    return f"{node.op_type} -> %{out.name}" if out is not None else node.op_type


def is_op(node: Node | None, *op_types: str) -> bool:
    """`node` is one of the standard-domain `op_types`."""
    return node is not None and node.op_type in op_types and node.domain in STANDARD


def producer(value: Value | None, *op_types: str) -> Node | None:
    """The node producing `value` when it is one of the standard `op_types`."""
    node = value.producer if value is not None else None
    return node if node is not None and is_op(node, *op_types) else None


def const_scalar(value: Value | None) -> float | None:
    """The value of a constant scalar or one-element float/int tensor."""
    array = const_array(value)
    if array is None or array.size != 1 or array.dtype.kind not in "fiu":
        return None
    return float(array.reshape(-1)[0])


def is_close(value: Value | None, target: float) -> bool:
    """`value` is a constant scalar (or one-element tensor) within CONST_RTOL of `target`."""
    got = const_scalar(value)
    return got is not None and abs(got - target) <= CONST_RTOL * abs(target)


def other_input(node: Node, value: Value) -> Value | None:
    """The operand of binary `node` that is not `value` (`value` itself for Mul(v, v))."""
    a, b = (*node.inputs, None, None)[:2]
    if a is value:
        return b
    if b is value:
        return a
    return None


def dims_of(value: Value | None) -> tuple[Dim, ...] | None:
    if value is None or not isinstance(value.type, TensorType):
        return None
    return value.type.shape


def sole_reader(value: Value | None, *op_types: str) -> Node | None:
    """The one reader of `value` when it has exactly one use and is no graph output; with
    `op_types`, only when that reader is one of them (standard domain)."""
    if value is None or value.is_graph_output or len(value.uses) != 1:
        return None
    node = value.uses[0][0]
    return node if not op_types or is_op(node, *op_types) else None


def read_only_by(value: Value | None, nodes: Iterable[Node]) -> bool:
    """Every reader of `value` is one of `nodes`, and it is no graph output."""
    if value is None or value.is_graph_output:
        return False
    allowed = {id(n) for n in nodes}
    return all(id(node) in allowed for node, _ in value.uses)


def ensure_ms_opset(graph: Graph) -> bool:
    """Import the com.microsoft domain (version 1) into the model; False when there is no model."""
    model = graph.root.model
    if model is None:
        return False
    model.opset_imports.setdefault(MS_DOMAIN, 1)
    return True


def fused_name(node: Node, op_type: str) -> str:
    """A name for the fused node in the exporter's scope of `node` (`/a/b/Sub` -> `/a/b/<op>`)."""
    scope, slash, _ = node.name.rpartition("/")
    return f"{scope}/{op_type}" if slash else (f"{node.name}_{op_type}" if node.name else "")


def replace_pattern(graph: Graph, ctx: PassContext, rule: str, matched: Sequence[Node], op_type: str,
                    inputs: Sequence[Value | None], outputs: Sequence[Value | None], attributes: dict[str, Any],
                    *, domain: str = "", name: str = "", before: Node | None = None) -> Node:
    """Replace the matched nodes by one new node.

    outputs[i] is the old value the new node's output i stands for (None: omitted optional
    output); each keeps its name and type. The node is inserted before `before` (default: the
    last matched node, which reads everything the pattern reads), every use of the old values
    moves to the new ones, and the matched nodes are removed once nothing reads them."""
    specs: list[Value | None] = [None if old is None else Value(old.name, old.type) for old in outputs]
    node = Node(op_type, inputs, specs, attributes, domain=domain, name=name)
    ctx.created(node, matched, rule)
    graph.insert_before(before if before is not None else matched[-1], node)
    for old, new in zip(outputs, node.outputs, strict=True):
        if old is not None and new is not None:
            old.replace_all_uses_with(new, replace_graph_outputs=True)
    remove_nodes(graph, matched)
    return node


def remove_nodes(graph: Graph, nodes: Sequence[Node]) -> None:
    """Remove `nodes`, each once nothing reads its outputs (any order given)."""
    pending = list(nodes)
    while pending:
        for node in pending:
            if all(out is None or (not out.uses and not out.is_graph_output) for out in node.outputs):
                graph.remove(node)
                pending.remove(node)
                break
        else:
            raise AssertionError(f"{pending[0]!r}: its outputs are still read after the rewrite")


# ===================================================================== dims read from Shape
def const_ints(value: Value | None) -> list[int] | None:
    """The flattened values of an integer constant, or None."""
    if value is None or not value.is_constant or not isinstance(value.const, Tensor) or not value.const.has_data:
        return None
    array = value.const.numpy()
    if array.dtype.kind not in "iu":
        return None
    return [int(v) for v in array.reshape(-1)]


def dim_source(part: Value) -> tuple[Value, int] | None:
    """(x, j) when `part` is a 1-element tensor holding dim j of x: Unsqueeze(Gather(Shape(x), j)),
    Gather(Shape(x), [j]), Slice(Shape(x), j, j+1) or Shape(x) {start=j, end=j+1}."""
    node = part.producer
    if node is None:
        return None
    if node.op_type == "Unsqueeze":
        inner = node.inputs[0]
        gather = inner.producer if inner is not None else None
        if gather is None or gather.op_type != "Gather" or gather.attr("axis", 0) != 0:
            return None
        index = const_ints(gather.inputs[1])
        shape_of = shape_source(gather.inputs[0])
        if index is None or len(index) != 1 or shape_of is None:
            return None
        x, offset = shape_of
        return _normalized_dim(x, index[0] + offset if index[0] >= 0 else index[0])
    if node.op_type == "Gather" and node.attr("axis", 0) == 0:
        index = const_ints(node.inputs[1])
        shape_of = shape_source(node.inputs[0])
        if index is None or len(index) != 1 or shape_of is None or node.inputs[1].const.shape != (1,):  # type: ignore[union-attr]
            return None
        x, offset = shape_of
        return _normalized_dim(x, index[0] + offset if index[0] >= 0 else index[0])
    if node.op_type == "Slice":
        starts, ends = const_ints(node.inputs[1]), const_ints(node.inputs[2])
        axes = const_ints(node.inputs[3]) if len(node.inputs) > 3 else [0]
        steps = const_ints(node.inputs[4]) if len(node.inputs) > 4 else [1]
        shape_of = shape_source(node.inputs[0])
        if (shape_of is None or starts is None or ends is None or axes != [0] or steps not in ([1], None)
                or len(starts) != 1 or len(ends) != 1 or starts[0] < 0 or ends[0] != starts[0] + 1):
            return None
        x, offset = shape_of
        return _normalized_dim(x, starts[0] + offset)
    if node.op_type == "Shape":
        shape_of = shape_source(part)
        dims = dims_of(node.inputs[0])
        if shape_of is None or dims is None:
            return None
        x, offset = shape_of
        end = node.attr("end", len(dims))
        end = end + len(dims) if end < 0 else end
        return (x, offset) if min(end, len(dims)) == offset + 1 else None
    return None


def shape_source(value: Value | None) -> tuple[Value, int] | None:
    """(x, start) when `value` is Shape(x) {start=start}."""
    node = value.producer if value is not None else None
    if node is None or node.op_type != "Shape" or node.inputs[0] is None:
        return None
    dims = dims_of(node.inputs[0])
    start = node.attr("start", 0)
    if start < 0:
        if dims is None:
            return None
        start += len(dims)
    return node.inputs[0], start


def _normalized_dim(x: Value, j: int) -> tuple[Value, int] | None:
    dims = dims_of(x)
    if j < 0:
        if dims is None:
            return None
        j += len(dims)
    return x, j


def same_dim(a: Value, i: int, b: Value, j: int) -> bool:
    """Whether dim i of a is dim j of b: the same tensor and position, or the same known dim/symbol."""
    if a is b and i == j:
        return True
    da, db = dims_of(a), dims_of(b)
    if da is None or db is None or i >= len(da) or j >= len(db):
        return False
    return da[i] is not None and da[i] == db[j]


def remove_dead_producers(values: Iterable[Value | None]) -> int:
    """Remove the standard-domain nodes that produce `values` once nothing reads any of their
    outputs, and then, transitively, the producers of their inputs that die with them: the chain
    a rewrite has orphaned (a Shape→Gather→Concat that fed a folded target). Returns how many
    nodes went. Nodes with sub-graphs or of other domains stay (dce's rules)."""
    removed = 0
    pending = [v for v in values if v is not None]
    while pending:
        value = pending.pop()
        node = value.producer
        if node is None or node.graph is None or node.domain not in STANDARD or node.subgraphs():
            continue
        if any(out is not None and (out.uses or out.is_graph_output) for out in node.outputs):
            continue
        inputs = [v for v in node.inputs if v is not None]
        node.graph.remove(node)
        removed += 1
        pending.extend(inputs)
    return removed
