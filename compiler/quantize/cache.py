"""Calibration tables: the range observed for every calibrated tensor, as JSON any backend reads.

A table is what calibration produces and quantization consumes, and the two meet through a file
(`calibrate{cache=FILE}` writes it, `quantize-qdq{calibration=FILE}` reads it), so that a later
compile of the same model with the same calibration set and method reuses the ranges instead of
running the calibration again, `mlc debug` replays exactly the quantization a compile did, and a
TensorRT or TVM build can take the same ranges. The keys that make a table reusable:

* `graph`: the digest of the graph as calibration saw it (`graph_digest`: its printed IR, where
  large constants are digests of their bytes), so a table never applies to another model or to
  the same model after different passes (tensor names would silently point elsewhere);
* `data`: the digest of the calibration samples (`CalibrationData.digest()`);
* `method` and its `options` (e.g. the percentile).

    {"kind": "mlc-calibration-table", "format": 1, "method": "entropy", "options": {...},
     "graph": "<sha256>", "data": "<sha256>", "samples": 200,
     "ranges": {"conv1_out": {"min": -0.8, "max": 6.1}, ...}}

`min`/`max` are the range to quantize to after the method's clipping (for min-max the observed
extremes); they are finite and `min <= 0 <= max` is not assumed (quantization widens the range
to hold zero, as ONNX's zero point requires).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlc.errors import BadInputError
from mlc.ir.core import Graph
from mlc.ir.printer import print_ir
from mlc.output_guard import write_file_atomically

KIND = "mlc-calibration-table"
FORMAT = 1


@dataclass(frozen=True)
class TensorRange:
    """The real-valued range a tensor is quantized to: finite, low <= high."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or self.low > self.high:
            raise ValueError(f"not a range: [{self.low}, {self.high}]")


@dataclass
class CalibrationTable:
    method: str
    graph: str
    data: str
    samples: int
    ranges: dict[str, TensorRange]
    options: dict[str, Any] = field(default_factory=dict)

    def matches(self, graph: str, data: str, method: str, options: dict[str, Any]) -> bool:
        """Whether this table was made for this graph, data, method and options (reusable)."""
        return (self.graph, self.data, self.method, self.options) == (graph, data, method, options)

    def to_json(self) -> dict[str, Any]:
        return {"kind": KIND, "format": FORMAT, "method": self.method, "options": self.options,
                "graph": self.graph, "data": self.data, "samples": self.samples,
                "ranges": {name: {"min": r.low, "max": r.high} for name, r in sorted(self.ranges.items())}}


def graph_digest(graph: Graph) -> str:
    """sha256 of the graph's printed IR (large constants print as digests of their bytes)."""
    return hashlib.sha256(print_ir(graph).encode()).hexdigest()


def save_table(table: CalibrationTable, path: str | Path) -> Path:
    """Write the table as JSON, atomically (a reader never sees half a table)."""
    text = json.dumps(table.to_json(), indent=1, sort_keys=True) + "\n"
    return write_file_atomically(Path(path), lambda tmp: tmp.write_text(text))


def load_table(path: str | Path) -> CalibrationTable:
    """Read a table; a file that is not one is a one-line BadInputError naming it."""
    shown = str(path)
    try:
        data = json.loads(Path(path).read_bytes())
    except OSError as error:
        raise BadInputError(f"{shown}: cannot read the calibration table: {error.strerror}") from None
    except ValueError as error:
        raise BadInputError(f"{shown}: not a calibration table (invalid JSON: {error})") from None
    if not isinstance(data, dict) or data.get("kind") != KIND:
        raise BadInputError(f"{shown}: not a calibration table (no \"kind\": \"{KIND}\")")
    if data.get("format") != FORMAT:
        raise BadInputError(f"{shown}: calibration table format {data.get('format')!r}; this mlc reads {FORMAT}")
    try:
        ranges = {str(name): TensorRange(float(r["min"]), float(r["max"])) for name, r in data["ranges"].items()}
        return CalibrationTable(method=str(data["method"]), graph=str(data["graph"]), data=str(data["data"]),
                                samples=int(data["samples"]), ranges=ranges, options=dict(data.get("options", {})))
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise BadInputError(f"{shown}: malformed calibration table ({type(error).__name__}: {error})") from None


def is_calibration_table(data: Any) -> bool:
    """Whether parsed JSON is one of mlc's calibration tables (which mlc may replace)."""
    return isinstance(data, dict) and data.get("kind") == KIND
