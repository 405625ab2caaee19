"""mlc: a model compiler for ONNX models.

Public API (tests and tools outside the package use exactly these):
`import_onnx`, `export_onnx`, `save_onnx`, `print_ir`, `parse_ir`, `assert_graph_equal`, `verify`,
`compile` (model → artifact folder), `load` (artifact folder → `.run(feeds)`), and the error
classes rooted at `MlcError` (each carries its process exit code).
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


def compile(  # type: ignore[no-untyped-def]
    model, target: str = "onnxruntime", output=None, *, mcpu=None, cuda_arch=None, **options
):
    """Compile an .onnx file for `target` into an artifact folder (see `mlc.driver.compile_model`);
    `mcpu` (llvm) and `cuda_arch` (cuda) choose the machine to compile for."""
    from mlc.driver import compile_model

    backend_options = {k: v for k, v in (("mcpu", mcpu), ("cuda_arch", cuda_arch)) if v}
    folder, _ = compile_model(model, target, output, backend_options=backend_options, **options)
    return folder


def load(folder):  # type: ignore[no-untyped-def]
    """Load an artifact folder; `.run(feeds)` executes it (see `mlc.artifact.load`)."""
    from mlc.artifact import load as load_artifact

    return load_artifact(folder)

__all__ = [
    "BadInputError", "Graph", "MlcError", "NumericMismatchError", "TargetUnavailableError",
    "VerificationError", "__version__", "assert_graph_equal", "compile", "export_onnx", "import_onnx", "load",
    "parse_ir", "print_ir", "save_onnx", "verify",
]
