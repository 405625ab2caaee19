"""Fold an explicit Pad into the padding of the Conv or pooling op that reads it.

    Conv(Pad(X, pads, 0))                                   ->  Conv(X) {pads += spatial pads}
    AveragePool(Pad(X, pads, 0)) {count_include_pad=1}      ->  AveragePool(X) {pads += ...}
    MaxPool(Pad(X, pads, -inf))                             ->  MaxPool(X) {pads += ...}

Pad's `pads` are [x1_begin, x2_begin, ..., x1_end, x2_end, ...] over all axes (or over `axes`,
opset 18); the consumer's `pads` use the same begin/end layout over the spatial axes only, so the
spatial part is added to it. Conditions, each refused with a remark:

* mode "constant", constant non-negative pads (a negative pad crops), no padding of the batch or
  channel axis, `axes` (if any) constant;
* the padding value: 0 for Conv; 0 for AveragePool, which must also count the padding in its
  average (`count_include_pad=1`) and not use `ceil_mode` (windows past the end are averaged
  over fewer elements); -inf for MaxPool, whose own padding is never the maximum (a zero pad
  would be: kept); a MaxPool whose Indices output is read is kept (they index the padded tensor);
* the consumer has `auto_pad` NOTSET, reads the Pad as its data input, and is the Pad's only
  reader; a pooling op's padding stays below its kernel (onnxruntime refuses larger).

The padding value, pads and axes constants are removed when nothing else reads them. The
consumer computes the same sums and maxima over the same elements, but a runtime may pick another
Conv algorithm (another summation order) for the smaller input, hence `tolerance`.
"""

from __future__ import annotations

import math

from mlc.ir.attributes import Attr, AttrType
from mlc.ir.core import Node, Value
from mlc.ir.types import TensorType
from mlc.pass_api import Numerics, register_pass
from mlc.passes._graph_edits import drop_dead_constants
from mlc.passes._match_basics import STANDARD, const_array, input_at, label
from mlc.rewrite import IRBuilder, Match, Reject, Rule, RulePass

_CONSUMERS = ("Conv", "AveragePool", "MaxPool")


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _full_pads(pad: Node, opset: int) -> tuple[list[int], float] | str:
    """Pad's padding over every axis as [begins..., ends...] and its value, or why not known."""
    data = input_at(pad, 0)
    rank = data.type.rank if data is not None and isinstance(data.type, TensorType) else None
    if opset < 11:
        raw_pads = pad.attr("pads")
        if raw_pads is None:
            return "it has no pads attribute"
        pads = [int(p) for p in raw_pads]
        value = float(pad.attr("value", 0.0))
        axes = None
    else:
        pads_array = const_array(input_at(pad, 1))
        if pads_array is None:
            return "its pads are not a constant"
        pads = [int(p) for p in pads_array.reshape(-1)]
        value_input = input_at(pad, 2)
        value = 0.0
        if value_input is not None:
            value_array = const_array(value_input)
            if value_array is None or value_array.size != 1:
                return "its padding value is not a constant scalar"
            value = float(value_array.reshape(-1)[0])
        axes_input = input_at(pad, 3)
        axes = None
        if axes_input is not None:
            axes_array = const_array(axes_input)
            if axes_array is None:
                return "its axes are not a constant"
            axes = [int(a) for a in axes_array.reshape(-1)]
    if axes is None:
        if len(pads) % 2 or (rank is not None and len(pads) != 2 * rank):
            return f"its {len(pads)} pads do not match the input's rank"
        return pads, value
    if rank is None:
        return "it pads given axes of an input of unknown rank"
    if len(pads) != 2 * len(axes) or any(not -rank <= a < rank for a in axes):
        return "its pads and axes do not agree"
    full = [0] * (2 * rank)
    for i, axis in enumerate(axes):
        axis %= rank
        full[axis], full[axis + rank] = pads[i], pads[i + len(axes)]
    return full, value


class PadIntoConsumer(Rule):
    name = "pad"
    law = "Conv/AveragePool/MaxPool(Pad(x, spatial pads, neutral value)) -> the op with those pads added"
    ops = ("Pad",)

    def match(self, pad: Node) -> Match | Reject | None:
        out, graph = pad.outputs[0], pad.graph
        opset = (graph.root.opset_version("") if graph is not None else None) or 1
        if out is None or opset < 2:
            return None
        found = _plan(pad, out, opset)
        if isinstance(found, str):
            return self.reject(pad, found)
        consumer, merged = found
        return Match(pad, nodes=(pad, consumer), facts={"pads": merged}, rule=f"pad-{consumer.op_type.lower()}")

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        pad, consumer = match.nodes
        attributes = dict(consumer.attributes)
        attributes["pads"] = Attr("pads", AttrType.INTS, match.facts["pads"])
        old = list(pad.inputs[1:])
        builder.fuse_chain([pad, consumer], consumer.op_type, [pad.inputs[0], *consumer.inputs[1:]], attributes,
                           name=consumer.name)
        drop_dead_constants(old)
        builder.ctx.stats["fused"] += 1


def _plan(pad: Node, out: Value, opset: int) -> tuple[Node, list[int]] | str:
    """(the reader, its merged pads), or why the Pad stays."""
    mode = _text(pad.attr("mode", "constant"))
    if mode != "constant":
        return f"mode {mode!r} is not constant padding"
    padding = _full_pads(pad, opset)
    if isinstance(padding, str):
        return padding
    pads, value = padding
    rank = len(pads) // 2
    if any(p < 0 for p in pads):
        return "negative pads crop"
    if rank < 3 or pads[0] or pads[1] or pads[rank] or pads[rank + 1]:
        return "it pads the batch or channel axis"
    readers = [n for n in out.consumers if n.op_type in _CONSUMERS and n.domain in STANDARD]
    if not readers:
        return "no Conv, AveragePool or MaxPool reads it"
    if out.is_graph_output or len(out.uses) != 1:
        return f"its output has {len(out.uses)} readers" + (" and is a graph output" if out.is_graph_output else "")
    consumer = readers[0]
    why = _consumer_problem(consumer, out.uses[0][1], value)
    if why is not None:
        return f"into {label(consumer)}: {why}"
    spatial = rank - 2
    own = [int(p) for p in consumer.attr("pads", [0] * (2 * spatial))]
    if len(own) != 2 * spatial:
        return f"into {label(consumer)}: its pads do not match the rank"
    merged = [own[i] + pads[2 + i] for i in range(spatial)] + [own[spatial + i] + pads[rank + 2 + i]
                                                               for i in range(spatial)]
    if consumer.op_type != "Conv":
        kernel = [int(k) for k in consumer.attr("kernel_shape", [])]
        if len(kernel) != spatial or any(merged[i] >= kernel[i % spatial] for i in range(2 * spatial)):
            return f"into {label(consumer)}: the padding would reach the kernel size {kernel}"
    return consumer, merged


@register_pass
class FusePad(RulePass):
    name = "fuse-pad"
    description = "Fold a constant-mode Pad into the pads of the Conv, AveragePool or MaxPool reading it"
    numerics = Numerics.TOLERANCE
    statistics = ("fused",)
    rules = (PadIntoConsumer(),)


def _consumer_problem(consumer: Node, position: int, value: float) -> str | None:
    if position != 0:
        return "it reads the padded tensor as a weight, not as its data"
    auto_pad = _text(consumer.attr("auto_pad", "NOTSET"))
    if auto_pad != "NOTSET":
        return f"it has auto_pad={auto_pad}"
    op = consumer.op_type
    if op == "Conv":
        return None if value == 0.0 else f"the padding value {value} is not 0"
    if op == "AveragePool":
        if value != 0.0:
            return f"the padding value {value} is not 0"
        if not consumer.attr("count_include_pad", 0):
            return "count_include_pad=0 would leave the padding out of the average"
        if consumer.attr("ceil_mode", 0):
            return "ceil_mode=1 averages partial windows over fewer elements"
        return None
    if not (math.isinf(value) and value < 0):
        return f"the padding value {value} is not -inf (MaxPool's own padding never wins a max)"
    indices = consumer.outputs[1] if len(consumer.outputs) > 1 else None
    if indices is not None and (indices.uses or indices.is_graph_output):
        return "its Indices output is read (indices count positions in the padded tensor)"
    return None
