"""mlc: a model compiler for ONNX models.

Public API (tests and tools outside the package use exactly these):
`import_onnx`, `export_onnx`, `save_onnx`, `print_ir`, `parse_ir`, `assert_graph_equal`, `verify`,
`compile` (model → artifact folder), `optimize` (model → optimized .onnx), `debug` (pass-by-pass
check and localization), `run` (artifact → outputs), `bench`, `load` (artifact folder →
`.run(feeds)`), and the error classes rooted at `MlcError` (each carries its process exit code).
"""

# First, before anything loads onnxruntime: no telemetry from a compiler (mlc/offline.py says why).
from mlc.offline import opt_out_of_telemetry

opt_out_of_telemetry()


def _wire_layers() -> None:
    """The composition root: lower layers define a hook, this installs what a higher layer
    provides, so that no module imports a layer above its own (tests/test_layers.py)."""
    from mlc.pass_api import set_pass_loader
    from mlc.pipelines import TargetPasses, set_target_passes

    def load_builtin_passes() -> None:
        import mlc.passes  # noqa: F401 - importing registers every built-in pass

    def target_passes(target: str) -> TargetPasses:
        from mlc.targets import backend_for

        return backend_for(target)

    set_pass_loader(load_builtin_passes)
    set_target_passes(target_passes)


_wire_layers()

from mlc.api import bench, compile, debug, optimize, run, tune  # noqa: E402
from mlc.errors import (  # noqa: E402
    BadInputError,
    InternalError,
    MlcError,
    NumericMismatchError,
    TargetUnavailableError,
    VerificationError,
)
from mlc.ir import Graph, assert_graph_equal, parse_ir, print_ir, verify  # noqa: E402
from mlc.onnx_io import export_onnx, import_onnx, save_onnx  # noqa: E402

__version__ = "0.1.0"


def load(folder):  # type: ignore[no-untyped-def]
    """Load an artifact folder; `.run(feeds)` executes it (see `mlc.artifact.load`)."""
    from mlc.artifact import load as load_artifact

    return load_artifact(folder)


__all__ = [
    "BadInputError", "Graph", "InternalError", "MlcError", "NumericMismatchError", "TargetUnavailableError",
    "VerificationError", "__version__", "assert_graph_equal", "bench", "compile", "debug", "export_onnx",
    "import_onnx", "load", "optimize", "parse_ir", "print_ir", "run", "save_onnx", "tune", "verify",
]
