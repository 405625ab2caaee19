"""mlc: a model compiler for ONNX models.

Public API (tests and tools outside the package use exactly these):
`import_onnx`, `export_onnx`, `save_onnx`, `print_ir`, `parse_ir`, `assert_graph_equal`, `verify`,
and the error classes rooted at `MlcError` (each carries its process exit code).
"""

from mlc.errors import (
    BadInputError,
    MlcError,
    NumericMismatchError,
    TargetUnavailableError,
    VerificationError,
)
from mlc.ir import Graph, assert_graph_equal, parse_ir, print_ir, verify
from mlc.onnx_io import export_onnx, import_onnx, save_onnx

__version__ = "0.1.0"

__all__ = [
    "BadInputError", "Graph", "MlcError", "NumericMismatchError", "TargetUnavailableError",
    "VerificationError", "__version__", "assert_graph_equal", "export_onnx", "import_onnx",
    "parse_ir", "print_ir", "save_onnx", "verify",
]
