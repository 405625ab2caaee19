"""The text form: exact round trip, digests, every attribute kind, parse errors."""

from __future__ import annotations

import numpy as np
import pytest

from mlc.errors import TextParseError
from mlc.ir import (
    DType,
    Graph,
    ModelInfo,
    Node,
    Tensor,
    TensorDataUnavailable,
    TensorType,
    Value,
    assert_graph_equal,
    parse_ir,
    print_ir,
    verify,
)

# Canonical text: every attribute kind, type kind, omitted inputs/outputs, functions, sub-graphs
# reading an outer value, quoted names, metadata. print(parse(T)) must give T back exactly.
CANONICAL = '''model ir_version=10 opset_import={"": 21, "com.example": 1} producer_name="hand" producer_version="0.1" domain="org.test" model_version=3 doc="a \\"quoted\\" doc" meta={"k": "v", "ü": "ß"}
function com.example::Scale(%x) attributes [alpha, beta=2.0] opset_import={"": 21} doc="scales" {
  %a = Constant() {value_float=@alpha: float}
  %y = Mul(%x, %a)
  return %y
}
graph "main" (%x: f32[N,3,"seq len",?], %w: f32[3] = dense<f32[3]> [1.0, -2.5, 1e-05], %s: seq<i64[*]>, %o: opt<map<str, f32[]>>) {
  doc "the graph"
  meta {"owner": "tests"}
  const %big = digest<f32[64,3]> "0123456789abcdef" [0.5, 0.25, -1.0, 2.0, ...]
  const %splat = splat<f16[4,4]> 0.5
  const %nan = dense<f32[2]> hex"0000c07f0000803f"
  const %names = dense<str[3]> ["a", "ü\\n", hex"ff00"]
  const %flags = dense<bool[2]> [true, false]
  const %bf = dense<bf16[2]> hex"803f0040"
  %y: f32[N,3,"seq len",?] = com.example::Scale(%x) {alpha=0.5} name="scale"
  %c: bool[] = Constant() {value=dense<bool[]> [true]}
  %z: f32[N,3,"seq len",?] = If(%c) {then_branch=graph "then" () {
    %t = Add(%y, %w)
    return %t
  }, else_branch=graph "else" () {
    %e = Neg(%y)
    return %e
  }}
  %p, none, %q: i64[2] = Custom(%z, none, %big) {f=1.5, i=-3, s="text", b=hex"80ff", t=dense<i32[2]> [1, 2], fs=[1.0, inf, -inf, nan], is=[1, 2, 3], ss=["a", "b"], ts=[dense<i8[1]> [7], splat<u8[2]> 3], gs=[graph "g1" () {
    return %x
  }], sp=sparse<f32[3,4]> values=dense<f32[2]> [1.0, 2.0] indices=dense<i64[2]> [1, 7], tp=type<seq<f32[2]>>, tps=[type<f32[1]>, type<opt<i64[*]>>], empty_i=ints[], empty_f=floats[], empty_s=strings[], empty_t=tensors[], empty_g=graphs[], empty_sp=sparse_tensors[], empty_tp=types[]} name="odd name:1" doc="custom op" meta={"source": "x"}
  %"a:b c" = Identity(%q)
  %r = com.ms::Op<"v2">(%"a:b c")
  Print(%r)
  return %z, %p, %r
}
'''


def test_canonical_text_is_a_fixpoint() -> None:
    graph = parse_ir(CANONICAL)
    assert print_ir(graph) == CANONICAL
    assert print_ir(parse_ir(print_ir(graph))) == CANONICAL


def test_the_standard_domain_has_one_spelling() -> None:
    """`ai.onnx::Identity` is read as `Identity`: the IR keeps "" for the standard domain."""
    spelled_out = parse_ir(CANONICAL.replace('%"a:b c" = Identity', '%"a:b c" = ai.onnx::Identity'))
    assert print_ir(spelled_out) == CANONICAL
    assert next(n for n in spelled_out if n.op_type == "Identity").domain == ""


def test_parsed_values_and_kinds() -> None:
    graph = parse_ir(CANONICAL)
    assert graph.model is not None and graph.model.opset_imports == {"": 21, "com.example": 1}
    custom = next(n for n in graph if n.op_type == "Custom")
    assert custom.attr("f") == 1.5 and custom.attr("i") == -3 and custom.attr("b") == b"\x80\xff"
    assert np.isnan(custom.attr("fs")[3])
    assert custom.outputs[1] is None and custom.inputs[1] is None
    assert custom.name == "odd name:1" and custom.metadata_props == {"source": "x"}
    nan = graph.initializers["nan"].const.numpy()
    assert np.isnan(nan[0]) and nan[1] == 1.0
    assert graph.initializers["splat"].const.is_splat
    assert graph.initializers["names"].const.numpy().tolist() == [b"a", "ü\n".encode(), b"\xff\x00"]
    then_add = next(iter(graph.nodes[2].attributes["then_branch"].value))
    assert then_add.inputs[0] is graph.nodes[0].outputs[0], "sub-graph reads the outer value"
    verify(graph)


def test_large_constant_prints_as_digest_and_compares_by_hash() -> None:
    g = Graph("g", ModelInfo(ir_version=8, opset_imports={"": 17}))
    x = g.add_input(Value("x", TensorType(DType.FLOAT, (100,))))
    w = g.make_constant(np.arange(100, dtype=np.float32), "w")
    add = Node("Add", [x, w], ["y"])
    g.append(add)
    g.outputs.append(add.outputs[0])
    text = print_ir(g)
    assert "digest<f32[100]>" in text and "[0.0, 1.0, 2.0, 3.0, ...]" in text
    parsed = parse_ir(text)
    assert print_ir(parsed) == text
    assert_graph_equal(g, parsed)
    with pytest.raises(TensorDataUnavailable):
        parsed.initializers[w.name].const.numpy()
    full = print_ir(g, max_elements=None)
    assert "digest" not in full
    np.testing.assert_array_equal(parse_ir(full).initializers[w.name].const.numpy(), np.arange(100))
    other = Graph("g", ModelInfo(ir_version=8, opset_imports={"": 17}))
    x2 = other.add_input(Value("x", TensorType(DType.FLOAT, (100,))))
    w2 = other.make_constant(np.arange(100, dtype=np.float32) + 1, "w")
    other.append(Node("Add", [x2, w2], ["y"]))
    other.outputs.append(other.nodes[0].outputs[0])
    with pytest.raises(AssertionError, match="constants differ"):
        assert_graph_equal(parsed, other)


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64, np.int8, np.uint64, np.bool_])
def test_small_tensors_round_trip_bitwise(dtype: type) -> None:
    rng = np.random.default_rng(0)
    values = (rng.standard_normal(12) * 1e3).astype(dtype) if dtype != np.bool_ else rng.random(12) > 0.5
    if np.issubdtype(dtype, np.floating):
        values[0] = -0.0
        values[1] = np.inf
    g = Graph("g", ModelInfo(opset_imports={"": 17}))
    c = g.make_constant(values.reshape(3, 4), "c")
    g.outputs.append(c)
    parsed = parse_ir(print_ir(g))
    got = parsed.initializers[c.name].const.numpy()
    assert got.dtype == values.dtype
    assert got.tobytes() == values.reshape(3, 4).tobytes()


def test_tensor_equality_is_bitwise() -> None:
    a = Tensor.from_array(np.array([0.0], dtype=np.float32))
    b = Tensor.from_array(np.array([-0.0], dtype=np.float32))
    assert not a.equals(b)
    assert Tensor.splat_of(2.0, DType.FLOAT, (2, 2)).equals(Tensor.from_array(np.full((2, 2), 2.0, np.float32)))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('graph "g" () {\n  %y = Relu(%x)\n  return %y\n}', r"line 2:\d+: undefined value %x"),
        ('graph "g" (%x: f32[1]) {\n  %x = Relu(%x)\n  return %x\n}', "defined twice"),
        ('graph "g" (%x: q32[1]) {\n  return %x\n}', "expected an element type"),
        ('graph "g" (%x: f32[1]) {\n  %y = Relu(%x) {a=[1, "s"]}\n  return %y\n}', "mixes kinds"),
        ('graph "g" (%x: f32[1]) {\n  return %x\n', "expected"),
        ('graph "g" (%x: f32[1]) { $ }', "unexpected character"),
    ],
)
def test_parse_errors_say_where(text: str, message: str) -> None:
    with pytest.raises(TextParseError, match=message):
        parse_ir(text)


def test_provenance_prints_parses_and_travels_through_onnx() -> None:
    import mlc

    text = '''model ir_version=8 opset_import={"": 17}
graph "g" (%x: f32[2]) {
  %y: f32[2] = Relu(%x) name="fused" loc(["conv1", "bn1"], "fuse-conv-bn/conv_bn")
  return %y
}
'''
    graph = parse_ir(text)
    node = graph.nodes[0]
    assert node.source == ("conv1", "bn1") and node.created_by == "fuse-conv-bn/conv_bn"
    assert print_ir(graph, debug_info=True) == text
    assert "loc(" not in print_ir(graph), "provenance is debug info, shown on request like MLIR locations"
    exported = mlc.export_onnx(graph)
    meta = {p.key: p.value for p in exported.graph.node[0].metadata_props}
    assert meta == {"mlc.source": '["conv1", "bn1"]', "mlc.created_by": "fuse-conv-bn/conv_bn"}
    again = mlc.import_onnx(exported).nodes[0]
    assert (again.source, again.created_by, again.metadata_props) == (node.source, node.created_by, {})
