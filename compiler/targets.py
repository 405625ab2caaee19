"""Which backend serves which target; backends are imported lazily so that a missing heavy
library (TVM, TensorRT) costs nothing until asked for, and then gives one line naming the install."""

from __future__ import annotations

import importlib

from mlc.backends.base import Availability, Backend
from mlc.errors import BadInputError, TargetUnavailableError, did_you_mean

# target -> (module, class, what to install when the module cannot be imported)
TARGETS: dict[str, tuple[str, str, str]] = {
    "onnxruntime": ("mlc.backends.onnxruntime", "OnnxRuntimeBackend", "pip install onnxruntime"),
    "onnxruntime-cuda": ("mlc.backends.onnxruntime", "OnnxRuntimeBackend", "pip install onnxruntime-gpu"),
    "llvm": ("mlc.backends.tvm", "TvmBackend", "pip install 'mlc[tvm]'"),
    "cuda": ("mlc.backends.tvm", "TvmBackend", "pip install 'mlc[tvm]'"),
    "tensorrt": ("mlc.backends.tensorrt", "TensorRTBackend", "pip install 'mlc[tensorrt]' on a machine with a GPU"),
}


def backend_for(target: str) -> Backend:
    """The backend of `target` (BadInputError for an unknown target, TargetUnavailableError when
    its library cannot be imported)."""
    if target not in TARGETS:
        raise BadInputError(f"unknown target {target!r}{did_you_mean(target, TARGETS)} "
                            f"(known: {', '.join(TARGETS)})")
    module_name, class_name, install = TARGETS[target]
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        missing = error.name or str(error)
        if missing == module_name:
            raise TargetUnavailableError(f"target {target} is not available: this mlc has no {target} backend yet") \
                from None
        raise TargetUnavailableError(f"target {target} is not available: {missing} cannot be imported ({install})") \
            from None
    backend: Backend = getattr(module, class_name)()
    return backend


def availability(target: str) -> Availability:
    try:
        return backend_for(target).available(target)
    except TargetUnavailableError as error:
        return Availability(False, str(error).split(": ", 1)[-1])


def require(target: str) -> Backend:
    backend = backend_for(target)
    state = backend.available(target)
    if not state.ok:
        raise TargetUnavailableError(f"target {target} is not available on this machine: {state.reason}")
    return backend
