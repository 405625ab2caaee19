"""Which inputs are shape operands, and binding them at import."""

from __future__ import annotations

import pytest

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


# binding and fixing themselves: tests/passes/test_bind_inputs.py, tests/passes/test_fix_input_shapes.py


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
