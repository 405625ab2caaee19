"""Calibration: run the graph on the calibration data and observe the range of every tensor the
QDQ pass may quantize.

The tensors are those onnxruntime's calibrator observes, in the main graph: the float graph
inputs (f32, f16, bf16, f64) and the float outputs of its nodes (Constant's excepted: those are
weights, quantized from their values). They are exposed as extra outputs of the exported graph
(`mlc.numerics.reference.expose_values`) and one onnxruntime session, opened once with its graph
optimizer off like every reference run (so no fusion hides a tensor) and the weights handed over
from memory (`WeightCache`), runs batch after batch. Each batch's values go to the tensors'
observers (`mlc.quantize.observers`) and are dropped: memory is one batch's activations plus a
fixed-size histogram per tensor, whatever the number of samples; a smaller `batch` lowers it.

A tensor whose name the exported model does not keep (duplicate names a pass left, renamed on
export) is skipped with a remark rather than given another tensor's range.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlc.errors import BadInputError
from mlc.ir.core import Graph, Value
from mlc.ir.dtypes import DType
from mlc.ir.types import TensorType
from mlc.numerics.reference import ReferenceError, WeightCache, expose_values, reference_session
from mlc.quantize.cache import CalibrationTable, graph_digest
from mlc.quantize.data import CalibrationData
from mlc.quantize.observers import ENTROPY_LEVELS, HISTOGRAM_BINS, METHODS, Observer, make_observer

CALIBRATED_DTYPES = frozenset({DType.FLOAT, DType.FLOAT16, DType.BFLOAT16, DType.DOUBLE})

Progress = Callable[[int, int], None]  # (runs done, runs in all)


@dataclass
class CalibrationRun:
    """What a calibration did besides its table: for the pass's statistics and remarks."""

    runs: int = 0
    skipped: list[str] = field(default_factory=list)  # "name: why"


def method_options(method: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The options that decide a method's ranges (part of the table's key)."""
    options = options or {}
    if method not in METHODS:
        raise BadInputError(f"calibration method {method!r}: expected one of {', '.join(METHODS)}")
    if method == "percentile":
        return {"percentile": float(options.get("percentile", 99.99)), "bins": HISTOGRAM_BINS}
    if method == "entropy":
        return {"bins": HISTOGRAM_BINS, "levels": ENTROPY_LEVELS, "unsigned_levels": 2 * ENTROPY_LEVELS}
    return {}


def calibrated_values(graph: Graph) -> list[Value]:
    """The tensors calibration observes, in graph order (see the module docstring)."""
    chosen: list[Value] = []
    seen: set[int] = set()

    def take(value: Value | None) -> None:
        if value is None or id(value) in seen or value.const is not None:
            return
        t = value.type
        if isinstance(t, TensorType) and t.dtype in CALIBRATED_DTYPES:
            seen.add(id(value))
            chosen.append(value)

    for given in graph.inputs:
        take(given)
    for node in graph:
        if node.op_type == "Constant" and node.domain == "":
            continue
        for value in node.outputs:
            take(value)
    return chosen


def calibrate(graph: Graph, data: CalibrationData, method: str = "minmax", options: dict[str, Any] | None = None,
              batch: int = 16, progress: Progress | None = None,
              run: CalibrationRun | None = None) -> CalibrationTable:
    """Observe every calibrated tensor of `graph` on `data`; the table is keyed by
    `graph_digest(graph)`, `data.digest()`, `method` and its options."""
    keyed = method_options(method, options)
    run = run if run is not None else CalibrationRun()
    values = calibrated_values(graph)
    counts: dict[str, int] = {}
    for value in graph.inputs + [v for node in graph for v in node.outputs if v is not None]:
        counts[value.name] = counts.get(value.name, 0) + 1
    weights = WeightCache()
    prepared = weights.prepare(graph)
    defined = {i.name for i in prepared.proto.graph.input} | {o for n in prepared.proto.graph.node for o in n.output}
    names: list[str] = []
    for value in values:
        if not value.name or counts.get(value.name, 0) > 1 or value.name not in defined:
            run.skipped.append(f"{value.name or '<unnamed>'}: its name is not unique in the graph")
        else:
            names.append(value.name)
    observers: dict[str, Observer] = {name: make_observer(method, name, keyed) for name in names}
    exposed = expose_values(prepared.proto, names)
    try:
        session = reference_session(exposed, (prepared.names, prepared.values))
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ReferenceError(f"calibration: onnxruntime cannot run the model: {first[:300]}") from error
    wanted = {i.name for i in session.get_inputs()}
    total = data.runs(batch)
    done = 0
    first_sample = 0
    for feeds in data.batches(batch):
        size = _samples_in(feeds, data)
        try:
            results = session.run(names, {k: v for k, v in feeds.items() if k in wanted})
        except Exception as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ReferenceError(f"calibration: onnxruntime failed on samples {first_sample}.."
                                 f"{first_sample + size - 1} of {data.description}: {first[:300]}") from error
        for name, array in zip(names, results, strict=True):
            try:
                observers[name].observe(np.asarray(array))
            except BadInputError as error:
                raise BadInputError(f"calibration on {data.description}, samples {first_sample}.."
                                    f"{first_sample + size - 1}: {error}") from None
        del results
        done += 1
        first_sample += size
        if progress is not None:
            progress(done, total)
    run.runs = done
    ranges = {}
    for name, observer in observers.items():
        found = observer.range()
        if found is None:
            run.skipped.append(f"{name}: it held no element on the calibration data")
        else:
            ranges[name] = found
    return CalibrationTable(method=method, graph=graph_digest(graph), data=data.digest(), samples=len(data),
                            ranges=ranges, options=keyed)


def _samples_in(feeds: dict[str, np.ndarray], data: CalibrationData) -> int:
    if not data.groupable or not feeds:
        return 1
    return int(next(iter(feeds.values())).shape[0])
