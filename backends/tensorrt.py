"""The TensorRT backend: target `tensorrt`, a serialized engine plan built from our IR.

Lowering exports the IR to ONNX (our node names, so TensorRT's layer names map back to our nodes)
and builds it with TensorRT's ONNX parser. Before anything is built:

* the graph is checked against the per-op support table (`mlc.op_support`, TensorRT's parser
  matrix with opset ranges): unsupported nodes are refused in one line by our node names (exit 2)
  instead of a parser error deep in a build;
* optimization profiles come from the graph's dims and `--input-shape NAME:MIN..MAX` or
  `NAME:min=..;opt=..;max=..` (`mlc.backends.tensorrt_profiles`), refused in one line where they
  disagree with the graph.

Precision is the graph's (TensorRT 11 is strongly typed): fp32, fp16 from `--precision fp16`
(`convert-fp16`'s casts), int8 from `--quantize int8`'s QuantizeLinear/DequantizeLinear.

The artifact holds `model.plan`, `model.onnx` (what the plan was built from), `timing.cache` and
`layers.json` (the engine's layer list, for `mlc debug`). The manifest records what ties a plan to
a machine: TensorRT's version, the GPU's name and compute capability (`requirements`), the
profiles, the timing cache's and the plan's sha256, and which steps of a rebuild are not
deterministic. `mlc run` refuses a plan built for another compute capability or TensorRT version
with one line naming both (exit 3): TensorRT would refuse to deserialize it, less clearly. A plan
built for another GPU model of the same compute capability runs (TensorRT allows it; its tactics
were timed on the other model, so it may be slower), and `mlc run` warns.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from mlc.backends.base import Availability, Backend, CompileResult, Runner
from mlc.backends.cuda_device import GpuProbe, current_gpu
from mlc.backends.tensorrt_profiles import Profile, derive_profiles
from mlc.errors import BadInputError
from mlc.hashing import file_sha256
from mlc.ir.core import Graph
from mlc.onnx_io.exporter import save_onnx

log = logging.getLogger(__name__)

TARGET = "tensorrt"
INSTALL = "needs a CUDA GPU and `pip install 'mlc[tensorrt]'`"
PLAN, ONNX, TIMING_CACHE, LAYERS = "model.plan", "model.onnx", "timing.cache", "layers.json"

# What a rebuild from the artifact's timing cache does not pin (facts from NVIDIA/TensorRT issues).
NOT_DETERMINISTIC = [
    "tactics missing from the timing cache are timed again on the GPU, and timing noise can pick others "
    "(NVIDIA/TensorRT#4730); mlc records whether the cache grew during the build (timing_cache_missed)",
    "kernels TensorRT compiles at build time (NVRTC, dynamic shapes) carry per-build names, so plan bytes can "
    "differ even when every tactic is the same (NVIDIA/TensorRT#3316)",
    "a rebuild from the same cache has produced engines with different outputs for large models "
    "(NVIDIA/TensorRT#4798): compare plan_sha256, not just the cache",
]


def _tensorrt_version() -> str | None:
    from mlc.backends.tensorrt_engine import tensorrt_version

    return tensorrt_version()


def portability_refusal(requirements: dict[str, Any], gpu: GpuProbe, version: str | None) -> str | None:
    """Why a plan with these requirements cannot run here (one line naming both sides), or None."""
    built_cc = str(requirements.get("compute_capability", "?"))
    built_gpu = str(requirements.get("gpu", "?"))
    built_version = str(requirements.get("tensorrt", "?"))
    built = f"the plan was built for compute capability {built_cc} ({built_gpu}) with TensorRT {built_version}"
    if version is None:
        return f"{built}; this machine has no TensorRT ({INSTALL})"
    if gpu.gpu is None:
        return f"{built}; this machine has {gpu.reason} ({INSTALL})"
    here = gpu.gpu
    if here.compute_capability != built_cc:
        return (f"{built}; this GPU is compute capability {here.compute_capability} ({here.name}): rebuild the "
                f"plan on this machine with mlc compile --target tensorrt")
    if version != built_version:
        return (f"{built}; this machine has TensorRT {version}: rebuild the plan here, or install "
                f"tensorrt=={built_version}")
    return None


class TensorRTRunner(Runner):
    def __init__(self, plan: bytes, output_names: list[str]) -> None:
        from mlc.backends.tensorrt_engine import EngineRunner

        self.engine = EngineRunner(plan)
        self.output_names = output_names

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = self.engine.run({k: v for k, v in feeds.items() if k in self.engine.inputs})
        return {name: results[name] for name in self.output_names if name in results}


def _read_timing_cache(options: dict[str, Any]) -> tuple[bytes, str | None]:
    path = options.get("timing_cache")
    if not path:
        return b"", None
    try:
        return Path(path).read_bytes(), str(path)
    except OSError as error:
        raise BadInputError(f"--timing-cache {path}: {error.strerror or error}") from None


class TensorRTBackend(Backend):
    name = "tensorrt"
    targets = (TARGET,)

    def available(self, target: str) -> Availability:
        version = _tensorrt_version()
        if version is None:
            return Availability(False, f"{INSTALL} (tensorrt cannot be imported)")
        gpu = current_gpu()
        if gpu.gpu is None:
            return Availability(False, f"{INSTALL} ({gpu.reason})")
        return Availability(True, f"TensorRT {version} on {gpu.gpu.name} (compute capability "
                                  f"{gpu.gpu.compute_capability})")

    def validate_options(self, target: str, options: dict[str, Any]) -> None:
        from mlc.backends.tensorrt_profiles import parse_profile_flags

        parse_profile_flags(options.get("input_profiles", []))
        cache = options.get("timing_cache")
        if cache and not Path(cache).is_file():
            raise BadInputError(f"--timing-cache {cache}: no such file")

    def legalization(self, target: str) -> list[str]:
        """Squeeze's omitted axes written out where the shape is static: TensorRT's parser takes
        them from 11.5 only, and torch's dynamo exporter writes them for every `x.size(i)`."""
        return ["explicit-squeeze-axes"]

    def quantization_options(self, target: str) -> dict[str, str]:
        """TensorRT's explicit quantization: int8 with zero point 0 (its Q/DQ layers are symmetric)
        and no int32 bias (its parser dequantizes int8/fp8/int4 only; it fuses the float bias)."""
        return {"activations": "s8", "symmetric_activations": "true", "int32_bias": "false"}

    def check_runnable(self, target: str, requirements: dict[str, Any]) -> Availability:
        probe = current_gpu()
        refusal = portability_refusal(requirements, probe, _tensorrt_version())
        if refusal is not None:
            return Availability(False, refusal)
        here = probe.gpu
        if here is not None and requirements.get("gpu") not in (None, here.name):
            log.warning("the plan was built on %s and runs on %s (same compute capability %s): its tactics were "
                        "timed on the other GPU", requirements.get("gpu"), here.name, here.compute_capability)
        return Availability(True, "")

    def compile(self, graph: Graph, target: str, options: dict[str, Any], out_dir: Path) -> CompileResult:
        from mlc.backends.tensorrt_engine import build_plan
        from mlc.op_support import require_supported

        require_supported(graph, TARGET)  # one line naming our nodes, before TensorRT sees the graph
        profiles = derive_profiles(graph, options.get("input_profiles", []))
        onnx_path = out_dir / ONNX
        save_onnx(graph, onnx_path)
        cache_in, cache_source = _read_timing_cache(options)
        built = build_plan(onnx_path, profiles, cache_in, str(onnx_path))
        (out_dir / PLAN).write_bytes(built.plan)
        (out_dir / TIMING_CACHE).write_bytes(built.timing_cache)
        (out_dir / LAYERS).write_text(built.layers_json)
        return CompileResult(files=sorted(p.name for p in out_dir.iterdir() if not p.name.startswith(".")),
                             requirements=plan_requirements(),
                             options=plan_options(profiles, out_dir, cache_in, built.timing_cache, cache_source))

    def load(self, artifact_dir: Path, manifest: dict[str, Any]) -> Runner:
        return TensorRTRunner((artifact_dir / PLAN).read_bytes(), [o["name"] for o in manifest["outputs"]])


def plan_requirements() -> dict[str, Any]:
    """What ties a plan to this machine: TensorRT's version, the GPU and its compute capability."""
    gpu = current_gpu().gpu
    return {"tensorrt": _tensorrt_version(), "gpu": gpu.name if gpu else None,
            "compute_capability": gpu.compute_capability if gpu else None, "hardware_compatibility": "none"}


def plan_options(profiles: dict[str, Profile], out_dir: Path, cache_in: bytes, cache_out: bytes,
                 cache_source: str | None) -> dict[str, Any]:
    """The manifest's record of a build: profiles, hashes, and what a rebuild does not pin."""
    import hashlib

    return {"profiles": {name: p.to_json() for name, p in profiles.items()},
            "plan_sha256": file_sha256(out_dir / PLAN),
            "timing_cache_sha256": hashlib.sha256(cache_out).hexdigest(),
            "timing_cache_source": cache_source or "new",
            "timing_cache_missed": cache_out != cache_in if cache_in else None,
            "strongly_typed": True, "tf32": False,
            "rebuild": "mlc compile MODEL --target tensorrt --timing-cache ARTIFACT/timing.cache (same flags)",
            "not_deterministic": NOT_DETERMINISTIC}
