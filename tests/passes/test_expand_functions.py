"""expand-functions: ops the ONNX schemas define as functions become the nodes of their body.

Checked structurally (BEFORE/EXPECTED), numerically against onnxruntime on seeded inputs, and on
the official ONNX node test cases of every op with a function body: each case is imported,
expanded with ops=*, exported and run by onnxruntime against the outputs shipped with the case.
"""

from __future__ import annotations

import functools
import importlib
import os
import pkgutil
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
import onnx.defs
import pytest
from onnx import numpy_helper

from mlc.ir.core import Graph
from mlc.ir.verifier import verify
from mlc.numerics.reference import ReferenceError as RunError
from mlc.numerics.reference import run_graph, run_model
from mlc.onnx_io.exporter import export_onnx
from mlc.onnx_io.functions import function_version, same_meaning
from mlc.onnx_io.importer import import_onnx
from mlc.pass_api import Numerics
from mlc.passes.expand_functions import ExpandFunctions, parse_ops
from mlc.testing import as_graph, assert_numerically_equivalent, assert_pass, run_pass

ALL = "expand-functions{ops=*}"


def _ops(graph: Graph) -> list[str]:
    return [n.op_type for n in graph.all_nodes()]


# ===================================================================== structure
def test_celu_becomes_its_body() -> None:
    before = '''graph "g" (%x: f32[2,3]) {
  %y: f32[2,3] = Celu(%x) {alpha = 2.0}
  %z: f32[2,3] = Relu(%y)
  return %z
}'''
    expected = '''graph "g" (%x: f32[2,3]) {
  %a: f32[1] = Constant() {value = dense<f32[1]> [2.0]}
  %xa: f32[2,3] = Div(%x, %a)
  %e: f32[2,3] = Elu(%xa) {alpha = 1.0}
  %y: f32[2,3] = Mul(%a, %e)
  %z: f32[2,3] = Relu(%y)
  return %z
}'''
    ctx = assert_pass("expand-functions{ops=Celu}", before, expected, expanded=1)
    assert ctx.rules == {"Celu": 1} and ctx.remarks == []


def test_celu_of_a_scalar_keeps_the_scalar_shape() -> None:
    """Celu's schema body reads alpha through a Constant of shape [1]: on a scalar x it computes
    [1] where Celu gives []. The expansion reshapes the body's result to the node's static shape
    (fuzz seed 500132: the llvm artifact returned [1])."""
    before = '''graph "g" (%x: f32[]) {
  %y: f32[] = Celu(%x) {alpha = 0.5}
  return %y
}'''
    expected = '''graph "g" (%x: f32[]) {
  %a: f32[1] = Constant() {value = dense<f32[1]> [0.5]}
  %xa: f32[1] = Div(%x, %a)
  %e: f32[1] = Elu(%xa) {alpha = 1.0}
  %m: f32[1] = Mul(%a, %e)
  %s: i64[0] = Constant() {value = dense<i64[0]> []}
  %y: f32[] = Reshape(%m, %s)
  return %y
}'''
    assert_pass("expand-functions{ops=Celu}", before, expected, expanded=1)
    graph, _ = run_pass("expand-functions{ops=Celu}", before)
    for seed in (0, 1):
        assert_numerically_equivalent(before, graph, Numerics.TOLERANCE, seed=seed)


def test_a_body_of_another_rank_on_a_dynamic_shape_is_refused() -> None:
    """Where the node's declared shape is not static there is no shape to reshape to: the node
    stays, with a remark naming the wrong rank (here a declared [N,M] for the body's [1])."""
    before = '''graph "g" (%x: f32[]) {
  %y: f32[N,M] = Celu(%x) {alpha = 0.5}
  return %y
}'''
    graph, ctx = run_pass("expand-functions{ops=Celu}", before)
    assert _ops(graph) == ["Celu"]
    assert any("rank 1 where Celu gives rank 2" in remark for remark in map(str, ctx.remarks)), ctx.remarks


def test_swish_attribute_reference_takes_the_node_value() -> None:
    """Swish's body is static: @alpha is resolved from the node (0.5), CastLike stays (not named)."""
    before = '''model ir_version=10 opset_import={"": 24}
graph "g" (%x: f32[2,3]) {
  %y: f32[2,3] = Swish(%x) {alpha = 0.5}
  return %y
}'''
    expected = '''model ir_version=10 opset_import={"": 24}
graph "g" (%x: f32[2,3]) {
  %alpha: f32[] = Constant() {value_float = 0.5}
  %cast: f32[] = CastLike(%alpha, %x)
  %ax: f32[2,3] = Mul(%cast, %x)
  %s: f32[2,3] = Sigmoid(%ax)
  %y: f32[2,3] = Mul(%x, %s)
  return %y
}'''
    assert_pass("expand-functions{ops=Swish}", before, expected, expanded=1)
    graph, _ = run_pass("expand-functions{ops=Swish}", before)
    assert [v.name for v in graph.outputs] == ["y"], "the graph output keeps its name"


def test_default_of_the_schema_fills_an_absent_attribute() -> None:
    """Swish without alpha: the schema's default 1.0 is what @alpha resolves to."""
    before = '''model ir_version=10 opset_import={"": 24}
graph "g" (%x: f32[4]) {
  %y: f32[4] = Swish(%x)
  return %y
}'''
    graph, _ = run_pass("expand-functions{ops=Swish}", before)
    constant = next(n for n in graph if n.op_type == "Constant")
    assert constant.attr("value_float") == 1.0


def test_nested_bodies_expand_in_turn() -> None:
    """Celu's body calls Elu, whose own body exists from opset 18 on: named (or *), it expands too."""
    before = '''model ir_version=8 opset_import={"": 18}
graph "g" (%x: f32[2,3]) {
  %y: f32[2,3] = Celu(%x) {alpha = 0.7}
  return %y
}'''
    only_celu, ctx = run_pass("expand-functions{ops=Celu}", before)
    assert "Elu" in _ops(only_celu) and ctx.rules == {"Celu": 1}
    for spec, rules in (("expand-functions{ops=Celu;Elu}", {"Celu": 1, "Elu": 1}),
                        (ALL, {"Celu": 1, "Elu": 1, "CastLike": 3})):  # Elu's body casts its constants
        graph, ctx = run_pass(spec, before)
        assert "Elu" not in _ops(graph) and "Celu" not in _ops(graph)
        assert ctx.rules == rules and ctx.stats["expanded"] == sum(rules.values())
        assert_numerically_equivalent(before, graph, Numerics.TOLERANCE)
    graph, ctx = run_pass(ExpandFunctions(ops="Celu, Elu"), before)
    assert ctx.stats["expanded"] == 2


def test_provenance_names_the_replaced_node() -> None:
    before = '''graph "g" (%x: f32[3]) {
  %y: f32[3] = Celu(%x)
  return %y
}'''
    graph = as_graph(before)
    graph.nodes[0].name = "celu_1"
    graph, _ = run_pass("expand-functions{ops=Celu}", graph)
    assert all(n.source == ("celu_1",) and n.created_by == "expand-functions/Celu" for n in graph)


def test_unread_optional_outputs_are_not_computed() -> None:
    """LayerNormalization's Mean output is unread: its Reshape is not made; InvStdDev is absent."""
    before = '''graph "g" (%x: f32[N,3], %s: f32[3], %b: f32[3]) {
  %y: f32[N,3], %m: f32[N,1] = LayerNormalization(%x, %s, %b) {epsilon = 0.001}
  return %y
}'''
    graph, ctx = run_pass("expand-functions{ops=LayerNormalization}", before)
    assert ctx.stats["expanded"] == 1
    assert _ops(graph).count("Reshape") == 1 and "Reciprocal" not in _ops(graph)
    assert all(v is not None and v.type is not None for n in graph for v in n.outputs)
    assert_numerically_equivalent(before, graph, Numerics.TOLERANCE)


def test_read_optional_outputs_are_computed() -> None:
    before = '''graph "g" (%x: f32[2,5], %s: f32[5], %b: f32[5]) {
  %y: f32[2,5], %m: f32[2,1], %r: f32[2,1] = LayerNormalization(%x, %s, %b)
  return %y, %m, %r
}'''
    graph, _ = run_pass("expand-functions{ops=LayerNormalization}", before)
    assert [v.name for v in graph.outputs] == ["y", "m", "r"]
    assert_numerically_equivalent(before, graph, Numerics.TOLERANCE)


def test_inferred_dims_do_not_leak_shape_inference_names() -> None:
    """Dims shape inference cannot compute are unknown, not `unk__0` (a name every run reuses)."""
    before = '''graph "g" (%x: f32[N,3], %s: f32[3], %b: f32[3]) {
  %y: f32[N,3], %m: f32[?,?] = LayerNormalization(%x, %s, %b)
  return %y, %m
}'''
    graph, _ = run_pass("expand-functions{ops=LayerNormalization}", before)
    dims = {d for n in graph for v in n.outputs if v is not None and v.type is not None
            for d in (getattr(v.type, "shape", None) or ()) if isinstance(d, str)}
    assert dims <= {"N"}, dims


def test_a_node_inside_a_subgraph_is_expanded() -> None:
    before = '''graph "g" (%c: bool[], %x: f32[4]) {
  %y: f32[4] = If(%c) {
    then_branch = graph "then" () {
      %t: f32[4] = Celu(%x) {alpha = 0.5}
      return %t
    },
    else_branch = graph "else" () {
      %e: f32[4] = Neg(%x)
      return %e
    }
  }
  return %y
}'''
    graph, ctx = run_pass("expand-functions{ops=Celu}", before)
    assert ctx.stats["expanded"] == 1 and "Celu" not in _ops(graph)
    verify(graph)
    for flag in (True, False):
        feeds = {"c": np.array(flag), "x": np.array([-2.0, -0.5, 0.0, 1.5], np.float32)}
        assert_numerically_equivalent(before, graph, Numerics.TOLERANCE, feeds=feeds)


def test_graph_attribute_reading_an_outer_value() -> None:
    """SequenceMap's body is built around its graph attribute, which reads %w of the main graph:
    the Loop of the expansion reads it, and the old body's read of %w is gone from its use list."""
    before = '''graph "g" (%s: seq<f32[3]>, %w: f32[3]) {
  %y: seq<f32[3]> = SequenceMap(%s) {body = graph "b" (%e: f32[3]) {
      %o: f32[3] = Mul(%e, %w)
      return %o
  }}
  return %y
}'''
    graph, ctx = run_pass("expand-functions{ops=SequenceMap}", before)
    assert ctx.stats["expanded"] == 1 and "Loop" in _ops(graph) and "SequenceMap" not in _ops(graph)
    w = graph.inputs[1]
    assert [(user.op_type, user.graph is not None and user.graph.parent is not None) for user, _ in w.uses] == [
        ("Mul", True)]
    feeds = {"s": [np.array([1, 2, 3], np.float32), np.array([0, -1, 5], np.float32)],
             "w": np.array([2, 3, 4], np.float32)}
    got, want = run_graph(graph, feeds)["y"], run_graph(as_graph(before), feeds)["y"]
    assert len(got) == len(want) == 2
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b)


def test_rewrite_budget_stops_cleanly() -> None:
    """With one rewrite allowed, the second Celu stays and the IR is intact (no dangling uses)."""
    before = '''graph "g" (%x: f32[3]) {
  %y: f32[3] = Celu(%x)
  %z: f32[3] = Celu(%y)
  return %z
}'''
    graph, ctx = run_pass("expand-functions{ops=Celu}", before, max_rewrites=1)
    assert ctx.rewrites == 1 and _ops(graph).count("Celu") == 1
    verify(graph)
    assert all(user.graph is not None for v in graph.inputs for user, _ in v.uses)
    assert_numerically_equivalent(before, graph, Numerics.TOLERANCE)


# ===================================================================== left alone
def test_must_not_change() -> None:
    celu = '''graph "g" (%x: f32[2,3]) {
  %y: f32[2,3] = Celu(%x) {alpha = 2.0}
  return %y
}'''
    assert_pass("expand-functions", celu, celu)  # default: nothing
    assert_pass("expand-functions{ops=Mish}", celu, celu)  # op not named
    no_body = '''graph "g" (%x: f32[1,1,4,4], %w: f32[1,1,3,3]) {
  %c: f32[1,1,2,2] = Conv(%x, %w)
  %y: f32[1,1,2,2] = Relu(%c)
  return %y
}'''
    ctx = assert_pass("expand-functions{ops=Conv;Relu}", no_body, no_body)
    assert ctx.remarks == [
        "Conv: kept, the ONNX schema of Conv (opset 17) defines no function body",
        # Relu's body starts at opset 18
        "Relu: kept, the ONNX schema of Relu (opset 17) defines no function body",
    ]
    ctx = assert_pass(ALL, no_body, no_body)
    assert ctx.remarks == []  # under *, ops without a body are not candidates at all


def test_random_ops_are_left_to_an_explicit_request() -> None:
    before = '''model ir_version=10 opset_import={"": 22}
graph "g" (%p: f32[8]) {
  %y: f32[8] = Bernoulli(%p)
  return %y
}'''
    graph, ctx = run_pass(ALL, before)
    assert ctx.rewrites == 0 and _ops(graph) == ["Bernoulli"]
    graph, ctx = run_pass("expand-functions{ops=Bernoulli}", before)
    assert ctx.rewrites == 1 and "RandomUniformLike" in _ops(graph)


def test_body_written_for_an_older_opset_whose_ops_changed() -> None:
    """DynamicQuantizeLinear's only body is written for opset 11; QuantizeLinear gained an axis
    attribute with a default by opset 13 (and the reductions moved axes to an input at 18)."""
    before = '''graph "g" (%x: f32[6]) {
  %y: u8[6], %s: f32[], %z: u8[] = DynamicQuantizeLinear(%x)
  return %y, %s, %z
}'''
    ctx = assert_pass(ALL, before, before)
    assert ctx.remarks == ["DynamicQuantizeLinear: kept, its body is written for ai.onnx "
                           "opset 11 and QuantizeLinear changed meaning by opset 17"]
    at_11 = before.replace('graph "g"', 'model ir_version=6 opset_import={"": 11}\ngraph "g"')
    graph, ctx = run_pass(ALL, at_11)
    assert ctx.rewrites == 1
    assert_numerically_equivalent(at_11, graph, Numerics.TOLERANCE)


def test_same_meaning_across_opsets() -> None:
    assert same_meaning("Identity", "", 11, 21)  # more element types (and T renamed V)
    assert same_meaning("Cast", "", 13, 25)  # saturate and round_mode: only for float8 targets
    assert same_meaning("Constant", "", 9, 21)  # value_float & co are alternatives a node may set
    assert not same_meaning("Softmax", "", 11, 13)  # the default axis changed (and the meaning)
    assert not same_meaning("ReduceMax", "", 13, 18)  # axes became an input
    assert not same_meaning("QuantizeLinear", "", 10, 13)  # axis added with a default


def test_option_parsing() -> None:
    assert parse_ops("") == set()
    assert parse_ops("Celu, Mish;Gelu|Swish+LayerNormalization") == {"Celu", "Mish", "Gelu", "Swish",
                                                                    "LayerNormalization"}
    assert ExpandFunctions(ops="*").spec() == "expand-functions{ops=*}"


# ===================================================================== numbers
def test_numbers_layer_norm_gelu_mish() -> None:
    before = '''model ir_version=10 opset_import={"": 20}
graph "g" (%x: f32[2,3,8], %s: f32[8], %b: f32[8]) {
  %n: f32[2,3,8] = LayerNormalization(%x, %s, %b) {axis = -1, epsilon = 1e-5}
  %g: f32[2,3,8] = Gelu(%n) {approximate = "tanh"}
  %h: f32[2,3,8] = Gelu(%g)
  %m: f32[2,3,8] = Mish(%h)
  %y: f32[2,3,8] = HardSwish(%m)
  return %y
}'''
    graph, ctx = run_pass(ALL, before)
    # with the ops of their bodies: Mish calls Softplus, HardSwish HardSigmoid, and they CastLike
    assert ctx.rules == {"LayerNormalization": 1, "Gelu": 2, "Mish": 1, "HardSwish": 1, "Softplus": 1,
                         "HardSigmoid": 1, "CastLike": 13}
    assert {"Gelu", "Mish", "HardSwish", "Softplus", "HardSigmoid", "CastLike"}.isdisjoint(_ops(graph))
    for seed in (0, 1):
        assert_numerically_equivalent(before, graph, Numerics.TOLERANCE, seed=seed)


def test_numbers_softmax_cross_entropy_with_ignore_index() -> None:
    before = '''model ir_version=8 opset_import={"": 13}
graph "g" (%scores: f32[3,5,2], %labels: i64[3,2]) {
  %loss: f32[], %logp: f32[3,5,2] = SoftmaxCrossEntropyLoss(%scores, %labels) {ignore_index = 1}
  return %loss, %logp
}'''
    graph, ctx = run_pass(ALL, before)
    assert ctx.rules["SoftmaxCrossEntropyLoss"] == 1 and "SoftmaxCrossEntropyLoss" not in _ops(graph)
    rng = np.random.default_rng(0)
    feeds = {"scores": rng.standard_normal((3, 5, 2)).astype(np.float32),
             "labels": np.array([[0, 1], [4, 2], [1, 3]], np.int64)}
    assert_numerically_equivalent(before, graph, Numerics.TOLERANCE, feeds=feeds)


def test_numbers_attention_with_mask() -> None:
    before = '''model ir_version=10 opset_import={"": 23}
graph "g" (%q: f32[2,3,4,8], %k: f32[2,3,6,8], %v: f32[2,3,6,8], %mask: bool[4,6]) {
  %y: f32[2,3,4,8] = Attention(%q, %k, %v, %mask) {is_causal = 0}
  return %y
}'''
    graph, ctx = run_pass(ALL, before)
    assert ctx.rules["Attention"] == 1 and "Attention" not in _ops(graph)
    assert all(v is not None and v.type is not None for n in graph.all_nodes() for v in n.outputs)
    rng = np.random.default_rng(1)
    mask = rng.random((4, 6)) < 0.7
    mask[:, 0] = True
    feeds: dict[str, np.ndarray] = {name: rng.standard_normal(shape).astype(np.float32)
                                    for name, shape in (("q", (2, 3, 4, 8)), ("k", (2, 3, 6, 8)), ("v", (2, 3, 6, 8)))}
    feeds["mask"] = mask
    assert_numerically_equivalent(before, graph, Numerics.TOLERANCE, feeds=feeds)


def test_numbers_range_with_a_loop_body_from_opset_11() -> None:
    """Range's body (a Loop) is written for opset 11; its ops mean the same at 21."""
    before = '''model ir_version=10 opset_import={"": 21}
graph "g" (%start: f32[], %limit: f32[], %delta: f32[]) {
  %y: f32[?] = Range(%start, %limit, %delta)
  return %y
}'''
    graph, ctx = run_pass(ALL, before)
    assert ctx.rewrites >= 1 and "Loop" in _ops(graph)
    feeds = {"start": np.array(1.0, np.float32), "limit": np.array(5.5, np.float32),
             "delta": np.array(1.5, np.float32)}
    assert_numerically_equivalent(before, graph, Numerics.TOLERANCE, feeds=feeds)


# ===================================================================== official ONNX node cases
ORT_MAX_OPSET = 26  # onnxruntime 1.31 refuses ai.onnx opsets above 26
RTOL, ATOL = 1e-3, 1e-7  # onnx's node cases: each case carries its own, these are the defaults

# Element types onnxruntime's Python API can neither take as a feed nor hand back as a result.
_UNFEEDABLE = {onnx.TensorProto.BFLOAT16, onnx.TensorProto.FLOAT8E4M3FN, onnx.TensorProto.FLOAT8E4M3FNUZ,
               onnx.TensorProto.FLOAT8E5M2, onnx.TensorProto.FLOAT8E5M2FNUZ, onnx.TensorProto.UINT4,
               onnx.TensorProto.INT4, onnx.TensorProto.FLOAT4E2M1}
for _name in ("FLOAT8E8M0", "UINT2", "INT2"):
    if hasattr(onnx.TensorProto, _name):
        _UNFEEDABLE.add(getattr(onnx.TensorProto, _name))

SKIP_REASONS = {
    "opset": f"the model's ai.onnx opset is above {ORT_MAX_OPSET}, which onnxruntime 1.31 refuses "
             "(expansion and export are still checked)",
    "dtype": "an input or output is bfloat16, float8, float4, int4 or int2, which onnxruntime's Python API "
             "cannot feed or return (expansion and export are still checked)",
    "random": "a random op (Bernoulli): * leaves it, and its numbers could not be compared anyway",
}


def _case_modules() -> list[str]:
    """The node-case modules that mention an op with a function body (importing a module builds its
    cases; `collect_testcases()` would build all of them, several times slower)."""
    import onnx.backend.test.case.node as node_cases

    ops = {s.name for s in onnx.defs.get_all_schemas_with_history()
           if s.has_function or s.has_context_dependent_function}  # type: ignore[attr-defined]
    folder = os.path.dirname(node_cases.__file__)
    found = []
    for info in pkgutil.iter_modules([folder]):
        if info.ispkg:
            continue
        with open(os.path.join(folder, info.name + ".py"), encoding="utf-8") as f:
            text = f.read()
        if any(f'"{op}"' in text for op in ops):
            found.append(info.name)
    return found


@functools.cache
def _official_cases() -> dict[str, Any]:
    """Single-node cases (not the `_expanded` twins) whose op has a function body at their opset."""
    import onnx.backend.test.case.node as node_cases

    with warnings.catch_warnings():  # the case generators overflow casts and log zeros on purpose
        warnings.simplefilter("ignore", RuntimeWarning)
        for module in _case_modules():
            importlib.import_module(f"onnx.backend.test.case.node.{module}")
        collected = getattr(node_cases, "_NodeTestCases", None)
        if collected is None:
            collected = node_cases.collect_testcases()
    cases: dict[str, Any] = {}
    for case in collected:
        model = case.model
        if model is None or len(model.graph.node) != 1 or "_expanded" in case.name:
            continue
        node = model.graph.node[0]
        domain = "" if node.domain == "ai.onnx" else node.domain
        opsets = {("" if o.domain == "ai.onnx" else o.domain): o.version for o in model.opset_import}
        if domain in opsets and function_version(node.op_type, domain, opsets[domain]) is not None:
            cases.setdefault(case.name, case)
    return cases


def _skip_reason(model: onnx.ModelProto) -> str | None:
    if model.graph.node[0].op_type == "Bernoulli":
        return "random"
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset > ORT_MAX_OPSET:
        return "opset"
    for vi in (*model.graph.input, *model.graph.output):
        t = vi.type
        elem = t.sequence_type.elem_type.tensor_type.elem_type if t.HasField("sequence_type") \
            else t.tensor_type.elem_type
        if elem in _UNFEEDABLE:
            return "dtype"
    return None


def _array(data: Any) -> Any:
    if isinstance(data, onnx.TensorProto):
        return numpy_helper.to_array(data)
    if isinstance(data, list):
        return [_array(x) for x in data]
    return np.asarray(data)


def _check_case(case: Any, model: onnx.ModelProto) -> list[str]:
    """Run an expanded model on the case's data; the mismatches, described."""
    problems = []
    rtol, atol = getattr(case, "rtol", RTOL), getattr(case, "atol", ATOL)
    for inputs, outputs in case.data_sets:
        feeds = {vi.name: _array(a) for vi, a in zip(case.model.graph.input, inputs, strict=False)}
        try:
            got = run_model(model, feeds)
        except RunError as error:
            return [f"{case.name}: {error}"]
        for vi, expected in zip(case.model.graph.output, outputs, strict=True):
            want, have = _array(expected), got[vi.name]
            pairs: Sequence[tuple[Any, Any]] = list(zip(have, want, strict=True)) if isinstance(want, list) \
                else [(have, want)]
            for a, b in pairs:
                try:
                    np.testing.assert_allclose(np.asarray(a), b, rtol=rtol, atol=atol)
                except AssertionError as error:
                    problems.append(f"{case.name} {vi.name}: {str(error).strip().splitlines()[:4]}")
    return problems


def test_official_node_cases() -> None:
    """Every official case of an op with a function body expands (ops=*) and, where onnxruntime
    can run it, reproduces the shipped outputs."""
    cases = _official_cases()
    assert len(cases) >= 400, len(cases)
    counts = {"passed": 0, **{reason: 0 for reason in SKIP_REASONS}}
    problems: list[str] = []
    for name, case in sorted(cases.items()):
        reason = _skip_reason(case.model)
        graph, ctx = run_pass(ALL, import_onnx(case.model))
        if reason == "random":
            assert ctx.rewrites == 0, name
            counts[reason] += 1
            continue
        if ctx.rewrites == 0:
            problems.append(f"{name}: not expanded: {ctx.remarks}")
            continue
        op = case.model.graph.node[0].op_type
        if op in _ops(graph):
            problems.append(f"{name}: {op} is still there: {ctx.remarks}")
        model = export_onnx(graph)
        if reason is not None:
            counts[reason] += 1
            continue
        found = _check_case(case, model)
        problems.extend(found)
        counts["passed"] += not found
    print(f"official cases: {len(cases)} with a function body; {counts}")
    assert not problems, "\n".join(problems[:20])
    # onnx 1.23.2: 328 run and pass; 57 above opset 26, 46 with exotic element types, 3 Bernoulli.
    assert counts["passed"] >= 320, counts


def test_official_cases_at_a_later_opset() -> None:
    """One case of each op, its model stamped with the highest opset (up to 26) at which the op has
    the same schema: bodies written for older opsets (Elu's for 18 at 22, Range's for 11 at 26...)
    are used where their ops mean the same, and compute the same numbers."""
    seen: set[str] = set()
    checked: list[str] = []
    problems: list[str] = []
    for name, case in sorted(_official_cases().items()):
        node = case.model.graph.node[0]
        if node.op_type in seen or node.domain not in ("", "ai.onnx") or _skip_reason(case.model) is not None:
            continue
        opset = next(o.version for o in case.model.opset_import if o.domain in ("", "ai.onnx"))
        since = onnx.defs.get_schema(node.op_type, opset).since_version
        later = max(v for v in range(opset, ORT_MAX_OPSET + 1)
                    if onnx.defs.get_schema(node.op_type, v).since_version == since)
        if later == opset:
            continue
        seen.add(node.op_type)
        model = onnx.ModelProto()
        model.CopyFrom(case.model)
        for o in model.opset_import:
            if o.domain in ("", "ai.onnx"):
                o.version = later
        graph, ctx = run_pass(ALL, import_onnx(model))
        if node.op_type == "DynamicQuantizeLinear":
            assert ctx.rewrites == 0 and "changed meaning" in ctx.remarks[0], ctx.remarks
            continue
        if ctx.rewrites == 0:
            problems.append(f"{name} at opset {later}: not expanded: {ctx.remarks}")
            continue
        checked.append(f"{node.op_type}@{later}")
        problems.extend(_check_case(case, export_onnx(graph)))
    print(f"official cases at a later opset: {len(checked)} ops: {', '.join(checked)}")
    assert not problems, "\n".join(problems[:20])
    assert len(checked) >= 20, checked


@pytest.mark.parametrize("op", ["Celu", "LayerNormalization", "Attention", "RotaryEmbedding", "CenterCropPad",
                                "NegativeLogLikelihoodLoss", "SoftmaxCrossEntropyLoss", "Gelu", "Range",
                                "HammingWindow", "Swish", "Mish", "RMSNormalization", "AffineGrid",
                                "SequenceMap", "GroupNormalization"])
def test_official_cases_cover(op: str) -> None:
    """The sweep above reaches the ops this pass is for."""
    assert any(c.model.graph.node[0].op_type == op for c in _official_cases().values()), op
