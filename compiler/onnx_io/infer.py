"""Refine the IR's value types with onnx's shape inference after an edit that made shapes more
static (an input's dims fixed, a shape input bound to a constant).

Inference runs on an export whose large weights are left out (declared external, never read:
shape inference needs only their dims, and the shape operands it propagates are small), and
without the graph's own intermediate types, so that every dim is inferred afresh from the new
inputs. A value's type is replaced only where inference knows more: a rank where there was
none, or an int where there was a symbol or nothing; a contradiction is left alone (the
verifier and the numeric checks judge the graph, not this enrichment).
"""

from __future__ import annotations

import logging

import onnx

from mlc.ir.core import Graph, Value
from mlc.ir.tensor import Tensor
from mlc.ir.types import TensorType
from mlc.onnx_io.exporter import export_onnx, inline_sink
from mlc.onnx_io.importer import type_from_proto

log = logging.getLogger("mlc.onnx_io")

_INLINE_MAX_BYTES = 4096  # small constants stay inline: they may be shape operands


def _sink(proto: onnx.TensorProto, tensor: Tensor) -> None:
    if tensor.nbytes <= _INLINE_MAX_BYTES or tensor.dtype.is_exotic:
        inline_sink(proto, tensor)
        return
    proto.data_location = onnx.TensorProto.EXTERNAL
    entry = proto.external_data.add()
    entry.key, entry.value = "location", "mlc-not-read-by-shape-inference"


def _more_specific(new: TensorType, old: object) -> bool:
    if not isinstance(old, TensorType) or old.shape is None:
        return new.shape is not None
    if new.shape is None or len(new.shape) != len(old.shape) or new.dtype != old.dtype:
        return False
    better = False
    for n, o in zip(new.shape, old.shape, strict=True):
        if isinstance(o, int):
            if n != o:
                return False  # a contradiction: not ours to settle
        elif isinstance(n, int):
            better = True
    return better


def refine_types(graph: Graph) -> int:
    """Give the main graph's values the more static types onnx infers; returns how many changed."""
    model = export_onnx(graph, sink=_sink, sink_all=True, value_info=False)
    try:
        inferred = onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False, data_prop=True)
    except Exception as error:  # noqa: BLE001 - inference is an enrichment; without it types stay as they were
        log.info("shape inference skipped: %s", str(error).splitlines()[0] if str(error) else error)
        return 0
    by_name: dict[str, Value] = {}
    for node in graph:
        for value in node.outputs:
            if value is not None:
                by_name[value.name] = value
    changed = 0
    for info in [*inferred.graph.value_info, *inferred.graph.output]:
        value = by_name.get(info.name)
        if value is None or not info.HasField("type"):
            continue
        new = type_from_proto(info.type)
        if isinstance(new, TensorType) and _more_specific(new, value.type):
            value.type = new
            changed += 1
    return changed
