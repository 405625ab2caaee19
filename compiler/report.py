"""JSON reports of `mlc debug`, `mlc compile` and `mlc optimize`: versioned, schema-checked.

The schema lives in `compiler/schemas/report.schema.json`; `SCHEMA_VERSION` changes whenever a
field changes meaning or disappears (adding optional fields does not).
"""

from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from mlc.runner import PipelineResult

SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "report.schema.json"


def tool_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("mlc", "onnx", "onnxruntime", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def debug_report(result: PipelineResult) -> dict[str, Any]:
    localization = getattr(result, "localization", None)  # a DebugResult's
    return {
        "schema_version": SCHEMA_VERSION,
        "command": "debug",
        "tool_versions": tool_versions(),
        "model": {"path": result.model, "sha256": result.model_sha256},
        "pipeline": result.pipeline,
        "verify": result.verify,
        "reference": result.engine,
        "inputs": {name: {"dtype": dtype, "shape": shape} for name, (dtype, shape) in result.inputs.items()},
        "input_sets": [{name: {"dtype": dtype, "shape": shape} for name, (dtype, shape) in one.items()}
                       for one in result.input_sets],
        "passes": [r.to_json() for r in result.records],
        "final_check": result.final_check.to_json() if result.final_check else None,
        "verdict": result.verdict,
        "localization": localization.to_json() if localization else None,
        "seconds": round(result.seconds, 3),
        "notes": result.notes,
        "numeric_hazards": getattr(result, "hazards", []),
        **({"quantization": quantization_report(result)}
           if result.quantization or any(s.spec.startswith("quantize") for s in result.lossy) else {}),
        **({"pruning": result.pruning} if getattr(result, "pruning", None) else {}),
    }


def quantization_report(result: PipelineResult) -> dict[str, Any]:
    """The lossy passes' figures: the summary line, the doctor's per-tensor table (worst first)
    and what the accuracy-budget search kept in float."""
    return {"summary": result.lossy_summary(), "lossy_passes": [s.spec for s in result.lossy],
            "doctor": result.doctor.to_json() if result.doctor is not None else None,
            **(result.quantization or {})}
