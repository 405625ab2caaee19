"""Evaluate IR nodes on concrete inputs at compile time: one node (constant folding), or a few
nodes cut out of a graph and run for many feeds (fuse-attention's causal-mask check).

onnx's reference evaluator implements every standard op with the spec's semantics and follows
the model's opsets, but building and running a one-node model costs about 0.1 ms a node.
`evaluate_node` therefore asks the numpy table of `mlc.ir.constant_ops` first (the common ops, each
the very numpy call the reference evaluator makes, so bit-identical) and the reference evaluator
for everything the table declines. Nodes are exported with the exporter's own attribute and tensor
converters, so no attribute kind is special-cased here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import helper
from onnx.reference import ReferenceEvaluator

from mlc.ir.constant_ops import evaluate_constant
from mlc.ir.core import Node, Value
from mlc.ir.dtypes import DType
from mlc.ir.types import TensorType
from mlc.onnx_io.exporter import Exporter, inline_sink


class EvaluationError(RuntimeError):
    """The reference evaluator could not compute the node."""


def _one_line(error: Exception) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"


def evaluate_node(node: Node, inputs: Sequence[np.ndarray | None], opsets: dict[str, int]) -> list[np.ndarray | None]:
    """The node's outputs for `inputs` (None where an optional input is omitted), one per output
    (None where the output is omitted), each cast to the output's declared element type: from
    the numpy table of `mlc.ir.constant_ops` where it has the op, else from the reference evaluator."""
    produced = evaluate_constant(node, inputs, opsets.get(""))
    if produced is None:
        return _by_reference(node, inputs, opsets)
    return _declared(node, produced)


def _by_reference(node: Node, inputs: Sequence[np.ndarray | None], opsets: dict[str, int]) -> list[np.ndarray | None]:
    """`evaluate_node` by the reference evaluator alone: the fallback, and what tests hold the table to."""
    fed: list[Value] = []
    arrays: list[np.ndarray] = []
    for value, array in zip(node.inputs, inputs, strict=True):
        if value is None or array is None or any(v is value for v in fed):
            continue  # omitted, or the same value read twice
        fed.append(value)
        arrays.append(array)
    evaluator = SubgraphEvaluator([node], fed, [v for v in node.outputs if v is not None], opsets)
    return _declared(node, evaluator.run(arrays))


def _declared(node: Node, arrays: Sequence[np.ndarray]) -> list[np.ndarray | None]:
    """One array per output of the node (None where omitted), cast to the declared element type."""
    produced = iter(arrays)
    outputs: list[np.ndarray | None] = []
    for value in node.outputs:
        if value is None:
            outputs.append(None)
            continue
        array = next(produced)
        declared = value.type.dtype if isinstance(value.type, TensorType) else None
        if declared is not None and declared != DType.STRING and array.dtype != declared.numpy:
            with np.errstate(all="ignore"):  # an overflowing cast gives Inf, as at run time; no warning
                array = array.astype(declared.numpy)
        outputs.append(array)
    return outputs


class SubgraphEvaluator:
    """A few nodes cut out of a graph as one model, built once and run for many feeds: the
    values in `inputs` become the model's inputs, constants the nodes read become initializers,
    and every other value must be computed by `nodes` (given in graph order)."""

    def __init__(self, nodes: Sequence[Node], inputs: Sequence[Value], outputs: Sequence[Value],
                 opsets: dict[str, int]) -> None:
        exporter = Exporter(inline_sink, legacy_inputs=False, opsets=opsets)
        graph = onnx.GraphProto(name="cut")
        self.input_names: list[str] = []
        for index, given in enumerate(inputs):
            name = exporter.names.assign(Value(f"in{index}"))
            exporter.names.names[id(given)] = name
            self.input_names.append(name)
            dtype = given.type.dtype if isinstance(given.type, TensorType) else None
            graph.input.append(helper.make_tensor_value_info(name, int(dtype), None) if dtype is not None
                               else helper.make_empty_tensor_value_info(name))
        for node in nodes:
            for value in node.inputs:
                if value is None or id(value) in exporter.names.names:
                    continue
                if value.const is None:
                    raise EvaluationError(f"%{value.name} is neither an input of the cut nor computed inside it")
                name = exporter.names.assign(value)
                exporter.tensor(value.const, graph.initializer.add(), name)
            exporter.node(node, graph.node.add())
            del graph.node[-1].metadata_props[:]
        for value in outputs:
            graph.output.append(helper.make_empty_tensor_value_info(exporter.names(value)))
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()],
                                  ir_version=10)
        try:
            self._evaluator = ReferenceEvaluator(model)
        except Exception as error:  # noqa: BLE001 - report why in one line
            raise EvaluationError(_one_line(error)) from None

    def run(self, feeds: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The outputs for one array per input, in order; EvaluationError when the nodes refuse them."""
        try:
            with np.errstate(all="ignore"):  # numpy's overflow warnings would reach stderr
                results = self._evaluator.run(None, dict(zip(self.input_names, feeds, strict=True)))
        except Exception as error:  # noqa: BLE001 - any failure: these feeds are outside what the nodes accept
            raise EvaluationError(_one_line(error)) from None
        return [np.asarray(r) for r in results]
