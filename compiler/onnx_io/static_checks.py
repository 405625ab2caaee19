"""Checks of an imported model that need its shapes: what an op's own shape inference refuses,
and tensors too large (or impossible) to make.

`check_inference` runs onnx's shape inference in strict mode on a copy of the model without its
large weights and without its declared intermediate types, so that only an op's own inference
function can fail (an axis out of range, a Conv whose strides are zero, a string fed to Add, If
branches of different arity); a conflict between a declared value info and an inferred one is
not an error here (onnxruntime warns and goes on). onnxruntime runs these very functions when it
loads a model, so a model refused here is one no runtime would load; refusing it first keeps the
error to one line that names the node.

`check_sizes` estimates, from the static shapes of the imported graph, every tensor mlc or a
runtime would have to make (graph inputs it generates, node outputs) and refuses one beyond
`MAX_TENSOR_BYTES`, or with a negative dimension, naming the node that makes it: a ConstantOfShape,
Expand, Tile, Range, Resize or Pad bomb is refused by this estimate, before folding or an
onnxruntime session allocates it. Unknown dims count as 1 (the least they can be).
"""

from __future__ import annotations

import re

import onnx

from mlc.errors import BadInputError
from mlc.ir.core import Graph, Node, Value
from mlc.ir.types import TensorType
from mlc.onnx_io.limits import TENSOR_LIMIT_VARIABLE, element_count, human, max_tensor_bytes

_NODE = re.compile(r"\(op_type:(?P<op>[^,)]*)(?:, node name: (?P<name>[^)]*))?\):\s*")
_KIND = re.compile(r"^\s*\[\w+\]\s*")


def _prepare(graph: onnx.GraphProto) -> None:
    """Forget declared intermediate and output types (kept: inputs, which are sources), and put
    the nodes in topological order (onnx's inference reads them in file order; the importer
    accepts any order), in sub-graphs too."""
    del graph.value_info[:]
    for output in graph.output:
        output.ClearField("type")
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("g"):
                _prepare(attribute.g)
            for sub in attribute.graphs:
                _prepare(sub)
    _sort(graph)


def _reads(node: onnx.NodeProto) -> set[str]:
    names = set(node.input)
    stack = [a.g for a in node.attribute if a.HasField("g")] + [g for a in node.attribute for g in a.graphs]
    while stack:
        sub = stack.pop()
        for inner in sub.node:
            names.update(inner.input)
            stack.extend(a.g for a in inner.attribute if a.HasField("g"))
            stack.extend(g for a in inner.attribute for g in a.graphs)
    return names


def _sort(graph: onnx.GraphProto) -> None:
    """Stable topological order of `graph.node` (the importer has refused cycles already)."""
    nodes = list(graph.node)
    producer = {name: i for i, node in enumerate(nodes) for name in node.output if name}
    waiting = [{producer[n] for n in _reads(node) if n in producer and producer[n] != i}
               for i, node in enumerate(nodes)]
    if not any(any(p > i for p in w) for i, w in enumerate(waiting)):
        return
    users: dict[int, list[int]] = {}
    for i, deps in enumerate(waiting):
        for p in deps:
            users.setdefault(p, []).append(i)
    ready = sorted(i for i, deps in enumerate(waiting) if not deps)
    order: list[int] = []
    while ready:
        i = ready.pop(0)
        order.append(i)
        for user in users.get(i, []):
            waiting[user].discard(i)
            if not waiting[user]:
                ready.append(user)
        ready.sort()
    if len(order) != len(nodes):
        return  # a cycle: left for the importer's message
    copies = [nodes[i] for i in order]
    sorted_nodes = [onnx.NodeProto() for _ in copies]
    for target, source in zip(sorted_nodes, copies, strict=True):
        target.CopyFrom(source)
    del graph.node[:]
    graph.node.extend(sorted_nodes)


def _inference_text(error: Exception) -> tuple[str, str]:
    """(node label, reason) from an inference error: the innermost `(op_type:X, node name: Y)`."""
    text = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    found = list(_NODE.finditer(text))
    if not found:
        return "", _KIND.sub("", text.replace("[ShapeInferenceError] Inference error(s): ", ""))
    last = found[-1]
    reason = _KIND.sub("", text[last.end():])
    reason = reason.replace("[ShapeInferenceError] ", "").replace("[TypeInferenceError] ", "")
    label = f"{last['name']!r} ({last['op']})" if last["name"] else f"({last['op']})"
    return label, reason.strip()


_UNSUPPORTED_TYPE = re.compile(r"has unsupported type: (?P<type>[\w()]+)")


def _strict(light: onnx.ModelProto, check_type: bool) -> Exception | None:
    try:
        onnx.shape_inference.infer_shapes(light, check_type=check_type, strict_mode=True, data_prop=True)
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError) as error:
        return error
    return None


_SUBGRAPH_OPS = frozenset({"If", "Loop", "Scan", "SequenceMap"})


def _in_function_body(error: Exception) -> bool:
    """Whether the failing node sits in a function body inference expanded (an op between it and
    the graph that is not a sub-graph holder such as If)."""
    chain = [m["op"] for m in _NODE.finditer(" ".join(str(error).split()))]
    return any(op not in _SUBGRAPH_OPS for op in chain[:-1])


def check_inference(light: onnx.ModelProto, shown: str) -> None:
    """Refuse the model when an op's shape inference fails on it (`light`: a copy we may change,
    without large weights).

    An element type an op's schema does not list at the model's opset (float4 through an opset-21
    Identity, a sparse initializer that onnxruntime makes dense) is no hazard: such a model imports,
    and a runtime that cannot run it says so. A
    string where numbers are expected is refused (it is how a hostile model reaches numeric
    kernels with pointers); for any other type the check is repeated without type constraints, so
    that a shape error behind it is still found."""
    _prepare(light.graph)
    error = _strict(light, check_type=True)
    if error is not None:
        unsupported = _UNSUPPORTED_TYPE.search(str(error))
        if unsupported is not None and unsupported["type"] != "tensor(string)":
            error = _strict(light, check_type=False)
    if error is not None and _in_function_body(error):
        return  # inside the body an op's schema defines (MeanVarianceNormalization at some opsets): onnx's
    if error is not None:
        label, reason = _inference_text(error)
        where = f"node {label}: " if label else ""
        raise BadInputError(f"{shown}: {where}{reason[:400]}") from None


def _value_bytes(value: Value) -> tuple[int, int, list[int | str | None]] | None:
    """(bytes, least element count, dims) of a tensor value of known rank; None otherwise."""
    t = value.type
    if not isinstance(t, TensorType) or t.shape is None:
        return None
    ints = [d if isinstance(d, int) else 1 for d in t.shape]
    count = element_count(ints)
    bits = t.dtype.bits or 64  # a string counts at least as a pointer
    return (count * bits + 7) // 8, count, list(t.shape)


def _type_text(value: Value, dims: list[int | str | None]) -> str:
    t = value.type
    assert isinstance(t, TensorType)
    return f"{t.dtype.short_name}[{','.join('?' if d is None else str(d) for d in dims)}]"


def _node_label(node: Node) -> str:
    op = f"{node.domain}::{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type
    return f"{node.name!r} ({op})" if node.name else f"({op})"


def _largest_stored(graph: Graph) -> int:
    """The bytes of the largest weight the model itself carries (initializers, Constant tensors)."""
    largest = 0
    for sub in graph.all_graphs():
        for value in sub.initializers.values():
            largest = max(largest, getattr(value.const, "nbytes", 0))
        for node in sub:
            if _stored(node):
                largest = max(largest, *(getattr(a.value, "nbytes", 0) for a in node.attributes.values()))
    return largest


def check_sizes(graph: Graph, shown: str, limit: int | None = None) -> None:
    """Refuse a graph whose inputs or node outputs would be larger than `limit` bytes (default:
    `max_tensor_bytes()`), or have a negative dimension, by their static shapes. A model that
    carries a weight larger than `limit` may make tensors as large as that weight (a transposed
    embedding is no bomb)."""
    limit = max(max_tensor_bytes() if limit is None else limit, _largest_stored(graph))
    for given in graph.inputs:
        if given.const is not None:
            continue  # an overridable initializer: its bytes are in the file
        size = _value_bytes(given)
        if size is None:
            continue
        nbytes, _, dims = size
        if any(isinstance(d, int) and d < 0 for d in dims):
            raise BadInputError(f"{shown}: input {given.name!r} has a negative dimension {_type_text(given, dims)}")
        if nbytes > limit:
            raise BadInputError(f"{shown}: input {given.name!r} is {_type_text(given, dims)}: {human(nbytes)}, more "
                                f"than the {human(limit)} mlc makes for one tensor (raise it with "
                                f"{TENSOR_LIMIT_VARIABLE})")
    for sub in graph.all_graphs():
        for node in sub:
            for value in node.outputs:
                if value is None:
                    continue
                size = _value_bytes(value)
                if size is None:
                    continue
                nbytes, _, dims = size
                if sub is graph and any(isinstance(d, int) and d < 0 for d in dims):  # a branch never taken
                    raise BadInputError(f"{shown}: node {_node_label(node)} would make {value.name!r} with a "
                                        f"negative dimension {_type_text(value, dims)}")
                if nbytes > limit and not _stored(node):
                    raise BadInputError(f"{shown}: node {_node_label(node)} would make {value.name!r} of "
                                        f"{_type_text(value, dims)}: {human(nbytes)}, more than the {human(limit)} "
                                        f"mlc allows for one tensor (raise it with {TENSOR_LIMIT_VARIABLE})")


def check_runnable(graph: Graph, shown: str) -> None:
    """What the import lets through (a standard op with an attribute its schema does not have,
    kept for a faithful round trip) but no runtime loads, and a Conv whose channels do not fit
    its groups: refused before a pipeline runs, and by `mlc inspect`, with the node's name."""
    import onnx.defs

    known = onnx.defs.C.schema_version_map()
    opsets = dict(graph.model.opset_imports) if graph.model is not None else {}
    for sub in graph.all_graphs():
        for node in sub:
            domain = "" if node.domain == "ai.onnx" else node.domain
            if domain not in known:
                continue
            try:
                schema = onnx.defs.get_schema(node.op_type, opsets.get(domain, known[domain][1]), domain)
            except onnx.defs.SchemaError:
                continue  # a model-local function of a standard domain, or checked on import
            unknown = [name for name in node.attributes if name not in schema.attributes]
            if unknown:
                raise BadInputError(f"{shown}: node {_node_label(node)} has attribute {unknown[0]!r}, which "
                                    f"{node.op_type} does not take (opset {opsets.get(domain, '?')}); no runtime "
                                    "loads it")
            if node.op_type == "Conv" and domain == "":
                _check_conv_groups(node, shown)


def _check_conv_groups(node: Node, shown: str) -> None:
    """Input channels = weight channels x group, and output channels a multiple of group."""
    if len(node.inputs) < 2 or node.inputs[0] is None or node.inputs[1] is None:
        return
    x, w = node.inputs[0].type, node.inputs[1].type
    if not (isinstance(x, TensorType) and isinstance(w, TensorType) and x.shape and w.shape):
        return
    if len(x.shape) < 2 or len(w.shape) < 2:
        return
    attr = node.attributes.get("group")
    group = int(attr.value) if attr is not None and isinstance(attr.value, int) else 1
    channels, per_group, out = x.shape[1], w.shape[1], w.shape[0]
    if isinstance(channels, int) and isinstance(per_group, int) and channels != per_group * group:
        raise BadInputError(f"{shown}: node {_node_label(node)}: input has {channels} channels but the weight takes "
                            f"{per_group} per group x group {group} = {per_group * group}")
    if isinstance(out, int) and group > 0 and out % group:
        raise BadInputError(f"{shown}: node {_node_label(node)}: {out} output channels do not split into "
                            f"{group} groups")


def _stored(node: Node) -> bool:
    """A Constant node's tensor is stored in the file: no allocation to fear."""
    return node.op_type == "Constant" and node.domain in ("", "ai.onnx") and any(
        a.name in ("value", "sparse_value") for a in node.attributes.values())


__all__ = ["check_inference", "check_runnable", "check_sizes"]
