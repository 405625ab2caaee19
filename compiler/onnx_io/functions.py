"""Function bodies of ONNX ops, instantiated for one IR node (the ONNX side of `expand-functions`).

Many standard ops are defined by the ONNX operator schemas as a function of simpler ops
(Celu, LayerNormalization, SoftmaxCrossEntropyLoss, Attention, ...). Some bodies are static
(`OpSchema.get_function_with_opset_version`), others are built from the node and its input types
(`OpSchema.get_context_dependent_function_with_opset_version`). `expand_node` fetches the body
that fits the model's opset, resolves attribute references (`ref_attr_name`) from the node or the
schema's defaults, gives every internal value a fresh name, prunes what no present output needs,
types every value with onnx's shape inference run on the expanded piece, and returns IR nodes
that read the node's own input values, ready to be inserted in its place.

A body is written for one ai.onnx opset (the function's); the model may import a later one. The
body is used only when every op it calls means the same at the model's opset: the same schema,
or a later schema that only accepts more element types, negative axes and the like, with the
same inputs, outputs and attribute defaults; an attribute the later version added must be an
optional one without a default (an alternative a node sets or not, as Constant's value_float)
or one listed in `_NEUTRAL_NEW_ATTRIBUTES`, whose default reproduces the older version.
Otherwise the node is left alone with the reason.

The conversions reuse the importer (`Importer.graph`, which resolves reads of enclosing-scope
values, so the new nodes read the real IR values) and the exporter (`Exporter.attribute`,
`type_to_proto`, `Exporter.tensor`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import onnx
import onnx.defs
from onnx import shape_inference

from mlc.ir.core import Graph, Node, Value
from mlc.ir.tensor import Tensor
from mlc.ir.types import TensorType, Type
from mlc.onnx_io.exporter import Exporter, inline_sink, type_to_proto
from mlc.onnx_io.importer import Importer

# Constants up to this many elements are shown to shape inference, so that shapes computed from
# them (a Reshape target, a Range limit) come out static.
_CONST_ELEMENTS_FOR_INFERENCE = 4096

# Attributes a later op version added whose default reproduces the earlier version: a body node
# that does not set them means the same at both versions.
_NEUTRAL_NEW_ATTRIBUTES = {
    ("Cast", "saturate"), ("CastLike", "saturate"),  # float8 targets only, which older versions lack
    ("Cast", "round_mode"), ("CastLike", "round_mode"),  # float8e8m0 targets only
    ("Reshape", "allowzero"),  # 0: a zero copies the input dim, as before
    ("Shape", "start"), ("Shape", "end"),  # the whole shape, as before
}

_PLACEHOLDER = "__mlc_fn_"  # names of outer values inside the instantiated body (never kept)


@dataclass
class Expansion:
    """The body of one node: `nodes` in order (typed, provenance not yet stamped) and, per output
    of the node, the value that takes its place (None where the node has no such output).

    The nodes already read the node's input values (their uses are recorded) and sit in a scratch
    graph: `Graph.move_before(node, expansion.nodes)` splices them in; `discard()` drops them."""

    nodes: list[Node]
    outputs: list[Value | None]
    function_opset: int  # the ai.onnx opset the body was written for

    def discard(self) -> None:
        """Forget the nodes without splicing them: their reads of the model's values are dropped."""
        for node in reversed(self.nodes):
            for sub in node.subgraphs():
                _detach_all(sub)
            if node.graph is not None:
                node.graph.remove(node, detach_uses=True)
        self.nodes = []


def _detach_all(graph: Graph) -> None:
    for node in reversed(graph.nodes):
        for sub in node.subgraphs():
            _detach_all(sub)
        graph.remove(node, detach_uses=True)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__


def _domain(domain: str) -> str:
    return "" if domain == "ai.onnx" else domain


@functools.cache
def _schema(op_type: str, version: int, domain: str) -> onnx.defs.OpSchema | None:
    try:
        return onnx.defs.get_schema(op_type, version, domain)
    except onnx.defs.SchemaError:
        return None


def _best(versions: Iterable[int], opset: int) -> int | None:
    fitting = [v for v in versions if v <= opset]
    return max(fitting) if fitting else None


def function_version(op_type: str, domain: str, opset: int) -> tuple[int, bool] | None:
    """The opset version of the body that defines `op_type` at `opset` and whether it is built
    from the node (context-dependent), or None when the schema defines no body for it."""
    schema = _schema(op_type, opset, _domain(domain))
    if schema is None:
        return None
    # (onnx's type stubs lack the function members of OpSchema)
    static = _best(schema.function_opset_versions, opset)  # type: ignore[attr-defined]
    dynamic = _best(schema.context_dependent_function_opset_versions, opset)  # type: ignore[attr-defined]
    if dynamic is not None and (static is None or dynamic >= static):
        return dynamic, True
    if static is not None:
        return static, False
    return None


def has_function_body(op_type: str, domain: str, opset: int) -> bool:
    return function_version(op_type, domain, opset) is not None


def ops_with_function_bodies(domain: str = "") -> set[str]:
    """Every op of `domain` whose schema (at any version) defines a function body."""
    found = set()
    for schema in onnx.defs.get_all_schemas_with_history():
        if schema.domain != _domain(domain):
            continue
        if (schema.function_opset_versions  # type: ignore[attr-defined]
                or schema.context_dependent_function_opset_versions):  # type: ignore[attr-defined]
            found.add(schema.name)
    return found


# ===================================================================== opset compatibility
def _default_bytes(attribute: onnx.defs.OpSchema.Attribute) -> bytes:
    default = attribute.default_value
    return default.SerializeToString() if default is not None and default.name else b""


@functools.cache
def same_meaning(op_type: str, domain: str, old: int, new: int) -> bool:
    """Whether a node of `op_type` means the same under opset `old` and opset `new` (`old <= new`):
    the same schema, or a later one whose only changes are more element types (see the module
    doc string)."""
    a, b = _schema(op_type, old, domain), _schema(op_type, new, domain)
    if a is None or b is None:
        return False
    if a.since_version == b.since_version:
        return True
    if [(p.name, p.option) for p in a.inputs] != [(p.name, p.option) for p in b.inputs]:
        return False
    if [(p.name, p.option) for p in a.outputs] != [(p.name, p.option) for p in b.outputs]:
        return False
    for name, attr in a.attributes.items():
        other = b.attributes.get(name)
        if other is None or other.type != attr.type or (other.required and not attr.required):
            return False
        if _default_bytes(attr) != _default_bytes(other):
            return False
    for name in set(b.attributes) - set(a.attributes):
        added = b.attributes[name]
        # An optional attribute without a default is an alternative a node may set (Constant's
        # value_float): a node written for the older version does not, and means the same.
        if (op_type, name) not in _NEUTRAL_NEW_ATTRIBUTES and (added.required or _default_bytes(added)):
            return False
    # Per formal parameter (type variables may be renamed: Identity's T became V).
    return all(_allowed(a, p) <= _allowed(b, q) for p, q in (*zip(a.inputs, b.inputs, strict=True),
                                                             *zip(a.outputs, b.outputs, strict=True)))


def _allowed(schema: onnx.defs.OpSchema, param: onnx.defs.OpSchema.FormalParameter) -> set[str]:
    for constraint in schema.type_constraints:
        if constraint.type_param_str == param.type_str:
            return set(constraint.allowed_type_strs)
    return {param.type_str}


def _body_nodes(nodes: Iterable[onnx.NodeProto]) -> Iterator[onnx.NodeProto]:
    """Nodes, with those of their sub-graphs."""
    for node in nodes:
        yield node
        for attr in node.attribute:
            for g in ([attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)):
                yield from _body_nodes(g.node)


def _opset_problem(function: onnx.FunctionProto, opsets: dict[str, int]) -> str | None:
    """Why the body cannot be used under the model's opsets, or None."""
    imports = {_domain(o.domain): o.version for o in function.opset_import}
    changed: list[str] = []
    for node in _body_nodes(function.node):
        domain = _domain(node.domain)
        mine, theirs = imports.get(domain), opsets.get(domain)
        if theirs is None:
            return f"its body uses {node.op_type} of domain {domain!r}, which the model does not import"
        if mine is None or mine == theirs:
            continue
        if domain != "" or mine > theirs or not same_meaning(node.op_type, domain, mine, theirs):
            changed.append(node.op_type)
    if changed:
        mine = imports.get("", 0)
        ops = ", ".join(sorted(set(changed)))
        return (f"its body is written for ai.onnx opset {mine} and {ops} changed meaning by opset "
                f"{opsets.get('', 0)}")
    return None


# ===================================================================== instantiation
class _Renamer:
    """Maps body names to the instance's names: function inputs and outputs to placeholders,
    every other name (sub-graph ones too) to a fresh name of the model."""

    def __init__(self, fixed: dict[str, str], fresh: Callable[[str], str]) -> None:
        self.fixed = fixed
        self.fresh = fresh
        self.made: dict[str, str] = {}

    def __call__(self, name: str) -> str:
        if not name:
            return ""
        if name in self.fixed:
            return self.fixed[name]
        new = self.made.get(name)
        if new is None:
            new = self.made[name] = self.fresh(name)
        return new


def _instantiate_graph(graph: onnx.GraphProto, rename: _Renamer, attrs: dict[str, onnx.AttributeProto]) -> None:
    for vi in (*graph.input, *graph.output, *graph.value_info):
        vi.name = rename(vi.name)
    for t in graph.initializer:
        t.name = rename(t.name)
    for s in graph.sparse_initializer:
        s.values.name = rename(s.values.name)
        s.indices.name = rename(s.indices.name)
    nodes = [_instantiate_node(n, rename, attrs) for n in graph.node]
    del graph.node[:]
    graph.node.extend(nodes)


def _instantiate_node(node: onnx.NodeProto, rename: _Renamer,
                      attrs: dict[str, onnx.AttributeProto]) -> onnx.NodeProto:
    """A copy of a body node: names renamed, attribute references replaced by their values
    (a reference to an attribute with no value and no default is dropped, as onnx does)."""
    new = onnx.NodeProto()
    new.CopyFrom(node)
    del new.input[:], new.output[:], new.attribute[:]
    new.input.extend(rename(n) for n in node.input)
    new.output.extend(rename(n) for n in node.output)
    for attr in node.attribute:
        if attr.ref_attr_name:
            value = attrs.get(attr.ref_attr_name)
            if value is None:
                continue
            resolved = new.attribute.add()
            resolved.CopyFrom(value)
            resolved.name = attr.name
            continue
        copy = new.attribute.add()
        copy.CopyFrom(attr)
        for g in ([copy.g] if copy.type == onnx.AttributeProto.GRAPH else list(copy.graphs)):
            _instantiate_graph(g, rename, attrs)
    return new


def _graph_reads(graph: onnx.GraphProto) -> set[str]:
    reads: set[str] = set()
    for node in _body_nodes(graph.node):
        reads.update(node.input)
    reads.update(o.name for o in graph.output)
    return reads


def _prune(nodes: list[onnx.NodeProto], wanted: set[str]) -> list[onnx.NodeProto]:
    """The nodes some wanted name depends on (a body computes every output of the op)."""
    needed = set(wanted)
    kept: list[onnx.NodeProto] = []
    for node in reversed(nodes):
        if not any(o and o in needed for o in node.output):
            continue
        kept.append(node)
        needed.update(node.input)
        for attr in node.attribute:
            for g in ([attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)):
                needed.update(_graph_reads(g))
    kept.reverse()
    return kept


def _dim_params(t: onnx.TypeProto, names: set[str], *, forget: bool) -> None:
    """Collect the symbolic dims of a type, or (`forget`) turn those not in `names` into unknown dims."""
    which = t.WhichOneof("value")
    if which in ("tensor_type", "sparse_tensor_type"):
        tensor = getattr(t, which)
        if tensor.HasField("shape"):
            for dim in tensor.shape.dim:
                if dim.HasField("dim_param"):
                    if not forget:
                        names.add(dim.dim_param)
                    elif dim.dim_param not in names:
                        dim.ClearField("dim_param")
    elif which == "sequence_type":
        _dim_params(t.sequence_type.elem_type, names, forget=forget)
    elif which == "optional_type":
        _dim_params(t.optional_type.elem_type, names, forget=forget)
    elif which == "map_type":
        _dim_params(t.map_type.value_type, names, forget=forget)


def _forget_new_dims(graph: onnx.GraphProto, known: set[str]) -> None:
    """Shape inference names the dims it cannot compute `unk__0`, `unk__1`, ... afresh in every
    run: in the model those names would claim equal dims that are not. They become unknown."""
    for vi in (*graph.input, *graph.output, *graph.value_info):
        _dim_params(vi.type, known, forget=True)
    for node in graph.node:
        for attr in node.attribute:
            for g in ([attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)):
                _forget_new_dims(g, known)


# ===================================================================== IR <-> proto
def _free_values(node: Node) -> list[Value]:
    """Values the node reads: its inputs and, through sub-graphs, values of enclosing graphs."""
    seen: dict[int, Value] = {}
    for value in node.inputs:
        if value is not None:
            seen.setdefault(id(value), value)
    inner: set[int] = set()
    for sub in node.subgraphs():
        for g in sub.all_graphs():
            inner.update(id(v) for v in g.inputs)
            inner.update(id(v) for v in g.initializers.values())
            inner.update(id(v) for v in g.sparse_initializers.values())
            for n in g:
                inner.update(id(v) for v in n.outputs if v is not None)
        for n in sub.all_nodes():
            for value in n.inputs:
                if value is not None and id(value) not in inner:
                    seen.setdefault(id(value), value)
    return list(seen.values())


def _type_proto(t: Type | None) -> onnx.TypeProto:
    proto = onnx.TypeProto()
    type_to_proto(t, proto)
    return proto


def _all_values(graph: Graph) -> Iterator[Value]:
    """Every value a graph (and its sub-graphs) defines."""
    for g in graph.all_graphs():
        yield from g.inputs
        yield from g.initializers.values()
        yield from g.sparse_initializers.values()
        for node in g:
            yield from (v for v in node.outputs if v is not None)


def _untyped(nodes: Iterable[Node]) -> list[str]:
    missing: list[str] = []
    for node in nodes:
        missing.extend(v.name for v in node.outputs if v is not None and v.type is None)
        for sub in node.subgraphs():
            missing.extend(v.name for v in _all_values(sub) if v.type is None)
    return missing


def fetch_body(node: Node, opsets: dict[str, int], free: dict[int, str] | None = None) -> onnx.FunctionProto | str:
    """The schema's FunctionProto for this node under the model's opsets, or why there is none.
    `free` names the outer values the node's sub-graphs read (see `_free_values`)."""
    domain = _domain(node.domain)
    opset = opsets.get(domain)
    if opset is None:
        return f"the model imports no opset of domain {domain!r}"
    found = function_version(node.op_type, domain, opset)
    if found is None:
        return f"the ONNX schema of {node.op_type} (opset {opset}) defines no function body"
    version, dynamic = found
    schema = _schema(node.op_type, opset, domain)
    assert schema is not None
    function = onnx.FunctionProto()
    try:
        if dynamic:
            proto = _node_proto(node, opsets, free)
            types = [_type_proto(None if v is None else v.type).SerializeToString() for v in node.inputs]
            data = schema.get_context_dependent_function_with_opset_version(  # type: ignore[attr-defined]
                version, proto.SerializeToString(), types)
        else:
            data = schema.get_function_with_opset_version(version)  # type: ignore[attr-defined]
        function.ParseFromString(data)
    except Exception as error:  # noqa: BLE001 - onnx's builders raise assorted errors on inputs they refuse
        return f"onnx could not build its body: {_first_line(error)}"
    if not function.node and not function.output:
        return "onnx builds no body for these inputs (the schema's builder refused their types or attributes)"
    return function


def _exporter(opsets: dict[str, int], free: dict[int, str]) -> Exporter:
    exporter = Exporter(inline_sink, legacy_inputs=False, opsets=opsets)
    exporter.names.names.update(free)
    exporter.names.taken.update(free.values())
    return exporter


def _node_proto(node: Node, opsets: dict[str, int], free: dict[int, str] | None = None) -> onnx.NodeProto:
    """The node as ONNX sees it (input and output names are placeholders)."""
    free = free if free is not None else {}
    exporter = _exporter(opsets, free)
    proto = onnx.NodeProto()
    proto.op_type, proto.domain = node.op_type, node.domain
    proto.input.extend("" if v is None else free.get(id(v), f"{_PLACEHOLDER}in{i}") for i, v in enumerate(node.inputs))
    proto.output.extend("" if v is None else f"{_PLACEHOLDER}out{i}" for i, v in enumerate(node.outputs))
    for attr in node.attributes.values():
        exporter.attribute(attr, proto.attribute.add())
    return proto


def _attribute_values(node_proto: onnx.NodeProto, function: onnx.FunctionProto,
                      schema: onnx.defs.OpSchema) -> dict[str, onnx.AttributeProto]:
    """What each attribute reference of the body resolves to: the node's attribute, else the
    function's default, else the schema's default."""
    values: dict[str, onnx.AttributeProto] = {}
    for name, attr in schema.attributes.items():
        default = attr.default_value
        if default is not None and default.name:
            values[name] = default
    for default in function.attribute_proto:
        values[default.name] = default
    for attr in node_proto.attribute:
        values[attr.name] = attr
    return values


def _rank_mismatches(node: Node, present: dict[int, str],
                     inferred: onnx.GraphProto) -> dict[str, tuple[int, ...]] | str:
    """The body's outputs whose rank differs from the node's output: {name: the node's static
    shape} to reshape them to, or why the expansion is refused (the node's shape is not static).

    Some schema bodies are wrong for some inputs: Celu's reads alpha through a Constant of shape
    [1], so on a scalar x its body gives [1] where Celu gives [] (fuzz seed 500132)."""
    types = {vi.name: vi.type for vi in [*inferred.value_info, *inferred.output]}
    wrong: dict[str, tuple[int, ...]] = {}
    for i, name in present.items():
        old = node.outputs[i]
        want = old.type if old is not None else None
        got = types.get(name)
        if not isinstance(want, TensorType) or want.rank is None or got is None:
            continue
        if not got.HasField("tensor_type") or not got.tensor_type.HasField("shape"):
            continue
        rank = len(got.tensor_type.shape.dim)
        if rank == want.rank:
            continue
        if not want.is_static:
            return (f"its body computes output {i} with rank {rank} where {node.op_type} gives rank {want.rank} "
                    "(the schema's body is wrong for these inputs)")
        wrong[name] = tuple(int(d) for d in want.shape or ())  # type: ignore[arg-type]
    return wrong


def _reshape_outputs(piece: onnx.GraphProto, shapes: dict[str, tuple[int, ...]],
                     fresh: Callable[[str], str]) -> None:
    """Make each output `name` of `piece` a Reshape of what the body computed to `shapes[name]`."""
    for name, shape in shapes.items():
        computed, target = fresh(f"{name}_body"), fresh(f"{name}_shape")
        for body_node in piece.node:
            for k, output in enumerate(body_node.output):
                if output == name:
                    body_node.output[k] = computed
        piece.node.append(onnx.helper.make_node(
            "Constant", [], [target], value=onnx.helper.make_tensor(target, onnx.TensorProto.INT64, [len(shape)],
                                                                    list(shape))))
        piece.node.append(onnx.helper.make_node("Reshape", [computed, target], [name]))


def expand_node(node: Node, opsets: dict[str, int], fresh: Callable[[str], str]) -> Expansion | str:
    """The body of `node` as new IR nodes reading the node's input values, or why not.

    `opsets` are the model's opset imports; `fresh(hint)` returns a value name not yet used in the
    model. The node and its graph are not modified.
    """
    graph = node.graph
    if graph is None:
        return "the node is in no graph"
    # Outer values the body reads, by placeholder name (inputs, and what sub-graph attributes read).
    free_values = _free_values(node)
    free = {id(v): f"{_PLACEHOLDER}v{i}" for i, v in enumerate(free_values)}
    fetched = fetch_body(node, opsets, free)
    if isinstance(fetched, str):
        return fetched
    function = fetched
    problem = _opset_problem(function, opsets)
    if problem is not None:
        return problem
    domain = _domain(node.domain)
    schema = _schema(node.op_type, opsets[domain], domain)
    assert schema is not None
    node_proto = _node_proto(node, opsets, free)
    attrs = _attribute_values(node_proto, function, schema)

    fixed: dict[str, str] = {name: name for name in free.values()}  # read by the node's sub-graphs
    for i, name in enumerate(function.input):
        fixed[name] = node_proto.input[i] if i < len(node_proto.input) else ""
    # Outputs nobody reads are left out (the body computes every output of the op).
    read = [i < len(node.outputs) and (v := node.outputs[i]) is not None and bool(v.uses or v.is_graph_output)
            for i in range(len(function.output))]
    outputs: dict[int, str] = {}
    for i, name in enumerate(function.output):
        if read[i] and name not in fixed:
            old = node.outputs[i]
            assert old is not None
            fixed[name] = outputs[i] = fresh(old.name or name)
    base = node.name or node.op_type
    rename = _Renamer(fixed, lambda name: fresh(f"{base}_{name}"))
    body = [_instantiate_node(n, rename, attrs) for n in function.node]
    # Outputs that are inputs (or repeat another output) get an Identity of their own.
    present = {i: rename(function.output[i]) for i in range(len(function.output)) if read[i]}
    seen_outputs: set[str] = set()
    for i, name in sorted(present.items()):
        if i in outputs and name not in seen_outputs:
            seen_outputs.add(name)
            continue
        old = node.outputs[i]
        assert old is not None
        new_name = fresh(old.name or function.output[i])
        body.append(onnx.helper.make_node("Identity", [name], [new_name]))
        present[i] = new_name
        seen_outputs.add(new_name)
    body = _prune(body, set(present.values()))

    # Shape inference on the expanded piece, its inputs typed as the IR knows them.
    model_opsets = dict(opsets)
    for o in function.opset_import:
        model_opsets.setdefault(_domain(o.domain), o.version)
    exporter = _exporter(opsets, free)
    piece = onnx.GraphProto(name="piece")
    for value in free_values:
        vi = piece.input.add()
        vi.name = free[id(value)]
        type_to_proto(value.type, vi.type)
        const = value.const
        if (isinstance(const, Tensor) and value.is_constant and const.has_data
                and const.size <= _CONST_ELEMENTS_FOR_INFERENCE):
            exporter.tensor(const, piece.initializer.add(), vi.name)
    piece.node.extend(body)
    for i in sorted(present):
        piece.output.add().name = present[i]

    def infer() -> onnx.GraphProto:
        model = onnx.helper.make_model(piece, opset_imports=[onnx.helper.make_opsetid(d, v)
                                                             for d, v in model_opsets.items()])
        return shape_inference.infer_shapes(model, check_type=False, strict_mode=False, data_prop=True).graph

    try:
        inferred = infer()
        wrong = _rank_mismatches(node, present, inferred)
        if isinstance(wrong, str):
            return wrong
        if wrong:
            _reshape_outputs(piece, wrong, lambda name: fresh(f"{base}_{name}"))
            inferred = infer()
    except Exception as error:  # noqa: BLE001 - onnx raises assorted errors; the node is left alone
        return f"shape inference fails on its body: {_first_line(error)}"
    known_dims: set[str] = set()
    for vi in piece.input:
        _dim_params(vi.type, known_dims, forget=False)
    _forget_new_dims(inferred, known_dims)

    # Import the typed nodes under a scope of stand-ins for the node's values: the model's values
    # are rewired only once the piece is complete, so a refusal leaves their use lists untouched.
    proto = onnx.GraphProto(name=graph.name)
    proto.node.extend(inferred.node)
    proto.value_info.extend(inferred.value_info)
    proto.output.extend(inferred.output)
    stand_ins = {free[id(v)]: Value(free[id(v)], v.type) for v in free_values}
    importer = Importer("<function body>", None, False)
    try:
        piece_graph = importer.graph(proto, [dict(stand_ins)], None)
    except Exception as error:  # noqa: BLE001 - a malformed body is reported, not raised
        return f"its body does not import: {_first_line(error)}"
    new_nodes = list(piece_graph)
    missing = _untyped(new_nodes)
    if missing:
        return f"shape inference leaves {', '.join('%' + m for m in missing[:4])} untyped"
    for value in free_values:
        stand_ins[free[id(value)]].replace_all_uses_with(value)
    produced = {id(v) for n in new_nodes for v in n.outputs if v is not None}
    by_name = {v.name: v for v in piece_graph.outputs}
    result: list[Value | None] = []
    for i, old in enumerate(node.outputs):
        if old is None or i not in present:
            result.append(None)
            continue
        value = by_name[present[i]]
        assert id(value) in produced
        if old.type is not None:
            value.type = old.type
        result.append(value)
    version = {_domain(o.domain): o.version for o in function.opset_import}.get("", 0)
    return Expansion(new_nodes, result, version)
