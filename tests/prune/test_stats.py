"""mlc.prune.stats: parameters, sparsity, FLOPs by hand, exported bytes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from mlc.errors import BadInputError
from mlc.ir.core import Graph
from mlc.ir.types import TensorType
from mlc.onnx_io import import_onnx, save_onnx
from mlc.prune import model_stats
from mlc.testing import run_pass

MODELS = Path(__file__).resolve().parents[2] / "models"

# FLOPs per image of the model below, by hand (2 x multiply-accumulates):
CONV = 2 * 4 * (4 * 4) * 3 * (3 * 3)  # Conv 3->4, 3x3, stride 2: out [4, 4, 4], 3 inputs each: 3456
GROUPED = 2 * 4 * (4 * 4) * 1 * (3 * 3)  # depthwise Conv, group 4: one input channel per output: 1152
DECONV = 2 * (4 * 4 * 4) * 2 * (2 * 2)  # ConvTranspose 4->2, 2x2: each input element x C_out x taps: 1024
GEMM = 2 * 10 * 128  # Gemm [1, 128] x [128, 10]: 2560
MATMUL = 2 * (2 * 3) * 5  # MatMul [1, 2, 5] x [5, 3]: out [1, 2, 3], K = 5: 60
WEIGHTS = {"conv": 4 * 3 * 9, "dw": 4 * 9, "deconv": 4 * 2 * 4, "fc": 10 * 128, "mm": 5 * 3}
BIASES = 4 + 10


def _model(batch: str | int = "N") -> Graph:
    rng = np.random.default_rng(0)
    inits = {"conv.w": rng.standard_normal((4, 3, 3, 3)), "conv.b": rng.standard_normal(4),
             "dw.w": rng.standard_normal((4, 1, 3, 3)), "deconv.w": rng.standard_normal((4, 2, 2, 2)),
             "fc.w": rng.standard_normal((10, 128)), "fc.b": rng.standard_normal(10),
             "mm.w": rng.standard_normal((5, 3))}
    tensors = [onnx.numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items()]
    tensors.append(onnx.numpy_helper.from_array(np.array([-1, 2, 5], np.int64), "shape"))  # not a parameter
    nodes = [helper.make_node("Conv", ["x", "conv.w", "conv.b"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2], name="conv"),
             helper.make_node("Conv", ["c", "dw.w"], ["d"], pads=[1, 1, 1, 1], group=4, name="dw"),
             helper.make_node("ConvTranspose", ["d", "deconv.w"], ["t"], strides=[2, 2],
                              name="deconv"),
             helper.make_node("Flatten", ["t"], ["f"]),  # [N, 2*8*8]
             helper.make_node("Gemm", ["f", "fc.w", "fc.b"], ["g"], transB=1, name="fc"),
             helper.make_node("Reshape", ["g", "shape"], ["r"]),
             helper.make_node("MatMul", ["r", "mm.w"], ["y"], name="mm")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2, 3])], tensors)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    return import_onnx(model)


def test_flops_by_hand_with_the_batch_bound_to_one_or_given() -> None:
    graph = _model()
    stats = model_stats(graph)
    assert stats.flops == {"Conv": CONV + GROUPED, "ConvTranspose": DECONV, "Gemm": GEMM, "MatMul": MATMUL}
    assert stats.flops_total == 8252
    assert stats.assumed_dims == {"N": 1} and any("N" in note for note in stats.notes)
    assert stats.flops_unknown == [] and stats.uncounted == {}
    given = model_stats(graph, {"x": (3, 3, 8, 8)})
    assert given.flops_total == 3 * 8252 and given.assumed_dims == {}
    assert graph.inputs[0].type == TensorType(graph.inputs[0].type.dtype, ("N", 3, 8, 8)), "graph not modified"
    assert model_stats(_model(batch=2)).flops_total == 2 * 8252  # a static batch needs no binding
    assert [(row.name, row.op_type, row.weight, row.weight_elements, row.flops) for row in stats.layers] == [
        ("conv", "Conv", "conv.w", WEIGHTS["conv"], CONV), ("dw", "Conv", "dw.w", WEIGHTS["dw"], GROUPED),
        ("deconv", "ConvTranspose", "deconv.w", WEIGHTS["deconv"], DECONV), ("fc", "Gemm", "fc.w", WEIGHTS["fc"], GEMM),
        ("mm", "MatMul", "mm.w", WEIGHTS["mm"], MATMUL)]


def test_digits_cnn_flops() -> None:
    stats = model_stats(import_onnx(MODELS / "digits_cnn.onnx"), {"image": (1, 1, 8, 8)})
    stem = 2 * 16 * 64 * 1 * 9  # 1 -> 16 channels, 8x8, 3x3
    block = 2 * 16 * 64 * 16 * 9  # 16 -> 16, 8x8 (conv_a, conv_b)
    down = 2 * 32 * 16 * 16 * 9  # 16 -> 32 after a 2x2 pool: 4x4
    assert stats.flops == {"Conv": stem + 2 * block + down, "Gemm": 2 * 10 * 128}
    assert stats.parameters == 10730 and stats.nonzero_parameters == 10730


def test_parameters_sparsity_and_bytes(tmp_path: Path) -> None:
    graph = _model()
    before = model_stats(graph, compressed=True)
    assert before.parameters == sum(WEIGHTS.values()) + BIASES  # the int64 shape is not a parameter
    assert before.nonzero_parameters == before.parameters and before.sparsity == 0.0
    assert before.bytes == save_onnx(graph, tmp_path / "m.onnx", external_data=False).stat().st_size

    pruned, _ = run_pass("prune-magnitude{sparsity=0.5}", graph.clone())
    after = model_stats(pruned, compressed=True)
    for row in after.layers:
        assert row.zeros == WEIGHTS[row.name] // 2 and row.sparsity == pytest.approx(row.zeros / row.weight_elements)
    zeros = sum(n // 2 for n in WEIGHTS.values())
    assert after.parameters == before.parameters and after.nonzero_parameters == before.parameters - zeros
    assert after.sparsity == pytest.approx(zeros / before.parameters)
    assert after.flops == before.flops  # dense FLOPs: zeros are still multiplied
    # ONNX stores the zeros densely: the same bytes, fewer once compressed
    assert after.bytes == before.bytes == save_onnx(pruned, tmp_path / "p.onnx", external_data=False).stat().st_size
    assert after.compressed_bytes is not None and before.compressed_bytes is not None
    assert after.compressed_bytes < 0.8 * before.compressed_bytes
    assert model_stats(graph).compressed_bytes is None

    report = json.loads(json.dumps(after.to_json()))
    assert report["parameters"] == after.parameters and report["flops_total"] == 8252
    assert report["layers"][0] == {"name": "conv", "op_type": "Conv", "weight": "conv.w", "weight_elements": 108,
                                   "zeros": 54, "sparsity": 0.5, "flops": CONV}
    assert set(report) >= {"bytes", "compressed_bytes", "nonzero_parameters", "sparsity", "flops", "assumed_dims"}


def test_quantized_weights_count_and_their_zeros_are_the_zero_point() -> None:
    q = np.arange(-4, 4, dtype=np.int8).reshape(4, 2, 1, 1)  # per output channel: [-4,-3], [-2,-1], [0,1], [2,3]
    zero_point = np.array([-3, 0, 0, 3], np.int8)  # channel 0: -3 is "zero"; 1: none; 2: the 0; 3: the 3
    nodes = [helper.make_node("DequantizeLinear", ["w.q", "w.scale", "w.zp"], ["w"], axis=0),
             helper.make_node("Conv", ["x", "w"], ["y"], name="qconv")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 3, 3])],
        [onnx.numpy_helper.from_array(q, "w.q"), onnx.numpy_helper.from_array(np.full(4, 0.1, np.float32), "w.scale"),
         onnx.numpy_helper.from_array(zero_point, "w.zp")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    stats = model_stats(import_onnx(model))
    (row,) = stats.layers
    assert (row.weight, row.weight_elements, row.zeros, row.flops) == ("w.q", 8, 3, 2 * 4 * 9 * 2)
    assert stats.parameters == 8 + 4  # the int8 weight and the float scales; the zero points are not data
    assert stats.nonzero_parameters == 7 + 4  # one stored 0 in w.q


def test_uncounted_and_unknown_shapes_are_listed() -> None:
    nodes = [helper.make_node("Einsum", ["a", "b"], ["e"], equation="ij,jk->ik"),
             helper.make_node("Mystery", ["e"], ["m"], domain="custom.ops"),
             helper.make_node("MatMul", ["m", "w"], ["y"], name="after_mystery")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 3]),
                     helper.make_tensor_value_info("b", TensorProto.FLOAT, [3, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [onnx.numpy_helper.from_array(np.ones((4, 5), np.float32), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("custom.ops", 1)],
                              ir_version=8)
    stats = model_stats(import_onnx(model))
    assert stats.uncounted == {"Einsum": 1} and stats.flops_unknown == ["after_mystery"] and stats.flops == {}
    (row,) = stats.layers  # the layer is still listed, without FLOPs
    assert (row.name, row.zeros, row.flops) == ("after_mystery", 0, None)


def test_bad_input_shapes() -> None:
    graph = _model()
    for shapes, message in (({"nope": (1, 3, 8, 8)}, "not a graph input"), ({"x": (1, 3, 8)}, "declared"),
                            ({"x": (1, 4, 8, 8)}, "declared [N,3,8,8]")):
        with pytest.raises(BadInputError, match=message.replace("[", r"\[")):
            model_stats(graph, shapes)


def test_shapes_computed_at_run_time_and_digests() -> None:
    """Position embeddings sliced to the sequence length read from Shape(x) (how BERT exports):
    onnx's inference leaves the slice's dims unknown (`unk__`), mlc's infer-shapes follows them."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "axis1"], ["q"], axis=0),
             helper.make_node("Unsqueeze", ["q", "zero"], ["end"]),
             helper.make_node("Slice", ["positions", "zero", "end", "one"], ["p"]),
             helper.make_node("Add", ["x", "p"], ["a"]),
             helper.make_node("MatMul", ["a", "w"], ["y"], name="mm")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "sequence", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [onnx.numpy_helper.from_array(np.array(1, np.int64), "axis1"),
         onnx.numpy_helper.from_array(np.array([0], np.int64), "zero"),
         onnx.numpy_helper.from_array(np.array([1], np.int64), "one"),
         onnx.numpy_helper.from_array(np.ones((1, 16, 8), np.float32), "positions"),
         onnx.numpy_helper.from_array(np.arange(24, dtype=np.float32).reshape(8, 3), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    imported = import_onnx(model)
    # at batch = sequence = 1, onnx cannot tell [1, 1, 8] + [unk, unk, 8] from a broadcast
    stats = model_stats(imported)
    assert stats.flops == {"MatMul": 2 * (1 * 1 * 3) * 8} and stats.flops_unknown == []
    assert model_stats(imported, {"x": (2, 5, 8)}).flops == {"MatMul": 2 * (2 * 5 * 3) * 8}
    assert stats.parameters == 16 * 8 + 24 and stats.nonzero_parameters == 16 * 8 + 23  # not the int64 pieces

    # the text form prints large constants as digests: no bytes, counted dense, FLOPs still known
    from mlc.ir.printer import print_ir
    from mlc.testing import as_graph
    digits = as_graph(print_ir(import_onnx(MODELS / "digits_cnn.onnx")))
    stats = model_stats(digits, {"image": (1, 1, 8, 8)})
    assert stats.bytes is None and any("digests" in note for note in stats.notes)
    assert stats.flops_total == 758272 and len(stats.layers) == 5 and stats.nonzero_parameters == 10730
