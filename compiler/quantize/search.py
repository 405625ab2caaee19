"""The accuracy-budget search: the fewest nodes to keep in float so that int8 meets a budget.

Choosing by hand which nodes stay in float is what users of int8 struggle with. Given evaluation
data and a budget, the search quantizes everything, measures, and when the budget is missed
ranks the quantized nodes by the error each introduces (`mlc.quantize.doctor`, on a few of the
evaluation samples), then grows the float-kept prefix of that ranking exponentially (1, 2, 4, …)
until the budget holds, binary-searches the shortest prefix that holds, and finally tries
dropping each kept node again (a node ranked high may be harmless once a worse one is float).
Each trial is one run of the QDQ pass (its `keep_float` option) and one evaluation; the
calibration table is not recomputed.

The measure, by what the evaluation data holds:

* `labels` in the `.npz` (one class index per sample): top-1 accuracy of the model's first
  output (argmax over its last axis), in percent; the budget is the largest drop in points
  from float (`--accuracy-budget 0.5`: at most half a point lost);
* no labels: cosine similarity of every float output to the float graph's, over the whole
  evaluation set; the budget is the least cosine (`--accuracy-budget 0.999`);
* a metric callback (Python API): any score where higher is better; the budget is the
  largest drop from the float graph's score.

`--accuracy-budget points:0.5` and `cosine:0.999` say the kind explicitly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlc.errors import BadInputError
from mlc.ir.core import Graph
from mlc.quantize.doctor import DoctorReport, diagnose, ranking

Metric = Callable[[dict[str, np.ndarray]], float]  # outputs of the whole evaluation set -> score
LABELS = "labels"
BUDGET_KINDS = ("points", "cosine", "metric")


@dataclass(frozen=True)
class Budget:
    """`points`: largest top-1 drop in points; `cosine`: least cosine similarity; `metric`:
    largest drop of a metric callback's score; `auto`: points with labels, else cosine."""

    kind: str
    value: float

    def resolve(self, has_labels: bool, has_metric: bool) -> Budget:
        kind = self.kind
        if kind == "auto":
            kind = "metric" if has_metric else "points" if has_labels else "cosine"
        if kind == "points" and not has_labels and not has_metric:
            raise BadInputError("--accuracy-budget points:…: the evaluation data has no `labels` array")
        if kind == "cosine" and not 0.0 < self.value <= 1.0:
            raise BadInputError(f"--accuracy-budget {self.value:g}: without labels the budget is the least cosine "
                                "similarity to float, in (0, 1] (e.g. 0.999)")
        return Budget(kind, self.value)

    def met(self, float_score: float, score: float) -> bool:
        if not math.isfinite(score):
            return False
        if self.kind == "cosine":
            return score >= self.value
        return float_score - score <= self.value + 1e-9

    def describe(self) -> str:
        return {"points": f"top-1 drop <= {self.value:g} points", "cosine": f"output cosine >= {self.value:g}",
                "metric": f"metric drop <= {self.value:g}"}.get(self.kind, f"{self.kind} {self.value:g}")


def parse_budget(text: str) -> Budget:
    """`0.5`, `points:0.5`, `cosine:0.999`, `metric:0.01` (one line naming the flag if not)."""
    kind, colon, number = text.partition(":")
    if not colon:
        kind, number = "auto", text
    if kind not in (*BUDGET_KINDS, "auto"):
        raise BadInputError(f"--accuracy-budget {text}: expected NUMBER or points:N, cosine:C, metric:N")
    try:
        value = float(number)
    except ValueError:
        raise BadInputError(f"--accuracy-budget {text}: {number!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise BadInputError(f"--accuracy-budget {text}: expected a finite number >= 0")
    return Budget(kind, value)


@dataclass
class EvalData:
    """Evaluation samples stacked on axis 0, keyed by input name, and optional labels."""

    feeds: dict[str, np.ndarray]
    labels: np.ndarray | None = None

    @property
    def samples(self) -> int:
        return len(next(iter(self.feeds.values()))) if self.feeds else 0

    def head(self, count: int) -> dict[str, np.ndarray]:
        return {k: v[:count] for k, v in self.feeds.items()}


def load_eval_data(path: str | Path, graph: Graph) -> EvalData:
    """Read `--eval-data`: every graph input without a default, the same sample count, and an
    optional `labels` array of one integer per sample."""
    from mlc.numerics.inputs import read_npz

    shown = f"--eval-data {path}"
    arrays = read_npz(str(path))
    labels = arrays.pop(LABELS, None)
    names = [v.name for v in graph.inputs if v.const is None]
    missing = [n for n in names if n not in arrays]
    if missing:
        raise BadInputError(f"{shown}: no array for input {missing[0]!r} (inputs: {', '.join(names)})")
    feeds = {n: np.asarray(arrays[n]) for n in names}
    counts = {n: (len(a) if a.ndim else 0) for n, a in feeds.items()}
    if len(set(counts.values())) != 1 or 0 in counts.values():
        raise BadInputError(f"{shown}: the inputs must hold the same number (> 0) of samples on axis 0, got "
                            + ", ".join(f"{k} {v}" for k, v in counts.items()))
    count = next(iter(counts.values()))
    if labels is not None:
        labels = np.asarray(labels).reshape(-1) if np.asarray(labels).ndim <= 1 else np.asarray(labels)
        if labels.shape[0] != count or labels.dtype.kind not in "iu":
            raise BadInputError(f"{shown}: `labels` must hold one integer per sample ({count}), got "
                                f"{labels.dtype}{list(labels.shape)}")
    return EvalData(feeds, labels)


def _fixed_batch(graph: Graph) -> int | None:
    """The inputs' fixed batch dim (axis 0), if any: every run must have exactly that many."""
    for value in graph.inputs:
        shape = getattr(value.type, "shape", None)
        if value.const is None and shape and isinstance(shape[0], int):
            return max(1, shape[0])
    return None


def run_batched(graph: Graph, feeds: Mapping[str, np.ndarray], chunk: int = 256) -> dict[str, np.ndarray]:
    """The graph's outputs on every sample (axis 0), run in chunks under onnxruntime with its
    optimizer off, as the reference runs it (a QDQ graph computes exactly what its
    QuantizeLinear/DequantizeLinear say). A fixed batch dim is the chunk size; a last chunk too
    short for it is padded with its last sample, whose outputs are dropped."""
    import onnxruntime as ort

    from mlc.onnx_io.exporter import export_onnx

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 4
    session = ort.InferenceSession(export_onnx(graph).SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    wanted = {i.name for i in session.get_inputs()}
    samples = len(next(iter(feeds.values())))
    fixed = _fixed_batch(graph)
    step = fixed or min(chunk, samples)
    parts: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for start in range(0, samples, step):
        batch = {k: v[start:start + step] for k, v in feeds.items() if k in wanted}
        real = len(next(iter(batch.values())))
        if fixed is not None and real < step:
            batch = {k: np.concatenate([v, np.repeat(v[-1:], step - real, axis=0)]) for k, v in batch.items()}
        for name, value in zip(names, session.run(names, batch), strict=True):
            parts[name].append(np.asarray(value)[:real] if np.ndim(value) else np.asarray(value))
    return {n: np.concatenate(v) if v[0].ndim else v[0] for n, v in parts.items()}


class Evaluator:
    """Scores a graph on the evaluation data under a resolved budget (module docstring)."""

    def __init__(self, float_graph: Graph, data: EvalData, budget: Budget, metric: Metric | None = None) -> None:
        self.data = data
        self.metric = metric
        self.budget = budget.resolve(data.labels is not None, metric is not None)
        self.float_outputs = run_batched(float_graph, data.feeds)
        self.float_score = self.score_outputs(self.float_outputs)

    def score_outputs(self, outputs: dict[str, np.ndarray]) -> float:
        if self.budget.kind == "metric":
            assert self.metric is not None
            return float(self.metric(outputs))
        if self.budget.kind == "points":
            assert self.data.labels is not None
            first = np.asarray(next(iter(outputs.values())))
            predicted = first.argmax(axis=-1) if first.dtype.kind == "f" else first
            labels = self.data.labels[:len(predicted)]
            return 100.0 * float(np.mean(predicted.reshape(labels.shape) == labels))
        cosines = []
        for name, want in self.float_outputs.items():
            if np.asarray(want).dtype.kind != "f":
                continue
            e, a = np.asarray(want, np.float64).ravel(), np.asarray(outputs[name], np.float64).ravel()
            if e.shape != a.shape or not np.all(np.isfinite(a)):
                return -1.0
            norms = float(np.linalg.norm(e) * np.linalg.norm(a))
            cosines.append(float(np.dot(e, a) / norms) if norms > 0 else (1.0 if np.array_equal(e, a) else 0.0))
        return min(cosines, default=1.0)

    def score(self, graph: Graph) -> float:
        return self.score_outputs(run_batched(graph, self.data.feeds))

    def met(self, score: float) -> bool:
        return self.budget.met(self.float_score, score)


@dataclass
class SearchResult:
    """What the search found: the float-kept nodes and every trial's score."""

    keep_float: list[str]
    budget: Budget
    float_score: float
    quantized_score: float  # everything quantized
    final_score: float  # with keep_float in float
    met: bool
    samples: int
    ranked: list[str] = field(default_factory=list)  # the doctor's order
    trials: list[dict[str, Any]] = field(default_factory=list)
    doctor: DoctorReport | None = None

    def exclude_flag(self) -> str:
        return "--exclude-nodes " + ",".join(self.keep_float) if self.keep_float else ""

    def to_json(self) -> dict[str, Any]:
        return {"budget": {"kind": self.budget.kind, "value": self.budget.value, "text": self.budget.describe()},
                "met": self.met, "samples": self.samples, "float_score": self.float_score,
                "quantized_score": self.quantized_score, "final_score": self.final_score,
                "keep_float": list(self.keep_float), "reproduce": self.exclude_flag(),
                "ranked": list(self.ranked), "trials": list(self.trials)}

    def describe(self) -> str:
        unit = {"points": "% top-1", "cosine": " cosine", "metric": " metric"}[self.budget.kind]
        kept = ", ".join(self.keep_float) or "none"
        return (f"accuracy budget ({self.budget.describe()}) {'met' if self.met else 'MISSED'}: float "
                f"{self.float_score:.4g}{unit}, all int8 {self.quantized_score:.4g}, final {self.final_score:.4g} "
                f"with {len(self.keep_float)} node(s) kept in float ({kept})")


def search_keep_float(float_graph: Graph, quantize: Callable[[Sequence[str]], Graph], evaluator: Evaluator, *,
                      doctor_samples: int = 16, prune_limit: int = 12) -> SearchResult:
    """The fewest nodes to keep in float so that `quantize(keep)` meets the evaluator's budget.
    `float_graph` is the graph just before quantization (its node names are the QDQ graph's)."""
    trials: list[dict[str, Any]] = []
    scores: dict[tuple[str, ...], float] = {}

    def trial(keep: Sequence[str], why: str) -> float:
        key = tuple(sorted(keep))
        if key not in scores:
            scores[key] = evaluator.score(quantize(list(keep)))
            trials.append({"keep_float": list(keep), "score": scores[key], "met": evaluator.met(scores[key]),
                           "step": why})
        return scores[key]

    base = trial([], "all quantized")
    result = SearchResult([], evaluator.budget, evaluator.float_score, base, base, evaluator.met(base),
                          evaluator.data.samples, trials=trials)
    if result.met:
        return result
    quantized = quantize([])
    doctor = diagnose(float_graph, quantized, evaluator.data.head(doctor_samples))
    order = ranking(doctor)
    result.ranked, result.doctor = order, doctor
    if not order:
        return result
    lo, hi, k = 0, None, 1  # prefix lo misses; prefix hi meets
    while True:
        k = min(k, len(order))
        if evaluator.met(trial(order[:k], f"grow to {k}")):
            hi = k
            break
        lo = k
        if k == len(order):
            break
        k *= 2
    if hi is None:  # even every quantized node in float misses the budget
        result.keep_float, result.final_score = list(order), scores[tuple(sorted(order))]
        return result
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if evaluator.met(trial(order[:mid], f"bisect {mid}")):
            hi = mid
        else:
            lo = mid
    keep = list(order[:hi])
    if len(keep) <= prune_limit:
        for node in reversed(list(keep)):
            if len(keep) == 1:
                break
            fewer = [n for n in keep if n != node]
            if evaluator.met(trial(fewer, f"drop {node}")):
                keep = fewer
    result.keep_float, result.met = keep, True
    result.final_score = scores[tuple(sorted(keep))]
    return result


def with_keep_float(pass_: Any, keep: Sequence[str]) -> Any:
    """A copy of the quantize-qdq pass with `keep` added to its float-kept nodes."""
    values = dict(pass_.values)
    already = [n for n in str(values.get("keep_float", "")).split("+") if n]
    values["keep_float"] = "+".join(dict.fromkeys([*already, *keep]))
    return type(pass_)(**values)


def search_pipeline(source: str | Path, passes: Sequence[Any], eval_data: str | Path, budget: Budget | str, *,
                    metric: Metric | None = None, progress: Callable[[str], Any] | None = None) -> SearchResult:
    """The search on a pipeline: the passes before `quantize-qdq` (calibration included) run
    once on `source`, then each trial runs the QDQ pass alone with its `keep_float` set and
    evaluates the result on `eval_data`. The caller rebuilds the pipeline with the list found."""
    from mlc.ir.verifier import verify
    from mlc.onnx_io.importer import import_onnx
    from mlc.pass_manager import PassManager

    index = next((i for i, p in enumerate(passes) if p.name == "quantize-qdq"), None)
    if index is None:
        raise BadInputError("--accuracy-budget: the pipeline has no quantize-qdq pass (give --quantize int8)")
    budget = parse_budget(budget) if isinstance(budget, str) else budget
    graph = import_onnx(source)
    verify(graph)
    data = load_eval_data(eval_data, graph)
    PassManager(list(passes[:index])).run(graph)

    def quantize(keep: Sequence[str]) -> Graph:
        copy = graph.clone()
        PassManager([with_keep_float(passes[index], keep)]).run(copy)
        return copy

    evaluator = Evaluator(graph, data, budget, metric)
    if progress is not None:
        progress(f"accuracy search on {data.samples} samples ({evaluator.budget.describe()})")
    return search_keep_float(graph, quantize, evaluator)
