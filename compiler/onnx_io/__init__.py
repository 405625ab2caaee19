"""The border with ONNX: the only package that touches onnx protobuf types."""

from mlc.onnx_io.exporter import export_onnx, save_onnx
from mlc.onnx_io.importer import import_onnx

__all__ = ["export_onnx", "import_onnx", "save_onnx"]
