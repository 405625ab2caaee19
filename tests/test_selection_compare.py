"""Outputs picked by TopK/NonMaxSuppression are compared as records, in any order among near ties.

Each test builds the original graph and a variant, feeds inputs with exact ties, and checks the
variant against the original through `Reference.check`, the comparison every check of mlc uses.
An equivalent variant (the input reversed before the selection, the indices mapped back) makes
onnxruntime emit tied records in another order: the check passes and names the outputs it
compared order-insensitively. A broken variant (a flipped score, a dropped box, records out of
order or recombined) still fails.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from mlc.numerics.compare import CheckResult, compare_outputs
from mlc.numerics.reference import run_model
from mlc.numerics.selection import selection_outputs
from mlc.onnx_io.importer import import_onnx
from mlc.pass_api import Numerics
from mlc.runner import Reference

K = 5
# exact ties inside the top 5 (0.9 twice, 0.5 twice; 0.4 three times), none at the cut
X = np.array([[0.5, 0.9, 0.3, 0.9, 0.1, 0.7, 0.5, 0.2],
              [0.4, 0.4, 0.4, 0.8, 0.0, 0.1, 0.6, 0.2]], np.float32)
TABLE = np.arange(24, dtype=np.float32).reshape(8, 3)
N = 6
BOXES = np.array([[[i * 10, 0, i * 10 + 5, 5] for i in range(N)]], np.float32)  # none overlap
SCORES = np.array([[[0.5, 0.9, 0.5, 0.9, 0.5, 0.7]]], np.float32)


def _const(name: str, value: object) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=onnx.numpy_helper.from_array(np.asarray(value)))


def _model(nodes: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto],
           outputs: list[onnx.ValueInfoProto]) -> onnx.ModelProto:
    model = helper.make_model(helper.make_graph(nodes, "g", inputs, outputs),
                              opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    onnx.checker.check_model(model)
    return model


def _reverse(src: str, dst: str, axis: int) -> list[onnx.NodeProto]:
    """dst = src reversed along `axis` (Slice with step -1)."""
    return [_const(f"{dst}_s", np.array([-1], np.int64)), _const(f"{dst}_e", np.array([-2**62], np.int64)),
            _const(f"{dst}_a", np.array([axis], np.int64)), _const(f"{dst}_st", np.array([-1], np.int64)),
            helper.make_node("Slice", [src, f"{dst}_s", f"{dst}_e", f"{dst}_a", f"{dst}_st"], [dst])]


def topk_model(variant: str = "original") -> onnx.ModelProto:
    """values, indices = TopK(x, 5); rows = table[indices]: records along axis 1, per batch row."""
    k = K - 1 if variant == "drop" else K
    nodes = [_const("k", np.array([k], np.int64)), _const("table", TABLE)]
    if variant in ("equivalent", "flip", "recombine", "reversed"):  # ties come out in another order
        nodes += _reverse("x", "xr", 1)
        nodes += [helper.make_node("TopK", ["xr", "k"], ["v", "ri"], axis=-1),
                  _const("last", np.array(X.shape[1] - 1, np.int64)),
                  helper.make_node("Sub", ["last", "ri"], ["i"])]
    else:
        nodes += [helper.make_node("TopK", ["x", "k"], ["v", "i"], axis=-1)]
    if variant == "flip":  # a pass that flips one score's sign
        nodes += [_const("sign", np.array([[1, 1, 1, -1, 1], [1, 1, 1, 1, 1]], np.float32)),
                  helper.make_node("Mul", ["v", "sign"], ["values"])]
    elif variant == "reversed":  # the same records, lowest score first
        nodes += _reverse("v", "values", 1) + _reverse("i", "ir", 1)
    else:
        nodes += [helper.make_node("Identity", ["v"], ["values"])]
    if variant != "reversed":
        nodes += [helper.make_node("Identity", ["i"], ["ir"])]
    nodes += [helper.make_node("Identity", ["ir"], ["indices"])]
    if variant == "recombine":  # rows in the original's order, values/indices in the variant's
        nodes += [helper.make_node("TopK", ["x", "k"], ["v0", "i0"], axis=-1),
                  helper.make_node("Gather", ["table", "i0"], ["rows"], axis=0)]
    else:
        nodes += [helper.make_node("Gather", ["table", "ir"], ["rows"], axis=0)]
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])],
                  [helper.make_tensor_value_info("values", TensorProto.FLOAT, [2, None]),
                   helper.make_tensor_value_info("indices", TensorProto.INT64, [2, None]),
                   helper.make_tensor_value_info("rows", TensorProto.FLOAT, [2, None, 3])])


def nms_model(variant: str = "original") -> onnx.ModelProto:
    """sel = NonMaxSuppression(boxes, scores); picked boxes and scores gathered by sel's box index."""
    keep = N - 1 if variant == "drop" else 10
    nodes = [_const("max_out", np.array([keep], np.int64)), _const("iou", np.array([0.5], np.float32))]
    if variant in ("equivalent", "flip"):  # the boxes in reverse order, the indices mapped back
        nodes += _reverse("boxes", "rboxes", 1) + _reverse("scores", "rscores", 2)
        nodes += [helper.make_node("NonMaxSuppression", ["rboxes", "rscores", "max_out", "iou"], ["rsel"]),
                  _const("parts", np.array([2, 1], np.int64)),
                  helper.make_node("Split", ["rsel", "parts"], ["bc", "rbox"], axis=1),
                  _const("last", np.array([N - 1], np.int64)), helper.make_node("Sub", ["last", "rbox"], ["box"]),
                  helper.make_node("Concat", ["bc", "box"], ["sel"], axis=1)]
    else:
        nodes += [helper.make_node("NonMaxSuppression", ["boxes", "scores", "max_out", "iou"], ["sel"])]
    nodes += [helper.make_node("Identity", ["sel"], ["selected"]),
              helper.make_node("GatherND", ["scores", "sel"], ["s"]),
              _const("two", np.array(2, np.int64)), helper.make_node("Gather", ["sel", "two"], ["b"], axis=1),
              _const("zero", np.array([0], np.int64)), helper.make_node("Squeeze", ["boxes", "zero"], ["flat"]),
              helper.make_node("Gather", ["flat", "b"], ["picked_boxes"], axis=0)]
    if variant == "flip":
        nodes += [helper.make_node("Neg", ["s"], ["picked_scores"])]
    else:
        nodes += [helper.make_node("Identity", ["s"], ["picked_scores"])]
    return _model(nodes, [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, N, 4]),
                          helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 1, N])],
                  [helper.make_tensor_value_info("selected", TensorProto.INT64, [None, 3]),
                   helper.make_tensor_value_info("picked_scores", TensorProto.FLOAT, [None]),
                   helper.make_tensor_value_info("picked_boxes", TensorProto.FLOAT, [None, 4])])


def _check(original: onnx.ModelProto, variant: onnx.ModelProto,
           feeds: dict[str, np.ndarray]) -> tuple[Reference, CheckResult]:
    reference = Reference(import_onnx(original), [feeds], second_opinion=False)
    return reference, reference.check(import_onnx(variant), Numerics.TOLERANCE)


def _in_order(reference: Reference, variant: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> set[str]:
    """The outputs an element-by-element comparison fails: proof that the variant reorders the ties."""
    got = run_model(reference.prepare(import_onnx(variant)), feeds, reference.output_names)
    result = compare_outputs(reference.expected, got, Numerics.TOLERANCE, "onnxruntime")
    return {c.name for c in result.outputs if c.verdict == "fail"}


def test_selection_outputs_follow_the_record_axis() -> None:
    topk = selection_outputs(import_onnx(topk_model()))
    assert {name: s.axis for name, s in topk.items()} == {"values": 1, "indices": 1, "rows": 1}
    assert topk["rows"].ops == ["TopK"]
    nms = selection_outputs(import_onnx(nms_model("equivalent")))
    assert {name: s.axis for name, s in nms.items()} == {"selected": 0, "picked_scores": 0, "picked_boxes": 0}
    # batched NMS's offset trick: boxes + label * (max over all boxes + 1); the max is the same in any
    # order, so it does not hide the record axis of what it scales
    model = topk_model()
    model.graph.node.extend([helper.make_node("ReduceMax", ["values"], ["top"], keepdims=0),
                             helper.make_node("Mul", ["values", "top"], ["scaled"])])
    model.graph.output.append(helper.make_tensor_value_info("scaled", TensorProto.FLOAT, [2, None]))
    scaled = selection_outputs(import_onnx(model))
    assert scaled["scaled"].axis == 1 and "top" not in scaled


def test_topk_ties_in_another_order_pass_and_are_named() -> None:
    feeds = {"x": X}
    reference, check = _check(topk_model(), topk_model("equivalent"), feeds)
    assert _in_order(reference, topk_model("equivalent"), feeds) == {"indices", "rows"}
    assert check.verdict == "ok", [c.describe() for c in check.outputs]
    assert "values, indices, rows compared as records along axis 1" in check.note and "TopK" in check.note
    assert "records reordered" in check.note
    assert all("order-insensitive" in c.note for c in check.outputs)
    assert any("values, indices, rows compared as records" in note for note in reference.notes)


def test_topk_broken_variants_fail() -> None:
    feeds = {"x": X}
    _, flipped = _check(topk_model(), topk_model("flip"), feeds)
    assert flipped.verdict == "fail"
    bad = {c.name: c for c in flipped.outputs if c.verdict == "fail"}
    assert set(bad) == {"values"} and "no counterpart" in bad["values"].note and "[0, 3]" in bad["values"].note
    _, dropped = _check(topk_model(), topk_model("drop"), feeds)
    assert dropped.verdict == "fail" and all(c.verdict == "fail" for c in dropped.outputs)
    assert "differ in number" in dropped.outputs[0].note
    _, reversed_ = _check(topk_model(), topk_model("reversed"), feeds)
    assert reversed_.verdict == "fail"
    assert any("other order though their scores are not tied" in c.note for c in reversed_.outputs)
    _, recombined = _check(topk_model(), topk_model("recombine"), feeds)
    assert recombined.verdict == "fail", "rows must stay with their own values and indices"
    assert all("not all together" in c.note for c in recombined.outputs if c.verdict == "fail")


def test_nms_ties_in_another_order_pass_and_broken_variants_fail() -> None:
    feeds = {"boxes": BOXES, "scores": SCORES}
    reference, check = _check(nms_model(), nms_model("equivalent"), feeds)
    assert _in_order(reference, nms_model("equivalent"), feeds) == {"selected", "picked_boxes"}
    assert check.verdict == "ok", [c.describe() for c in check.outputs]
    assert "selected, picked_scores, picked_boxes compared as records along axis 0" in check.note
    assert "NonMaxSuppression" in check.note and "records reordered" in check.note
    expected_order = reference.expected["selected"][:, 2].tolist()
    assert expected_order == [1, 3, 5, 0, 2, 4]
    _, flipped = _check(nms_model(), nms_model("flip"), feeds)
    assert flipped.verdict == "fail"
    assert {c.name for c in flipped.outputs if c.verdict == "fail"} == {"picked_scores"}
    _, dropped = _check(nms_model(), nms_model("drop"), feeds)
    assert dropped.verdict == "fail"


def test_an_untraceable_record_axis_is_compared_in_order_and_says_why() -> None:
    """A Reshape that merges the record axis: the output depends on TopK, but its records cannot be
    told apart any more, so it is compared element by element and a failure names the reason."""
    def model(variant: str) -> onnx.ModelProto:
        base = topk_model(variant)
        graph = base.graph
        graph.node.extend([_const("flat_shape", np.array([-1], np.int64)),
                           helper.make_node("Reshape", ["indices", "flat_shape"], ["flat"])])
        graph.output.append(helper.make_tensor_value_info("flat", TensorProto.INT64, [None]))
        return base

    _, check = _check(model("original"), model("equivalent"), {"x": X})
    assert check.verdict == "fail"
    flat = next(c for c in check.outputs if c.name == "flat")
    assert flat.verdict == "fail" and "axis could not be traced" in flat.note and "TopK" in flat.note
    assert all(c.verdict == "ok" for c in check.outputs if c.name != "flat")
