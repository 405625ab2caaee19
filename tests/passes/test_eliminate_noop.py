"""eliminate-noop: every rule removes its no-op; near misses (broadcasts, signed zeros, symbolic dims,
graph-output passthroughs) stay, with a remark; the float rules hold bit for bit on -0.0, NaN, inf."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from mlc.numerics.inputs import make_inputs
from mlc.numerics.reference import ReferenceError as EngineError
from mlc.numerics.reference import run_graph
from mlc.onnx_io.importer import import_onnx
from mlc.pass_api import Numerics
from mlc.testing import as_graph, assert_numerically_equivalent, assert_pass, run_pass

INT64_MAX = 9223372036854775807

# (rule, opset, input type, constants, the node computing %n from %x). The node is a no-op: %n has
# %x's type and the pass must leave `%y = Neg(%x)` behind, with the constants (left for dce).
CASES = [
    ("cast", 17, "f32[2,3]", "", "Cast(%x) {to = 1}"),
    ("cast", 17, "i64[4]", "", "Cast(%x) {to = 7}"),
    ("castlike", 17, "f32[2,3]", "", "CastLike(%x, %x)"),
    ("reshape", 17, "f32[2,3]", "const %s = dense<i64[2]> [2, 3]", "Reshape(%x, %s)"),
    ("reshape", 17, "f32[2,3]", "const %s = dense<i64[2]> [0, -1]", "Reshape(%x, %s)"),
    ("reshape", 17, "f32[N,3]", "const %s = dense<i64[2]> [0, 3]", "Reshape(%x, %s)"),
    ("reshape", 17, "f32[2,N,4]", "const %s = dense<i64[3]> [2, 0, 4]", "Reshape(%x, %s)"),
    ("reshape", 17, "f32[2,N,3]", "const %s = dense<i64[3]> [2, -1, 3]", "Reshape(%x, %s)"),
    ("reshape", 17, "f32[2,3]", "const %s = dense<i64[2]> [2, 3]", "Reshape(%x, %s) {allowzero = 1}"),
    ("expand", 17, "f32[2,3]", "const %s = dense<i64[2]> [1, 3]", "Expand(%x, %s)"),
    ("expand", 17, "f32[N,3]", "const %s = dense<i64[1]> [3]", "Expand(%x, %s)"),
    ("expand", 17, "f32[N,M]", "const %s = dense<i64[2]> [1, 1]", "Expand(%x, %s)"),
    ("slice", 17, "f32[2,3]",
     f"const %b = dense<i64[2]> [0, -3]\n  const %e = dense<i64[2]> [{INT64_MAX}, 3]\n"
     "  const %a = dense<i64[2]> [0, -1]", "Slice(%x, %b, %e, %a)"),
    ("slice", 17, "f32[2,3]", "const %b = dense<i32[1]> [0]\n  const %e = dense<i32[1]> [2147483647]",
     "Slice(%x, %b, %e)"),
    ("slice", 17, "f32[N,3]",
     f"const %b = dense<i64[2]> [0, 0]\n  const %e = dense<i64[2]> [{INT64_MAX}, 100]\n"
     "  const %a = dense<i64[2]> [0, 1]\n  const %t = dense<i64[2]> [1, 1]", "Slice(%x, %b, %e, %a, %t)"),
    ("slice", 9, "f32[2,3]", "", "Slice(%x) {starts = [0, -5], ends = [2, 1000], axes = [0, 1]}"),
    ("pad", 17, "f32[2,3]", "const %p = dense<i64[4]> [0, 0, 0, 0]", "Pad(%x, %p) {mode = \"reflect\"}"),
    ("pad", 10, "f32[2,3]", "", "Pad(%x) {pads = [0, 0, 0, 0]}"),
    ("transpose", 17, "f32[2,3,4]", "", "Transpose(%x) {perm = [0, 1, 2]}"),
    ("transpose", 17, "f32[5]", "", "Transpose(%x)"),
    ("squeeze", 17, "f32[2,3]", "", "Squeeze(%x)"),
    ("squeeze", 11, "f32[2,3]", "", "Squeeze(%x) {axes = ints[]}"),
    ("unsqueeze", 17, "f32[2,3]", "const %a = dense<i64[0]> []", "Unsqueeze(%x, %a)"),
    ("concat", 17, "f32[2,3]", "", "Concat(%x) {axis = 1}"),
    ("split", 17, "f32[2,3]", "", "Split(%x) {axis = 1}"),
    ("split", 17, "f32[2,3]", "const %s = dense<i64[1]> [3]", "Split(%x, %s) {axis = -1}"),
    ("split", 11, "f32[2,3]", "", "Split(%x) {axis = 0, split = [2]}"),
    ("tile", 17, "f32[2,3]", "const %r = dense<i64[2]> [1, 1]", "Tile(%x, %r)"),
    ("mul-one", 17, "f32[2,3]", "const %c = dense<f32[]> [1.0]", "Mul(%x, %c)"),
    ("mul-one", 17, "f32[2,3]", "const %c = splat<f32[1,3]> 1.0", "Mul(%c, %x)"),
    ("mul-one", 17, "i32[2,3]", "const %c = dense<i32[3]> [1, 1, 1]", "Mul(%x, %c)"),
    ("div-one", 17, "f32[N,3]", "const %c = dense<f32[1]> [1.0]", "Div(%x, %c)"),
    ("div-one", 17, "i64[2,3]", "const %c = dense<i64[]> [1]", "Div(%x, %c)"),
    ("add-zero", 17, "f32[2,3]", "const %c = dense<f32[3]> [-0.0, -0.0, -0.0]", "Add(%x, %c)"),
    ("add-zero", 17, "f16[2,3]", "const %c = dense<f16[]> [-0.0]", "Add(%c, %x)"),
    ("add-zero", 17, "i32[2,3]", "const %c = dense<i32[]> [0]", "Add(%c, %x)"),
    ("sub-zero", 17, "f32[2,3]", "const %c = dense<f32[2,1]> [0.0, 0.0]", "Sub(%x, %c)"),
    ("sub-zero", 17, "i64[2,3]", "const %c = dense<i64[]> [0]", "Sub(%x, %c)"),
]


def _case(opset: int, xtype: str, consts: str, op: str, rest: str = "") -> str:
    body = (f"  {consts}\n" if consts else "") + (f"  %n: {xtype} = {op}\n" if op else "")
    src = "%n" if op else "%x"
    return f'graph "g" (%x: {xtype}) {{\n{body}  %y: {xtype} = Neg({src})\n{rest}  return %y\n}}'


@pytest.mark.parametrize(("rule", "opset", "xtype", "consts", "op"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_rule_removes_the_noop(rule: str, opset: int, xtype: str, consts: str, op: str) -> None:
    before = as_graph(_case(opset, xtype, consts, op), opset=opset)
    expected = as_graph(_case(opset, xtype, consts, ""), opset=opset)
    from mlc.ir.printer import print_ir

    ctx = assert_pass("eliminate-noop", print_ir(before), print_ir(expected), removed=1)
    assert dict(ctx.rules) == {rule: 1}, ctx.rules


def test_chain_and_graph_output_handover() -> None:
    before = '''graph "g" (%x: f32[2,3]) {
  const %s = dense<i64[2]> [0, -1]
  const %one = dense<f32[]> [1.0]
  %a: f32[2,3] = Cast(%x) {to = 1}
  %b: f32[2,3] = Reshape(%a, %s)
  %r: f32[2,3] = Relu(%b)
  %c: f32[2,3] = Mul(%r, %one)
  %out: f32[2,3] = Transpose(%c) {perm = [0, 1]}
  return %out
}'''
    expected = '''graph "g" (%x: f32[2,3]) {
  const %s = dense<i64[2]> [0, -1]
  const %one = dense<f32[]> [1.0]
  %out: f32[2,3] = Relu(%x)
  return %out
}'''
    assert_pass("eliminate-noop", before, expected, removed=4)
    graph, _ = run_pass("eliminate-noop", before)
    assert [v.name for v in graph.outputs] == ["out"], "the model's output keeps its name"


def test_inside_subgraphs() -> None:
    before = '''graph "g" (%c: bool[], %x: f32[2]) {
  %y: f32[2] = If(%c) {then_branch=graph "then" () {
    %t: f32[2] = Relu(%x)
    %u: f32[2] = Cast(%t) {to = 1}
    return %u
  }, else_branch=graph "else" () {
    %e: f32[2] = Cast(%x) {to = 1}
    return %e
  }}
  return %y
}'''
    expected = '''graph "g" (%c: bool[], %x: f32[2]) {
  %y: f32[2] = If(%c) {then_branch=graph "then" () {
    %u: f32[2] = Relu(%x)
    return %u
  }, else_branch=graph "else" () {
    %e: f32[2] = Cast(%x) {to = 1}
    return %e
  }}
  return %y
}'''
    # the else branch's Cast reads a value of the enclosing graph: it keeps the branch's output name
    ctx = assert_pass("eliminate-noop", before, expected, removed=1)
    assert any("cast at '<Cast>': not applied, it names a graph output" in r for r in ctx.remarks), ctx.remarks


def _kept(text: str, remark: str, *, numeric: bool = True, spec: str = "eliminate-noop", opset: int = 17) -> None:
    from mlc.ir.printer import print_ir

    source = print_ir(as_graph(text, opset=opset))
    ctx = assert_pass(spec, source, source, numeric=numeric)
    assert any(remark in r for r in ctx.remarks), ctx.remarks


def test_must_not_change() -> None:
    # Mul by 1 that broadcasts [3] to [2,3]: the output is not x.
    _kept('''graph "g" (%x: f32[3]) {
  const %c = splat<f32[2,3]> 1.0
  %y: f32[2,3] = Mul(%x, %c)
  %z: f32[2,3] = Neg(%y)
  return %z
}''', "mul-one at '<Mul>': not applied, the constant [2, 3] broadcasts the operand")
    # x + (+0.0) turns -0.0 into +0.0, and so does x - (-0.0): with output_zero_signs, a graph output
    # keeps its zeros' signs bit for bit.
    _kept('''graph "g" (%x: f32[2]) {
  const %c = dense<f32[]> [0.0]
  %y: f32[2] = Add(%x, %c)
  %z: f32[2] = Neg(%y)
  return %z
}''', "add-zero at '<Add>': not applied, x + +0.0 turns -0.0 into +0.0", spec="eliminate-noop{output_zero_signs=true}")
    _kept('''graph "g" (%x: f32[2]) {
  const %c = dense<f32[2]> [-0.0, 0.0]
  %y: f32[2] = Sub(%x, %c)
  %z: f32[2] = Neg(%y)
  return %z
}''', "sub-zero at '<Sub>': not applied, x - -0.0 turns -0.0 into +0.0", spec="eliminate-noop{output_zero_signs=true}")
    # By default they go unless a reader can tell the zeros apart by value: here a divisor, reached
    # through a Relu and a Reshape (1 / -0.0 is -inf, 1 / +0.0 is +inf).
    _kept('''graph "g" (%x: f32[2]) {
  const %c = dense<f32[]> [0.0]
  const %one = dense<f32[]> [1.0]
  const %s = dense<i64[2]> [2, 1]
  %y: f32[2] = Add(%x, %c)
  %r: f32[2] = Relu(%y)
  %t: f32[2,1] = Reshape(%r, %s)
  %z: f32[2,1] = Div(%one, %t)
  return %z
}''', "add-zero at '<Add>': not applied, x + +0.0 turns -0.0 into +0.0, and a zero's sign can reach a reader "
       "that tells")
    readers = ('%z: f32[2] = Reciprocal(%y)', '%z: f32[2] = Pow(%y, %m)',
               '%a: f32[2] = Atan(%y)\n  %z: f32[2] = Mod(%a, %y) {fmod = 1}')
    for reader in readers:
        _kept(f'''graph "g" (%x: f32[2]) {{
  const %c = dense<f32[]> [0.0]
  const %m = dense<f32[]> [-1.0]
  %y: f32[2] = Add(%x, %c)
  {reader}
  return %z
}}''', "add-zero at '<Add>': not applied")
    # A Reshape whose literal names a symbolic dim (N may be anything) and one whose 0 is literal.
    _kept('''graph "g" (%x: f32[N,3]) {
  const %s = dense<i64[2]> [1, 3]
  %y: f32[1,3] = Reshape(%x, %s)
  %z: f32[1,3] = Neg(%y)
  return %z
}''', "reshape at '<Reshape>': not applied, target [1, 3] names a dim that is symbolic")
    # (with allowzero the 0 is literal: the graph runs for N=0 only, which the seeded inputs do not feed)
    _kept('''graph "g" (%x: f32[N,3]) {
  const %s = dense<i64[2]> [0, 3]
  %y: f32[0,3] = Reshape(%x, %s) {allowzero = 1}
  %z: f32[0,3] = Neg(%y)
  return %z
}''', "reshape at '<Reshape>': not applied, target [0, 3] names a dim that is symbolic", numeric=False)
    # Squeeze without axes removes every 1-dim: N may be 1.
    _kept('''graph "g" (%x: f32[N,3]) {
  %y: f32[*] = Squeeze(%x)
  %z: f32[*] = Neg(%y)
  return %z
}''', "squeeze at '<Squeeze>': not applied, without axes it removes every 1-dim, and a symbolic dim may be 1")
    # Expand to [2,1] of [N,1]: N=1 broadcasts.
    _kept('''graph "g" (%x: f32[N,1]) {
  const %s = dense<i64[2]> [2, 1]
  %y: f32[2,1] = Expand(%x, %s)
  %z: f32[2,1] = Neg(%y)
  return %z
}''', "expand at '<Expand>': not applied, a dim of the input is symbolic")
    # A slice to 2 of a symbolic dim.
    _kept('''graph "g" (%x: f32[N,3]) {
  const %b = dense<i64[1]> [0]
  const %e = dense<i64[1]> [2]
  %y: f32[?,3] = Slice(%x, %b, %e)
  %z: f32[?,3] = Neg(%y)
  return %z
}''', "slice at '<Slice>': not applied, dim 0 is symbolic")
    # Straight from a graph input to a graph output: the interface needs both names.
    _kept('''graph "g" (%x: f32[2]) {
  %y: f32[2] = Cast(%x) {to = 1}
  return %y
}''', "cast at '<Cast>': not applied, it names a graph output")
    _kept('''graph "g" (%x: f32[2]) {
  %r: f32[2] = Relu(%x)
  %y: f32[2] = Concat(%r) {axis = 0}
  return %r, %y
}''', "concat at '<Concat>': not applied, it names a graph output")


def test_not_candidates() -> None:
    for text in ['''graph "g" (%x: f32[2]) {
  const %c = dense<f32[]> [0.0]
  %y: f32[2] = Sub(%c, %x)
  %z: f32[2] = Div(%c, %x)
  %w: f32[2] = Cast(%z) {to = 10}
  %v: f32[2] = Mul(%w, %y)
  return %v
}''', '''graph "g" (%x: f32[2], %w: f32[] = dense<f32[]> [1.0]) {
  %y: f32[2] = Mul(%x, %w)
  %z: f32[2,1] = Unsqueeze(%y) {axes = [1]}
  %s: f32[2] = Squeeze(%z)
  return %s
}''']:
        graph = as_graph(text, opset=11)
        _, ctx = run_pass("eliminate-noop", graph)
        assert ctx.rewrites == 0 and not ctx.remarks, (ctx.rules, ctx.remarks)


def _bits(array: np.ndarray) -> bytes:
    return np.ascontiguousarray(array).tobytes()


SPECIAL = np.array([[-0.0, 0.0, np.nan, np.inf], [-np.inf, 1.5, -2.0, 3e38]], dtype=np.float32)


@pytest.mark.parametrize(("op", "value"), [("Mul", "1.0"), ("Div", "1.0"), ("Add", "-0.0"), ("Sub", "0.0")])
def test_float_rules_are_bit_exact(op: str, value: str) -> None:
    before = f'''graph "g" (%x: f32[2,4]) {{
  const %c = dense<f32[]> [{value}]
  %n: f32[2,4] = {op}(%x, %c)
  %y: f32[2,4] = Identity(%n)
  return %y
}}'''
    expected = f'''graph "g" (%x: f32[2,4]) {{
  const %c = dense<f32[]> [{value}]
  %y: f32[2,4] = Identity(%x)
  return %y
}}'''
    graph, _ = run_pass("eliminate-noop", before)
    assert_pass("eliminate-noop", before, expected, feeds={"x": SPECIAL}, removed=1)
    ran_before, ran_after = run_graph(as_graph(before), {"x": SPECIAL}), run_graph(graph, {"x": SPECIAL})
    assert _bits(ran_before["y"]) == _bits(ran_after["y"]) == _bits(SPECIAL)


def test_signed_zeros_off_removes_plus_zero() -> None:
    before = '''graph "g" (%x: f32[2,4]) {
  const %c = dense<f32[]> [0.0]
  const %m = dense<f32[]> [-0.0]
  %a: f32[2,4] = Add(%x, %c)
  %s: f32[2,4] = Sub(%a, %m)
  %y: f32[2,4] = Relu(%s)
  return %y
}'''
    expected = '''graph "g" (%x: f32[2,4]) {
  const %c = dense<f32[]> [0.0]
  const %m = dense<f32[]> [-0.0]
  %y: f32[2,4] = Relu(%x)
  return %y
}'''
    # What signed_zeros guards: -0.0 + 0.0 is +0.0 under onnxruntime.
    plus = run_graph(as_graph(before.replace("Relu", "Identity")), {"x": SPECIAL})["y"]
    assert not np.signbit(plus[0, 0]) and np.signbit(SPECIAL[0, 0])
    assert_pass("eliminate-noop{signed_zeros=false}", before, expected, feeds={"x": SPECIAL}, removed=2)
    assert_pass("eliminate-noop{output_zero_signs=true}", before, before)
    # By default: nothing downstream tells -0.0 from +0.0 by value (the output holds equal values).
    assert_pass("eliminate-noop", before, expected, feeds={"x": SPECIAL}, removed=2)


def test_zero_bias_goes_where_no_reader_tells_the_sign_of_zero() -> None:
    """An exporter's zero-initialized bias: MatMul, Add(+0.0), then ops that pass a zero's sign on
    (Reshape, Mul, a Div's numerator, LayerNormalization) or cannot see it (Softmax, Exp)."""
    before = '''graph "g" (%x: f32[B,4], %w: f32[4,4]) {
  const %b = splat<f32[4]> 0.0
  const %two = dense<f32[]> [2.0]
  const %g = splat<f32[4]> 1.0
  const %s = dense<i64[3]> [0, 2, 2]
  %m: f32[B,4] = MatMul(%x, %w)
  %a: f32[B,4] = Add(%m, %b)
  %d: f32[B,4] = Div(%a, %two)
  %n: f32[B,4] = LayerNormalization(%d, %g, %b) {axis = -1}
  %r: f32[B,2,2] = Reshape(%n, %s)
  %e: f32[B,2,2] = Softmax(%r) {axis = -1}
  %p: f32[B,2,2] = Pow(%r, %two)
  %q: f32[B,2,2] = Div(%p, %e)
  return %q
}'''
    expected = before.replace("  %a: f32[B,4] = Add(%m, %b)\n", "").replace("Div(%a, %two)", "Div(%m, %two)")
    x = np.array([[0.0, 0.0, 0.0, 0.0], [1.0, -2.0, 3.0, 0.5]], dtype=np.float32)
    w = -np.abs(np.random.default_rng(0).normal(size=(4, 4))).astype(np.float32)  # x=0 rows: -0.0 products
    assert_pass("eliminate-noop", before, expected, feeds={"x": x, "w": w}, removed=1)
    # with output_zero_signs the graph output keeps its zeros' signs bit for bit: the Add stays
    assert_pass("eliminate-noop{output_zero_signs=true}", before, before)


def test_max_rewrites_stops() -> None:
    before = '''graph "g" (%x: f32[2]) {
  %a: f32[2] = Cast(%x) {to = 1}
  %b: f32[2] = Concat(%a) {axis = 0}
  %y: f32[2] = Relu(%b)
  return %y
}'''
    graph, ctx = run_pass("eliminate-noop", before, max_rewrites=1)
    assert ctx.rewrites == 1 and [n.op_type for n in graph] == ["Concat", "Relu"]


# ===================================================================== real models
_DATA = Path(onnx.__file__).parent / "backend" / "test" / "data"
_MODELS = sorted(_DATA.glob("light/light_*.onnx")) + sorted(_DATA.glob("pytorch-*/*/model.onnx"))
_OLD_KERNEL = "onnxruntime has no kernel for the op version this old model uses"
ORT_CANNOT_RUN = {  # model folder: why the original does not run under onnxruntime (checked below)
    **{name: f"{_OLD_KERNEL} (AveragePool-1)" for name in (
        "test_AvgPool1d", "test_AvgPool1d_stride", "test_AvgPool2d", "test_AvgPool2d_stride", "test_AvgPool3d",
        "test_AvgPool3d_stride", "test_AvgPool3d_stride1_pad0_gpu_input")},
    **{name: f"{_OLD_KERNEL} (BatchNormalization-6)" for name in (
        "test_BatchNorm1d_3d_input_eval", "test_BatchNorm2d_eval", "test_BatchNorm2d_momentum_eval",
        "test_BatchNorm3d_eval", "test_BatchNorm3d_momentum_eval")},
    **{name: f"{_OLD_KERNEL} (PRelu-6)" for name in (
        "test_PReLU_1d", "test_PReLU_1d_multiparam", "test_PReLU_2d", "test_PReLU_2d_multiparam", "test_PReLU_3d",
        "test_PReLU_3d_multiparam")},
    **{name: f"{_OLD_KERNEL} (Mul-6)" for name in ("test_GLU", "test_GLU_dim", "test_PoissonNLLLLoss_no_reduce")},
    **{name: f"{_OLD_KERNEL} (Add-6)" for name in (
        "test_Softsign", "test_operator_add_broadcast", "test_operator_add_size1_broadcast",
        "test_operator_add_size1_right_broadcast", "test_operator_add_size1_singleton_broadcast",
        "test_operator_addconstant", "test_operator_basic", "test_operator_non_float_params", "test_operator_params")},
    **{name: f"{_OLD_KERNEL} (Gemm-6)" for name in ("test_Linear", "test_operator_addmm", "test_operator_mm")},
    "test_operator_pow": f"{_OLD_KERNEL} (Pow-1)",
}


@pytest.mark.parametrize("path", _MODELS, ids=[p.parent.name if p.name == "model.onnx" else p.stem for p in _MODELS])
def test_real_models_keep_their_numbers(path: Path) -> None:
    """fold-constants, eliminate-noop, merge-layout-ops, dce on the onnx wheel's models: the IR verifies
    after each pass and the numbers agree with onnxruntime's on the imported original."""
    before, after = import_onnx(path), import_onnx(path)
    for spec in ("fold-constants", "eliminate-noop", "merge-layout-ops", "dce"):
        run_pass(spec, after)
    name = path.parent.name if path.name == "model.onnx" else path.stem
    try:
        assert_numerically_equivalent(before, after, Numerics.TOLERANCE)
    except EngineError as error:
        assert name in ORT_CANNOT_RUN, f"{name}: onnxruntime cannot run it and the test does not say why: {error}"
        with pytest.raises(EngineError):  # the original itself, not our rewrite
            run_graph(before, make_inputs(before))
        pytest.skip(ORT_CANNOT_RUN[name])
    assert name not in ORT_CANNOT_RUN, f"{name} runs now: take it off ORT_CANNOT_RUN"


def test_computed_splats_count_as_constants() -> None:
    """The dynamo exporter's attention mask of an unmasked model: an all-true [1,1,17,1] expanded to
    [B,1,17,17], turned into 0.0 by Where and added to the scores: the Add goes (the Where and the
    Expand are left to dce). ConstantOfShape(1) cast to bool is an all-true And operand."""
    before = '''graph "g" (%s: f32[B,4,17,17], %m: bool[B,1,17,17], %x: f32[B,3]) {
  const %true = splat<bool[1,1,17,1]> true
  const %zero = dense<f32[]> [0.0]
  const %low = dense<f32[]> [-3.4e38]
  const %tail = dense<i64[3]> [1, 17, 17]
  %b: i64[1] = Shape(%x) {start = 0, end = 1}
  %t: i64[4] = Concat(%b, %tail) {axis = 0}
  %e: bool[B,1,17,17] = Expand(%true, %t)
  %w: f32[B,1,17,17] = Where(%e, %zero, %low)
  %a: f32[B,4,17,17] = Add(%s, %w)
  %p: f32[B,4,17,17] = Softmax(%a) {axis = -1}
  %ones: i64[B,1,17,17] = ConstantOfShape(%t) {value = dense<i64[1]> [1]}
  %tr: bool[B,1,17,17] = Cast(%ones) {to = 9}
  %k: bool[B,1,17,17] = And(%m, %tr)
  %q: f32[B,4,17,17] = Where(%k, %p, %low)
  return %q
}'''
    expected = before.replace("Softmax(%a)", "Softmax(%s)").replace("  %a: f32[B,4,17,17] = Add(%s, %w)\n", "") \
        .replace("Where(%k, %p, %low)", "Where(%m, %p, %low)").replace("  %k: bool[B,1,17,17] = And(%m, %tr)\n", "")
    rng = np.random.default_rng(0)
    feeds = {"s": rng.standard_normal((2, 4, 17, 17)).astype(np.float32),
             "m": rng.integers(0, 2, (2, 1, 17, 17)).astype(bool), "x": np.ones((2, 3), np.float32)}
    ctx = assert_pass("eliminate-noop", before, expected, feeds=feeds, removed=2)
    assert ctx.rules == {"add-zero": 1, "and-true": 1}, ctx.rules


def test_where_with_a_known_condition_picks_its_branch() -> None:
    before = '''graph "g" (%a: f32[B,4], %b: f32[B,4], %x: f32[B,4]) {
  const %shape = dense<i64[2]> [1, 4]
  %c: bool[1,4] = ConstantOfShape(%shape) {value = dense<bool[1]> [false]}
  %w: f32[B,4] = Where(%c, %a, %b)
  %y: f32[B,4] = Mul(%w, %x)
  return %y
}'''
    expected = before.replace("Mul(%w, %x)", "Mul(%b, %x)").replace("  %w: f32[B,4] = Where(%c, %a, %b)\n", "")
    rng = np.random.default_rng(1)
    feeds = {k: rng.standard_normal((3, 4)).astype(np.float32) for k in "abx"}
    assert_pass("eliminate-noop", before, expected, feeds=feeds, removed=1)
    # the condition broadcasts the picked branch to a larger shape, or is not known to be all false
    wider = before.replace("%b: f32[B,4]", "%b: f32[1,4]")
    assert_pass("eliminate-noop", wider, wider, feeds={"a": feeds["a"], "b": feeds["b"][:1], "x": feeds["x"]})
    mixed = before.replace("ConstantOfShape(%shape) {value = dense<bool[1]> [false]}", "Less(%a, %b)").replace(
        "%c: bool[1,4]", "%c: bool[B,4]")
    assert_pass("eliminate-noop", mixed, mixed, feeds=feeds)
    # a splat operand whose symbolic dim is not the operand's: the Add may broadcast
    other = '''graph "g" (%x: f32[B,4], %t: i64[2]) {
  %z: f32[C,4] = ConstantOfShape(%t)
  %y: f32[?,4] = Add(%x, %z)
  return %y
}'''
    _, ctx = run_pass("eliminate-noop", other)
    assert ctx.rewrites == 0 and any("symbolic" in r for r in ctx.remarks), ctx.remarks
