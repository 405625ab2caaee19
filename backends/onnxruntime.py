"""The ONNX Runtime backend: targets `onnxruntime` (CPU) and `onnxruntime-cuda` (CUDA EP).

The artifact is portable ai.onnx ONNX (`model.onnx`, plus `model.onnx.data` past 2 GB) and the
session options to open it with; no hardware-specific ORT format, so the same artifact opens on
any machine with a recent enough onnxruntime. Tensors of types numpy cannot hand to onnxruntime
(bfloat16, float8, 4-bit) travel as OrtValues of raw ONNX-layout bytes.
"""

from __future__ import annotations

import ctypes
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from mlc.backends.base import Availability, Backend, CompileResult, Runner
from mlc.ir.core import Graph
from mlc.ir.dtypes import DType
from mlc.onnx_io.exporter import save_onnx

CPU, CUDA = "onnxruntime", "onnxruntime-cuda"
_PROVIDERS = {CPU: ["CPUExecutionProvider"], CUDA: ["CUDAExecutionProvider", "CPUExecutionProvider"]}

# onnxruntime's CPU kernel for com.microsoft SkipLayerNormalization is slower than the ai.onnx
# Add + Add + LayerNormalization it replaces: 1.4x at [1,16,128], 2.7x at [1,128,128], 2.6x at
# [1,128,768] (onnxruntime 1.31, default sessions, benchmarks/bench_skip_layernorm.py). On CPU mlc neither emits it
# (no fuse-skip-layernorm in -O3) nor lets the session build it (its SkipLayerNormFusion is off).
_CPU_SLOWER_FUSIONS = {"fuse-skip-layernorm"}
_CPU_DISABLED_ORT_OPTIMIZERS = ["SkipLayerNormFusion"]
# The affine folds mlc's own passes make or refuse (fuse-batchnorm, fuse-conv-affine): a pattern left
# in the graph was left on purpose, e.g. a float16 fold that would overflow to Inf
# (mlc.numerics.narrowing), so the session must not redo it. Spelled as onnxruntime 1.31 names them
# (`MatMulBNFusion` would be ignored silently); tests/numerics_hazards pins the names.
_DISABLED_REFOLDS = ["ConvBNFusion", "ConvMulFusion", "ConvAddFusion", "MatMul_BatchNormalization_Fusion"]
# onnxruntime's SimplifiedLayerNormFusion turns a float64 x / Sqrt(ReduceMean(x^2) + eps) * g (RMS
# norm) into com.microsoft::SimplifiedLayerNormalization, which keeps its statistics in float32:
# the float64 model's outputs then differ by 1e-5 relative (fuzz seed 310982). Off for graphs that
# compute in float64.
_DISABLED_FOR_FLOAT64 = ["SimplifiedLayerNormFusion"]


def _ort_version() -> str | None:
    try:
        return metadata.version("onnxruntime")
    except metadata.PackageNotFoundError:
        try:
            return metadata.version("onnxruntime-gpu")
        except metadata.PackageNotFoundError:
            return None


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".")[:2] if p.isdigit())


def _pack_subbyte(array: np.ndarray, bits: int) -> bytes:
    """ONNX's packed layout for 4- and 2-bit types: low bits first within each byte."""
    codes = array.reshape(-1).view(np.uint8) & ((1 << bits) - 1)
    per_byte = 8 // bits
    padded = np.zeros(-(-codes.size // per_byte) * per_byte, np.uint8)
    padded[:codes.size] = codes
    packed = np.zeros(padded.size // per_byte, np.uint8)
    for k in range(per_byte):
        packed |= padded[k::per_byte] << (bits * k)
    return packed.tobytes()


def _to_ortvalue(value: np.ndarray) -> Any:
    import onnxruntime as ort

    try:
        dtype = DType.from_numpy(value.dtype)
    except TypeError:
        dtype = DType.UNDEFINED
    if not dtype.is_exotic:
        return ort.OrtValue.ortvalue_from_numpy(np.require(value, requirements="C"))
    raw = _pack_subbyte(value, dtype.bits) if dtype.bits < 8 else np.ascontiguousarray(value).tobytes()
    ortvalue = ort.OrtValue.ortvalue_from_shape_and_type(list(value.shape), int(dtype))
    if raw:
        ctypes.memmove(ortvalue.data_ptr(), raw, len(raw))
    return ortvalue


def _from_ortvalue(ortvalue: Any) -> Any:
    if not ortvalue.is_tensor():
        return ortvalue.numpy()
    dtype = DType(ortvalue.element_type())
    if not dtype.is_exotic:
        return ortvalue.numpy()
    shape = tuple(ortvalue.shape())
    size = ortvalue.tensor_size_in_bytes()
    raw = np.frombuffer(ctypes.string_at(ortvalue.data_ptr(), size), np.uint8) if size else np.zeros(0, np.uint8)
    if dtype.bits < 8:
        from mlc.onnx_io.external_data import unpacked

        count = int(np.prod(shape)) if shape else 1
        return unpacked(dtype, raw, count).reshape(shape)
    return raw.view(dtype.numpy).reshape(shape)


def session_settings(target: str, level: str = "ORT_ENABLE_ALL") -> dict[str, Any]:
    """The session settings an artifact for `target` records (manifest `backend_options`)."""
    return {"graph_optimization_level": level, "providers": _PROVIDERS[target],
            "disabled_optimizers": [*(_CPU_DISABLED_ORT_OPTIMIZERS if target == CPU else []), *_DISABLED_REFOLDS]}


def open_session(model: Path | bytes, settings: dict[str, Any], threads: int = 0,
                 config: dict[str, str] | None = None) -> Any:
    """An InferenceSession opened the way the artifact's settings say (manifests written before
    `disabled_optimizers` existed open with none disabled)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, settings["graph_optimization_level"])
    options.log_severity_level = 4  # fatal only: its errors reach us as exceptions, its logs never reach stderr
    if threads:
        options.intra_op_num_threads = threads
    for key, value in (config or {}).items():
        options.add_session_config_entry(key, value)
    source = str(model) if isinstance(model, Path) else model
    return ort.InferenceSession(source, options, providers=settings["providers"],
                                disabled_optimizers=list(settings.get("disabled_optimizers", [])))


class OrtRunner(Runner):
    def __init__(self, model_path: Path, settings: dict[str, Any], threads: int = 0) -> None:
        self.session = open_session(model_path, settings, threads)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        exotic = {f"tensor({d.name.lower()})" for d in DType if d.is_exotic}
        self.exotic_outputs = any(o.type in exotic for o in self.session.get_outputs())

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feeds = {k: v for k, v in feeds.items() if k in self.input_names}
        needs_ortvalues = self.exotic_outputs or any(_is_exotic(v) for v in feeds.values())
        if not needs_ortvalues:
            return dict(zip(self.output_names, self.session.run(None, feeds), strict=True))
        values = {k: _to_ortvalue(v) if isinstance(v, np.ndarray) else v for k, v in feeds.items()}
        results = self.session.run_with_ort_values(None, values)
        return {name: _from_ortvalue(v) for name, v in zip(self.output_names, results, strict=True)}


def _is_exotic(value: Any) -> bool:
    if not isinstance(value, np.ndarray) or value.dtype == object:
        return False
    try:
        return DType.from_numpy(value.dtype).is_exotic
    except TypeError:
        return False


def _without_float64_losses(settings: dict[str, Any], graph: Graph) -> dict[str, Any]:
    """`settings` with the session fusions that compute a float64 graph's values in float32 off,
    when the graph holds float64 values (its main graph or a sub-graph)."""
    from mlc.ir.dtypes import DType
    from mlc.ir.types import TensorType

    double = any(isinstance(v.type, TensorType) and v.type.dtype == DType.DOUBLE
                 for sub in graph.all_graphs() for node in sub for v in [*node.inputs, *node.outputs]
                 if v is not None)
    if not double:
        return settings
    disabled = list(settings.get("disabled_optimizers", []))
    return {**settings, "disabled_optimizers": [*disabled, *[d for d in _DISABLED_FOR_FLOAT64 if d not in disabled]]}


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    targets = (CPU, CUDA)

    def available(self, target: str) -> Availability:
        version = _ort_version()
        if version is None:
            return Availability(False, "onnxruntime is not installed: pip install onnxruntime")
        if target == CUDA:
            import onnxruntime as ort

            if "CUDAExecutionProvider" not in ort.get_available_providers():
                return Availability(False, "onnxruntime has no CUDA execution provider here: "
                                           "pip install onnxruntime-gpu on a machine with an NVIDIA GPU")
        return Availability(True, f"onnxruntime {version}")

    def legalization(self, target: str) -> list[str]:
        """Range bounds as scalars: onnxruntime's shape inference refuses [1] ones once folding
        made the other bounds constants."""
        return ["scalarize-range"]

    def composites(self, target: str) -> list[str]:
        """onnxruntime's contrib fusions (com.microsoft domain): Conv/Gemm+activation, GELU forms,
        attention, skip/bias fusions. Only those whose pass is registered are used, and on CPU not
        those whose composite runs slower than the ops it replaces (_CPU_SLOWER_FUSIONS)."""
        from mlc.pass_api import registered_passes

        wanted = ["fuse-conv-activation", "fuse-gemm-activation", "fuse-gelu{contrib=true}",
                  "fuse-attention{form=contrib}", "fuse-embed-layernorm", "fuse-skip-layernorm", "fuse-bias-gelu"]
        available = set(registered_passes())
        slower = _CPU_SLOWER_FUSIONS if target == CPU else set()
        specs = [spec for spec in wanted if spec.partition("{")[0] in available - slower]
        return [*specs, "dce"] if specs else []

    def check_runnable(self, target: str, requirements: dict[str, Any]) -> Availability:
        here = self.available(target)
        if not here.ok:
            return here
        need = requirements.get("onnxruntime_min")
        version = _ort_version() or "0"
        if need and _version_tuple(version) < _version_tuple(need):
            return Availability(False, f"the artifact needs onnxruntime >= {need}, this machine has {version}")
        return here

    def compile(self, graph: Graph, target: str, options: dict[str, Any], out_dir: Path) -> CompileResult:
        save_onnx(graph, out_dir / "model.onnx", value_info=False)  # onnxruntime infers types itself
        files = sorted(p.name for p in out_dir.iterdir() if p.name.startswith("model.onnx"))
        level = options.get("ort_optimization_level", "ORT_ENABLE_ALL")
        version = _ort_version() or ""
        return CompileResult(
            files=files,
            requirements={"onnxruntime_min": ".".join(version.split(".")[:2]),
                          "execution_providers": _PROVIDERS[target][:1]},
            options=_without_float64_losses(session_settings(target, level), graph),
        )

    def load(self, artifact_dir: Path, manifest: dict[str, Any]) -> Runner:
        backend_options = manifest["backend_options"]
        return OrtRunner(artifact_dir / "model.onnx", backend_options)
