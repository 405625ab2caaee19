"""The hostile-input corpus: models and artifacts made by code, each refused cleanly by `mlc`.

Every case writes its files into a folder of its own (`CaseDir`): the model goes in `model/`
(the model's folder, the only one mlc may read), a bait file lies in `outside/` (which mlc must
never open or stat), and `work/` is the working folder of the run (outputs, HOME, TMPDIR).
Models are written as raw bytes (`SerializeToString`, or protobuf bytes put together by hand),
never through `onnx.save`, which could check or rewrite them.

A case names what its refusal must mention (`names`, all of them, e.g. the node or the tensor)
and, where the model is actually valid (an extreme but valid one), the commands that must
succeed on it (`valid`). Every model case runs through every command (`COMMANDS`), the llvm
compile included; `backend` marks the cases that get past mlc's front end before or after
validation, so that a target's own refusal is tested there. Cases of the `artifact` group
tamper with a compiled artifact (`CaseDir.base_artifact`) and are tried with `mlc run` and
`mlc inspect`.

`python -m tests.hostile.corpus DIR` writes every case into DIR/<id>/ and lists them.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

MODEL = "m.onnx"
ARTIFACT = "artifact.mlc"  # the tampered copy's folder name (each refusal must name it)
BAIT = "secret.bin"
IR, OPSET = 8, 17

# commands a model case is tried with; artifact cases get ARTIFACT_COMMANDS
COMMANDS = ("inspect", "compile-ort", "compile-llvm", "debug", "optimize")
ARTIFACT_COMMANDS = ("run", "inspect")


@dataclass(frozen=True)
class CaseDir:
    """The folders of one case: `root/model` (the model's folder), `root/outside` (bait),
    `root/work` (the run's working folder); `base_artifact` is a compiled artifact to tamper with."""

    root: Path
    base_artifact: Path | None = None

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def outside(self) -> Path:
        return self.root / "outside"

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def model(self) -> Path:
        return self.model_dir / MODEL

    def prepare(self) -> None:
        for folder in (self.model_dir, self.outside, self.work):
            folder.mkdir(parents=True, exist_ok=True)
        (self.outside / BAIT).write_bytes(WEIGHTS.tobytes())


@dataclass(frozen=True)
class Case:
    id: str
    group: str
    about: str
    build: Callable[[CaseDir], Path]  # writes the files, returns the path given to mlc
    names: tuple[str, ...] = ()  # text every refusal must hold (besides the file name)
    valid: frozenset[str] = frozenset()  # commands that must succeed (exit 0) on it
    backend: bool = False  # it may get past the front end: the targets' own checks refuse it
    exits: frozenset[int] = frozenset({2})  # accepted exit codes of a refusal (1: numbers)

    @property
    def artifact(self) -> bool:
        return self.group == "artifact"

    @property
    def commands(self) -> tuple[str, ...]:
        if self.artifact:
            return ARTIFACT_COMMANDS
        return COMMANDS


CASES: list[Case] = []
WEIGHTS = np.arange(4, dtype=np.float32) * 1.5 - 2.0  # f32[4], 16 bytes: external data and the bait


def case(group: str, about: str, *, names: Iterable[str] = (), valid: Iterable[str] = (), backend: bool = False,
         exits: Iterable[int] = (2,), id: str | None = None) -> Callable[[Callable[[CaseDir], Path]], Callable]:
    """Register a builder as a case named after the function (or `id`)."""

    def register(build: Callable[[CaseDir], Path]) -> Callable[[CaseDir], Path]:
        valid_set = frozenset(COMMANDS if valid == "all" else valid)
        CASES.append(Case(id or build.__name__.removeprefix("case_"), group, about, build, tuple(names),
                          valid_set, backend, frozenset(exits)))
        return build

    return register


# ===================================================================== model helpers
def f32(name: str, dims: Iterable[int | str | None] = (4,), dtype: int = TensorProto.FLOAT) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, dtype, list(dims))


def model(nodes: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto],
          initializers: Iterable[onnx.TensorProto] = (), *, opsets: dict[str, int] | None = None, ir: int = IR,
          functions: Iterable[onnx.FunctionProto] = ()) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "hostile", inputs, outputs, list(initializers))
    imports = [helper.make_opsetid(d, v) for d, v in (opsets or {"": OPSET}).items()]
    proto = helper.make_model(graph, ir_version=ir, opset_imports=imports, functions=list(functions))
    proto.ir_version = ir  # make_model may raise it for functions
    return proto


def write(path: Path, proto: onnx.ModelProto | bytes) -> Path:
    """Raw bytes, no checks."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(proto if isinstance(proto, bytes) else proto.SerializeToString())
    return path


def const(name: str, array: np.ndarray) -> onnx.TensorProto:
    return onnx.numpy_helper.from_array(np.asarray(array), name)


def ints(name: str, values: Iterable[int]) -> onnx.TensorProto:
    return const(name, np.array(list(values), dtype=np.int64))


def one_node(d: CaseDir, node: onnx.NodeProto, inputs: list[onnx.ValueInfoProto], out: onnx.ValueInfoProto,
             initializers: Iterable[onnx.TensorProto] = (), **kw: object) -> Path:
    return write(d.model, model([node], inputs, [out], initializers, **kw))  # type: ignore[arg-type]


def tiny() -> onnx.ModelProto:
    """A small valid conv model: x f32[1,3,8,8] -> Conv(w, b) -> Relu -> y."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["y"], name="relu")]
    inits = [const("w", rng.standard_normal((4, 3, 3, 3)).astype(np.float32)),
             const("b", rng.standard_normal(4).astype(np.float32))]
    return model(nodes, [f32("x", [1, 3, 8, 8])], [f32("y", [1, 4, 8, 8])], inits)


# ---- raw protobuf
def varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative numbers as protobuf writes them (two's complement, 10 bytes)
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def key(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def field_bytes(number: int, payload: bytes) -> bytes:
    return key(number, 2) + varint(len(payload)) + payload


def field_int(number: int, value: int) -> bytes:
    return key(number, 0) + varint(value)


def opset_bytes(version: int = OPSET) -> bytes:
    return field_bytes(8, field_bytes(1, b"") + field_int(2, version))  # ModelProto.opset_import


# ===================================================================== container
@case("container", "a text file named .onnx")
def case_text(d: CaseDir) -> Path:
    return write(d.model, b"this is not a model\nbut a text file\n")


@case("container", "a zero-byte file")
def case_empty_file(d: CaseDir) -> Path:
    return write(d.model, b"")


@case("container", "4 KiB of random bytes")
def case_random_bytes(d: CaseDir) -> Path:
    return write(d.model, np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())


@case("container", "gzip-compressed model (magic bytes first)")
def case_gzip(d: CaseDir) -> Path:
    import gzip

    return write(d.model, gzip.compress(tiny().SerializeToString(), mtime=0))


def _truncated(fraction: float) -> Callable[[CaseDir], Path]:
    def build(d: CaseDir) -> Path:
        data = tiny().SerializeToString()
        return write(d.model, data[: max(1, int(len(data) * fraction))])
    return build


for _fraction in (0.0, 0.02, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99):
    case("container", f"a valid model cut at {_fraction:.0%} of its bytes",
         id=f"truncated_{int(_fraction * 100):02d}")(_truncated(_fraction))


@case("container", "the last byte of a valid model missing")
def case_truncated_last_byte(d: CaseDir) -> Path:
    return write(d.model, tiny().SerializeToString()[:-1])


@case("container", "the graph field's length prefix says 2**62 bytes")
def case_huge_length_prefix(d: CaseDir) -> Path:
    return write(d.model, field_int(1, IR) + opset_bytes() + key(7, 2) + varint(1 << 62) + b"\x0a\x00")


@case("container", "a raw_data length prefix of 2**31 inside a well-formed graph length")
def case_huge_inner_length(d: CaseDir) -> Path:
    tensor = field_int(1, 4) + field_int(2, TensorProto.FLOAT) + field_bytes(8, b"w") + key(9, 2) + varint(1 << 31)
    graph = field_bytes(5, tensor + b"\x00" * 16)  # GraphProto.initializer
    return write(d.model, field_int(1, IR) + opset_bytes() + field_bytes(7, graph))


@case("container", "a varint that never ends (11 continuation bytes)")
def case_endless_varint(d: CaseDir) -> Path:
    return write(d.model, field_int(1, IR) + key(7, 2) + b"\xff" * 11)


@case("container", "sub-graphs nested 2000 deep (raw bytes, beyond protobuf's recursion limit)")
def case_nesting_beyond_limit(d: CaseDir) -> Path:
    graph = b""
    for _ in range(2000):  # GraphProto{node{attribute{name, type=GRAPH, g=...}}}
        attribute = field_bytes(1, b"then_branch") + field_int(20, 5) + field_bytes(6, graph)
        graph = field_bytes(1, field_bytes(4, b"If") + field_bytes(5, attribute))
    return write(d.model, field_int(1, IR) + opset_bytes() + field_bytes(7, graph))


@case("container", "If sub-graphs nested 24 deep (valid: each level returns the next)", valid="all")
def case_nesting_deep_valid(d: CaseDir) -> Path:
    depth = 24
    body: onnx.GraphProto | None = None
    for level in reversed(range(depth)):
        out = f"v{level}"
        if body is None:
            inner = helper.make_graph([helper.make_node("Neg", ["x"], [out], name=f"neg{level}")], f"leaf{level}",
                                      [], [f32(out)])
        else:
            other = helper.make_graph([helper.make_node("Relu", ["x"], [f"e{level}"], name=f"relu{level}")],
                                      f"e{level}", [], [f32(f"e{level}")])
            inner = helper.make_graph([helper.make_node("If", ["c"], [out], name=f"if{level + 1}",
                                                        then_branch=body, else_branch=other)], f"g{level}", [],
                                      [f32(out)])
        body = inner
    assert body is not None
    other = helper.make_graph([helper.make_node("Relu", ["x"], ["e"], name="relu")], "e", [], [f32("e")])
    node = helper.make_node("If", ["c"], ["y"], name="if0", then_branch=body, else_branch=other)
    return write(d.model, model([node], [f32("x"), f32("c", [], TensorProto.BOOL)], [f32("y")]))


@case("container", "ir_version 2**40")
def case_ir_version_huge(d: CaseDir) -> Path:
    proto = tiny()
    proto.ir_version = 1 << 40
    return write(d.model, proto)


@case("container", "ir_version -1")
def case_ir_version_negative(d: CaseDir) -> Path:
    proto = tiny()
    proto.ir_version = -1
    return write(d.model, proto)


@case("container", "ir_version 99 (from the future)", names=("IR version",))
def case_ir_version_future(d: CaseDir) -> Path:
    proto = tiny()
    proto.ir_version = 99
    return write(d.model, proto)


@case("container", "a model without a graph")
def case_no_graph(d: CaseDir) -> Path:
    return write(d.model, field_int(1, IR) + opset_bytes())


@case("container", "a graph field of zero bytes")
def case_zero_byte_graph(d: CaseDir) -> Path:
    return write(d.model, field_int(1, IR) + opset_bytes() + field_bytes(7, b""))


@case("container", "a TensorProto's bytes instead of a model")
def case_tensor_not_model(d: CaseDir) -> Path:
    return write(d.model, const("w", np.ones((64,), np.float32)).SerializeToString())


@case("container", "a valid model followed by unknown fields (protobuf skips them)", valid="all", backend=True)
def case_unknown_fields(d: CaseDir) -> Path:
    return write(d.model, tiny().SerializeToString() + field_bytes(1000, b"ignored") + field_int(1001, 7))


# ===================================================================== graph structure
def _add(name: str, a: str, b: str, out: str) -> onnx.NodeProto:
    return helper.make_node("Add", [a, b], [out], name=name)


@case("graph", "two nodes that read each other's outputs", names=("cycle",))
def case_cycle(d: CaseDir) -> Path:
    nodes = [_add("first", "x", "b", "a"), helper.make_node("Relu", ["a"], ["b"], name="second")]
    return write(d.model, model(nodes, [f32("x")], [f32("b")]))


@case("graph", "a node reading its own output", names=("loop",))
def case_self_loop(d: CaseDir) -> Path:
    return one_node(d, _add("loop", "x", "y", "y"), [f32("x")], f32("y"))


@case("graph", "a node reading a value nothing defines", names=("ghost",))
def case_undefined_input(d: CaseDir) -> Path:
    return one_node(d, _add("adder", "x", "ghost", "y"), [f32("x")], f32("y"))


@case("graph", "two nodes writing the same value", names=("'y'",))
def case_duplicate_value(d: CaseDir) -> Path:
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="one"), helper.make_node("Neg", ["x"], ["y"], name="two")]
    return write(d.model, model(nodes, [f32("x")], [f32("y")]))


@case("graph", "two initializers with the same name", names=("'w'",))
def case_duplicate_initializer(d: CaseDir) -> Path:
    inits = [const("w", WEIGHTS), const("w", WEIGHTS * 2)]
    return one_node(d, _add("adder", "x", "w", "y"), [f32("x")], f32("y"), inits)


@case("graph", "an initializer and a node output with the same name", names=("'w'",))
def case_initializer_and_output(d: CaseDir) -> Path:
    nodes = [helper.make_node("Relu", ["x"], ["w"], name="writer"), _add("adder", "x", "w", "y")]
    return write(d.model, model(nodes, [f32("x")], [f32("y")], [const("w", WEIGHTS)]))


@case("graph", "the same graph input listed twice", names=("'x'",))
def case_duplicate_input(d: CaseDir) -> Path:
    return one_node(d, helper.make_node("Relu", ["x"], ["y"], name="relu"), [f32("x"), f32("x")], f32("y"))


@case("graph", "a graph with no nodes, inputs or outputs")
def case_empty_graph(d: CaseDir) -> Path:
    return write(d.model, model([], [], []))


@case("graph", "a graph output that nothing defines", names=("'missing'",))
def case_missing_output(d: CaseDir) -> Path:
    return one_node(d, helper.make_node("Relu", ["x"], ["y"], name="relu"), [f32("x")], f32("missing"))


@case("graph", "nodes but no graph outputs", names=("output",))
def case_no_outputs(d: CaseDir) -> Path:
    return write(d.model, model([helper.make_node("Relu", ["x"], ["y"], name="relu")], [f32("x")], []))


@case("graph", "a node without outputs", names=("'sink'",))
def case_node_without_outputs(d: CaseDir) -> Path:
    nodes = [helper.make_node("Relu", ["x"], [], name="sink"), helper.make_node("Neg", ["x"], ["y"], name="neg")]
    return write(d.model, model(nodes, [f32("x")], [f32("y")]))


@case("graph", "a graph output that is a graph input, no nodes (the identity model)", valid="all")
def case_output_is_input(d: CaseDir) -> Path:
    return write(d.model, model([], [f32("x")], [f32("x")]))


@case("graph", "nodes stored in reverse order (sorted on import)", valid="all", backend=True)
def case_unsorted_nodes(d: CaseDir) -> Path:
    nodes = [helper.make_node("Neg", ["a"], ["y"], name="second"), helper.make_node("Relu", ["x"], ["a"], name="first")]
    return write(d.model, model(nodes, [f32("x")], [f32("y")]))


def _if(then: onnx.GraphProto, other: onnx.GraphProto, outputs: list[str], name: str = "branch") -> onnx.NodeProto:
    return helper.make_node("If", ["c"], outputs, name=name, then_branch=then, else_branch=other)


def _branch(name: str, nodes: list[onnx.NodeProto], outputs: list[str]) -> onnx.GraphProto:
    return helper.make_graph(nodes, name, [], [f32(o) for o in outputs])


@case("graph", "an If branch reading a value of its sibling branch", names=("'t'",))
def case_subgraph_sibling_scope(d: CaseDir) -> Path:
    then = _branch("then", [helper.make_node("Relu", ["x"], ["t"], name="then_relu")], ["t"])
    other = _branch("else", [helper.make_node("Neg", ["t"], ["e"], name="else_neg")], ["e"])
    return write(d.model, model([_if(then, other, ["y"])], [f32("x"), f32("c", [], TensorProto.BOOL)], [f32("y")]))


@case("graph", "an If branch reading the If's own output (a cycle through a sub-graph)")
def case_subgraph_reads_own_output(d: CaseDir) -> Path:
    then = _branch("then", [helper.make_node("Relu", ["y"], ["t"], name="then_relu")], ["t"])
    other = _branch("else", [helper.make_node("Neg", ["x"], ["e"], name="else_neg")], ["e"])
    return write(d.model, model([_if(then, other, ["y"])], [f32("x"), f32("c", [], TensorProto.BOOL)], [f32("y")]))


@case("graph", "an If branch defining a name of the enclosing graph", names=("'x'",))
def case_subgraph_shadows_outer(d: CaseDir) -> Path:
    then = _branch("then", [helper.make_node("Relu", ["c2"], ["x"], name="then_relu")], ["x"])
    other = _branch("else", [helper.make_node("Neg", ["c2"], ["e"], name="else_neg")], ["e"])
    nodes = [helper.make_node("Identity", ["x"], ["c2"], name="copy"), _if(then, other, ["y"])]
    return write(d.model, model(nodes, [f32("x"), f32("c", [], TensorProto.BOOL)], [f32("y")]))


@case("graph", "If branches with 1 and 2 outputs", names=("branch",))
def case_if_branch_counts_differ(d: CaseDir) -> Path:
    then = _branch("then", [helper.make_node("Relu", ["x"], ["t"], name="then_relu")], ["t"])
    other = _branch("else", [helper.make_node("Neg", ["x"], ["e"], name="neg"),
                             helper.make_node("Relu", ["x"], ["e2"], name="relu")], ["e", "e2"])
    return write(d.model, model([_if(then, other, ["y"])], [f32("x"), f32("c", [], TensorProto.BOOL)], [f32("y")]))


@case("graph", "If branches with 2 outputs, the If node with 1", names=("branch",))
def case_if_node_fewer_outputs(d: CaseDir) -> Path:
    def two(name: str) -> onnx.GraphProto:
        return _branch(name, [helper.make_node("Neg", ["x"], [f"{name}1"], name=f"{name}_neg"),
                              helper.make_node("Relu", ["x"], [f"{name}2"], name=f"{name}_relu")],
                       [f"{name}1", f"{name}2"])
    return write(d.model, model([_if(two("then"), two("else"), ["y"])], [f32("x"), f32("c", [], TensorProto.BOOL)],
                                [f32("y")]))


@case("graph", "a Loop whose body has the wrong number of inputs", names=("loop",))
def case_loop_body_arity(d: CaseDir) -> Path:
    body = helper.make_graph([helper.make_node("Identity", ["cond"], ["cond_out"], name="keep"),
                              helper.make_node("Relu", ["v"], ["v_out"], name="body_relu")], "body",
                             [f32("cond", [], TensorProto.BOOL), f32("v")],  # missing the iteration number
                             [f32("cond_out", [], TensorProto.BOOL), f32("v_out")])
    node = helper.make_node("Loop", ["n", "", "x"], ["y"], name="loop", body=body)
    return write(d.model, model([node], [f32("x"), f32("n", [], TensorProto.INT64)], [f32("y")]))


def _local_call(name: str, inputs: list[str], outputs: list[str], node: str) -> onnx.NodeProto:
    return helper.make_node(name, inputs, outputs, name=node, domain="local")


def _function(name: str, body: list[onnx.NodeProto]) -> onnx.FunctionProto:
    return helper.make_function("local", name, ["a"], ["b"], body,
                                [helper.make_opsetid("", OPSET), helper.make_opsetid("local", 1)])


def _with_functions(d: CaseDir, functions: list[onnx.FunctionProto], entry: str) -> Path:
    node = _local_call(entry, ["x"], ["y"], "call")
    return write(d.model, model([node], [f32("x")], [f32("y")], opsets={"": OPSET, "local": 1},
                                functions=functions))


@case("graph", "a model-local function calling itself", names=("'f'", "recurs"))
def case_function_recursion(d: CaseDir) -> Path:
    return _with_functions(d, [_function("f", [_local_call("f", ["a"], ["b"], "again")])], "f")


@case("graph", "two model-local functions calling each other", names=("recurs",))
def case_function_mutual_recursion(d: CaseDir) -> Path:
    return _with_functions(d, [_function("f", [_local_call("g", ["a"], ["b"], "to_g")]),
                               _function("g", [_local_call("f", ["a"], ["b"], "to_f")])], "f")


@case("graph", "a chain of 3000 model-local functions, each calling the next", names=("function",))
def case_function_chain_long(d: CaseDir) -> Path:
    n = 3000
    functions = [_function(f"f{i}", [_local_call(f"f{i + 1}", ["a"], ["b"], f"to{i + 1}")]) for i in range(n - 1)]
    functions.append(_function(f"f{n - 1}", [helper.make_node("Relu", ["a"], ["b"], name="leaf")]))
    return _with_functions(d, functions, "f0")


# valid, but not for llvm: TVM's ONNX frontend refuses model-local functions ("cannot convert local::f0")
@case("graph", "a chain of 8 model-local functions (valid)",
      valid=("inspect", "compile-ort", "debug", "optimize"))
def case_function_chain_short(d: CaseDir) -> Path:
    n = 8
    functions = [_function(f"f{i}", [_local_call(f"f{i + 1}", ["a"], ["b"], f"to{i + 1}")]) for i in range(n - 1)]
    functions.append(_function(f"f{n - 1}", [helper.make_node("Relu", ["a"], ["b"], name="leaf")]))
    return _with_functions(d, functions, "f0")


@case("graph", "a function body reading a name that is not one of its inputs", names=("'outer'",))
def case_function_reads_outer(d: CaseDir) -> Path:
    return _with_functions(d, [_function("f", [_add("inner", "a", "outer", "b")])], "f")


@case("graph", "a call of a model-local function that is not defined (domain declared)",
      names=("'nowhere'",), valid=("inspect",))
def case_function_missing(d: CaseDir) -> Path:
    return _with_functions(d, [], "nowhere")


# ===================================================================== tensors and shapes
@case("tensor", "a graph input with dim -5", names=("'x'",))
def case_negative_input_dim(d: CaseDir) -> Path:
    return one_node(d, helper.make_node("Relu", ["x"], ["y"], name="relu"), [f32("x", [-5])], f32("y", [-5]))


@case("tensor", "an initializer with dim -1", names=("'w'",))
def case_negative_initializer_dim(d: CaseDir) -> Path:
    w = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[-1])
    return one_node(d, _add("adder", "x", "w", "y"), [f32("x")], f32("y"), [w])


@case("tensor", "a graph input of 2**40 float elements", names=("'x'",), backend=True)
def case_huge_input_dim(d: CaseDir) -> Path:
    return one_node(d, helper.make_node("Relu", ["x"], ["y"], name="relu"), [f32("x", [1 << 40])],
                    f32("y", [1 << 40]))


@case("tensor", "a graph input whose dims multiply past int64 (2**31 x 2**31 x 2**31)", names=("'x'",))
def case_input_dims_overflow(d: CaseDir) -> Path:
    dims = [1 << 31] * 3
    return one_node(d, helper.make_node("Relu", ["x"], ["y"], name="relu"), [f32("x", dims)], f32("y", dims))


@case("tensor", "an initializer declared 2**32 x 2**32 with no data", names=("'w'",))
def case_initializer_dims_overflow(d: CaseDir) -> Path:
    w = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[1 << 32, 1 << 32])
    return one_node(d, _add("adder", "x", "w", "y"), [f32("x")], f32("y"), [w])


@case("tensor", "an initializer f32[4] whose raw_data holds 3 bytes", names=("'w'",))
def case_raw_data_short(d: CaseDir) -> Path:
    w = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4], raw_data=b"\x00\x01\x02")
    return one_node(d, _add("adder", "x", "w", "y"), [f32("x")], f32("y"), [w])


@case("tensor", "an initializer f32[4] whose raw_data holds 64 bytes", names=("'w'",))
def case_raw_data_long(d: CaseDir) -> Path:
    w = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4], raw_data=bytes(64))
    return one_node(d, _add("adder", "x", "w", "y"), [f32("x")], f32("y"), [w])


@case("tensor", "an initializer f32[4] with 7 float_data values", names=("'w'",))
def case_float_data_count(d: CaseDir) -> Path:
    w = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4], float_data=[1.0] * 7)
    return one_node(d, _add("adder", "x", "w", "y"), [f32("x")], f32("y"), [w])


@case("tensor", "an initializer with both raw_data and float_data", names=("'w'",))
def case_raw_and_float_data(d: CaseDir) -> Path:
    w = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4], raw_data=WEIGHTS.tobytes(),
                    float_data=[9.0] * 4)
    return one_node(d, _add("adder", "x", "w", "y"), [f32("x")], f32("y"), [w])


@case("tensor", "an initializer of element type 99", names=("'w'",))
def case_unknown_element_type(d: CaseDir) -> Path:
    w = TensorProto(name="w", data_type=99, dims=[4], raw_data=bytes(16))
    return one_node(d, _add("adder", "x", "w", "y"), [f32("x")], f32("y"), [w])


@case("tensor", "a Constant node whose tensor raw_data does not fit its shape", names=("'k'",))
def case_constant_node_bad_data(d: CaseDir) -> Path:
    value = TensorProto(name="kv", data_type=TensorProto.FLOAT, dims=[4], raw_data=bytes(5))
    nodes = [helper.make_node("Constant", [], ["w"], name="k", value=value), _add("adder", "x", "w", "y")]
    return write(d.model, model(nodes, [f32("x")], [f32("y")]))


def _bomb(node: onnx.NodeProto, inputs: list[onnx.ValueInfoProto], inits: list[onnx.TensorProto],
          out_dtype: int = TensorProto.FLOAT) -> Callable[[CaseDir], Path]:
    def build(d: CaseDir) -> Path:
        return write(d.model, model([node], inputs, [helper.make_tensor_value_info("y", out_dtype, None)], inits))
    return build


case("tensor", "ConstantOfShape of [2**20, 2**20] floats (4 TiB)", names=("'bomb'",), backend=True,
     id="bomb_constant_of_shape")(_bomb(helper.make_node("ConstantOfShape", ["s"], ["y"], name="bomb",
                                                          value=const("v", np.ones(1, np.float32))),
                                        [], [ints("s", [1 << 20, 1 << 20])]))
case("tensor", "Expand of x[1] to [2**40] (4 TiB)", names=("'bomb'",), backend=True,
     id="bomb_expand")(_bomb(helper.make_node("Expand", ["x", "s"], ["y"], name="bomb"), [f32("x", [1])],
                             [ints("s", [1 << 40])]))
case("tensor", "Tile of x[1,1] by [2**20, 2**20]", names=("'bomb'",), backend=True,
     id="bomb_tile")(_bomb(helper.make_node("Tile", ["x", "r"], ["y"], name="bomb"), [f32("x", [1, 1])],
                           [ints("r", [1 << 20, 1 << 20])]))
case("tensor", "Range(0, 2**40, 1) in int64 (8 TiB)", names=("'bomb'",), backend=True,
     id="bomb_range")(_bomb(helper.make_node("Range", ["a", "b", "c"], ["y"], name="bomb"), [],
                            [const("a", np.array(0, np.int64)), const("b", np.array(1 << 40, np.int64)),
                             const("c", np.array(1, np.int64))], TensorProto.INT64))
case("tensor", "Resize of x[1,1,4,4] by scales 2**18 (4 TiB)", names=("'bomb'",), backend=True,
     id="bomb_resize")(_bomb(helper.make_node("Resize", ["x", "", "sc"], ["y"], name="bomb", mode="nearest"),
                             [f32("x", [1, 1, 4, 4])],
                             [const("sc", np.array([1, 1, 1 << 18, 1 << 18], np.float32))]))
case("tensor", "Pad of x[4] with 2**40 zeros", names=("'bomb'",), backend=True,
     id="bomb_pad")(_bomb(helper.make_node("Pad", ["x", "p"], ["y"], name="bomb"), [f32("x")],
                          [ints("p", [0, 1 << 40])]))
case("tensor", "ConstantOfShape of 200M floats (800 MB: fits in memory, refused by the estimate)",
     names=("'bomb'",), backend=True,
     id="bomb_small")(_bomb(helper.make_node("ConstantOfShape", ["s"], ["y"], name="bomb",
                                             value=const("v", np.ones(1, np.float32))),
                            [], [ints("s", [200_000_000])]))


@case("tensor", "a ConstantOfShape bomb behind a Shape computation (Concat of shapes)", names=("'bomb'",),
      backend=True)
def case_bomb_computed_shape(d: CaseDir) -> Path:
    nodes = [helper.make_node("Concat", ["s1", "s2"], ["s"], name="shape", axis=0),
             helper.make_node("ConstantOfShape", ["s"], ["y"], name="bomb", value=const("v", np.ones(1, np.float32)))]
    return write(d.model, model(nodes, [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                                [ints("s1", [1 << 20]), ints("s2", [1 << 20])]))


@case("tensor", "a string initializer added to a float input", names=("adder",))
def case_string_into_add(d: CaseDir) -> Path:
    w = TensorProto(name="w", data_type=TensorProto.STRING, dims=[4], string_data=[b"a", b"b", b"c", b"d"])
    return one_node(d, _add("adder", "x", "w", "y"), [f32("x")], f32("y"), [w])


@case("tensor", "a string graph input fed to Relu", names=("relu",))
def case_string_into_relu(d: CaseDir) -> Path:
    return one_node(d, helper.make_node("Relu", ["x"], ["y"], name="relu"), [f32("x", [4], TensorProto.STRING)],
                    f32("y"))


@case("tensor", "an int64 Reshape shape given as a float initializer", names=("reshape",))
def case_float_shape_operand(d: CaseDir) -> Path:
    return one_node(d, helper.make_node("Reshape", ["x", "s"], ["y"], name="reshape"), [f32("x")], f32("y", [2, 2]),
                    [const("s", np.array([2.0, 2.0], np.float32))])


# ===================================================================== attributes
@case("attribute", "Transpose perm given as a float", names=("perm",))
def case_wrong_attribute_type(d: CaseDir) -> Path:
    node = helper.make_node("Transpose", ["x"], ["y"], name="transpose")
    node.attribute.append(helper.make_attribute("perm", 1.5))
    return one_node(d, node, [f32("x", [2, 2])], f32("y", [2, 2]))


@case("attribute", "Concat without its required axis", names=("'axis'",))
def case_missing_required_attribute(d: CaseDir) -> Path:
    return one_node(d, helper.make_node("Concat", ["x", "x"], ["y"], name="concat"), [f32("x")], f32("y", [8]))


@case("attribute", "Relu with an attribute it does not have (mlc.import_onnx keeps it; no runtime loads it)",
      names=("'alpha'",))
def case_unknown_attribute(d: CaseDir) -> Path:
    return one_node(d, helper.make_node("Relu", ["x"], ["y"], name="relu", alpha=0.5), [f32("x")], f32("y"))


@case("attribute", "Relu with a graph attribute", names=("relu",))
def case_graph_attribute_on_relu(d: CaseDir) -> Path:
    body = _branch("body", [helper.make_node("Neg", ["x"], ["t"], name="inner")], ["t"])
    return one_node(d, helper.make_node("Relu", ["x"], ["y"], name="relu", body=body), [f32("x")], f32("y"))


@case("attribute", "an attribute without a type and without a value", names=("'axis'",))
def case_attribute_without_type(d: CaseDir) -> Path:
    node = helper.make_node("Softmax", ["x"], ["y"], name="softmax")
    node.attribute.append(onnx.AttributeProto(name="axis"))
    return one_node(d, node, [f32("x")], f32("y"))


@case("attribute", "DepthToSpace blocksize 2**40", names=("'blocksize'",), backend=True)
def case_depth_to_space_huge_block(d: CaseDir) -> Path:
    node = helper.make_node("DepthToSpace", ["x"], ["y"], name="d2s", blocksize=1 << 40)
    return one_node(d, node, [f32("x", [1, 4, 2, 2])], helper.make_tensor_value_info("y", TensorProto.FLOAT, None))


@case("attribute", "DepthToSpace blocksize 0", names=("'blocksize'",), backend=True)
def case_depth_to_space_zero_block(d: CaseDir) -> Path:
    node = helper.make_node("DepthToSpace", ["x"], ["y"], name="d2s", blocksize=0)
    return one_node(d, node, [f32("x", [1, 4, 2, 2])], helper.make_tensor_value_info("y", TensorProto.FLOAT, None))


@case("attribute", "SpaceToDepth blocksize -2", names=("'blocksize'",), backend=True)
def case_space_to_depth_negative_block(d: CaseDir) -> Path:
    node = helper.make_node("SpaceToDepth", ["x"], ["y"], name="s2d", blocksize=-2)
    return one_node(d, node, [f32("x", [1, 1, 4, 4])], helper.make_tensor_value_info("y", TensorProto.FLOAT, None))


def _conv(**attrs: Any) -> Callable[[CaseDir], Path]:
    def build(d: CaseDir) -> Path:
        node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv", **attrs)
        w = const("w", np.ones((2, 1, 3, 3), np.float32))
        return one_node(d, node, [f32("x", [1, 1, 8, 8])], helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
                        [w])
    return build


case("attribute", "Conv kernel_shape [-3, -3]", names=("'kernel_shape'",), backend=True,
     id="conv_negative_kernel_shape")(_conv(kernel_shape=[-3, -3]))
case("attribute", "Conv strides [0, 0]", names=("'strides'",), backend=True,
     id="conv_zero_strides")(_conv(strides=[0, 0]))
case("attribute", "Conv dilations [2**40, 1]", names=("'dilations'",), backend=True,
     id="conv_huge_dilations")(_conv(dilations=[1 << 40, 1]))
case("attribute", "Conv pads [-2**40, 0, 0, 0]", names=("'pads'",), backend=True,
     id="conv_negative_pads")(_conv(pads=[-(1 << 40), 0, 0, 0]))
case("attribute", "Conv group 3 with 1 input channel", names=("conv",), backend=True,
     id="conv_group_mismatch")(_conv(group=3))


@case("attribute", "MaxPool strides [0, 0]", names=("'strides'",), backend=True)
def case_maxpool_zero_strides(d: CaseDir) -> Path:
    node = helper.make_node("MaxPool", ["x"], ["y"], name="pool", kernel_shape=[2, 2], strides=[0, 0])
    return one_node(d, node, [f32("x", [1, 1, 4, 4])], helper.make_tensor_value_info("y", TensorProto.FLOAT, None))


@case("attribute", "Cast to element type 999", names=("'to'",))
def case_cast_unknown_target(d: CaseDir) -> Path:
    return one_node(d, helper.make_node("Cast", ["x"], ["y"], name="cast", to=999), [f32("x")],
                    helper.make_tensor_value_info("y", TensorProto.FLOAT, None))


@case("attribute", "Cast to UNDEFINED (0)", names=("'to'",))
def case_cast_undefined_target(d: CaseDir) -> Path:
    return one_node(d, helper.make_node("Cast", ["x"], ["y"], name="cast", to=0), [f32("x")],
                    helper.make_tensor_value_info("y", TensorProto.FLOAT, None))


@case("attribute", "Softmax axis 100 on a rank-1 input", names=("softmax",), backend=True)
def case_axis_out_of_range(d: CaseDir) -> Path:
    return one_node(d, helper.make_node("Softmax", ["x"], ["y"], name="softmax", axis=100), [f32("x")], f32("y"))


@case("attribute", "Transpose perm [2**62, 0]", names=("perm",), backend=True)
def case_transpose_huge_perm(d: CaseDir) -> Path:
    return one_node(d, helper.make_node("Transpose", ["x"], ["y"], name="transpose", perm=[1 << 62, 0]),
                    [f32("x", [2, 2])], helper.make_tensor_value_info("y", TensorProto.FLOAT, None))


@case("attribute", "Gather of constant indices far out of range", names=("gather",), backend=True)
def case_gather_out_of_range(d: CaseDir) -> Path:
    return one_node(d, helper.make_node("Gather", ["x", "i"], ["y"], name="gather"), [f32("x")],
                    helper.make_tensor_value_info("y", TensorProto.FLOAT, None), [ints("i", [1 << 40])])


@case("attribute", "Split with split sizes [-4, 8]", names=("split",), backend=True)
def case_split_negative_sizes(d: CaseDir) -> Path:
    node = helper.make_node("Split", ["x", "s"], ["y", "z"], name="split", axis=0)
    return write(d.model, model([node], [f32("x")], [helper.make_tensor_value_info(n, TensorProto.FLOAT, None)
                                                     for n in ("y", "z")], [ints("s", [-4, 8])]))


# ===================================================================== opsets
@case("opset", "a node in a domain the model does not import", names=("com.evil",))
def case_domain_not_imported(d: CaseDir) -> Path:
    node = helper.make_node("Steal", ["x"], ["y"], name="steal", domain="com.evil")
    return one_node(d, node, [f32("x")], f32("y"))


@case("opset", "a custom op of an imported unknown domain (imports; no runtime can run it)",
      names=("Steal",), valid=("inspect",))
def case_unknown_domain_op(d: CaseDir) -> Path:
    node = helper.make_node("Steal", ["x"], ["y"], name="steal", domain="com.evil")
    return one_node(d, node, [f32("x")], f32("y"), opsets={"": OPSET, "com.evil": 1})


@case("opset", "ai.onnx opset 0", names=("opset",))
def case_opset_zero(d: CaseDir) -> Path:
    return one_node(d, helper.make_node("Relu", ["x"], ["y"], name="relu"), [f32("x")], f32("y"), opsets={"": 0})


@case("opset", "ai.onnx opset 10000", names=("opset",))
def case_opset_huge(d: CaseDir) -> Path:
    return one_node(d, helper.make_node("Relu", ["x"], ["y"], name="relu"), [f32("x")], f32("y"),
                    opsets={"": 10000})


@case("opset", "ai.onnx opset -3", names=("opset",))
def case_opset_negative(d: CaseDir) -> Path:
    return one_node(d, helper.make_node("Relu", ["x"], ["y"], name="relu"), [f32("x")], f32("y"), opsets={"": -3})


@case("opset", "ai.onnx imported twice with different versions", names=("opset",))
def case_opset_twice(d: CaseDir) -> Path:
    proto = model([helper.make_node("Relu", ["x"], ["y"], name="relu")], [f32("x")], [f32("y")])
    proto.opset_import.append(helper.make_opsetid("", 13))
    return write(d.model, proto)


@case("opset", "ai.onnx.ml opset 10000", names=("opset",))
def case_ml_opset_huge(d: CaseDir) -> Path:
    return one_node(d, helper.make_node("Relu", ["x"], ["y"], name="relu"), [f32("x")], f32("y"),
                    opsets={"": OPSET, "ai.onnx.ml": 10000})


@case("opset", "an op of a later opset (Gelu, opset 20) in an opset-17 model", names=("Gelu",))
def case_op_newer_than_opset(d: CaseDir) -> Path:
    return one_node(d, helper.make_node("Gelu", ["x"], ["y"], name="gelu"), [f32("x")], f32("y"))


@case("opset", "an op that does not exist in ai.onnx", names=("Frobnicate",))
def case_op_does_not_exist(d: CaseDir) -> Path:
    return one_node(d, helper.make_node("Frobnicate", ["x"], ["y"], name="frob"), [f32("x")], f32("y"))


# ===================================================================== external data
def _external(d: CaseDir, location: str, offset: int | str | None = 0, length: int | str | None = 16) -> Path:
    """model/m.onnx whose initializer 'w' (f32[4]) lives at `location`."""
    tensor = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4], data_location=TensorProto.EXTERNAL)
    tensor.external_data.add(key="location", value=location)
    if offset is not None:
        tensor.external_data.add(key="offset", value=str(offset))
    if length is not None:
        tensor.external_data.add(key="length", value=str(length))
    return one_node(d, _add("adder", "x", "w", "y"), [f32("x")], f32("y"), [tensor])


def _data(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(WEIGHTS.tobytes())
    return path


@case("external", "external data in the model's folder (valid)", valid="all", backend=True)
def case_external_valid(d: CaseDir) -> Path:
    _data(d.model_dir / "w.bin")
    return _external(d, "w.bin")


@case("external", "location ../outside/secret.bin", names=("'w'",))
def case_external_dotdot(d: CaseDir) -> Path:
    return _external(d, f"../outside/{BAIT}")


@case("external", "location sub/../../outside/secret.bin", names=("'w'",))
def case_external_dotdot_nested(d: CaseDir) -> Path:
    (d.model_dir / "sub").mkdir(parents=True, exist_ok=True)
    return _external(d, f"sub/../../outside/{BAIT}")


@case("external", "location ..\\outside\\secret.bin (Windows separators)", names=("'w'",))
def case_external_dotdot_backslash(d: CaseDir) -> Path:
    return _external(d, f"..\\outside\\{BAIT}")


@case("external", "an absolute location", names=("'w'",))
def case_external_absolute(d: CaseDir) -> Path:
    return _external(d, str((d.outside / BAIT).resolve()))


@case("external", "location /dev/zero", names=("'w'",))
def case_external_dev_zero(d: CaseDir) -> Path:
    return _external(d, "/dev/zero")


@case("external", "a symbolic link in the folder pointing outside", names=("'w'",))
def case_external_symlink_out(d: CaseDir) -> Path:
    (d.model_dir / "w.bin").symlink_to(d.outside / BAIT)
    return _external(d, "w.bin")


@case("external", "a linked folder on the way to the data", names=("'w'",))
def case_external_symlink_folder(d: CaseDir) -> Path:
    (d.model_dir / "data").symlink_to(d.outside, target_is_directory=True)
    return _external(d, f"data/{BAIT}")


@case("external", "a hard link to a file outside", names=("'w'",))
def case_external_hard_link(d: CaseDir) -> Path:
    os.link(d.outside / BAIT, d.model_dir / "w.bin")
    return _external(d, "w.bin")


@case("external", "location names a folder", names=("'w'",))
def case_external_directory(d: CaseDir) -> Path:
    (d.model_dir / "data").mkdir()
    return _external(d, "data")


@case("external", "location names a FIFO (opening it would block)", names=("'w'",))
def case_external_fifo(d: CaseDir) -> Path:
    os.mkfifo(d.model_dir / "w.bin")
    return _external(d, "w.bin")


@case("external", "location names the model file itself", names=("'w'",))
def case_external_model_itself(d: CaseDir) -> Path:
    return _external(d, MODEL, offset=0, length=16)


@case("external", "offset past the end of the file", names=("'w'",))
def case_external_offset_past_end(d: CaseDir) -> Path:
    _data(d.model_dir / "w.bin")
    return _external(d, "w.bin", offset=64)


@case("external", "offset + length past the end of the file", names=("'w'",))
def case_external_length_past_end(d: CaseDir) -> Path:
    _data(d.model_dir / "w.bin")
    return _external(d, "w.bin", offset=8, length=16)


@case("external", "negative offset", names=("'w'",))
def case_external_negative_offset(d: CaseDir) -> Path:
    _data(d.model_dir / "w.bin")
    return _external(d, "w.bin", offset=-8)


@case("external", "negative length", names=("'w'",))
def case_external_negative_length(d: CaseDir) -> Path:
    _data(d.model_dir / "w.bin")
    return _external(d, "w.bin", length=-16)


@case("external", "offset 2**63 (past int64)", names=("'w'",))
def case_external_offset_huge(d: CaseDir) -> Path:
    _data(d.model_dir / "w.bin")
    return _external(d, "w.bin", offset=1 << 63)


@case("external", "offset that is not a number", names=("'w'",))
def case_external_offset_text(d: CaseDir) -> Path:
    _data(d.model_dir / "w.bin")
    return _external(d, "w.bin", offset="0x10")


@case("external", "length that does not hold the tensor", names=("'w'",))
def case_external_length_wrong(d: CaseDir) -> Path:
    _data(d.model_dir / "w.bin")
    return _external(d, "w.bin", length=12)


@case("external", "a 5000-character location", names=("'w'",))
def case_external_long_location(d: CaseDir) -> Path:
    return _external(d, "a" * 5000)


@case("external", "a location of 40 nested 250-character folder names", names=("'w'",))
def case_external_long_components(d: CaseDir) -> Path:
    return _external(d, "/".join(["b" * 250] * 40))


@case("external", "a location with a NUL byte", names=("'w'",))
def case_external_nul(d: CaseDir) -> Path:
    return _external(d, "w.bin\0../../outside")


@case("external", "a location that does not exist", names=("'w'",))
def case_external_missing(d: CaseDir) -> Path:
    return _external(d, "nowhere.bin")


@case("external", "an empty location", names=("'w'",))
def case_external_empty_location(d: CaseDir) -> Path:
    return _external(d, "")


@case("external", "location '.' (the model's folder)", names=("'w'",))
def case_external_dot(d: CaseDir) -> Path:
    return _external(d, ".")


@case("external", "a Constant node's tensor in external data outside", names=("'kv'",))
def case_external_in_constant_node(d: CaseDir) -> Path:
    value = TensorProto(name="kv", data_type=TensorProto.FLOAT, dims=[4], data_location=TensorProto.EXTERNAL)
    value.external_data.add(key="location", value=f"../outside/{BAIT}")
    nodes = [helper.make_node("Constant", [], ["w"], name="k", value=value), _add("adder", "x", "w", "y")]
    return write(d.model, model(nodes, [f32("x")], [f32("y")]))


@case("external", "external data in a sub-graph's initializer pointing outside", names=("'w'",))
def case_external_in_subgraph(d: CaseDir) -> Path:
    tensor = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4], data_location=TensorProto.EXTERNAL)
    tensor.external_data.add(key="location", value=f"../outside/{BAIT}")
    then = helper.make_graph([_add("inner", "x", "w", "t")], "then", [], [f32("t")], [tensor])
    other = _branch("else", [helper.make_node("Neg", ["x"], ["e"], name="neg")], ["e"])
    return write(d.model, model([_if(then, other, ["y"])], [f32("x"), f32("c", [], TensorProto.BOOL)], [f32("y")]))


# ===================================================================== tampered artifacts
def _artifact(d: CaseDir) -> Path:
    """A copy of the base artifact in the case's folder."""
    assert d.base_artifact is not None
    target = d.model_dir / ARTIFACT
    shutil.copytree(d.base_artifact, target, symlinks=True)
    return target


def _manifest(folder: Path) -> dict:
    import json

    return json.loads((folder / "manifest.json").read_text())


def _save_manifest(folder: Path, manifest: object) -> None:
    import json

    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


@case("artifact", "the manifest lists ../../outside/secret.bin (with its true sha256)", names=("secret.bin",))
def case_art_manifest_outside(d: CaseDir) -> Path:
    art = _artifact(d)
    manifest = _manifest(art)
    manifest["files"][f"../../outside/{BAIT}"] = {"sha256": _sha(d.outside / BAIT), "bytes": 16}
    _save_manifest(art, manifest)
    return art


@case("artifact", "the manifest lists an absolute path", names=("secret.bin",))
def case_art_manifest_absolute(d: CaseDir) -> Path:
    art = _artifact(d)
    manifest = _manifest(art)
    manifest["files"][str((d.outside / BAIT).resolve())] = {"sha256": _sha(d.outside / BAIT), "bytes": 16}
    _save_manifest(art, manifest)
    return art


@case("artifact", "model.onnx swapped for another model", names=("model.onnx",))
def case_art_swapped_file(d: CaseDir) -> Path:
    art = _artifact(d)
    other = tiny()
    other.graph.initializer[1].raw_data = np.full(4, 7.0, np.float32).tobytes()  # another bias
    write(art / "model.onnx", other)
    return art


@case("artifact", "model.onnx replaced by a symbolic link to an outside copy of it", names=("model.onnx",))
def case_art_file_symlink_out(d: CaseDir) -> Path:
    art = _artifact(d)
    shutil.move(art / "model.onnx", d.outside / "model.onnx")
    (art / "model.onnx").symlink_to(d.outside / "model.onnx")
    return art


@case("artifact", "a manifest that is not JSON", names=("manifest.json",))
def case_art_manifest_not_json(d: CaseDir) -> Path:
    art = _artifact(d)
    (art / "manifest.json").write_text("{ this is not json")
    return art


@case("artifact", "a manifest that is a JSON list", names=("manifest",))
def case_art_manifest_list(d: CaseDir) -> Path:
    art = _artifact(d)
    _save_manifest(art, [1, 2, 3])
    return art


@case("artifact", "a manifest whose files entry is a number", names=("files",))
def case_art_manifest_files_number(d: CaseDir) -> Path:
    art = _artifact(d)
    manifest = _manifest(art)
    manifest["files"] = 5
    _save_manifest(art, manifest)
    return art


@case("artifact", "a manifest file entry without sha256", names=("model.onnx",))
def case_art_manifest_no_sha(d: CaseDir) -> Path:
    art = _artifact(d)
    manifest = _manifest(art)
    manifest["files"]["model.onnx"] = {"bytes": 1}
    _save_manifest(art, manifest)
    return art


@case("artifact", "a manifest listing a file that is missing", names=("gone.bin",))
def case_art_missing_file(d: CaseDir) -> Path:
    art = _artifact(d)
    manifest = _manifest(art)
    manifest["files"]["gone.bin"] = {"sha256": "0" * 64, "bytes": 1}
    _save_manifest(art, manifest)
    return art


@case("artifact", "an unknown target", names=("evil",))
def case_art_unknown_target(d: CaseDir) -> Path:
    art = _artifact(d)
    manifest = _manifest(art)
    manifest["target"] = "evil"
    _save_manifest(art, manifest)
    return art


@case("artifact", "format version 999", names=("999",))
def case_art_format_version(d: CaseDir) -> Path:
    art = _artifact(d)
    manifest = _manifest(art)
    manifest["format_version"] = 999
    _save_manifest(art, manifest)
    return art


@case("artifact", "inputs that are not a list", names=("inputs",))
def case_art_inputs_not_list(d: CaseDir) -> Path:
    art = _artifact(d)
    manifest = _manifest(art)
    manifest["inputs"] = "x"
    _save_manifest(art, manifest)
    return art


@case("artifact", "model.onnx replaced by the DepthToSpace 2**40 model, hashes updated", names=("'blocksize'",))
def case_art_hostile_model_rehashed(d: CaseDir) -> Path:
    art = _artifact(d)
    node = helper.make_node("DepthToSpace", ["x"], ["y"], name="d2s", blocksize=1 << 40)
    write(art / "model.onnx", model([node], [f32("x", [1, 4, 2, 2])],
                                    [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]))
    manifest = _manifest(art)
    manifest["files"]["model.onnx"] = {"sha256": _sha(art / "model.onnx"), "bytes": (art / "model.onnx").stat().st_size}
    _save_manifest(art, manifest)
    return art


BY_ID = {c.id: c for c in CASES}
assert len(BY_ID) == len(CASES), "case ids must be unique"


def materialize(c: Case, root: Path, base_artifact: Path | None = None) -> tuple[CaseDir, Path]:
    """Write case `c` into `root` (created); returns its folders and the path given to mlc."""
    d = CaseDir(root, base_artifact)
    d.prepare()
    return d, c.build(d)


def main(argv: list[str]) -> int:
    root = Path(argv[0]) if argv else Path("hostile-corpus")
    for c in CASES:
        if c.artifact:
            continue
        _, path = materialize(c, root / c.id)
        print(f"{c.id:40s} {c.group:10s} {path.stat().st_size if path.is_file() else '-':>10} {c.about}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


__all__ = ["ARTIFACT_COMMANDS", "BY_ID", "CASES", "COMMANDS", "Case", "CaseDir", "materialize"]
