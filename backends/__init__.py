"""Backends: lower the mlc IR to a deployable artifact (onnxruntime, TVM, TensorRT)."""
