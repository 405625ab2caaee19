"""Which inputs are shape operands, and binding them at import."""

from __future__ import annotations

import numpy as np
import pytest

from mlc.errors import BadInputError
from mlc.specialize import reads_input_values, shape_inputs
from mlc.testing import as_graph


def test_shape_inputs_follow_values_not_shapes() -> None:
    graph = as_graph('''graph "g" (%x: f32[2,3,4], %shape: i64[2], %axes: i64[1], %y: f32[6,4]) {
  %r: f32[6,4] = Reshape(%x, %shape)
  %a: i64[1] = Neg(%axes)
  %s: f32[6] = ReduceSum(%r, %a) {keepdims = 0}
  %ys: i64[2] = Shape(%y)
  %r2: f32[6,4] = Reshape(%x, %ys)
  %e: f32[6] = ReduceSum(%r2, %a) {keepdims = 0}
  %o: f32[6] = Add(%s, %e)
  return %o
}''', opset=18)
    # %axes reaches ReduceSum through Neg; %y only through Shape (its values never matter); %x is data
    assert shape_inputs(graph) == ["shape", "axes"]
    reduce = graph.nodes[2]
    assert reads_input_values(reduce.inputs[1])
    assert not reads_input_values(graph.nodes[4].inputs[1])


def test_bind_inputs_makes_shapes_static_and_checks_what_it_binds() -> None:
    from onnx import TensorProto, helper

    from mlc.onnx_io.importer import import_onnx

    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3]),
         helper.make_tensor_value_info("shape", TensorProto.INT64, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    original = model.SerializeToString()
    bound = import_onnx(model, bind_inputs={"shape": np.array([3, 2])})  # int32 values fit int64
    assert [v.name for v in bound.inputs] == ["x"]
    assert bound.outputs[0].type.shape == (3, 2), "shape inference sees the bound value"
    assert model.SerializeToString() == original, "the caller's model is not modified"
    with pytest.raises(BadInputError, match="values of type float64 do not fit"):
        import_onnx(model, bind_inputs={"shape": np.array([1.5, 4.0])})
    with pytest.raises(BadInputError, match="no such input"):
        import_onnx(model, bind_inputs={"axes": np.array([0])})


def test_static_shapes_fix_dynamic_dims_so_shape_chains_fold() -> None:
    from onnx import TensorProto, helper

    from mlc.onnx_io.importer import import_onnx
    from mlc.testing import run_pass

    graph = helper.make_graph(
        [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Reshape", ["x", "s"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    fixed = import_onnx(model, static_shapes={"x": (2, 5)})
    assert fixed.inputs[0].type.shape == (2, 5)
    _, ctx = run_pass("fold-constants", fixed)
    assert ctx.stats["folded"] == 1  # Shape(x) is a constant now
    with pytest.raises(BadInputError, match=r"cannot fix the shape of 'x' to \[2\]"):
        import_onnx(model, static_shapes={"x": (2,)})


def test_a_dynamic_gpt_compiles_for_llvm_once_its_shape_is_fixed(tmp_path, capsys) -> None:
    """TVM's frontend cannot convert the exporter's dynamic shape chains (Gather of shape_of);
    fixed input dims make them fold away."""
    pytest.importorskip("tvm", reason="apache-tvm is not installed (pip install 'mlc[tvm]')")
    import importlib.util
    from pathlib import Path

    import onnx

    from mlc.cli import main

    script = Path(__file__).resolve().parents[1] / "models" / "make_transformers.py"
    spec = importlib.util.spec_from_file_location("make_transformers", script)
    assert spec is not None and spec.loader is not None
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    path = tmp_path / "gpt.onnx"
    onnx.save(builder.build_gpt(layers=1, hidden=32, heads=2), str(path))
    code = main(["compile", str(path), "--target", "llvm", "--static-shape", "input_ids:1,8",
                 "-o", str(tmp_path / "a")])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "numbers ok" in out.out
