"""Regression tests for the bugs the differential fuzzer found, named after the seed that found
them; each model is the minimized case, written out with onnx's helper API."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import mlc
from mlc.fuzzing import Case, check_case


def _model(nodes: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto], outputs: list[str],
           initializers: list[onnx.TensorProto], opset: int = 17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "fuzz", inputs, [onnx.ValueInfoProto(name=o) for o in outputs], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              ir_version=max(8, helper.find_min_ir_version_for([helper.make_opsetid("", opset)])))
    return onnx.shape_inference.infer_shapes(model)


def _const(name: str, value: object, dtype: type = np.float32) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


def _tanh_gelu(x: str, shape: tuple[int, ...]) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """0.5 * x * (1 + Tanh(0.7978846 * (x + 0.044715 * x^3))) with constants of `shape`."""
    nodes = [helper.make_node("Pow", [x, "three"], ["cube"]), helper.make_node("Mul", ["cube", "k"], ["inner"]),
             helper.make_node("Add", [x, "inner"], ["s"]), helper.make_node("Mul", ["s", "c"], ["scaled"]),
             helper.make_node("Tanh", ["scaled"], ["t"]), helper.make_node("Add", ["t", "one"], ["p"]),
             helper.make_node("Mul", ["half", x], ["hx"]), helper.make_node("Mul", ["hx", "p"], ["y"])]
    consts = [_const(n, np.full(shape, v)) for n, v in
              (("three", 3.0), ("k", 0.044715), ("c", 0.7978846), ("one", 1.0), ("half", 0.5))]
    return nodes, consts


@pytest.mark.parametrize("opset", [17, 20])
def test_seed_373_gelu_constants_that_broadcast_a_scalar_are_not_fused(opset: int) -> None:
    """A scalar x with [1]-shaped GELU constants gives a [1] result; Gelu(x) (opset 20, -O2) or
    com.microsoft::Gelu (-O3 onnxruntime) gave a scalar: fuse-gelu now refuses constants of higher
    rank than x."""
    nodes, consts = _tanh_gelu("x", (1,))
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [])], ["y"], consts, opset)
    case = Case(model, {"x": np.asarray(0.7, np.float32)})
    verdict = check_case(case, "onnxruntime", level=3)
    assert verdict.kind == "ok", verdict.detail
    if opset == 20:
        assert check_case(case, "onnxruntime", level=2).kind == "ok"


def test_seed_2_no_fastgelu_on_a_scalar(tmp_path: Path) -> None:
    """onnxruntime's FastGelu kernel refuses a rank-0 input at run time: fuse-gelu{contrib=true}
    must not make one. (onnxruntime's own FastGeluFusion still does, with its optimizer on: the
    fuzzer's generator keeps the tanh form off scalars for that upstream bug.)"""
    nodes, consts = _tanh_gelu("x", ())
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [])], ["y"], consts)
    source = tmp_path / "m.onnx"
    onnx.save(model, source)
    mlc.optimize(source, tmp_path / "o.onnx", level=3, target="onnxruntime")
    ops = [n.op_type for n in onnx.load(tmp_path / "o.onnx").graph.node]
    assert "FastGelu" not in ops and "Tanh" in ops


def test_seed_2_tensors_still_fuse(tmp_path: Path) -> None:
    """The refusal is only for scalars: the same pattern on a [3] tensor becomes FastGelu."""
    nodes, consts = _tanh_gelu("x", ())
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])], ["y"], consts)
    source = tmp_path / "m.onnx"
    onnx.save(model, source)
    mlc.optimize(source, tmp_path / "o.onnx", level=3, target="onnxruntime")
    assert "FastGelu" in [n.op_type for n in onnx.load(tmp_path / "o.onnx").graph.node]


needs_tvm = pytest.mark.skipif(importlib.util.find_spec("tvm") is None,
                               reason="apache-tvm is not installed (pip install 'mlc[tvm]')")


@needs_tvm
def test_seed_27_llvm_scalar_shape_value_keeps_its_dtype() -> None:
    """Cast(Gather(Shape(x), 0), float) of a symbolic dim: TVM computes it as a scalar expression
    and the VM returns a Python float, which the runner gave numpy's float64; the output is
    declared float32 (int32 likewise)."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Gather", ["s", "zero"], ["d"]),
             helper.make_node("Cast", ["d"], ["y"], to=TensorProto.FLOAT),
             helper.make_node("Cast", ["d"], ["z"], to=TensorProto.INT32)]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N"])], ["y", "z"],
                   [_const("zero", 0, np.int64)], 18)
    verdict = check_case(Case(model, {"x": np.zeros(2, np.float32)}), "llvm")
    assert verdict.kind == "ok", verdict.detail


@needs_tvm
@pytest.mark.parametrize("axis", [-1, 1])
def test_seed_15_llvm_float64_layernorm(axis: int) -> None:
    """TVM's layer_norm takes float32/float16 only: a float64 LayerNormalization (here as
    fuse-layernorm makes it from the decomposed form) failed the build; legalize-tvm writes it out
    in float64. Mean and InvStdDev outputs too."""
    x = np.random.default_rng(15).uniform(-2, 2, (2, 3, 4))
    norm = x.shape[axis:]
    node = helper.make_node("LayerNormalization", ["x", "scale", "bias"], ["y", "mean", "inv"], axis=axis,
                            epsilon=1e-5)
    consts = [_const("scale", np.linspace(0.5, 1.5, int(np.prod(norm))).reshape(norm), np.float64),
              _const("bias", np.linspace(-1, 1, int(np.prod(norm))).reshape(norm), np.float64)]
    model = _model([node], [helper.make_tensor_value_info("x", TensorProto.DOUBLE, [2, 3, 4])], ["y", "mean", "inv"],
                   consts)
    verdict = check_case(Case(model, {"x": x}), "llvm")
    assert verdict.kind == "ok", verdict.detail


def _negative_step_slice(data_as_constant: bool, start: int = -2, dim: int = 1) -> Case:
    """y = Slice(d, [start], [INT64_MIN], axes [1], steps [-1]) + 1 of a [3, dim] d."""
    data = np.arange(3 * dim, dtype=np.float32).reshape(3, dim)
    bounds = [_const("s", [start], np.int64), _const("e", [np.iinfo(np.int64).min], np.int64),
              _const("a", [1], np.int64), _const("st", [-1], np.int64), _const("one", 1.0)]
    nodes = [helper.make_node("Slice", ["d", "s", "e", "a", "st"], ["sl"]),
             helper.make_node("Add", ["sl", "one"], ["y"])]
    inputs = [] if data_as_constant else [helper.make_tensor_value_info("d", TensorProto.FLOAT, [3, dim])]
    consts = [*bounds, _const("d", data)] if data_as_constant else bounds
    return Case(_model(nodes, inputs, ["y"], consts), {} if data_as_constant else {"d": data})


@pytest.mark.parametrize(("start", "dim"), [(-2, 1), (-9, 3), (-3, 3)])
def test_seed_168_fold_constants_slices_as_onnx_does(start: int, dim: int) -> None:
    """A negative-step Slice whose start lies before the axis takes element 0 (ONNX clamps the
    start to 0); onnx's reference evaluator, which fold-constants evaluates with, slices like
    Python and returned nothing."""
    verdict = check_case(_negative_step_slice(True, start, dim), "onnxruntime", level=1)
    assert verdict.kind == "ok", verdict.detail


def test_seed_168_symbolic_shapes_slice_as_onnx_does() -> None:
    """infer-shapes derived [3, 0] for the sliced value (Python's slicing)."""
    from mlc.testing import run_pass

    model = _negative_step_slice(False).model
    del model.graph.value_info[:]
    model.graph.value_info.append(helper.make_tensor_value_info("sl", TensorProto.FLOAT, [None, None]))
    graph = mlc.import_onnx(model, infer_shapes=False)
    graph, _ = run_pass("infer-shapes", graph)
    sliced = next(n for n in graph if n.op_type == "Slice").outputs[0]
    assert sliced is not None and sliced.type.shape == (3, 1)  # type: ignore[union-attr]


@needs_tvm
def test_seed_168_llvm_slice_start_before_the_axis() -> None:
    """TVM's strided_slice reads bounds as Python does: legalize-tvm writes such a start as 0."""
    verdict = check_case(_negative_step_slice(False), "llvm")
    assert verdict.kind == "ok", verdict.detail


@needs_tvm
@pytest.mark.parametrize(("base", "exponent", "value"), [
    (TensorProto.DOUBLE, np.float32, 2.0), (TensorProto.FLOAT, np.float64, 0.1),
    (TensorProto.FLOAT16, np.float32, 0.3), (TensorProto.FLOAT, np.int64, 3)])
def test_seed_141_llvm_pow_with_an_exponent_of_another_type(base: int, exponent: type, value: float) -> None:
    """ONNX's Pow takes an exponent of another type than the base; TVM's converter failed the build
    ("Binary operators must have the same datatype"). legalize-tvm casts an exponent the base's
    type holds exactly, else computes the power in the wider type."""
    nodes = [helper.make_node("Pow", ["x", "p"], ["y"])]
    model = _model(nodes, [helper.make_tensor_value_info("x", base, [3])], ["y"], [_const("p", value, exponent)])
    x = np.array([1.5, 2.0, 3.0], helper.tensor_dtype_to_np_dtype(base))
    verdict = check_case(Case(model, {"x": x}), "llvm")
    assert verdict.kind == "ok", verdict.detail


def test_seed_28_a_tvm_failure_names_what_failed() -> None:
    """TVM's error ended with its offending call and `# Metadata omitted...`, the line mlc showed;
    now the line saying what failed, with the call."""
    from mlc.backends.tvm_build import error_line

    text = ("Traceback (most recent call last):\n  0: foo\nCodeGenVM cannot emit this Relax operator directly.\n"
            "Offending call:\nR.nn.conv2d_transpose(alloc4, strides=[2, 2])\n"
            "# Metadata omitted. Use show_meta=True in script() method to show it.\n")
    line = error_line(text, "InternalError")
    assert line.startswith("CodeGenVM cannot emit") and "R.nn.conv2d_transpose" in line
    assert error_line("Check failed: x\n", "E") == "Check failed: x"
    assert error_line("  \n# only a comment\n", "ValueError") == "ValueError"


@needs_tvm
@pytest.mark.parametrize(("elem", "level"), [(TensorProto.DOUBLE, 0), (TensorProto.FLOAT, 3), (TensorProto.BOOL, 3),
                                             (TensorProto.INT32, 3)])
def test_seed_100046_llvm_expand_of_a_symbolic_dim(elem: int, level: int) -> None:
    """Expand(x[N, 5], [3, 1, 1, 5]): TVM's converter reads every dim of x as a number and failed
    the build ('Var' object has no attribute 'value'); legalize-tvm writes it as the broadcast it
    is (the target a Constant node, as at -O0, or an initializer)."""
    nodes = [helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(np.array([3, 1, 1, 5]), "c")),
             helper.make_node("Expand", ["x", "c"], ["y"])]
    model = _model(nodes, [helper.make_tensor_value_info("x", elem, ["N", 5])], ["y"], [], 20)
    x = np.random.default_rng(46).uniform(-3, 3, (2, 5)).astype(helper.tensor_dtype_to_np_dtype(elem))
    verdict = check_case(Case(model, {"x": x}), "llvm", level=level)
    assert verdict.kind == "ok", verdict.detail


def test_seed_310982_onnxruntime_float64_rms_norm_keeps_float64_precision() -> None:
    """x / Sqrt(ReduceMean(x^2) + eps) * g in float64: onnxruntime's session fused it into
    SimplifiedLayerNormalization, whose float32 statistics moved outputs by 1e-5 relative; the
    artifact's session now leaves that fusion off for float64 graphs."""
    nodes = [helper.make_node("Pow", ["x", "two"], ["sq"]), helper.make_node("ReduceMean", ["sq"], ["ms"], axes=[-1]),
             helper.make_node("Add", ["ms", "eps"], ["mse"]), helper.make_node("Sqrt", ["mse"], ["rms"]),
             helper.make_node("Div", ["x", "rms"], ["n"]), helper.make_node("Mul", ["g", "n"], ["y"])]
    consts = [_const("two", 2.0, np.float64), _const("eps", [1e-12], np.float64),
              _const("g", np.linspace(0.5, 1.5, 15), np.float64)]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.DOUBLE, [8, 15])], ["y"], consts, 15)
    x = np.random.default_rng(310982).uniform(-3, 3, (8, 15))
    verdict = check_case(Case(model, {"x": x}), "onnxruntime")
    assert verdict.kind == "ok", verdict.detail


@needs_tvm
@pytest.mark.parametrize("kind", ["matmul", "gemm", "reduce_mean", "conv"])
def test_seed_53_llvm_reduction_over_one_element_with_an_epilogue(kind: str) -> None:
    """A reduction whose reduction extent is 1 (MatMul [4,5,1] x [1,3] + bias: seed 53; Gemm with
    K=1 + bias: seed 40; ReduceMean over an axis of 1, then Mul and Add: seed 15; a 1x1 Conv of one
    channel) reads as spatial once TVM's normalization drops the unit loop; ElementwiseRule then
    inlined the epilogue into the block that still had its init and the bias was added twice."""
    rng = np.random.default_rng(53)
    bias = _const("bias", rng.standard_normal(3))
    if kind == "matmul":
        nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["bias", "m"], ["y"])]
        shape, consts = [4, 5, 1], [_const("w", rng.standard_normal((1, 3))), bias]
    elif kind == "gemm":
        nodes = [helper.make_node("Gemm", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "bias"], ["y"])]
        shape, consts = [4, 1], [_const("w", rng.standard_normal((1, 3))), bias]
    elif kind == "reduce_mean":
        nodes = [helper.make_node("ReduceMean", ["x"], ["m"], axes=[-1], keepdims=1),
                 helper.make_node("Mul", ["m", "bias"], ["p"]), helper.make_node("Add", ["p", "bias"], ["y"])]
        shape, consts = [4, 1], [bias]
    else:
        nodes = [helper.make_node("Conv", ["x", "w"], ["m"]), helper.make_node("Relu", ["m"], ["y"])]
        shape, consts = [1, 1, 4, 4], [_const("w", rng.standard_normal((3, 1, 1, 1)))]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)], ["y"], consts)
    case = Case(model, {"x": rng.standard_normal(shape).astype(np.float32)})
    verdict = check_case(case, "llvm", level=3)
    assert verdict.kind == "ok", verdict.detail


@needs_tvm
def test_seed_500132_llvm_celu_of_a_scalar_is_a_scalar() -> None:
    """TVM's frontend lacks Celu, so the llvm pipeline expands it into its schema body, which on a
    scalar x computed a [1]-shaped result (alpha is a Constant of shape [1]): the artifact
    returned [1] where onnxruntime gives []. The expansion now reshapes to the node's shape."""
    nodes = [helper.make_node("Celu", ["x"], ["y"], alpha=0.5)]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [])], ["y"], [])
    for value in (-1.3, 0.7):
        verdict = check_case(Case(model, {"x": np.asarray(value, np.float32)}), "llvm", level=3)
        assert verdict.kind == "ok", verdict.detail


@needs_tvm
@pytest.mark.parametrize("dtype", [TensorProto.DOUBLE, TensorProto.FLOAT])
def test_seed_500036_llvm_matmul_over_an_inner_dim_of_1_builds(dtype: int) -> None:
    """MatMul [4,1,1,1] x [4,1,1,2]: dlight's GEMV analysis asserted on its reduction of extent 1
    and the whole build failed ("TVM failed: AssertionError"); dlight's rules are now guarded and
    the kernel goes to the next rule. Seeds 500054, 500229, 500362 and 500063 failed the same way."""
    nodes = [helper.make_node("MatMul", ["a", "b"], ["y"])]
    model = _model(nodes, [helper.make_tensor_value_info("a", dtype, [4, 1, 1, 1]),
                           helper.make_tensor_value_info("b", dtype, [4, 1, 1, 2])], ["y"], [])
    rng = np.random.default_rng(500036)
    numpy_type = np.float64 if dtype == TensorProto.DOUBLE else np.float32
    feeds = {"a": rng.standard_normal((4, 1, 1, 1)).astype(numpy_type),
             "b": rng.standard_normal((4, 1, 1, 2)).astype(numpy_type)}
    verdict = check_case(Case(model, feeds), "llvm", level=3)
    assert verdict.kind == "ok", verdict.detail



@needs_tvm
def test_seed_500012_llvm_prelu_of_a_symbolic_vector() -> None:
    """PRelu of x[N] with a slope of [1]: TVM's converter makes nn.prelu along the symbolic axis
    and failed the build; legalize-tvm writes it as Where(x < 0, x * s, x)."""
    nodes = [helper.make_node("PRelu", ["x", "s"], ["y"])]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N"])], ["y"],
                   [_const("s", [0.38834962])], 13)
    feeds = {"x": np.array([-2.0, -0.5, 0.0, 1.5, 3.0], np.float32)}
    verdict = check_case(Case(model, feeds), "llvm", level=3)
    assert verdict.kind == "ok", verdict.detail


def test_seed_600259_eliminate_noop_reads_a_broadcast_splat() -> None:
    """x + (-1) where x gathers from ConstantOfShape(Shape(v)): eliminate-noop reads the splat as a
    broadcast (stride 0) array whose bytes numpy cannot view; the pass raised (exit 70)."""
    nodes = [helper.make_node("Shape", ["v"], ["s"]),
             helper.make_node("ConstantOfShape", ["s"], ["z"], value=numpy_helper.from_array(np.zeros(1))),
             helper.make_node("Mod", ["i", "two"], ["j"]), helper.make_node("Gather", ["z", "j"], ["g"], axis=0),
             helper.make_node("Add", ["g", "minus_one"], ["a"]), helper.make_node("Reciprocal", ["a"], ["r"]),
             helper.make_node("Mul", ["a", "r"], ["m"]), helper.make_node("Add", ["c", "m"], ["y"])]
    model = _model(nodes, [helper.make_tensor_value_info("v", TensorProto.DOUBLE, [2]),
                           helper.make_tensor_value_info("i", TensorProto.INT64, [1]),
                           helper.make_tensor_value_info("c", TensorProto.DOUBLE, [1])], ["y"],
                   [_const("two", 2, np.int64), _const("minus_one", [-1.0], np.float64)], 15)
    feeds = {"v": np.array([0.5, 2.0]), "i": np.array([3], np.int64), "c": np.array([0.25])}
    for level in (2, 3):
        verdict = check_case(Case(model, feeds), "onnxruntime", level=level)
        assert verdict.kind == "ok", verdict.detail
