"""fuse-batchnorm: inference BatchNormalization folds into Conv/ConvTranspose/Gemm/MatMul weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from mlc.ir.core import Graph
from mlc.onnx_io.importer import import_onnx
from mlc.pass_api import Numerics
from mlc.testing import assert_numerically_equivalent, assert_pass, run_pass

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


# ----------------------------------------------------------------- helpers shared by the fuse-* tests
def dense(name: str, array: np.ndarray) -> str:
    """A `const` line of the text IR holding `array` exactly (float32 values print as doubles)."""
    short = {np.dtype(np.float32): "f32", np.dtype(np.float16): "f16", np.dtype(np.int64): "i64"}[array.dtype]
    values = ", ".join(repr(float(v)) if array.dtype.kind == "f" else str(int(v)) for v in array.reshape(-1))
    return f"  const %{name} = dense<{short}[{','.join(str(d) for d in array.shape)}]> [{values}]"


def light_model(name: str) -> tuple[Graph, Graph]:
    """(original, folded): one of onnx's light models imported twice; the second has had
    `fold-constants` (its weights are ConstantOfShape nodes until then)."""
    model = onnx.load(str(LIGHT / f"light_{name}.onnx"))
    before, after = import_onnx(model), import_onnx(model)
    run_pass("fold-constants", after)
    return before, after


def op_counts(graph: Graph) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in graph:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def random_model(nodes: list, inits: dict[str, np.ndarray], inputs: dict[str, list[int]],
                 outputs: dict[str, list[int]], opset: int = 17) -> Graph:
    """A model built with onnx.helper from random (non-splat) weights, checked, imported; float
    arrays become float32, others keep their dtype."""
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(k, TensorProto.FLOAT, v) for k, v in inputs.items()],
        [helper.make_tensor_value_info(k, TensorProto.FLOAT, v) for k, v in outputs.items()],
        [onnx.numpy_helper.from_array(v.astype(np.float32) if v.dtype.kind == "f" else v, k)
         for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    return import_onnx(onnx.shape_inference.infer_shapes(model))


# ----------------------------------------------------------------- BEFORE / EXPECTED
CONV_BN = '''graph "g" (%x: f32[1,2,3,3]) {
  const %w = dense<f32[2,2,1,1]> [1.0, 2.0, 3.0, 4.0]
  const %b = dense<f32[2]> [1.0, 2.0]
  %c: f32[1,2,3,3] = Conv(%x, %w, %b) {kernel_shape=[1, 1]} name="c1"
  const %gamma = dense<f32[2]> [1.0, 2.0]
  const %beta = dense<f32[2]> [0.5, 0.0]
  const %mean = dense<f32[2]> [1.0, -1.0]
  const %var = dense<f32[2]> [4.0, 0.25]
  %y: f32[1,2,3,3] = BatchNormalization(%c, %gamma, %beta, %mean, %var) {epsilon=0.0} name="bn"
  return %y
}'''


def test_conv_batchnorm_folds_into_weight_and_bias() -> None:
    # s = gamma / sqrt(var) = [0.5, 4]; W' = W*s per output channel; b' = (b - mean)*s + beta
    expected = '''graph "g" (%x: f32[1,2,3,3]) {
  const %w = dense<f32[2,2,1,1]> [0.5, 1.0, 12.0, 16.0]
  const %b = dense<f32[2]> [0.5, 12.0]
  %y: f32[1,2,3,3] = Conv(%x, %w, %b) {kernel_shape=[1, 1]}
  return %y
}'''
    ctx = assert_pass("fuse-batchnorm", CONV_BN, expected, fused=1)
    assert dict(ctx.rules) == {"conv-batchnorm": 1}


def test_conv_without_bias_gets_one_and_provenance_is_kept() -> None:
    before = CONV_BN.replace("Conv(%x, %w, %b)", "Conv(%x, %w)").replace(
        "  const %b = dense<f32[2]> [1.0, 2.0]\n", "")
    expected = '''graph "g" (%x: f32[1,2,3,3]) {
  const %w = dense<f32[2,2,1,1]> [0.5, 1.0, 12.0, 16.0]
  const %b = dense<f32[2]> [0.0, 4.0]
  %y: f32[1,2,3,3] = Conv(%x, %w, %b) {kernel_shape=[1, 1]}
  return %y
}'''
    assert_pass("fuse-batchnorm", before, expected, fused=1)  # b' = (0 - mean)*s + beta
    graph, _ = run_pass("fuse-batchnorm", before)
    (conv,) = graph.nodes
    assert conv.source == ("c1", "bn") and conv.created_by == "fuse-batchnorm/conv-batchnorm"
    assert [v.name for v in graph.outputs] == ["y"], "the model's output keeps its name"


def test_gemm_transb_and_matmul() -> None:
    gemm = '''graph "g" (%a: f32[3,2]) {
  const %w = dense<f32[2,2]> [1.0, 2.0, 3.0, 4.0]
  const %c = dense<f32[2]> [1.0, 1.0]
  %g: f32[3,2] = Gemm(%a, %w, %c) {transB=1, beta=2.0}
  const %gamma = dense<f32[2]> [1.0, 2.0]
  const %beta = dense<f32[2]> [0.5, 0.0]
  const %mean = dense<f32[2]> [1.0, -1.0]
  const %var = dense<f32[2]> [4.0, 0.25]
  %y: f32[3,2] = BatchNormalization(%g, %gamma, %beta, %mean, %var) {epsilon=0.0}
  return %y
}'''
    # transB: rows of W are output channels; beta*C = [2, 2] -> (2 - mean)*s + beta = [1, 12], beta=1
    assert_pass("fuse-batchnorm", gemm, '''graph "g" (%a: f32[3,2]) {
  const %w = dense<f32[2,2]> [0.5, 1.0, 12.0, 16.0]
  const %c = dense<f32[2]> [1.0, 12.0]
  %y: f32[3,2] = Gemm(%a, %w, %c) {transB=1}
  return %y
}''', fused=1)
    matmul = gemm.replace("Gemm(%a, %w, %c) {transB=1, beta=2.0}", "MatMul(%a, %w)").replace(
        "  const %c = dense<f32[2]> [1.0, 1.0]\n", "")
    # per column now: W' = [[0.5, 8], [1.5, 16]]; the bias (0 - mean)*s + beta is an Add
    assert_pass("fuse-batchnorm", matmul, '''graph "g" (%a: f32[3,2]) {
  const %w = dense<f32[2,2]> [0.5, 8.0, 1.5, 16.0]
  %m: f32[3,2] = MatMul(%a, %w)
  const %t = dense<f32[2]> [0.0, 4.0]
  %y: f32[3,2] = Add(%m, %t)
  return %y
}''', fused=1)


# ----------------------------------------------------------------- must not change
def _unchanged(before: str, remark: str, numeric: bool = True) -> None:
    ctx = assert_pass("fuse-batchnorm", before, before, numeric=numeric)
    assert any(remark in r for r in ctx.remarks), ctx.remarks


def test_must_not_change() -> None:
    read_twice = CONV_BN.replace("  return %y", "  %r: f32[1,2,3,3] = Relu(%c)\n  return %y, %r")
    _unchanged(read_twice, "batchnorm at 'bn': not applied, Conv 'c1' before it: its output has 2 readers")
    training = CONV_BN.replace("{epsilon=0.0}", "{epsilon=0.0, training_mode=1}")
    _unchanged(training, "batchnorm at 'bn': not applied, it is in training mode", numeric=False)
    dynamic = CONV_BN.replace('(%x: f32[1,2,3,3])', '(%x: f32[1,2,3,3], %w: f32[2,2,1,1])').replace(
        "  const %w = dense<f32[2,2,1,1]> [1.0, 2.0, 3.0, 4.0]\n", "")
    _unchanged(dynamic, "batchnorm at 'bn': not applied, Conv 'c1' before it: its weight is not a constant")
    variable_stats = CONV_BN.replace('(%x: f32[1,2,3,3])', '(%x: f32[1,2,3,3], %var: f32[2])').replace(
        "  const %var = dense<f32[2]> [4.0, 0.25]\n", "")
    _unchanged(variable_stats, "scale, B, mean and var are not all constants", numeric=False)
    standalone = '''graph "g" (%x: f32[1,2,3,3]) {
  const %gamma = dense<f32[2]> [1.0, 2.0]
  const %beta = dense<f32[2]> [0.5, 0.0]
  const %mean = dense<f32[2]> [1.0, -1.0]
  const %var = dense<f32[2]> [4.0, 0.25]
  %r: f32[1,2,3,3] = Relu(%x)
  %y: f32[1,2,3,3] = BatchNormalization(%r, %gamma, %beta, %mean, %var) name="bn"
  return %y
}'''
    _unchanged(standalone, "batchnorm at 'bn': not applied, its input comes from Relu")
    conv_output = CONV_BN.replace("  return %y", "  return %y, %c")
    _unchanged(conv_output, "its output is a graph output")
    matmul_3d = '''graph "g" (%a: f32[2,3,2]) {
  const %w = dense<f32[2,3]> [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
  %m: f32[2,3,3] = MatMul(%a, %w) name="mm"
  const %gamma = dense<f32[3]> [1.0, 2.0, 3.0]
  const %beta = dense<f32[3]> [0.5, 0.0, 1.0]
  const %mean = dense<f32[3]> [1.0, -1.0, 0.0]
  const %var = dense<f32[3]> [4.0, 0.25, 1.0]
  %y: f32[2,3,3] = BatchNormalization(%m, %gamma, %beta, %mean, %var)
  return %y
}'''
    # BatchNormalization normalizes axis 1 (the rows here), MatMul's weight scales the last axis
    _unchanged(matmul_3d, "MatMul 'mm' before it: its output is not known to be 2-D")


# ----------------------------------------------------------------- random weights: every layout
def test_random_weights_grouped_conv_convtranspose_gemm_matmul() -> None:
    """Per-channel factors that differ per channel catch a wrong axis, a wrong group layout or a
    wrong bias formula, which the light models' all-equal constants cannot."""
    rng = np.random.default_rng(7)

    def bn(name: str, x: str, c: int) -> tuple[onnx.NodeProto, dict[str, np.ndarray]]:
        params = {f"{name}_s": rng.uniform(0.5, 2.0, c), f"{name}_b": rng.standard_normal(c),
                  f"{name}_m": rng.standard_normal(c), f"{name}_v": rng.uniform(0.1, 3.0, c)}
        return helper.make_node("BatchNormalization", [x, *params], [f"{name}_y"], epsilon=1e-3), params

    inits = {"w1": rng.standard_normal((6, 2, 3, 3)), "b1": rng.standard_normal(6),
             "w2": rng.standard_normal((6, 2, 3, 3)),  # ConvTranspose: C_in=6, group=2 -> 4 outputs
             "w3": rng.standard_normal((5, 4)), "c3": rng.standard_normal(5),
             "w4": rng.standard_normal((5, 3))}
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], group=2, pads=[1, 1, 1, 1])]
    for name, x, c, nxt in (("bn1", "c1", 6, helper.make_node("ConvTranspose", ["bn1_y", "w2"], ["c2"], group=2)),
                            ("bn2", "c2", 4, None)):
        node, params = bn(name, x, c)
        nodes.append(node)
        inits.update(params)
        if nxt is not None:
            nodes.append(nxt)
    nodes += [helper.make_node("GlobalAveragePool", ["bn2_y"], ["p"]), helper.make_node("Flatten", ["p"], ["f"]),
              helper.make_node("Gemm", ["f", "w3", "c3"], ["c3y"], transB=1, alpha=0.5, beta=2.0)]
    node, params = bn("bn3", "c3y", 5)
    nodes.append(node)
    inits.update(params)
    nodes.append(helper.make_node("MatMul", ["bn3_y", "w4"], ["c4"]))
    node, params = bn("bn4", "c4", 3)
    nodes.append(node)
    inits.update(params)
    before = random_model(nodes, inits, {"x": [2, 4, 5, 5]}, {"bn4_y": [2, 3]})
    graph, ctx = run_pass("fuse-batchnorm", random_model(nodes, inits, {"x": [2, 4, 5, 5]}, {"bn4_y": [2, 3]}))
    assert dict(ctx.rules) == {"conv-batchnorm": 1, "convtranspose-batchnorm": 1, "gemm-batchnorm": 1,
                               "matmul-batchnorm": 1}, (ctx.rules, ctx.remarks)
    assert "BatchNormalization" not in op_counts(graph)
    assert len(graph.initializers) == 8, "old weights and BN parameters are gone"
    for seed in (0, 1):
        assert_numerically_equivalent(before, graph, Numerics.TOLERANCE, seed=seed)


# ----------------------------------------------------------------- real models
def test_light_models() -> None:
    """ResNet-50: a BatchNormalization after each of its 53 Convs; ShuffleNet: 49, grouped and
    depthwise; DenseNet: 59 follow a Conv, 62 follow a Concat/pool (pre-activation, left alone)."""
    for name, fused, left in (("resnet50", 53, 0), ("shufflenet", 49, 0), ("densenet121", 59, 62)):
        before, after = light_model(name)
        nodes = len(after)
        _, ctx = run_pass("fuse-batchnorm", after)
        run_pass("dce", after)
        assert ctx.stats["fused"] == fused, (name, ctx.stats, ctx.remarks[:3])
        assert op_counts(after).get("BatchNormalization", 0) == left
        assert len(after) == nodes - fused
        assert sum("a standalone BatchNormalization" in r for r in ctx.remarks) == left
        assert_numerically_equivalent(before, after, Numerics.TOLERANCE)
