"""Memory-mapped external data gives the same values as onnx's own decoding, for every layout
(byte-sized, 16-bit floats, packed 4-bit and 2-bit types)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import mlc

CASES = [
    (TensorProto.FLOAT, np.float32),
    (TensorProto.DOUBLE, np.float64),
    (TensorProto.INT64, np.int64),
    (TensorProto.BOOL, np.bool_),
    (TensorProto.FLOAT16, np.float16),
    (TensorProto.BFLOAT16, ml_dtypes.bfloat16),
    (TensorProto.FLOAT8E4M3FN, ml_dtypes.float8_e4m3fn),
    (TensorProto.INT4, ml_dtypes.int4),
    (TensorProto.UINT4, ml_dtypes.uint4),
    (TensorProto.FLOAT4E2M1, ml_dtypes.float4_e2m1fn),
]


def _values(np_type: type, count: int) -> np.ndarray:
    rng = np.random.default_rng(3)
    if np_type is np.bool_:
        return rng.random(count) > 0.5
    if np_type in (ml_dtypes.int4,):
        return rng.integers(-8, 8, count).astype(np_type)
    if np_type in (ml_dtypes.uint4,):
        return rng.integers(0, 16, count).astype(np_type)
    if np_type is np.int64:
        return rng.integers(-(2**40), 2**40, count).astype(np_type)
    return (rng.standard_normal(count) * 2).astype(np_type)


@pytest.mark.parametrize(("elem", "np_type"), CASES, ids=[TensorProto.DataType.Name(c[0]) for c in CASES])
def test_external_values_match_onnx(tmp_path, elem: int, np_type: type) -> None:
    values = _values(np_type, 15).reshape(3, 5)  # odd count: the last 4-bit byte is half used
    inline = numpy_helper.from_array(values, "w")
    assert inline.data_type == elem
    raw = inline.raw_data
    (tmp_path / "w.bin").write_bytes(b"\x00" * 16 + raw)
    external = TensorProto(name="w", data_type=elem, dims=[3, 5], data_location=TensorProto.EXTERNAL)
    for key, value in (("location", "w.bin"), ("offset", "16"), ("length", str(len(raw)))):
        external.external_data.add(key=key, value=value)
    graph_proto = helper.make_graph([helper.make_node("Identity", ["w"], ["y"])], "g", [],
                                    [helper.make_tensor_value_info("y", elem, [3, 5])], [external])
    model = helper.make_model(graph_proto, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    graph = mlc.import_onnx(path)
    got = graph.initializers["w"].const.numpy()
    expected = numpy_helper.to_array(inline)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert got.tobytes() == expected.tobytes()
    exported = mlc.export_onnx(graph)
    assert numpy_helper.to_array(exported.graph.initializer[0]).tobytes() == expected.tobytes()
    assert onnx.TensorProto.EXTERNAL != exported.graph.initializer[0].data_location
