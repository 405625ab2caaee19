"""JSON reports of `mlc debug` (and of `mlc compile` once it exists): versioned, schema-checked.

The schema lives in `compiler/schemas/report.schema.json`; `SCHEMA_VERSION` changes whenever a
field changes meaning or disappears (adding optional fields does not).
"""

from __future__ import annotations

import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from mlc.debugger import DebugResult

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


def debug_report(result: DebugResult) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "command": "debug",
        "tool_versions": tool_versions(),
        "model": {"path": result.model, "sha256": result.model_sha256},
        "pipeline": result.pipeline,
        "verify": result.verify,
        "reference": result.engine,
        "inputs": {name: {"dtype": dtype, "shape": shape} for name, (dtype, shape) in result.inputs.items()},
        "passes": [r.to_json() for r in result.records],
        "final_check": result.final_check.to_json() if result.final_check else None,
        "verdict": result.verdict,
        "localization": result.localization.to_json() if result.localization else None,
        "seconds": round(result.seconds, 3),
        "notes": result.notes,
    }


def write_report(report: dict[str, Any], path: str | Path) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(json.dumps(report, indent=1, sort_keys=False, default=str) + "\n")
    tmp.replace(target)
