"""Checks of an untrusted ModelProto, in Python, before any C++ code (onnx's shape inference,
onnxruntime) or any allocation sees it.

What is checked, each refusal one `BadInputError` line naming the file and the node, tensor,
attribute or opset:

* the container: an IR version this mlc reads, opset imports that exist (ai.onnx 1..28, not
  0 or 10,000, each domain once), and a graph with outputs;
* model-local functions: no recursion (direct or through others), calls nested at most
  `MAX_FUNCTION_DEPTH` deep (onnxruntime overflows its stack on a chain of 3,000);
* every tensor (initializers, Constant values, any tensor attribute, in sub-graphs and
  functions too): a known element type, dims >= 0 whose product does not overflow, exactly one
  data field, holding exactly the bytes or values the shape needs;
* every declared type (inputs, outputs, value infos): known element types, dims >= 0;
* every node: its domain imported; for ai.onnx and ai.onnx.ml ops, an op that exists at the
  imported opset, checked against its schema by onnx's checker (attribute names and types,
  required attributes, input and output counts); a dtype attribute naming a real type; the window
  attributes of convolutions and pools and DepthToSpace's blocksize within sane bounds (an
  absurd blocksize kills onnxruntime with SIGFPE); If branches returning as many values as the
  node has outputs, Loop and Scan bodies of the right arity.

Models that pass may still be refused after import, where shapes are known
(`mlc.onnx_io.static_checks`): shape inference errors of an op, tensors too large to make.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import onnx
import onnx.checker
import onnx.defs
from onnx import AttributeProto, TensorProto

from mlc.errors import BadInputError
from mlc.ir.attributes import AttrType
from mlc.ir.dtypes import DType
from mlc.onnx_io.limits import MAX_BLOCKSIZE, MAX_ELEMENTS, MAX_FUNCTION_DEPTH, MAX_WINDOW, element_count

_STANDARD = ("", "ai.onnx")


@functools.cache
def _known_domains() -> dict[str, tuple[int, int]]:
    """The opset range onnx knows for each of its domains ('' for ai.onnx)."""
    return {domain: (low, high) for domain, (low, high) in onnx.defs.C.schema_version_map().items()}


def _domain(name: str) -> str:
    return "" if name == "ai.onnx" else name


def _shown_domain(name: str) -> str:
    return name or "ai.onnx"


@dataclass
class _Scope:
    """What a node is checked against: the opsets of its model or function, and where it is."""

    opsets: dict[str, int]
    where: str  # "graph 'main'", "function 'local::f'"


class _Validator:
    def __init__(self, model: onnx.ModelProto, shown: str) -> None:
        self.model = model
        self.shown = shown
        self.functions = {(_domain(f.domain), f.name): f for f in model.functions}

    def fail(self, message: str) -> BadInputError:
        return BadInputError(f"{self.shown}: {message}")

    # ---------------------------------------------------------------- container
    def run(self) -> None:
        model = self.model
        if model.ir_version > onnx.IR_VERSION:
            raise self.fail(f"IR version {model.ir_version} is newer than this mlc reads (at most "
                            f"{onnx.IR_VERSION}, onnx {onnx.__version__})")
        opsets = self.opsets(model.opset_import, "the model")
        if not len(model.graph.output):
            raise self.fail(f"graph {model.graph.name!r} has no outputs")
        self.check_functions()
        for function in model.functions:
            where = f"function '{_shown_domain(function.domain)}::{function.name}'"
            self.graph_nodes(function.node, _Scope(self.opsets(function.opset_import, where) or opsets, where))
        self.graph(model.graph, _Scope(opsets, f"graph {model.graph.name!r}"), main=True)

    def opsets(self, imports: Iterable[onnx.OperatorSetIdProto], owner: str) -> dict[str, int]:
        known = _known_domains()
        found: dict[str, int] = {}
        for entry in imports:
            domain = _domain(entry.domain)
            if domain in found:
                raise self.fail(f"{owner} imports {_shown_domain(domain)} twice (opsets {found[domain]} and "
                                f"{entry.version})")
            if domain in known:
                low, high = known[domain]
                if not low <= entry.version <= high:
                    raise self.fail(f"{owner} imports {_shown_domain(domain)} opset {entry.version}; this mlc "
                                    f"knows opsets {low} to {high} of it")
            elif entry.version < 0:
                raise self.fail(f"{owner} imports {domain} at a negative opset {entry.version}")
            found[domain] = entry.version
        return found

    # ---------------------------------------------------------------- functions
    def check_functions(self) -> None:
        """No recursion among model-local functions, and calls nested at most MAX_FUNCTION_DEPTH."""
        calls: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for key, function in self.functions.items():
            calls[key] = [k for node in _all_nodes(function.node)
                          if (k := (_domain(node.domain), node.op_type)) in self.functions]
        depth: dict[tuple[str, str], int] = {}
        for start in calls:
            if start in depth:
                continue
            stack: list[tuple[tuple[str, str], int]] = [(start, 0)]
            path: list[tuple[str, str]] = []
            on_path: set[tuple[str, str]] = set()
            while stack:  # iterative depth-first search (a chain may be thousands long)
                key, child = stack.pop()
                if child == 0:
                    path.append(key)
                    on_path.add(key)
                callees = calls[key]
                if child < len(callees):
                    stack.append((key, child + 1))
                    callee = callees[child]
                    if callee in on_path:
                        cycle = [*path[path.index(callee):], callee]
                        names = " -> ".join(f"'{n}'" for _, n in cycle)
                        what = "calls itself" if len(cycle) == 2 else "recurses"
                        raise self.fail(f"function '{callee[1]}' {what} ({names}); recursive functions are "
                                        "not allowed in ONNX")
                    if callee not in depth:
                        stack.append((callee, 0))
                    continue
                depth[key] = 1 + max((depth[c] for c in callees), default=0)
                if depth[key] > MAX_FUNCTION_DEPTH:
                    raise self.fail(f"model-local function calls nest {depth[key]} deep from function "
                                    f"'{key[1]}' (at most {MAX_FUNCTION_DEPTH})")
                path.pop()
                on_path.discard(key)

    # ---------------------------------------------------------------- graphs
    def graph(self, graph: onnx.GraphProto, scope: _Scope, main: bool = False) -> None:
        where = f"graph {graph.name!r}" if graph.name else scope.where
        for kind, infos in (("input", graph.input), ("output", graph.output), ("value", graph.value_info)):
            for info in infos:  # dims < 0 only matter where mlc makes data of that shape: main-graph inputs
                self.value_type(info.type, f"{where}: {kind} {info.name!r}", dims=kind == "input" and main)
        for tensor in graph.initializer:
            self.tensor(tensor, f"{where}: initializer {tensor.name!r}")
        for sparse in graph.sparse_initializer:
            self.tensor(sparse.values, f"{where}: sparse initializer {sparse.values.name!r}")
            self.tensor(sparse.indices, f"{where}: sparse initializer {sparse.values.name!r} (indices)")
        self.graph_nodes(graph.node, _Scope(scope.opsets, where))

    def graph_nodes(self, nodes: Iterable[onnx.NodeProto], scope: _Scope) -> None:
        for index, node in enumerate(nodes):
            self.node(node, index, scope)

    def value_type(self, proto: onnx.TypeProto, what: str, dims: bool) -> None:
        which = proto.WhichOneof("value")
        if which in ("tensor_type", "sparse_tensor_type"):
            t = getattr(proto, which)
            if t.elem_type and t.elem_type not in DType._value2member_map_:
                raise self.fail(f"{what} has unknown element type {t.elem_type}")
            if t.HasField("shape") and dims:
                for d in t.shape.dim:
                    if d.WhichOneof("value") == "dim_value" and d.dim_value < 0:
                        shape = [x.dim_value if x.HasField("dim_value") else (x.dim_param or "?")
                                 for x in t.shape.dim]
                        raise self.fail(f"{what} has a negative dimension {shape}")
        elif which == "sequence_type" and proto.sequence_type.HasField("elem_type"):
            self.value_type(proto.sequence_type.elem_type, what, dims)
        elif which == "optional_type" and proto.optional_type.HasField("elem_type"):
            self.value_type(proto.optional_type.elem_type, what, dims)
        elif which == "map_type" and proto.map_type.HasField("value_type"):
            self.value_type(proto.map_type.value_type, what, dims)

    # ---------------------------------------------------------------- tensors
    def tensor(self, tensor: TensorProto, what: str) -> None:
        if tensor.data_type not in DType._value2member_map_ or tensor.data_type == 0:
            raise self.fail(f"{what} has unknown element type {tensor.data_type}")
        dtype = DType(tensor.data_type)
        dims = list(tensor.dims)
        if any(d < 0 for d in dims):
            raise self.fail(f"{what} has a negative dimension {dims}")
        count = element_count(dims)
        if count > MAX_ELEMENTS:
            raise self.fail(f"{what} declares {dims}: {count} elements, more than any tensor can hold")
        if tensor.data_location == TensorProto.EXTERNAL:
            return  # its length is checked against the shape where the file is resolved
        fields = [name for name, present in _data_fields(tensor) if present]
        if len(fields) > 1:
            raise self.fail(f"{what} holds its values twice ({' and '.join(fields)}); a tensor has one data field")
        if not fields:
            if count:
                raise self.fail(f"{what} has no data for its {count} elements {dtype.short_name}{dims}")
            return
        field = fields[0]
        if field == "raw_data":
            if dtype == DType.STRING:
                raise self.fail(f"{what} is a string tensor with raw_data")
            need = (count * dtype.bits + 7) // 8
            have = len(tensor.raw_data)
            if have != need:
                raise self.fail(f"{what} holds {have} bytes of raw_data; its type {dtype.short_name}{dims} needs "
                                f"{need}")
            return
        need = _typed_count(dtype, count)
        have = len(getattr(tensor, field))
        expected_field = _TYPED_FIELD.get(dtype)
        if expected_field != field:
            raise self.fail(f"{what} is {dtype.short_name} but holds {field} (expected "
                            f"{expected_field or 'raw_data'})")
        if have != need:
            raise self.fail(f"{what} holds {have} values in {field}; its type {dtype.short_name}{dims} needs {need}")

    # ---------------------------------------------------------------- nodes
    def node(self, node: onnx.NodeProto, index: int, scope: _Scope) -> None:
        label = _label(node, index)
        where = f"{scope.where}: node {label}"
        domain = _domain(node.domain)
        if domain not in scope.opsets and not (domain == "" and not scope.opsets):
            raise self.fail(f"{where} uses domain {_shown_domain(domain)!r}, which the model does not import "
                            f"(opset_import)")
        for attribute in node.attribute:
            if not attribute.type and not attribute.ref_attr_name and not guess_attribute_type(attribute):
                raise self.fail(f"{where}: attribute {attribute.name!r} has neither a type nor a value")
            self.attribute(attribute, f"{where}, attribute {attribute.name!r}", scope)
        if (domain, node.op_type) in self.functions:
            return  # a call of a model-local function: its body is checked on its own
        if domain in _known_domains():
            self.schema_node(node, label, where, domain, scope)

    def attribute(self, attribute: AttributeProto, what: str, scope: _Scope) -> None:
        if attribute.HasField("t"):
            self.tensor(attribute.t, what)
        for tensor in attribute.tensors:
            self.tensor(tensor, what)
        if attribute.HasField("sparse_tensor"):
            self.tensor(attribute.sparse_tensor.values, what)
            self.tensor(attribute.sparse_tensor.indices, what)
        if attribute.HasField("g"):
            self.graph(attribute.g, _Scope(scope.opsets, f"{what} (sub-graph)"))
        for graph in attribute.graphs:
            self.graph(graph, _Scope(scope.opsets, f"{what} (sub-graph)"))

    def schema_node(self, node: onnx.NodeProto, label: str, where: str, domain: str, scope: _Scope) -> None:
        version = scope.opsets.get(domain, 0)
        try:
            schema = onnx.defs.get_schema(node.op_type, version, domain)
        except onnx.defs.SchemaError:
            hint = ""
            try:
                since = onnx.defs.get_schema(node.op_type, _known_domains()[domain][1], domain).since_version
                hint = f" (it exists from opset {since} on)" if since > version else " (removed by then)"
            except onnx.defs.SchemaError:
                hint = ""
            raise self.fail(f"{where}: {_shown_domain(domain)} opset {version} has no op "
                            f"{node.op_type}{hint}") from None
        context = onnx.checker.C.CheckerContext()
        context.ir_version = self.model.ir_version
        context.opset_imports = dict(scope.opsets)
        for attribute in node.attribute:
            if attribute.name not in schema.attributes and (attribute.HasField("g") or len(attribute.graphs)):
                raise self.fail(f"{where}: attribute {attribute.name!r} is a sub-graph, but {node.op_type} has no "
                                "attribute of that name")
        try:
            onnx.checker.check_node(_as_checked(node, set(schema.attributes)), context)
        except Exception as error:  # noqa: BLE001 - the checker's refusal, whatever its class
            raise self.fail(f"{where}: {_checker_text(error)}") from None
        self.attribute_values(node, where)
        self.subgraph_arity(node, where)

    def attribute_values(self, node: onnx.NodeProto, where: str) -> None:
        """Values the schema's types allow but a runtime cannot survive or that mean nothing."""
        for attribute in node.attribute:
            name = attribute.name
            if name in _DTYPE_ATTRIBUTES and attribute.type == AttributeProto.INT:
                if attribute.i not in DType._value2member_map_ or attribute.i == 0:
                    raise self.fail(f"{where}: attribute {name!r} = {attribute.i} is not an element type")
            if name == "blocksize" and attribute.type == AttributeProto.INT and not 1 <= attribute.i <= MAX_BLOCKSIZE:
                raise self.fail(f"{where}: attribute 'blocksize' = {attribute.i} is out of range "
                                f"(1 to {MAX_BLOCKSIZE})")
            if node.op_type in _WINDOW_OPS and name in _WINDOW_MINIMUM and attribute.type == AttributeProto.INTS:
                low = _WINDOW_MINIMUM[name]
                bad = [v for v in attribute.ints if not low <= v <= MAX_WINDOW]
                if bad:
                    raise self.fail(f"{where}: attribute {name!r} = {list(attribute.ints)} holds {bad[0]}; each "
                                    f"value must be in {low} to {MAX_WINDOW}")
            if node.op_type in _WINDOW_OPS and name == "group" and attribute.type == AttributeProto.INT \
                    and not 1 <= attribute.i <= MAX_WINDOW:
                raise self.fail(f"{where}: attribute 'group' = {attribute.i} must be positive")

    def subgraph_arity(self, node: onnx.NodeProto, where: str) -> None:
        """If branches, Loop and Scan bodies with as many inputs and outputs as the node needs."""
        graphs = {a.name: a.g for a in node.attribute if a.HasField("g")}
        outputs = len(node.output)
        if node.op_type == "If" and "then_branch" in graphs and "else_branch" in graphs:
            then, other = len(graphs["then_branch"].output), len(graphs["else_branch"].output)
            if then != other or then != outputs:
                raise self.fail(f"{where}: then_branch returns {then} values and else_branch {other}, but the If "
                                f"node has {outputs} outputs")
        elif node.op_type == "Loop" and "body" in graphs:
            body = graphs["body"]
            carried = len(node.input) - 2
            if len(body.input) != carried + 2 or len(body.output) != outputs + 1 or carried < 0:
                raise self.fail(f"{where}: the loop body takes {len(body.input)} inputs and returns "
                                f"{len(body.output)} values; with {max(carried, 0)} loop-carried values and "
                                f"{outputs} outputs it must take {max(carried, 0) + 2} and return {outputs + 1}")
        elif node.op_type == "Scan" and "body" in graphs:
            body = graphs["body"]
            if len(body.output) != outputs:
                raise self.fail(f"{where}: the scan body returns {len(body.output)} values, the node has "
                                f"{outputs} outputs")


# ===================================================================== helpers
_DTYPE_ATTRIBUTES = frozenset({"to", "dtype", "output_datatype"})
_WINDOW_OPS = frozenset({"Conv", "ConvTranspose", "ConvInteger", "QLinearConv", "DeformConv", "MaxPool",
                         "AveragePool", "LpPool", "MaxUnpool", "Col2Im", "Im2Col"})
_WINDOW_MINIMUM = {"kernel_shape": 1, "strides": 1, "dilations": 1, "pads": 0, "output_padding": 0}

_TYPED_FIELD = {
    DType.FLOAT: "float_data", DType.COMPLEX64: "float_data", DType.DOUBLE: "double_data",
    DType.COMPLEX128: "double_data", DType.INT64: "int64_data", DType.UINT32: "uint64_data",
    DType.UINT64: "uint64_data", DType.STRING: "string_data",
    **{t: "int32_data" for t in (DType.INT32, DType.INT16, DType.INT8, DType.UINT16, DType.UINT8, DType.BOOL,
                                 DType.FLOAT16, DType.BFLOAT16, DType.FLOAT8E4M3FN, DType.FLOAT8E4M3FNUZ,
                                 DType.FLOAT8E5M2, DType.FLOAT8E5M2FNUZ, DType.FLOAT8E8M0, DType.UINT4, DType.INT4,
                                 DType.FLOAT4E2M1, DType.UINT2, DType.INT2)},
}
_DATA_FIELDS = ("raw_data", "float_data", "int32_data", "string_data", "int64_data", "double_data", "uint64_data")


def _data_fields(tensor: TensorProto) -> Iterator[tuple[str, bool]]:
    for name in _DATA_FIELDS:
        yield name, (tensor.HasField(name) if name == "raw_data" else len(getattr(tensor, name)) > 0)


def _typed_count(dtype: DType, count: int) -> int:
    """How many entries of its typed field a tensor of `count` elements holds."""
    if dtype in (DType.COMPLEX64, DType.COMPLEX128):
        return 2 * count
    if dtype.bits and dtype.bits < 8:
        per = 8 // dtype.bits
        return (count + per - 1) // per
    return count


def _all_nodes(nodes: Iterable[onnx.NodeProto]) -> Iterator[onnx.NodeProto]:
    """Nodes and the nodes of their sub-graphs (iteratively)."""
    stack = list(nodes)
    while stack:
        node = stack.pop()
        yield node
        for attribute in node.attribute:
            if attribute.HasField("g"):
                stack.extend(attribute.g.node)
            for graph in attribute.graphs:
                stack.extend(graph.node)


_ATTR_FIELDS = (("f", AttrType.FLOAT), ("i", AttrType.INT), ("s", AttrType.STRING), ("t", AttrType.TENSOR),
                ("g", AttrType.GRAPH), ("sparse_tensor", AttrType.SPARSE_TENSOR), ("tp", AttrType.TYPE_PROTO))
_ATTR_LISTS = (("floats", AttrType.FLOATS), ("ints", AttrType.INTS), ("strings", AttrType.STRINGS),
               ("tensors", AttrType.TENSORS), ("graphs", AttrType.GRAPHS),
               ("sparse_tensors", AttrType.SPARSE_TENSORS), ("type_protos", AttrType.TYPE_PROTOS))


def guess_attribute_type(proto: AttributeProto) -> int:
    """Models of old IR versions may leave `type` unset: read it off the field that is filled
    (UNDEFINED when none is)."""
    for field_name, kind in _ATTR_FIELDS:
        if proto.HasField(field_name):
            return kind
    for field_name, kind in _ATTR_LISTS:
        if len(getattr(proto, field_name)):
            return kind
    return AttrType.UNDEFINED


def _external(tensor: TensorProto) -> bool:
    return tensor.data_location == TensorProto.EXTERNAL


def _as_checked(node: onnx.NodeProto, known: set[str]) -> onnx.NodeProto:
    """The node as onnx's checker may see it: each sub-graph replaced by an empty one (the checker
    would judge a branch's reads of the enclosing graph's values without knowing them; sub-graphs
    are checked apart), each external tensor by an empty one (the checker would look for its
    file relative to the working folder; mlc resolves external data itself), and without the
    attributes its schema does not know (they import and round-trip untouched; a runtime that
    cannot run them says so). The standard domain spelled "ai.onnx" is checked as "": the checker
    wants an opset import of that exact name, which the model cannot also have beside "" (one
    domain imported twice), and onnxruntime runs either spelling."""
    if node.domain != "ai.onnx" and not any(
            a.HasField("g") or len(a.graphs) or (a.HasField("t") and _external(a.t)) or a.name not in known
            or not a.type or any(_external(t) for t in a.tensors) for a in node.attribute):
        return node
    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    copy.domain = "" if node.domain == "ai.onnx" else node.domain
    for attribute in copy.attribute:  # an old model's untyped attribute, typed as the importer reads it
        if not attribute.type and not attribute.ref_attr_name:
            attribute.type = guess_attribute_type(attribute)
    kept = [a for a in copy.attribute if a.name in known]
    del copy.attribute[:]
    copy.attribute.extend(kept)
    for attribute in copy.attribute:
        if attribute.HasField("g"):
            attribute.g.Clear()
            attribute.g.name = "subgraph"
        for graph in attribute.graphs:
            graph.Clear()
            graph.name = "subgraph"
        for tensor in [attribute.t, *attribute.tensors]:
            if _external(tensor):
                dtype = tensor.data_type
                tensor.Clear()
                tensor.data_type = dtype
                tensor.dims.append(0)
    return copy


def _checker_text(error: Exception) -> str:
    """The checker's first line, without its `==> Context:` trailer."""
    text = str(error).split("==> Context:")[0]
    return " ".join(line.strip() for line in text.splitlines() if line.strip()) or type(error).__name__


def _label(node: onnx.NodeProto, index: int) -> str:
    op = f"{node.domain}::{node.op_type}" if node.domain not in _STANDARD else node.op_type
    return f"{node.name!r} ({op})" if node.name else f"#{index} ({op})"


def validate_model(model: onnx.ModelProto, shown: str) -> None:
    """Raise BadInputError (naming `shown` and what is wrong) for a model mlc must not process."""
    _Validator(model, shown).run()


__all__ = ["guess_attribute_type", "validate_model"]
