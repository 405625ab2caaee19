"""The Apache TVM backend: targets `llvm` (CPU) and `cuda` (NVIDIA GPU).

Lowering goes through TVM's Relax ONNX frontend on the graph our pipeline produced (exported to
ONNX in memory): it covers the most ops, and our own legalizations run before it. Ops the
frontend does not know are reported in one line before TVM is asked. The artifact is
`module.so`, the compiled library with its weights as constants, which TVM's runtime alone loads
(`tvm.runtime.load_module` + `relax.VirtualMachine`).

`llvm` compiles for the host CPU unless `mcpu` is given (cross-compiling); the artifact records
the CPU features the code may use, and `mlc run` refuses it on a CPU that lacks one. `cuda`
compiles without a GPU (the wheel has CUDA codegen) for `cuda_arch` (default sm_80); running it
needs a GPU of at least that architecture.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mlc.backends.base import Availability, Backend, CompileResult, Runner
from mlc.errors import BadInputError
from mlc.ir.core import Graph
from mlc.onnx_io.exporter import export_onnx

LLVM, CUDA = "llvm", "cuda"
DEFAULT_CUDA_ARCH = "sm_80"


def _tvm() -> Any:
    import tvm

    return tvm


def host_cpu() -> str:
    from tvm.target import codegen

    return str(codegen.llvm_get_system_cpu())


def cpu_features(mcpu: str) -> list[str]:
    """LLVM's feature names enabled for `mcpu` (what code compiled for it may use)."""
    tvm = _tvm()
    from tvm.target import codegen

    target = tvm.target.Target({"kind": "llvm", "mcpu": mcpu})
    features = codegen.llvm_get_cpu_features(target)
    return sorted(str(f) for f in features)


def unsupported_ops(graph: Graph) -> list[str]:
    """Ops (domain::op) of the graph and its sub-graphs that TVM's ONNX frontend cannot convert."""
    from tvm.relax.frontend.onnx import onnx_frontend

    known = set(onnx_frontend._get_convert_map()) | {"If"}  # If is converted by the frontend itself
    missing = set()
    for node in graph.all_nodes():
        if node.domain not in ("", "ai.onnx") or node.op_type not in known:
            missing.add(f"{node.domain}::{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type)
    return sorted(missing)


class TvmRunner(Runner):
    def __init__(self, library: Path, target: str, input_names: list[str], output_names: list[str]) -> None:
        tvm = _tvm()
        from tvm import relax

        self.tvm = tvm
        self.device = tvm.cpu() if target == LLVM else tvm.cuda(0)
        module = tvm.runtime.load_module(str(library))
        self.vm = relax.VirtualMachine(module, self.device)
        self.input_names = input_names
        self.output_names = output_names

    def _to_numpy(self, value: Any) -> Any:
        tvm = self.tvm
        if isinstance(value, tvm.runtime.Tensor):
            return value.numpy()
        if isinstance(value, tvm.runtime.ShapeTuple):
            return np.array([int(v) for v in value], dtype=np.int64)
        if isinstance(value, bool | int | float | np.generic):
            return np.array(value)
        return [self._to_numpy(v) for v in value]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        args = [self.tvm.runtime.tensor(np.require(feeds[name], requirements="C"), device=self.device)
                for name in self.input_names if name in feeds]
        result = self.vm["main"](*args)
        if len(self.output_names) == 1:
            return {self.output_names[0]: self._to_numpy(result)}
        return {name: self._to_numpy(v) for name, v in zip(self.output_names, result, strict=True)}


class TvmBackend(Backend):
    name = "tvm"
    targets = (LLVM, CUDA)

    def available(self, target: str) -> Availability:
        try:
            tvm = _tvm()
        except ImportError:
            return Availability(False, "apache-tvm is not installed: pip install 'mlc[tvm]'")
        codegen = "llvm" if target == LLVM else "cuda"
        if tvm.get_global_func(f"target.build.{codegen}", allow_missing=True) is None:
            return Availability(False, f"this TVM build has no {codegen} code generator")
        if target == CUDA:
            import shutil

            if shutil.which("nvcc") is None:
                return Availability(False, "cuda needs nvcc (the CUDA toolkit) to compile")
            gpu = "a GPU is present" if tvm.cuda(0).exist else "compiles here; running needs an NVIDIA GPU"
            return Availability(True, f"apache-tvm {tvm.__version__} ({gpu})")
        return Availability(True, f"apache-tvm {tvm.__version__} (host CPU {host_cpu()})")

    def check_runnable(self, target: str, requirements: dict[str, Any]) -> Availability:
        try:
            tvm = _tvm()
        except ImportError:
            return Availability(False, "apache-tvm is not installed: pip install 'mlc[tvm]'")
        if target == LLVM:
            needed = set(requirements.get("cpu_features", []))
            have = set(cpu_features(host_cpu()))
            lacking = sorted(f for f in needed - have if f.startswith("+"))
            if lacking:
                return Availability(False, f"this CPU ({host_cpu()}) lacks {', '.join(lacking[:8])}"
                                           + (" ..." if len(lacking) > 8 else "")
                                           + f"; recompile with --mcpu {host_cpu()}")
            return Availability(True, "")
        if not tvm.cuda(0).exist:
            return Availability(False, "no CUDA GPU on this machine")
        arch = requirements.get("cuda_arch", DEFAULT_CUDA_ARCH)
        have = tvm.cuda(0).compute_version.replace(".", "")
        if int(have) < int(arch.removeprefix("sm_")):
            return Availability(False, f"the artifact needs {arch}, this GPU is sm_{have}")
        return Availability(True, "")

    def compile(self, graph: Graph, target: str, options: dict[str, Any], out_dir: Path) -> CompileResult:
        tvm = _tvm()
        from tvm import relax
        from tvm.relax.frontend.onnx import from_onnx

        missing = unsupported_ops(graph)
        if missing:
            raise BadInputError(f"target {target}: TVM's ONNX frontend cannot convert {', '.join(missing)}")
        opset = graph.opset_version("") or 17
        module = from_onnx(export_onnx(graph), opset=opset, keep_params_in_input=False)
        module = relax.transform.DecomposeOpsForInference()(module)
        if target == LLVM:
            mcpu = options.get("mcpu") or host_cpu()
            tvm_target = tvm.target.Target({"kind": "llvm", "mcpu": mcpu})
            requirements: dict[str, Any] = {"mtriple": str(tvm_target.attrs.get("mtriple", "")), "mcpu": mcpu,
                                            "cpu_features": cpu_features(mcpu)}
            recorded = {"mcpu": mcpu}
        else:
            arch = options.get("cuda_arch") or DEFAULT_CUDA_ARCH
            # Sizes every NVIDIA GPU since sm_50 has; given so that TVM does not guess (and warn).
            tvm_target = tvm.target.Target({"kind": "cuda", "arch": arch, "max_shared_memory_per_block": 49152,
                                            "max_threads_per_block": 1024, "thread_warp_size": 32})
            requirements = {"cuda_arch": arch}
            recorded = {"cuda_arch": arch}
        with tvm_target, tvm.transform.PassContext(opt_level=3):
            executable = tvm.compile(module, target=tvm_target)
        executable.export_library(str(out_dir / "module.so"))
        requirements["tvm_runtime"] = tvm.__version__
        return CompileResult(files=["module.so"], requirements=requirements, options=recorded)

    def load(self, artifact_dir: Path, manifest: dict[str, Any]) -> Runner:
        return TvmRunner(artifact_dir / "module.so", manifest["target"],
                         [i["name"] for i in manifest["inputs"] if not i.get("default")],
                         [o["name"] for o in manifest["outputs"]])
