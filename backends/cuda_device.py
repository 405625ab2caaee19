"""The CUDA GPU of this machine, as TensorRT plans care about it, and device buffers to run them.

A TensorRT plan runs only on the compute capability it was built for (unless built hardware
compatible) and with the TensorRT version that built it, so an artifact records both and `mlc run`
compares them with what this module finds. It uses NVIDIA's `cuda-bindings` (part of
`mlc[tensorrt]`), whose import works without a driver: on a machine without a GPU `current_gpu()`
says why in words instead of failing, which is what `mlc targets` prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class GpuFacts:
    """The GPU a plan is built for or run on: its name and compute capability (`9.0`)."""

    name: str
    compute_capability: str


@dataclass(frozen=True)
class GpuProbe:
    gpu: GpuFacts | None
    reason: str = ""


def _runtime() -> Any:
    from cuda.bindings import runtime

    return runtime


def _check(result: Any, what: str) -> Any:
    """cuda-bindings returns (error, value...): the value, or RuntimeError naming the call."""
    error, *values = result if isinstance(result, tuple) else (result,)
    if int(error) != 0:
        raise RuntimeError(f"{what} failed: {getattr(error, 'name', error)}")
    return values[0] if len(values) == 1 else tuple(values)


def current_gpu(device: int = 0) -> GpuProbe:
    """GPU `device` of this machine, or why there is none (no cuda-bindings, no driver, no GPU)."""
    try:
        runtime = _runtime()
    except ImportError:
        return GpuProbe(None, "cuda-bindings is not installed (pip install 'mlc[tensorrt]')")
    error, count = runtime.cudaGetDeviceCount()
    if int(error) != 0 or count == 0:
        why = getattr(error, "name", str(error)) if int(error) != 0 else "no device"
        return GpuProbe(None, f"no CUDA GPU ({why})")
    props = _check(runtime.cudaGetDeviceProperties(device), "cudaGetDeviceProperties")
    name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else str(props.name)
    return GpuProbe(GpuFacts(name.rstrip("\0").strip(), f"{props.major}.{props.minor}"))


class DeviceBuffer:
    """`nbytes` of device memory, freed when closed."""

    def __init__(self, nbytes: int) -> None:
        self.nbytes = max(int(nbytes), 1)
        self.pointer = int(_check(_runtime().cudaMalloc(self.nbytes), "cudaMalloc"))

    def upload(self, array: np.ndarray, stream: Any) -> None:
        runtime = _runtime()
        data = np.ascontiguousarray(array)
        _check(runtime.cudaMemcpyAsync(self.pointer, data.ctypes.data, data.nbytes,
                                       runtime.cudaMemcpyKind.cudaMemcpyHostToDevice, stream), "cudaMemcpyAsync")

    def download(self, array: np.ndarray, stream: Any) -> None:
        runtime = _runtime()
        _check(runtime.cudaMemcpyAsync(array.ctypes.data, self.pointer, array.nbytes,
                                       runtime.cudaMemcpyKind.cudaMemcpyDeviceToHost, stream), "cudaMemcpyAsync")

    def close(self) -> None:
        if self.pointer:
            _check(_runtime().cudaFree(self.pointer), "cudaFree")
            self.pointer = 0


def new_stream() -> Any:
    return _check(_runtime().cudaStreamCreate(), "cudaStreamCreate")


def synchronize(stream: Any) -> None:
    _check(_runtime().cudaStreamSynchronize(stream), "cudaStreamSynchronize")
