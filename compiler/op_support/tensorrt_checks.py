"""The restrictions of TensorRT's operator matrix that a node shows: each check returns a refusal
(`Verdict.no`), `Verdict.ok()` when the node meets every restriction stated for its op, or None
when it cannot tell (a runtime operand, say), so that the restriction stays the node's condition.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mlc.ir.core import Node, Value
from mlc.ir.tensor import Tensor
from mlc.ir.types import TensorType
from mlc.op_support.table import Verdict

Check = Callable[[Node, tuple[int, int]], Verdict | None]

SQUEEZE_WITHOUT_AXES = (11, 5)  # TensorRT release whose parser takes Squeeze with its axes omitted
TOPK_LIMIT = 3840


def text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def const(value: Value | None) -> np.ndarray | None:
    """The value's data when it is a constant no caller can override (an initializer that is not
    a graph input, or a Constant node's tensor), else None."""
    if value is None:
        return None
    producer = value.producer
    tensor = producer.attr("value") if producer is not None and producer.op_type == "Constant" else value.const
    if not isinstance(tensor, Tensor) or not tensor.has_data or (producer is None and not value.is_constant):
        return None
    try:
        return tensor.numpy()
    except Exception:  # noqa: BLE001 - data that cannot be read is not a known constant
        return None


def _input(node: Node, index: int) -> Value | None:
    return node.inputs[index] if index < len(node.inputs) else None


def _read(value: Value | None) -> bool:
    return value is not None and bool(value.uses or value.is_graph_output)


def _known(value: Value | None) -> bool:
    return const(value) is not None


def _zero_point(index: int, name: str) -> Check:
    def check(node: Node, version: tuple[int, int]) -> Verdict | None:
        given = _input(node, index)
        if given is None:
            return Verdict.ok()
        zero = const(given)
        if zero is None:
            return None
        if np.any(zero.astype(np.float64) != 0):
            return Verdict.no(f"{name} is not 0 (TensorRT quantizes symmetrically)")
        return Verdict.ok()
    return check


def _pool(spatial: bool) -> Check:
    def check(node: Node, version: tuple[int, int]) -> Verdict | None:
        kernel = node.attr("kernel_shape")
        if spatial and kernel is not None and len(kernel) not in (2, 3):
            return Verdict.no(f"{len(kernel)}-D pooling (2-D or 3-D only)")
        dilations = node.attr("dilations")
        if dilations is not None and any(d != 1 for d in dilations):
            return Verdict.no(f"dilations {list(dilations)} (all 1 only)")
        if node.op_type == "MaxPool" and len(node.outputs) > 1 and _read(node.outputs[1]):
            return Verdict.no("its Indices output is read")
        return Verdict.ok() if kernel is not None else None
    return check


_RESIZE = {"mode": ("nearest", "linear"),
           "coordinate_transformation_mode": ("half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn",
                                              "asymmetric", "align_corners"),
           "nearest_mode": ("floor", "ceil", "round_prefer_floor", "round_prefer_ceil"),
           "keep_aspect_ratio_policy": ("stretch",)}


def _resize(node: Node, version: tuple[int, int]) -> Verdict | None:
    for name, values in _RESIZE.items():
        given = node.attr(name)
        if given is not None and text(given) not in values:
            return Verdict.no(f"{name} {text(given)} (takes {', '.join(values)})")
    if node.attr("antialias", 0):
        return Verdict.no("antialias")
    axes = node.attr("axes")
    if axes is None:
        return Verdict.ok()
    first = _input(node, 0)
    rank = first.type.rank if first is not None and isinstance(first.type, TensorType) else None
    if rank is not None and list(axes) != list(range(rank)) and _input(node, 2) is not None:
        return Verdict.no(f"axes {list(axes)} with tensor scales (must be 0..{rank - 1})")
    return None


def _recurrent(gates_per_direction: int) -> Check:
    def check(node: Node, version: tuple[int, int]) -> Verdict | None:
        if node.attr("input_forget", 0):
            return Verdict.no("input_forget=1")
        if node.attr("layout", 0):
            return Verdict.no("layout=1")
        activations = [text(a) for a in node.attr("activations") or []]
        if text(node.attr("direction", "forward")) == "bidirectional" and len(activations) == 2 * gates_per_direction \
                and activations[:gates_per_direction] != activations[gates_per_direction:]:
            return Verdict.no("different activations per direction")
        return Verdict.ok()
    return check


def _constant_input(index: int) -> Check:
    def check(node: Node, version: tuple[int, int]) -> Verdict | None:
        return Verdict.ok() if _known(_input(node, index)) else None
    return check


def _axes(node: Node, version: tuple[int, int]) -> Verdict | None:
    """Reduce*, Squeeze, Unsqueeze: axes an attribute (older opsets), a constant input, or (for
    Squeeze from TensorRT 11.5, and the reductions) omitted."""
    if node.attr("axes") is not None or _known(_input(node, 1)):
        return Verdict.ok()
    if _input(node, 1) is not None:
        return None
    if node.op_type == "Squeeze" and version < SQUEEZE_WITHOUT_AXES:
        return Verdict.no(f"axes omitted (TensorRT {SQUEEZE_WITHOUT_AXES[0]}.{SQUEEZE_WITHOUT_AXES[1]} takes that)")
    return Verdict.ok()


def _topk(node: Node, version: tuple[int, int]) -> Verdict | None:
    if node.attr("sorted", 1) == 0:
        return Verdict.no("sorted=0")
    k = const(_input(node, 1))
    if k is None:
        return None
    return Verdict.no(f"K={int(k.max())} (below {TOPK_LIMIT} only)") if int(k.max()) >= TOPK_LIMIT else Verdict.ok()


def _attention(node: Node, version: tuple[int, int]) -> Verdict | None:
    if any(_input(node, i) is not None for i in (4, 5, 6)):
        return Verdict.no("past_key/past_value/nonpad_kv_seqlen inputs")
    if any(_read(v) for v in node.outputs[1:]):
        return Verdict.no("present_key/present_value/qk_matmul_output outputs read")
    if node.attr("qk_matmul_output_mode", 0) or node.attr("softcap", 0.0):
        return Verdict.no("qk_matmul_output_mode or softcap set")
    return None


def _dropout(node: Node, version: tuple[int, int]) -> Verdict | None:
    given = _input(node, 2)
    if given is None:
        return Verdict.ok()
    training = const(given)
    if training is None:
        return None
    return Verdict.no("training_mode is true") if bool(np.any(training)) else Verdict.ok()


def _constant(node: Node, version: tuple[int, int]) -> Verdict | None:
    for name in ("sparse_value", "value_string", "value_strings"):
        if name in node.attributes:
            return Verdict.no(f"attribute {name}")
    return Verdict.ok()


def _static_input(node: Node, version: tuple[int, int]) -> Verdict | None:
    first = _input(node, 0)
    return Verdict.ok() if first is not None and isinstance(first.type, TensorType) and first.type.is_static else None


CHECKS: dict[str, Check] = {
    "QuantizeLinear": _zero_point(2, "y_zero_point"),
    "DequantizeLinear": _zero_point(2, "x_zero_point"),
    "MaxPool": _pool(True), "AveragePool": _pool(True), "LpPool": _pool(False),
    "LayerNormalization": lambda n, v: Verdict.no("its Mean/InvStdDev outputs are read")
    if any(_read(o) for o in n.outputs[1:]) else Verdict.ok(),
    "Resize": _resize,
    "ScatterND": lambda n, v: Verdict.no(f"reduction {text(n.attr('reduction'))}")
    if text(n.attr("reduction", "none")) != "none" else Verdict.ok(),
    "TopK": _topk,
    "LSTM": _recurrent(3), "GRU": _recurrent(2), "RNN": _recurrent(1),
    "Attention": _attention, "Dropout": _dropout, "Constant": _constant,
    "CumSum": _constant_input(1), "OneHot": _constant_input(1), "EyeLike": _static_input,
    **{op: _axes for op in ("ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean",
                            "ReduceMin", "ReduceProd", "ReduceSum", "ReduceSumSquare", "Squeeze", "Unsqueeze")},
}
