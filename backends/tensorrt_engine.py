"""TensorRT calls: build a plan from an ONNX file, inspect its layers, run it.

The only module that imports `tensorrt`, and only inside functions: everything before the build
(support report, profiles, the fp16 cast pass, manifests, refusals) is decided elsewhere without
TensorRT, so it is tested on machines without a GPU, and this module runs only where a CUDA GPU
and `mlc[tensorrt]` are present (its tests skip with that reason elsewhere).

TensorRT 11 networks are strongly typed: precision is what the ONNX graph says (fp16 from
`convert-fp16`'s casts, int8 from QuantizeLinear/DequantizeLinear), there are no FP16/INT8 builder
flags to set. Builds use a timing cache (empty, or the one given), and the engine is built with
detailed profiling verbosity so that its layer list names the ONNX nodes each layer fuses
(`mlc.backends.tensorrt_layers`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlc.backends.tensorrt_profiles import Profile
from mlc.errors import BadInputError, InternalError


def tensorrt_version() -> str | None:
    """The installed TensorRT's version, or None (import fails without the package)."""
    try:
        import tensorrt as trt
    except ImportError:
        return None
    return str(trt.__version__)


@dataclass
class BuiltPlan:
    plan: bytes
    timing_cache: bytes
    layers_json: str


def _logger() -> Any:
    import tensorrt as trt

    return trt.Logger(trt.Logger.ERROR)


def parse_network(onnx_path: Path, shown: str) -> tuple[Any, Any, Any]:
    """(builder, network, parser) for the ONNX file; a parser refusal is one line naming our node."""
    import tensorrt as trt

    builder = trt.Builder(_logger())
    flags = 0
    major = int(str(trt.__version__).split(".")[0])
    if major < 11 and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)  # 11 is always strongly typed
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, _logger())
    if not parser.parse_from_file(str(onnx_path)):
        errors = [parser.get_error(i) for i in range(parser.num_errors)]
        described = [f"{e.node_name() or '?'} ({e.node_operator() or '?'}): {e.desc()}" for e in errors[:3]]
        more = f" and {len(errors) - 3} more" if len(errors) > 3 else ""
        raise BadInputError(f"{shown}: TensorRT {trt.__version__}'s ONNX parser refuses {'; '.join(described)}{more}")
    return builder, network, parser


def _mark_outputs(network: Any, names: Sequence[str]) -> None:
    wanted = set(names)
    present = {network.get_output(i).name for i in range(network.num_outputs)}
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        for j in range(layer.num_outputs):
            tensor = layer.get_output(j)
            if tensor.name in wanted and tensor.name not in present:
                network.mark_output(tensor)
                present.add(tensor.name)


def build_plan(onnx_path: Path, profiles: Mapping[str, Profile], timing_cache: bytes, shown: str, *,
               mark_outputs: Sequence[str] = (), optimization_level: int = 3) -> BuiltPlan:
    """Build a serialized engine: the network as the ONNX file says, one optimization profile,
    the timing cache given (b"": a new one), detailed layer information kept."""
    import tensorrt as trt

    builder, network, _parser = parse_network(onnx_path, shown)
    _mark_outputs(network, mark_outputs)
    config = builder.create_builder_config()
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    config.builder_optimization_level = optimization_level
    if hasattr(trt.BuilderFlag, "TF32"):  # fp32 means fp32: TF32's 10-bit mantissa misses 1e-3 in long sums
        config.clear_flag(trt.BuilderFlag.TF32)
    cache = config.create_timing_cache(timing_cache)
    config.set_timing_cache(cache, False)
    if profiles:
        profile = builder.create_optimization_profile()
        for name, p in profiles.items():
            profile.set_shape(name, p.min, p.opt, p.max)
        config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise InternalError(f"{shown}: TensorRT {trt.__version__} failed to build an engine from a network its "
                            "parser accepted (backend tensorrt)")
    plan_bytes = bytes(plan)
    engine = deserialize(plan_bytes)
    inspector = engine.create_engine_inspector()
    layers = inspector.get_engine_information(trt.LayerInformationFormat.JSON)
    return BuiltPlan(plan_bytes, bytes(config.get_timing_cache().serialize()), str(layers))


def deserialize(plan: bytes) -> Any:
    import tensorrt as trt

    runtime = trt.Runtime(_logger())
    engine = runtime.deserialize_cuda_engine(plan)
    if engine is None:
        raise BadInputError("the plan cannot be deserialized by this TensorRT (another version or GPU?)")
    return engine


class EngineRunner:
    """Runs a deserialized engine on numpy inputs: device buffers per call, shapes set per call."""

    def __init__(self, plan: bytes) -> None:
        import tensorrt as trt

        from mlc.backends import cuda_device

        self._trt = trt
        self._cuda = cuda_device
        self.engine = deserialize(plan)
        self.context = self.engine.create_execution_context()
        self.stream = cuda_device.new_stream()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        mode = trt.TensorIOMode.INPUT
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == mode]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) != mode]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        trt, cuda = self._trt, self._cuda
        buffers = []
        try:
            for name in self.inputs:
                array = np.ascontiguousarray(feeds[name], dtype=trt.nptype(self.engine.get_tensor_dtype(name)))
                if not self.context.set_input_shape(name, array.shape):
                    raise BadInputError(f"input {name}: shape {list(array.shape)} is outside the plan's optimization "
                                        "profile (manifest backend_options.profiles); rebuild with a wider "
                                        "--input-shape NAME:MIN..MAX")
                buffer = cuda.DeviceBuffer(array.nbytes)
                buffers.append(buffer)
                buffer.upload(array, self.stream)
                self.context.set_tensor_address(name, buffer.pointer)
            results = {}
            for name in self.outputs:
                shape = tuple(self.context.get_tensor_shape(name))
                if any(d < 0 for d in shape):
                    raise BadInputError(f"output {name}: its shape depends on the data ({list(shape)}), which "
                                        "mlc's TensorRT runner does not allocate yet")
                results[name] = np.empty(shape, trt.nptype(self.engine.get_tensor_dtype(name)))
                buffer = cuda.DeviceBuffer(results[name].nbytes)
                buffers.append(buffer)
                self.context.set_tensor_address(name, buffer.pointer)
            if not self.context.execute_async_v3(self.stream):
                raise InternalError("TensorRT's execute_async_v3 failed (backend tensorrt)")
            for name, buffer in zip(self.outputs, buffers[len(self.inputs):], strict=True):
                buffer.download(results[name], self.stream)
            cuda.synchronize(self.stream)
            return results
        finally:
            for buffer in buffers:
                buffer.close()
