"""The `llvm` and `cuda` targets' op support, read from Apache TVM's Relax ONNX frontend.

The frontend converts a node through `onnx_frontend._get_convert_map()[op_type]`, a converter class
whose `_impl_vN` methods serve opset N and later; below the first N it applies the first one
anyway (`OnnxOpConverter.get_converter`), so such a node converts, on the condition that the op
means the same at the model's opset. `If` is converted by the frontend itself. An op without a
converter cannot be converted. The frontend keys converters by op_type alone and takes the
ai.onnx opset for every node; mlc's TVM backend refuses other domains (`unsupported_ops`), and
model-local functions are not inlined by the frontend.

What mlc's TVM backend adds before the frontend sees the model (its `legalization`): converters of
its own for LSTM/GRU/RNN (`backends/tvm_rnn.py`), the ONNX function bodies of ops the frontend lacks
or gets wrong (`expand-functions`), and the quantized-linear ops rewritten into ops it converts
(`legalize-qlinear`). Those are listed with how they are built.

TVM is imported only when one of these targets is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mlc.ir.core import Node
from mlc.op_support.table import OpRange, Status, SupportTable, Verdict

_QLINEAR_NOTE = ("rewritten by mlc's legalize-qlinear into (de)quantize and float/int32 ops, "
                 "unless a case it leaves alone (then refused)")


@dataclass
class TvmTable(SupportTable):
    function_ops: set[str] = field(default_factory=set)  # expanded into their ONNX function bodies

    def check_op(self, domain: str, op_type: str, opset: int, node: Node | None) -> Verdict:
        if domain != "":
            return Verdict.no(f"{domain} op: mlc's TVM backend converts ai.onnx ops only")
        ranges = self.ops.get((domain, op_type))
        if not ranges:
            return Verdict.no("no converter in TVM's ONNX frontend")
        first = ranges[0]
        if op_type in self.function_ops:
            from mlc.onnx_io.functions import has_function_body

            if not has_function_body(op_type, domain, opset):
                return Verdict.no(f"no converter in TVM's ONNX frontend, and no ONNX function body at opset {opset}")
            return Verdict(Status.CONDITIONAL, first.note + " (whose ops must convert in turn)")
        if opset < first.since:
            return Verdict(Status.CONDITIONAL, f"TVM's first converter is for opset {first.since}; "
                                               f"it is applied at opset {opset}")
        if first.note.startswith("rewritten"):
            return Verdict(Status.CONDITIONAL, first.note)
        return Verdict.ok("" if first.note.startswith("converters") else first.note)


def converter_versions(cls: type) -> list[int]:
    """The opsets a converter class implements (`_impl_v13` -> 13), ascending."""
    return sorted(int(name.removeprefix("_impl_v")) for name in dir(cls)
                  if name.startswith("_impl_v") and name.removeprefix("_impl_v").isdigit())


def tvm_table(target: str) -> SupportTable:
    try:
        import tvm
        from tvm.relax.frontend.onnx import onnx_frontend
    except ImportError as error:
        missing = error.name or "tvm"
        return TvmTable(target=target, source="Apache TVM's Relax ONNX frontend", known=False,
                        unknown_reason=f"{missing} cannot be imported (pip install 'mlc[tvm]'), "
                                       "so its converters cannot be read", inlines_functions=False)
    from mlc.backends.tvm import expand_for_tvm
    from mlc.backends.tvm_rnn import RECURRENT_OPS
    from mlc.passes.legalize_qlinear import QLINEAR_OPS

    ai_onnx = _ai_onnx_ops()
    ops: dict[tuple[str, str], tuple[OpRange, ...]] = {}
    others = []
    for name, cls in onnx_frontend._get_convert_map().items():
        versions = converter_versions(cls)
        if ai_onnx and name not in ai_onnx:
            others.append(name)
            continue
        note = "converters for opsets " + ", ".join(map(str, versions)) if len(versions) > 1 else ""
        ops[("", name)] = (OpRange(versions[0] if versions else 1, None, note),)
    ops.setdefault(("", "If"), (OpRange(1, None, "converted by the frontend itself"),))
    for name in RECURRENT_OPS:
        ops.setdefault(("", name), (OpRange(1, None, "mlc's own converter (backends/tvm_rnn.py)"),))
    for name in QLINEAR_OPS:
        ops.setdefault(("", name), (OpRange(1, None, _QLINEAR_NOTE),))
    expanded = {name for name in expand_for_tvm() if name in ai_onnx or not ai_onnx}
    for name in expanded:
        ops[("", name)] = (OpRange(1, None, "built from its ONNX function body (mlc's expand-functions)"),)
    notes = ["below an op's first converter opset, TVM applies that converter (conditional: the op must mean "
             "the same at the model's opset)"]
    if others:
        notes.append(f"the frontend also converts {', '.join(sorted(others))} (not ai.onnx ops; mlc's TVM backend "
                     "takes ai.onnx ops only)")
    return TvmTable(target=target, source=f"Apache TVM {tvm.__version__} Relax ONNX frontend converters",
                    ops=ops, inlines_functions=False, notes=notes, function_ops=expanded)


def _ai_onnx_ops() -> set[str]:
    """Names of ai.onnx ops (onnxruntime's copy of the ONNX schemas)."""
    from onnxruntime.capi import _pybind_state as ort_c

    return {s.name for s in ort_c.get_all_operator_schema() if s.domain == ""}
