"""`--accuracy-budget` with `--prune`: the largest pruning ratio whose model still meets the budget.

The ratio searched is the one of `--prune channels:R` (else `magnitude:S`), on a grid of 0.01 from
0 to the ratio given, which is the largest tried. Accuracy falls with the ratio for the pruners
here (a larger ratio removes a superset of the channels or weights a smaller one removes, ranked by
the same norms), so a bisection over the grid finds the largest ratio that meets the budget in
about seven evaluations. The passes before the first prune pass run once; each trial runs the prune
passes (every `--prune` given, the searched one at the trial's ratio) on a copy and scores it on the
evaluation data against the unpruned graph, with the measures of the int8 search
(`mlc.quantize.search`: top-1 drop in points with labels, else the least output cosine, or a metric
callback).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlc.errors import BadInputError
from mlc.pass_api import Pass, parse_pass_spec
from mlc.pipelines import PruneOptions, PruneSpec, pruning_specs
from mlc.quantize.search import Budget, Evaluator, Metric, load_eval_data, parse_budget

GRID = 100  # ratios are searched in steps of 1 / GRID


@dataclass
class RatioSearch:
    """What the search found: the ratio kept and every trial."""

    spec: PruneSpec  # the searched spec at the ratio found
    asked: float  # the ratio given (the largest tried)
    budget: Budget
    float_score: float
    score: float  # at the ratio found
    met: bool
    samples: int
    trials: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"budget": {"kind": self.budget.kind, "value": self.budget.value, "text": self.budget.describe()},
                "searched": self.spec.kind, "asked": self.asked, "ratio": self.spec.ratio, "met": self.met,
                "samples": self.samples, "float_score": self.float_score, "score": self.score,
                "trials": list(self.trials)}

    def describe(self) -> str:
        unit = {"points": "% top-1", "cosine": " cosine", "metric": " metric"}[self.budget.kind]
        return (f"accuracy budget ({self.budget.describe()}) {'met' if self.met else 'MISSED'} at "
                f"--prune {self.spec.text()} (asked {self.asked:g}): float {self.float_score:.4g}{unit}, "
                f"pruned {self.score:.4g}")


def search_ratio(source: str | Path, passes: Sequence[Pass], prune: PruneOptions, eval_data: str | Path,
                 budget: Budget | str, *, metric: Metric | None = None) -> RatioSearch:
    """The largest ratio of `prune.searchable()` (module docstring) meeting `budget`."""
    from mlc.ir.verifier import verify
    from mlc.onnx_io.importer import import_onnx
    from mlc.pass_manager import PassManager

    spec = prune.searchable()
    if spec is None or spec.ratio is None:
        raise BadInputError("--accuracy-budget with --prune searches a ratio: give --prune channels:R or "
                            "magnitude:S (nm:N:M has none)")
    names = {s.pass_name for s in prune.specs}
    first = next((i for i, p in enumerate(passes) if p.name in names), None)
    if first is None:
        raise BadInputError("--accuracy-budget: the pipeline has no prune pass")
    before = list(passes[:first])  # quantization and legalizations after the prune passes are not searched
    budget = parse_budget(budget) if isinstance(budget, str) else budget
    graph = import_onnx(source)
    verify(graph)
    data = load_eval_data(eval_data, graph)
    PassManager(before).run(graph)
    evaluator = Evaluator(graph, data, budget, metric)
    trials: list[dict[str, Any]] = []
    scores: dict[float, float] = {}

    def score(ratio: float) -> float:
        if ratio not in scores:
            copy = graph.clone()
            PassManager([parse_pass_spec(s) for s in pruning_specs(prune.with_ratio(spec, ratio))]).run(copy)
            scores[ratio] = evaluator.score(copy)
            trials.append({"ratio": ratio, "score": scores[ratio], "met": evaluator.met(scores[ratio])})
        return scores[ratio]

    found = spec.ratio
    if not evaluator.met(score(found)):
        lo, hi = 0, math.ceil(spec.ratio * GRID)  # grid steps: lo meets (checked first), hi misses
        if evaluator.met(score(0.0)):
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if evaluator.met(score(mid / GRID)):
                    lo = mid
                else:
                    hi = mid
        found = lo / GRID
    return RatioSearch(spec.with_ratio(found), spec.ratio, evaluator.budget, evaluator.float_score,
                       scores[found], evaluator.met(scores[found]), data.samples, trials)


def rebuilt(prune: PruneOptions, found: RatioSearch) -> PruneOptions:
    """`prune` with the searched spec at the ratio found."""
    spec = prune.searchable()
    assert spec is not None and found.spec.ratio is not None
    return prune.with_ratio(spec, found.spec.ratio)

