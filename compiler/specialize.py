"""Which graph inputs carry shapes rather than data, so that a compiler can specialize on them.

ONNX lets the operands that decide a result's shape — Reshape's target shape, the axes of a
Reduce, Resize's scales, Split's sizes, TopK's k, Pad's pads, … — be runtime tensors. Compilers
that plan memory and loops ahead of time (TVM's Relax frontend among them) need those values at
compile time. When such a value comes from a graph input, the model can still be compiled for the
values it is called with: bind them as constants (the pass `bind-inputs`, `mlc compile
--bind-inputs`) and compile again when they change, the way a JIT guards on shape values.
"""

from __future__ import annotations

from mlc.ir.core import Graph, Value
from mlc.ir.types import TensorType

# op -> input positions whose values decide the output's shape (or a static attribute in disguise)
SHAPE_OPERANDS: dict[str, tuple[int, ...]] = {
    "Reshape": (1,), "Expand": (1,), "Tile": (1,), "ConstantOfShape": (0,), "Range": (0, 1, 2),
    "Slice": (1, 2, 3, 4), "Pad": (1, 2, 3), "Resize": (1, 2, 3), "Upsample": (1,), "Split": (1,),
    "TopK": (1,), "OneHot": (1,), "CumSum": (1,), "Squeeze": (1,), "Unsqueeze": (1,), "Trilu": (1,),
    "ReduceSum": (1,), "ReduceMean": (1,), "ReduceMax": (1,), "ReduceMin": (1,), "ReduceProd": (1,),
    "ReduceL1": (1,), "ReduceL2": (1,), "ReduceLogSum": (1,), "ReduceLogSumExp": (1,), "ReduceSumSquare": (1,),
    "CenterCropPad": (1, 2), "Col2Im": (1, 2, 3), "MaxUnpool": (2,), "SplitToSequence": (1,), "DFT": (1, 2),
    "STFT": (1, 2, 3), "AffineGrid": (1,), "BlackmanWindow": (0,), "HammingWindow": (0,), "HannWindow": (0,),
    "MelWeightMatrix": (0, 1, 2, 3, 4), "RandomNormalLike": (), "Bernoulli": (),
}
MAX_BOUND_ELEMENTS = 1024  # shape operands are small; a large input is data, never bound


def shape_inputs(graph: Graph) -> list[str]:
    """Names of graph inputs whose values reach a shape operand (directly or through other nodes),
    in the graph's input order. Inputs larger than MAX_BOUND_ELEMENTS are not listed."""
    reaching: set[int] = set()
    for node in graph.all_nodes():
        for index in SHAPE_OPERANDS.get(node.op_type, ()) if node.domain == "" else ():
            if index < len(node.inputs) and node.inputs[index] is not None:
                reaching.add(id(node.inputs[index]))
    # walk backwards: a value reaches a shape operand when a node reading it produces one that does
    frontier: list[Value] = [v for v in _values(graph) if id(v) in reaching]
    while frontier:
        value = frontier.pop()
        producer = value.producer
        if producer is None or producer.op_type in ("Shape", "Size"):
            continue  # they read only their input's shape, never its values
        for source in producer.inputs:
            if source is not None and id(source) not in reaching:
                reaching.add(id(source))
                frontier.append(source)
    names = []
    for value in graph.inputs:
        if id(value) not in reaching or not isinstance(value.type, TensorType) or not value.type.is_static:
            continue
        size = 1
        for dim in value.type.shape or ():
            size *= int(dim)
        if size <= MAX_BOUND_ELEMENTS:
            names.append(value.name)
    return names


def reads_input_values(value: Value) -> bool:
    """Whether `value` is computed from the values (not only the shapes) of graph inputs."""
    seen: set[int] = set()
    frontier = [value]
    while frontier:
        current = frontier.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if current.is_constant:
            continue
        producer = current.producer
        if producer is None:
            return True  # a graph input (or an outer-scope value)
        if producer.op_type in ("Shape", "Size"):
            continue
        frontier.extend(v for v in producer.inputs if v is not None)
    return False


def _values(graph: Graph) -> list[Value]:
    found: list[Value] = []
    for node in graph.all_nodes():
        found.extend(v for v in node.inputs if v is not None)
    return found
