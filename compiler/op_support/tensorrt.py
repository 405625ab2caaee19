"""The `tensorrt` target's op support: TensorRT's ONNX parser, from the data in `tensorrt_ops`
(TensorRT cannot be imported without a GPU, so nothing here imports it).

A node builds when the model's ai.onnx opset is in the parser's range, the matrix lists the op as
supported (for the TensorRT release at hand: the installed one, read from package metadata without
importing it, else `tensorrt_ops.DESCRIBES`), and its data input's element type is one the matrix
lists. The restrictions the matrix states are checked where the node shows them (a constant
non-zero zero point, an attribute value, an output that is read); otherwise they are the node's
condition. Other domains have no parser support (only a TensorRT plugin registered under the op's
name could import one). Model-local functions are inlined by the parser (TensorRT 9.0 and later).
"""

from __future__ import annotations

import importlib.metadata
import re
from dataclasses import dataclass

from mlc.ir.core import Node
from mlc.ir.dtypes import DType
from mlc.op_support import tensorrt_ops as data
from mlc.op_support.table import OpRange, Status, SupportTable, Verdict, tensor_dtype
from mlc.op_support.tensorrt_checks import CHECKS

_DISTRIBUTIONS = ("tensorrt", "tensorrt-cu13", "tensorrt-cu12", "tensorrt-cu11")
_F64 = "f64 is cast down to f32 (clamped to ±FLT_MAX)"


def installed_version() -> tuple[int, int] | None:
    """(major, minor) of the installed TensorRT wheel, from its metadata (no import, no GPU)."""
    for name in _DISTRIBUTIONS:
        try:
            text = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        match = re.match(r"(\d+)\.(\d+)", text)
        if match:
            return int(match.group(1)), int(match.group(2))
    return None


def _release(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


_TYPED_BY_OUTPUT = {"ConstantOfShape"}  # the matrix's types are of the output's value


@dataclass
class TensorRTTable(SupportTable):
    version: tuple[int, int] = data.DESCRIBES

    def opset_hint(self, domain: str) -> str:
        return f" (TensorRT {_release(data.OPSET_25_FROM)} takes 25)" if self.version < data.OPSET_25_FROM else ""

    def check_op(self, domain: str, op_type: str, opset: int, node: Node | None) -> Verdict:
        if domain != "":
            return Verdict.no("no parser support (only a TensorRT plugin registered under its name)")
        if op_type in data.UNSUPPORTED:
            extra = data.UNSUPPORTED[op_type]
            return Verdict.no("not supported by the TensorRT parser" + (f"; {extra}" if extra else ""))
        added = data.ADDED_SINCE.get(op_type)
        if added is not None and self.version < added[0]:
            return Verdict.no(f"parser support from TensorRT {_release(added[0])}")
        if (domain, op_type) not in self.ops:
            return Verdict.no("not in the TensorRT parser's operator matrix")
        entry = data.SUPPORTED.get(op_type)
        types, restriction = entry if entry is not None else (added[1], added[2]) if added else ("", "")
        if node is not None:
            why = _type_refusal(node, types)
            if why:
                return Verdict.no(why)
            check = CHECKS.get(op_type)
            checked = check(node, self.version) if check is not None else None
            if checked is not None and checked.status is Status.UNSUPPORTED:
                return checked
            if checked is not None:
                restriction = ""  # every restriction of the op verified on this node
            if _data_dtype(node) == DType.DOUBLE:
                return Verdict(Status.CONDITIONAL, "; ".join(filter(None, [_F64, restriction])))
        return Verdict(Status.CONDITIONAL if restriction else Status.SUPPORTED, restriction)


def _data_dtype(node: Node) -> DType | None:
    values = node.outputs if node.op_type in _TYPED_BY_OUTPUT or not node.inputs else node.inputs
    return tensor_dtype(values[0]) if values and values[0] is not None else None


def _type_refusal(node: Node, types: str) -> str:
    dtype = _data_dtype(node)
    if dtype is None or not types or dtype == DType.DOUBLE or dtype.short_name in types.split():
        return ""
    return f"element type {dtype.short_name} unsupported (the matrix lists {', '.join(types.split())})"


def tensorrt_table(target: str = "tensorrt") -> TensorRTTable:
    installed = installed_version()
    version = installed or data.DESCRIBES
    ops: dict[tuple[str, str], tuple[OpRange, ...]] = {}
    for op, (types, restriction) in data.SUPPORTED.items():
        ops[("", op)] = (OpRange(data.OPSET_MIN, None, "; ".join(filter(None, [types, restriction]))),)
    for op, (since, types, restriction) in data.ADDED_SINCE.items():
        if version >= since:
            ops[("", op)] = (OpRange(data.OPSET_MIN, None, "; ".join(filter(None, [types, restriction]))),)
    high = 25 if version >= data.OPSET_25_FROM else data.OPSET_MAX
    which = f"installed TensorRT {_release(version)}" if installed else f"TensorRT {_release(version)} (none installed)"
    source = data.SOURCE
    return TensorRTTable(
        target=target,
        source=f"TensorRT ONNX parser operator matrix ({source['repository']} {source['file']}, {source['ref']}; "
               f"11.x release notes), for {which}",
        ops=ops, opsets={"": (data.OPSET_MIN, high)}, version=version,
        notes=["element types are those of the op's data input; f64 is cast down to f32",
               "UINT8 only as a network input or output; INT8, INT4, FP8 and FP4 only through quantization "
               "(QuantizeLinear/DequantizeLinear)"])
