"""CPU schedules for TVM's `llvm` target without tuning: which rules schedule which kernels.

TVM 0.27's default Relax pipeline for `llvm` legalizes every operator to TIR and compiles the
loops as they are: no tiling, no vectors, one core (the project's zoo ran at 0.06x onnxruntime's
speed, median). Its `dlight` rules for CPU cover only GEMV and reductions. This module builds the
same pipeline with one step added after fusion: `dlight.ApplyDefaultSchedule` over mlc's rules,
first match wins, in this order:

* `tvm_sched_conv.Conv2dRule`: 2-D convolutions (dense, grouped, depthwise) with their fused
  epilogues;
* `tvm_sched_matmul.MatmulRule`: matmul / dense / batch matmul;
* dlight's own `cpu.GEMV` and `cpu.Reduction`;
* `tvm_sched_generic.ElementwiseRule`: every other spatial kernel (elementwise, layout, pooling),
  parallel over cores and vectorized.

A rule module that is missing (not yet written) is skipped. A kernel no rule takes keeps TVM's
default loops. Rules are deterministic: the same module and target give the same schedule, so
artifacts stay byte-identical. `schedules="none"` (backend option) builds with TVM's default
pipeline, for comparison.
"""

from __future__ import annotations

import importlib
from typing import Any

SCHEDULES = ("mlc", "none")
_RULES = (("mlc.backends.tvm_sched_conv", "Conv2dRule"), ("mlc.backends.tvm_sched_matmul", "MatmulRule"),
          ("dlight", "GEMV"), ("dlight", "Reduction"), ("mlc.backends.tvm_sched_generic", "ElementwiseRule"))


def cpu_rules() -> list[Any]:
    """The rule instances, in the order they are tried."""
    import tvm.s_tir.dlight as dl

    rules: list[Any] = []
    for module_name, class_name in _RULES:
        if module_name == "dlight":
            rules.append(getattr(dl.cpu, class_name)())
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            continue
        rules.append(getattr(module, class_name)())
    return rules


def relax_pipeline(target: Any, rules: list[Any] | None = None) -> Any:
    """TVM's CPU pipeline (`relax.backend.cpu_generic`) with `ApplyDefaultSchedule(rules)` after
    legalization and fusion."""
    import tvm
    import tvm.s_tir.dlight as dl
    from tvm.relax.backend.cpu_generic import pipeline as cpu

    chosen = cpu_rules() if rules is None else rules

    @tvm.transform.module_pass(opt_level=0)
    def _pipeline(mod: Any, _ctx: Any) -> Any:
        with target:
            passes = [*cpu.library_dispatch_passes(target), *cpu.legalize_passes(target)]
            if chosen:
                passes.append(dl.ApplyDefaultSchedule(*chosen))
            passes += [*cpu.dataflow_lower_passes(target), *cpu.finalize_passes(target)]
            return tvm.transform.Sequential(passes)(mod)

    return _pipeline
