"""`mlc debug --target tensorrt`: check the engine itself, and localize a mismatch inside it
without changing the engine being measured.

After the pipeline's passes are checked (as for every target), the graph is built into a plan
exactly as `mlc compile` builds it and run on the check inputs. When an output differs, the engine's
layer list (`layers.json`) says which tensors exist in it (`mlc.backends.tensorrt_layers`); a second
engine is built with exactly those tensors marked as outputs, which forbids no fusion, and mlc
checks that its layers are the measured engine's before trusting it (`same_layers`). The first
surviving tensor, in topological order, that differs from the reference computing the same graph
names the layer, our nodes, and the user's model nodes. A tensor fused away is never compared: the
engine does not compute it.

On a machine without a CUDA GPU or TensorRT the engine is not built; the report says so, and
the pipeline's own checks still stand.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlc.ir.core import Graph
from mlc.numerics.compare import compare_array
from mlc.pass_api import Numerics


@dataclass
class EngineDebug:
    """What `mlc debug` says of the engine: compared or why not, the verdict, the localization."""

    compared: bool
    verdict: str = "not run"
    reason: str = ""
    outputs: list[str] = field(default_factory=list)
    first_divergence: dict[str, Any] | None = None
    fusions_changed: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"compared": self.compared, "verdict": self.verdict, "reason": self.reason, "outputs": self.outputs,
                "first_divergence": self.first_divergence, "fusions_changed": self.fusions_changed}

    def line(self) -> str:
        if not self.compared:
            return f"tensorrt engine: not compared ({self.reason})"
        if self.verdict != "fail":
            return f"tensorrt engine: {self.verdict} against the reference"
        text = f"tensorrt engine: {'; '.join(self.outputs)}"
        if self.first_divergence:
            d = self.first_divergence
            text += f"; first divergence at tensor {d['tensor']}, written by {d['where']}: {d['detail']}"
        if self.fusions_changed:
            text += f" (marking the surviving tensors changed layers {', '.join(self.fusions_changed[:3])})"
        return text


def _judge(reference: dict[str, Any], engine: dict[str, Any], numerics: Numerics) -> Any:
    """name -> the check of the engine's tensor against the reference's (None: not both computed)."""
    return lambda name: (compare_array(name, reference[name], engine[name], numerics)
                         if name in reference and name in engine else None)


def debug_engine(graph: Graph, reference_sets: list[tuple[dict[str, np.ndarray], dict[str, Any]]],
                 numerics: Numerics, profile_flags: list[str] | None = None) -> EngineDebug:
    """Build, run and, on a mismatch, localize; `reference_sets` are the pipeline's check inputs
    and the original's outputs on them."""
    from mlc.backends.tensorrt import TensorRTBackend

    backend = TensorRTBackend()
    state = backend.available("tensorrt")
    if not state.ok:
        return EngineDebug(False, reason=state.reason)
    with tempfile.TemporaryDirectory(prefix="mlc-trt-debug-") as folder:
        return _debug_in(Path(folder), graph, reference_sets, numerics, list(profile_flags or []))


def _debug_in(folder: Path, graph: Graph, reference_sets: list[tuple[dict[str, np.ndarray], dict[str, Any]]],
              numerics: Numerics, flags: list[str]) -> EngineDebug:
    from mlc.backends.tensorrt import LAYERS, ONNX, TIMING_CACHE, TensorRTBackend, TensorRTRunner
    from mlc.backends.tensorrt_engine import build_plan
    from mlc.backends.tensorrt_layers import first_divergence, map_layers, parse_layers, same_layers
    from mlc.backends.tensorrt_profiles import derive_profiles
    from mlc.numerics.reference import run_graph

    TensorRTBackend().compile(graph, "tensorrt", {"input_profiles": flags}, folder)
    output_names = [v.name for v in graph.outputs]
    runner = TensorRTRunner((folder / "model.plan").read_bytes(), output_names)
    for feeds, expected in reference_sets:
        got = runner.run(feeds)
        failed = [compare_array(n, expected[n], got.get(n), numerics) for n in output_names]
        bad = [c.describe() for c in failed if c.verdict == "fail"]
        if not bad:
            continue
        layers = parse_layers(json.loads((folder / LAYERS).read_text()))
        mapped = map_layers(layers, graph)
        rebuilt = build_plan(folder / ONNX, derive_profiles(graph, flags), (folder / TIMING_CACHE).read_bytes(),
                             str(folder / ONNX), mark_outputs=mapped.survivors)
        changed = same_layers(layers, parse_layers(json.loads(rebuilt.layers_json)))
        marked = TensorRTRunner(rebuilt.plan, mapped.survivors).run(feeds)
        reference = run_graph(graph, feeds, outputs=mapped.survivors)
        divergence = first_divergence(mapped.survivors, mapped, graph, _judge(reference, marked, numerics))
        where = mapped.describe_layer(divergence.layer, graph) if divergence else ""
        return EngineDebug(True, "fail", outputs=bad, fusions_changed=changed,
                           first_divergence=None if divergence is None else
                           {"tensor": divergence.tensor, "layer": divergence.layer, "where": where,
                            "detail": divergence.detail})
    return EngineDebug(True, "ok")
