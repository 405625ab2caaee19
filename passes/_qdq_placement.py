"""`Planner`: quantize-qdq's placement state, walked over the main graph in order: which tensors
are quantized (and by which table entry), what each quantized node reads and writes, and the
ops whose own checks are short (Add/Concat/GlobalAveragePool with their own ranges, layout ops
sharing their input's parameters). The weighted ops are `_qdq_weighted`, Relu/Clip `_qdq_fold`.
"""

from __future__ import annotations

from mlc.ir.core import Graph, Node, Value
from mlc.ir.dtypes import DType
from mlc.pass_api import PassContext
from mlc.passes._match_basics import const_array, input_at
from mlc.passes._qdq_marks import ActMark, BiasMark, WeightMark, is_f32
from mlc.quantize.cache import CalibrationTable


class Planner:
    """What is quantized so far, and the checks and marks every node's placement uses."""

    def __init__(self, graph: Graph, table: CalibrationTable, ctx: PassContext, *, per_channel: bool,
                 dtype: DType, symmetric: bool, excluded_nodes: set[str], excluded_ops: set[str],
                 float_outputs: bool = True) -> None:
        self.graph, self.table, self.ctx = graph, table, ctx
        self.per_channel, self.dtype, self.symmetric = per_channel, dtype, symmetric
        self.float_outputs = float_outputs
        self.excluded_nodes, self.excluded_ops = excluded_nodes, excluded_ops
        self.acts: dict[Value, ActMark] = {}
        self.weights: list[WeightMark] = []
        self.biases: list[BiasMark] = []
        self.folded: set[Value] = set()  # producers' outputs whose Relu/Clip was folded

    # ------------------------------------------------------------ queries
    def range_problem(self, value: Value | None) -> str | None:
        """Why `value` cannot be read as a quantized activation, or None."""
        if value is None:
            return "an input is missing"
        if not is_f32(value):
            return f"%{value.name} is not float32"
        if value in self.acts or value.name in self.table.ranges or const_array(value) is not None:
            return None
        return f"no calibration range for %{value.name}"

    def output_problem(self, node: Node) -> str | None:
        outs = [o for o in node.outputs if o is not None]
        if len(outs) != 1 or node.outputs[0] is None:
            return "it has more than one output"
        out = node.outputs[0]
        if not is_f32(out):
            return f"%{out.name} is not float32"
        return None if out.name in self.table.ranges else f"no calibration range for %{out.name}"

    # ------------------------------------------------------------ marks
    def read(self, node: Node, index: int) -> None:
        value = node.inputs[index]
        assert value is not None
        act = self.acts.get(value)
        if act is None:
            constant = const_array(value) is not None
            act = self.acts[value] = ActMark(None if constant else value.name)
        act.readers.append((node, index))

    def produce(self, node: Node, shared_from: Value | None = None) -> None:
        out = node.outputs[0]
        assert out is not None
        self.acts[out] = ActMark(None if shared_from is not None else out.name, shared_from, produced=True)

    # ------------------------------------------------------------ nodes
    def produce_weighted(self, node: Node) -> None:
        """Mark a quantized Conv/Gemm/MatMul's output: int8, except a Gemm's or MatMul's that is a
        graph output (with `float_outputs`): their int8 kernels can write float (onnxruntime's QGemm
        without an output scale, MatMulIntegerToFloat), so a QDQ pair there would only round the
        model's final numbers (a classifier's logits) to 256 levels: two near-tied logits that
        round to one level make argmax pick by position."""
        out = node.outputs[0]
        assert out is not None
        if self.float_outputs and node.op_type in ("Gemm", "MatMul") and out.is_graph_output:
            self.ctx.stats["float_outputs"] += 1
            return
        self.produce(node)

    def own_ranges(self, node: Node) -> str | None:
        why = self.output_problem(node)
        if why:
            return why
        inputs = list(node.inputs)
        if not inputs or all(const_array(v) is not None for v in inputs):
            return "its inputs are constants"
        if not any(v is not None and v in self.acts and self.acts[v].produced for v in inputs):
            return "no input is int8 already (a float add/concat of float producers stays float)"
        for value in inputs:
            why = self.range_problem(value)
            if why:
                return why
        for index in range(len(inputs)):
            self.read(node, index)
        self.produce(node)
        return None

    def sharing(self, node: Node) -> str | None:
        x = input_at(node, 0)
        if x is None or x not in self.acts or const_array(x) is not None:
            return "its input is not quantized"
        if node.outputs[0] is None or any(o is not None and (o.uses or o.is_graph_output) for o in node.outputs[1:]):
            return "it has more than one output in use"
        out = node.outputs[0]
        if not is_f32(out):
            return f"%{out.name} is not float32"
        self.read(node, 0)
        self.produce(node, shared_from=x)
        return None


__all__ = ["Planner"]
