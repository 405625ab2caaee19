"""The quantization doctor: where a quantized graph loses accuracy, tensor by tensor.

Users of int8 struggle with accuracy drops they cannot explain. The doctor runs the float graph
(just before the lossy pass) and the quantized graph (just after it) on the same inputs, every
intermediate value exposed, and compares the tensors the two graphs share. A QDQ pass keeps the
float graph's node names and the names of the tensors they compute, so each *quantized node* (a
node of both graphs that reads at least one DequantizeLinear) is matched by name, and for it:

* each input **as it reads it** (the DequantizeLinear output: the activation after its
  QuantizeLinear round trip, or the int8 weight dequantized) against the float node's input;
* each output against the float node's output.

Per tensor: SQNR in dB (10·log10 of signal power over error power), max abs error and cosine
similarity, sorted worst first. Per quantized node, the error it *introduces*: the relative
noise power (10^(-SQNR/10)) of its outputs minus the largest of its activation inputs as their
producers computed them (before this node's own input quantization), so a node downstream of an
outlier activation, whose u8 scale crushes the ordinary values, ranks first even though the
outlier tensor itself still has a good SQNR. The accuracy-budget search (`mlc.quantize.search`)
keeps nodes in float in this order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlc.ir.core import Graph, Node, Value
from mlc.numerics.compare import sqnr_db
from mlc.numerics.reference import ORT, ReferenceError, run_graph

_QDQ = {"QuantizeLinear", "DequantizeLinear"}


@dataclass
class TensorError:
    """One tensor of the float graph and its counterpart in the quantized graph."""

    name: str  # the float graph's value
    quantized_name: str  # the quantized graph's value (a DequantizeLinear output for an input as read)
    role: str  # "input" (as the quantized node reads it) | "weight" (a constant, dequantized) | "output"
    node: str  # the quantized node that reads or computes it
    op_type: str
    shape: list[int]
    sqnr_db: float
    max_abs: float
    cosine: float

    def to_json(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        for key in ("sqnr_db", "max_abs", "cosine"):
            data[key] = float(data[key]) if math.isfinite(data[key]) else None  # JSON has no inf
        return data


@dataclass
class NodeError:
    """A quantized node and the error it introduces (`introduced`, relative noise power)."""

    node: str
    op_type: str
    introduced: float
    output_sqnr_db: float
    input_sqnr_db: float  # the worst activation input as its producer computed it (inf: exact inputs)

    def to_json(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        for key in ("introduced", "output_sqnr_db", "input_sqnr_db"):
            data[key] = float(data[key]) if math.isfinite(data[key]) else None
        return data


@dataclass
class DoctorReport:
    tensors: list[TensorError] = field(default_factory=list)  # worst SQNR first
    nodes: list[NodeError] = field(default_factory=list)  # most introduced error first
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"tensors": [t.to_json() for t in self.tensors], "nodes": [n.to_json() for n in self.nodes],
                "notes": list(self.notes)}

    def lines(self, limit: int = 12) -> list[str]:
        """The table as text, worst first (`mlc debug` prints it)."""
        if not self.tensors:
            return [f"quantization doctor: {self.notes[0] if self.notes else 'no quantized node matched'}"]
        rows = [f"quantization doctor: {len(self.tensors)} tensors of {len(self.nodes)} quantized nodes, "
                f"worst first (vs the float graph)",
                f"  {'SQNR dB':>8} {'max abs':>10} {'cosine':>9}  tensor"]
        for t in self.tensors[:limit]:
            sqnr = f"{t.sqnr_db:8.1f}" if math.isfinite(t.sqnr_db) else f"{'inf':>8}"
            rows.append(f"  {sqnr} {t.max_abs:10.3g} {t.cosine:9.6f}  {t.name} ({t.role} of {t.op_type} {t.node})")
        if len(self.tensors) > limit:
            rows.append(f"  ... {len(self.tensors) - limit} more in the JSON report")
        worst = [n for n in self.nodes if n.introduced > 0][:3]
        if worst:
            rows.append("  most error introduced by: " + ", ".join(
                f"{n.node} ({n.op_type}, output SQNR {n.output_sqnr_db:.1f} dB)" for n in worst))
        rows += [f"  note: {note}" for note in self.notes]
        return rows


def _named_nodes(graph: Graph) -> dict[str, Node]:
    return {node.name: node for node in graph if node.name and node.op_type not in _QDQ}


def _is_float(value: Value | None) -> bool:
    dtype = getattr(getattr(value, "type", None), "dtype", None)
    try:
        return dtype is not None and np.dtype(dtype.numpy if hasattr(dtype, "numpy") else dtype).kind == "f"
    except TypeError:
        return False


def _dequantized(value: Value | None) -> bool:
    producer = value.producer if value is not None else None
    return producer is not None and producer.op_type == "DequantizeLinear"


def _computed(value: Value) -> Value:
    """The tensor a DequantizeLinear(QuantizeLinear(x)) reads back: x (else the value itself)."""
    producer = value.producer
    if producer is not None and producer.op_type == "DequantizeLinear":
        source = producer.inputs[0]
        inner = source.producer if source is not None else None
        if inner is not None and inner.op_type == "QuantizeLinear" and inner.inputs[0] is not None:
            return inner.inputs[0]
    return value


def quantized_nodes(quantized: Graph, float_graph: Graph) -> list[str]:
    """Names of the nodes of both graphs that read a DequantizeLinear in the quantized one."""
    floats = _named_nodes(float_graph)
    return [name for name, node in _named_nodes(quantized).items()
            if name in floats and any(_dequantized(v) for v in node.inputs)]


def _measure(expected: np.ndarray, got: np.ndarray) -> tuple[float, float, float]:
    e64, a64 = np.asarray(expected, np.float64).ravel(), np.asarray(got, np.float64).ravel()
    if e64.shape != a64.shape:
        return -math.inf, math.inf, 0.0
    keep = np.isfinite(e64) & np.isfinite(a64)
    broken = bool((np.isfinite(e64) & ~np.isfinite(a64)).any())
    if broken:
        return -math.inf, math.inf, 0.0
    e, a = e64[keep], a64[keep]
    max_abs = float(np.max(np.abs(e - a))) if e.size else 0.0
    norms = float(np.linalg.norm(e) * np.linalg.norm(a))
    cosine = float(np.dot(e, a) / norms) if norms > 0 else (1.0 if np.array_equal(e, a) else 0.0)
    return sqnr_db(e, a), max_abs, cosine


def _noise(sqnr: float) -> float:
    return 0.0 if sqnr == math.inf else math.inf if sqnr == -math.inf else 10.0 ** (-sqnr / 10.0)


def diagnose(float_graph: Graph, quantized: Graph, feeds: Mapping[str, np.ndarray], *,
             engine: str = ORT) -> DoctorReport:
    """The per-tensor and per-node error table of `quantized` against `float_graph` on `feeds`."""
    report = DoctorReport()
    floats = _named_nodes(float_graph)
    names = quantized_nodes(quantized, float_graph)
    if not names:
        report.notes.append("no quantized node shares its name with a node of the float graph")
        return report
    pairs: dict[tuple[str, str], tuple[str, str, str, Value, Value]] = {}  # (float, quant) -> row facts
    qnodes = _named_nodes(quantized)
    node_inputs: dict[str, list[tuple[str, str]]] = {}  # per node: its activation inputs as computed
    for name in names:
        qnode, fnode = qnodes[name], floats[name]
        node_inputs[name] = []
        for fvalue, qvalue in zip(fnode.inputs, qnode.inputs, strict=False):
            if fvalue is None or qvalue is None or not _is_float(fvalue):
                continue
            role = "weight" if fvalue.is_constant else "input"
            pairs.setdefault((fvalue.name, qvalue.name), (role, name, qnode.op_type, fvalue, qvalue))
            if role == "input":
                source = _computed(qvalue)
                node_inputs[name].append((fvalue.name, source.name))
        for fvalue, qvalue in zip(fnode.outputs, qnode.outputs, strict=False):
            if fvalue is not None and qvalue is not None and _is_float(fvalue):
                pairs.setdefault((fvalue.name, qvalue.name), ("output", name, qnode.op_type, fvalue, qvalue))
    want_float = sorted({f for (f, _), facts in pairs.items() if not facts[3].is_constant}
                        | {f for items in node_inputs.values() for f, _ in items})
    want_quant = sorted({q for (_, q), facts in pairs.items() if not facts[4].is_constant}
                        | {q for items in node_inputs.values() for _, q in items})
    try:
        fvalues = run_graph(float_graph, dict(feeds), want_float, engine) if want_float else {}
        qvalues = run_graph(quantized, dict(feeds), want_quant, engine) if want_quant else {}
    except ReferenceError as error:
        report.notes.append(f"the tensors could not be compared: {error}")
        return report

    def value_of(values: dict[str, Any], value: Value) -> np.ndarray:
        if value.is_constant and value.const is not None and hasattr(value.const, "numpy"):
            return np.asarray(value.const.numpy())
        return np.asarray(values[value.name])

    measured: dict[tuple[str, str], float] = {}
    for (fname, qname), (role, node, op_type, fvalue, qvalue) in pairs.items():
        expected, got = value_of(fvalues, fvalue), value_of(qvalues, qvalue)
        sqnr, max_abs, cosine = _measure(expected, got)
        measured[(fname, qname)] = sqnr
        report.tensors.append(TensorError(fname, qname, role, node, op_type, list(expected.shape), sqnr, max_abs,
                                          cosine))
    report.tensors.sort(key=lambda t: (t.sqnr_db, -t.max_abs, t.name))
    for name in names:
        qnode, fnode = qnodes[name], floats[name]
        outs = [measured.get((f.name, q.name), math.inf) for f, q in zip(fnode.outputs, qnode.outputs, strict=False)
                if f is not None and q is not None and _is_float(f)]
        ins = []
        for fname, qname in node_inputs[name]:
            if fname in fvalues and qname in qvalues:
                ins.append(_measure(np.asarray(fvalues[fname]), np.asarray(qvalues[qname]))[0])
        out_sqnr = min(outs, default=math.inf)
        in_sqnr = min(ins, default=math.inf)
        introduced = _noise(out_sqnr) - _noise(in_sqnr) if math.isfinite(_noise(in_sqnr)) else 0.0
        report.nodes.append(NodeError(name, qnode.op_type, introduced, out_sqnr, in_sqnr))
    report.nodes.sort(key=lambda n: (-n.introduced, n.output_sqnr_db, n.node))
    return report


def ranking(report: DoctorReport) -> list[str]:
    """The quantized nodes, the one that introduces the most error first (the search's order)."""
    return [n.node for n in report.nodes]


def worst_tensors(report: DoctorReport, count: int = 5) -> Sequence[TensorError]:
    return report.tensors[:count]
