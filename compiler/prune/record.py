"""What a compile says of its pruning: the report's `pruning` section and the manifest's copy.

Figures before and after pruning: parameters (all and non-zero), FLOPs per op type and model bytes
(`mlc.prune.stats`), for the graph just before the first prune pass and just after the last one, so
that -O2's own savings (BatchNorm folded away) are not counted as pruning's. Per layer: the
sparsity of every weight after pruning. Per pass: its figures and its remarks (why a layer was left
whole). The accuracy on data when the pruned model was held to `--accuracy-budget` (the search's
trials), the output cosine of the checks otherwise. With `--measure-latency`: the latency of the
pipeline without its prune passes and with them, on the target and on onnxruntime, measured side by
side (`mlc.prune.latency`).
"""

from __future__ import annotations

import shlex
from typing import Any

from mlc.ir.core import Graph
from mlc.pass_manager import PassManager

PRUNE_PASSES = ("prune-channels", "prune-magnitude")


def _input_shapes(result: Any) -> dict[str, list[int]]:
    """The first shape set the checks ran at: the FLOPs are counted at those dims."""
    return {name: [int(d) for d in shape] for name, (_dtype, shape) in result.inputs.items()}


def _stats(graph: Graph, shapes: dict[str, list[int]]) -> dict[str, Any]:
    from mlc.prune.stats import model_stats

    return model_stats(graph, shapes or None).to_json()


def pruning_record(request: Any, result: Any, found: Any = None) -> dict[str, Any]:
    """The record (module docstring) for a finished pipeline `result` of `request`."""
    prune = request.prune
    steps = [s for s in result.lossy if s.spec.startswith(PRUNE_PASSES)]
    records = [r for r in result.records if r.name in PRUNE_PASSES]
    shapes = _input_shapes(result)
    before = steps[0].before if steps else None
    after = steps[-1].after if steps else None
    record: dict[str, Any] = {
        "prune": [s.text() for s in prune.specs], "scope": prune.scope, "norm": prune.norm,
        "multiple": prune.multiple,
        "exclude_nodes": list(prune.exclude_nodes),
        "reproduce": " ".join(shlex.quote(a) for a in prune.args()),
        "passes": [{"spec": r.spec, "changed": r.changed, "stats": dict(r.stats), "remarks": list(r.remarks)}
                   for r in records],
        "channels_removed": sum(int(r.stats.get("channels_removed", 0)) for r in records),
        "before": _stats(before, shapes) if before is not None else None,
        "after": _stats(after, shapes) if after is not None else None,
    }
    check = result.lossy_check
    if check is not None:
        record["check"] = {"min_cosine": check.min_cosine, "min_sqnr_db": check.min_sqnr_db,
                           "verdict": check.verdict}
    if found is not None:
        record["search"] = found.to_json()
        record["search_ratio"] = found.spec.ratio
    if request.measure_latency:
        record["latency"] = measure(request, result)
    return record


def measure(request: Any, result: Any, runs: int = 30) -> dict[str, Any]:
    """Latency of the pipeline without and with its prune passes (the rest identical: the same
    quantization and legalizations), on the request's target and on onnxruntime."""
    from mlc.prune.latency import before_after

    unpruned = result.original.clone()
    PassManager([p for p in result.passes if p.name not in PRUNE_PASSES]).run(unpruned)
    target = request.target or "onnxruntime"
    targets = list(dict.fromkeys([target, "onnxruntime"]))
    return {"runs": runs, "shapes": _input_shapes(result),
            "targets": before_after(unpruned, result.graph, dict(result.feeds), targets, runs)}
