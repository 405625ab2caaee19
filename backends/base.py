"""The backend contract (DESIGN.md): name and targets, availability with a reason, compile into a
folder, load a runner from an artifact.

A backend never sees ONNX protobufs: it gets the IR and writes its files with the IR's tools
(`mlc.save_onnx`) or its own compiler. `compile` writes only inside `out_dir` (a temporary folder
the driver renames into place), and returns what the manifest should record about the result.
A backend whose artifact can only be built or run on a GPU machine (TensorRT) says so through
`available()` and `check_runnable()`, so that `mlc targets`, `mlc compile` and `mlc run` refuse
with one line instead of a deep traceback.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlc.ir.core import Graph


@dataclass
class Availability:
    ok: bool
    reason: str = ""


@dataclass
class CompileResult:
    """What a backend reports back: its files (relative to the artifact folder) and what a machine
    needs to run them (portability constraints), plus backend options worth recording."""

    files: list[str]
    requirements: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)


class Runner(ABC):
    """Executes a loaded artifact."""

    @abstractmethod
    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Outputs keyed by graph output name."""


class Backend(ABC):
    name: str = ""
    targets: tuple[str, ...] = ()

    @abstractmethod
    def available(self, target: str) -> Availability:
        """Whether `target` can be compiled on this machine, and if not, why (one line)."""

    def validate_options(self, target: str, options: dict[str, Any]) -> None:
        """Check the backend options for `target` (`mcpu`, `cuda_arch`, ...) and raise
        `BadInputError` (exit 2) with one line naming the flag, the value and the nearest valid
        names. Called by the driver before any work, so that a bad backend option fails fast
        instead of after the pipeline (or, worse, being ignored). The default accepts anything."""
        return None

    def legalization(self, target: str) -> list[str]:
        """Pass specs the driver appends to the pipeline for this target: rewrites of what the
        target lacks or gets wrong into what it handles. They run under the same numeric checks
        as every other pass and appear in the pass log, so a wrong legalization is found by
        `mlc debug` like any other pass."""
        return []

    def composites(self, target: str) -> list[str]:
        """Pass specs that build this target's own composite ops (onnxruntime's contrib kernels,
        ...), appended at -O3 only: their output runs on this target alone."""
        return []

    def quantization_options(self, target: str) -> dict[str, str]:
        """`quantize-qdq` options this target needs of `--quantize int8`'s QDQ graph (TensorRT:
        signed symmetric activations, float biases). The default is onnxruntime's form."""
        return {}

    def check_runnable(self, target: str, requirements: dict[str, Any]) -> Availability:
        """Whether an artifact with these requirements can run on this machine."""
        return self.available(target)

    @abstractmethod
    def compile(self, graph: Graph, target: str, options: dict[str, Any], out_dir: Path) -> CompileResult:
        """Write the artifact's files into `out_dir`."""

    @abstractmethod
    def load(self, artifact_dir: Path, manifest: dict[str, Any]) -> Runner:
        """A runner for a checked artifact."""
