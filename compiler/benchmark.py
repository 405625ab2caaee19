"""`mlc bench`: latency of a compiled artifact against plain onnxruntime on the same inputs.

Plain onnxruntime means the original model in a default session (all of ORT's own graph
optimizations on), the baseline a user would otherwise deploy. The two run interleaved, one call
each per round, so that noise from a shared machine hits both alike; medians and the ratio are
reported.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlc.artifact import Artifact, load
from mlc.errors import BadInputError
from mlc.feeds import check_feeds, generate_feeds, role_dims
from mlc.numerics.inputs import InputSpec, candidate_specs, make_inputs, read_npz
from mlc.onnx_io.importer import import_onnx


@dataclass
class BenchResult:
    label: str
    median_ms: float
    p10_ms: float
    p90_ms: float
    runs: int


def _summary(label: str, samples: list[float]) -> BenchResult:
    ms = sorted(s * 1e3 for s in samples)
    return BenchResult(label, statistics.median(ms), ms[len(ms) // 10], ms[(len(ms) * 9) // 10], len(ms))


def bench(model_or_dir: str | Path, target: str = "onnxruntime", *, original: str | Path | None = None,
          runs: int = 50, warmup: int = 5, inputs_path: str | None = None, spec: InputSpec | None = None,
          level: str | None = None) -> tuple[BenchResult, BenchResult | None, str]:
    """Returns (artifact timing, plain onnxruntime timing or None, the artifact's target)."""
    import onnxruntime as ort

    from mlc.driver import PipelineRequest, compile_model
    from mlc.runner import CheckOptions

    path = Path(model_or_dir)
    with tempfile.TemporaryDirectory(prefix="mlc-bench-") as tmp:
        if path.is_dir():
            artifact: Artifact = load(path)
            baseline = Path(original) if original is not None else None
        else:
            if not path.exists():
                raise BadInputError(f"{path}: no such file or artifact folder")
            folder, _ = compile_model(path, PipelineRequest(target=target, level=level), Path(tmp) / "artifact",
                                      checks=CheckOptions(verify="final"))
            artifact = load(folder)
            baseline = path
        spec = spec or InputSpec()
        if inputs_path:
            feeds = read_npz(inputs_path)
        elif baseline is not None:  # the first shape set the checks use: dims above 1 by role
            graph = import_onnx(baseline)
            feeds = make_inputs(graph, next(candidate_specs(graph, spec)))
        else:
            inputs = artifact.manifest["inputs"]
            feeds, _ = generate_feeds(inputs, seed=spec.seed, shapes=spec.shapes, dims=role_dims(inputs))
        wanted = set(artifact.input_names)
        checked, _ = check_feeds(artifact.manifest["inputs"], {k: v for k, v in feeds.items() if k in wanted})
        artifact.run(checked)  # checked once, a backend's refusal as one line; the timed calls are the backend's alone
        run = artifact.runner.run
        session: Any = None
        if baseline is not None:
            options = ort.SessionOptions()
            options.log_severity_level = 4  # fatal only: its errors reach us as exceptions, its logs never reach stderr
            session = ort.InferenceSession(str(baseline), options, providers=["CPUExecutionProvider"])
            names = {i.name for i in session.get_inputs()}
            plain_feeds = {k: v for k, v in feeds.items() if k in names}
        for _ in range(warmup):
            run(checked)
            if session is not None:
                session.run(None, plain_feeds)
        ours: list[float] = []
        theirs: list[float] = []
        for _ in range(runs):
            started = time.perf_counter()
            run(checked)
            ours.append(time.perf_counter() - started)
            if session is not None:
                started = time.perf_counter()
                session.run(None, plain_feeds)
                theirs.append(time.perf_counter() - started)
        result = _summary(f"mlc {artifact.manifest['target']}", ours)
        plain = _summary("plain onnxruntime", theirs) if theirs else None
        return result, plain, str(artifact.manifest["target"])
