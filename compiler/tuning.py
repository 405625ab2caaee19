"""`mlc tune` (`mlc.api.tune`): tune a model's TVM kernels with MetaSchedule into a tuning database folder.

Why tuning runs on what mlc compiles: the tasks are the fused TIR functions of the graph *after
mlc's pipeline for the target* (the same graph `mlc compile` hands TVM, lowered with the same
fusion passes), so every record matches a function of the later build structurally and
`mlc compile --tuning-db DIR` applies it (`backends/tvm_tune.py` describes the folder). The
pipeline runs without numeric checks here: tuning changes schedules, never numbers, and the
compile that applies the records checks its artifact as always.

Tasks are tuned one after the other, in hash order, each with `trials` measured candidates; a
task already in the database (this model's, another model's, an interrupted run's) is skipped,
so a second run resumes. `time_budget_s` stops starting new tasks once spent (the task running
finishes); the tasks left are tuned by a later run. Progress goes to `progress` (stderr on the
command line): one line per task with its best and default latency, and at the end the
estimated model latency (sum over tasks of calls x latency) tuned against untuned.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlc.errors import BadInputError

TARGETS = ("llvm", "cuda")
STRATEGIES = ("evolutionary", "replay-trace", "replay-func")
COST_MODELS = ("xgb", "mlp", "random")


@dataclass
class TaskResult:
    name: str
    key: str
    weight: int
    default_s: float | None  # mlc's default schedule
    best_s: float | None  # the best tuned candidate (None: none built or ran)
    trials: int
    status: str  # tuned | kept-default | recorded | skipped (time budget) | dynamic (not tunable)
    records: bool = False  # the task folder holds records the build applies

    @property
    def chosen_s(self) -> float | None:
        """What the build will run: the tuned schedule when it kept records, else the default."""
        return self.best_s if self.kept and self.best_s is not None else self.default_s

    @property
    def kept(self) -> bool:
        return self.status == "tuned" or (self.status == "recorded" and self.records)


@dataclass
class TuneSummary:
    database: Path
    target: str  # the TVM target string the records are keyed by
    tasks: list[TaskResult] = field(default_factory=list)

    def estimate_ms(self) -> tuple[float | None, float | None]:
        """(tuned, untuned) model latency estimates in ms: sum of calls x latency over tasks with
        a measured default (None when no task has one)."""
        rows = [t for t in self.tasks if t.default_s is not None]
        if not rows:
            return None, None
        tuned = sum(t.weight * (t.chosen_s or t.default_s or 0.0) for t in rows) * 1e3
        untuned = sum(t.weight * (t.default_s or 0.0) for t in rows) * 1e3
        return tuned, untuned


def check_compile_target(target: str | None, tuning_db: object) -> None:
    """`--tuning-db` is for the TVM targets: refused (one line) for any other."""
    if tuning_db and target not in TARGETS:
        raise BadInputError(f"--tuning-db is for --target {' or '.join(TARGETS)}, not {target}")


def parse_duration(text: str | float | int | None) -> float | None:
    """`30m`, `1h`, `90s`, `45` (seconds) → seconds; None stays None."""
    if text is None or isinstance(text, int | float):
        return None if text is None else float(text)
    value = text.strip().lower()
    scale = {"s": 1, "m": 60, "h": 3600}.get(value[-1:], None)
    number = value[:-1] if scale else value
    try:
        seconds = float(number) * (scale or 1)
    except ValueError:
        raise BadInputError(f"--time-budget {text}: give a duration such as 30m, 2h or 90s") from None
    if seconds <= 0:
        raise BadInputError(f"--time-budget {text}: must be more than zero")
    return seconds


def parse_tracker(text: str | None, key: str | None) -> tuple[str, int, str] | None:
    """`HOST:PORT` and a key → (host, port, key); both or neither."""
    if text is None and key is None:
        return None
    if text is None or key is None:
        raise BadInputError("--rpc-tracker HOST:PORT and --rpc-key KEY go together")
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise BadInputError(f"--rpc-tracker {text}: expected HOST:PORT, e.g. 127.0.0.1:9190")
    return host, int(port), key


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.4g} ms"


def tune_model(model: str | Path, target: str, database: str | Path, *, trials: int = 64,
               time_budget_s: float | None = None, rpc: tuple[str, int, str] | None = None,
               backend_options: dict[str, Any] | None = None, level: str | None = None,
               static_shapes: dict[str, tuple[int, ...]] | None = None,
               strategy: str = "evolutionary", cost_model: str = "xgb", keep_slower: bool = False,
               progress: Callable[[str], None] | None = None) -> TuneSummary:
    """Tune `model`'s kernels for `target` into the database folder; see the module docstring."""
    from mlc.backends.tvm import check_options, target_spec_of
    from mlc.backends.tvm_build import native_stderr_to_log, relax_module
    from mlc.backends.tvm_tune import (
        PARTIAL,
        RECORD_FILES,
        TASK_FILE,
        TuningDatabase,
        default_schedule,
        extract_tasks,
        make_builder,
        make_runner,
        measure,
        target_string,
        tune_task,
        tuning_target,
    )
    from mlc.driver import PipelineRequest
    from mlc.onnx_io.exporter import export_onnx
    from mlc.runner import CheckOptions, run_pipeline
    from mlc.targets import require

    say = progress or (lambda _line: None)
    if target not in TARGETS:
        raise BadInputError(f"mlc tune: --target {target}: tuning is for {' or '.join(TARGETS)}")
    if trials < 1:
        raise BadInputError(f"--trials {trials}: must be at least 1")
    if strategy not in STRATEGIES:
        raise BadInputError(f"--strategy {strategy}: expected one of {', '.join(STRATEGIES)}")
    if cost_model not in COST_MODELS:
        raise BadInputError(f"--cost-model {cost_model}: expected one of {', '.join(COST_MODELS)}")
    if not Path(model).is_file():
        raise BadInputError(f"{model}: no such file")
    options = dict(backend_options or {})
    require(target)
    check_options(target, options)
    db = TuningDatabase(Path(database))
    db.open_for_writing()
    started = time.monotonic()

    request = PipelineRequest(target=target, level=level, model=str(model), static_shapes=dict(static_shapes or {}))
    request.validate()
    say(f"running mlc's pipeline for {target} on {model}")
    result = run_pipeline(Path(model), request.build(Path(model)), CheckOptions(verify="none"))
    graph = result.graph
    spec, _, _ = target_spec_of(target, options)
    with native_stderr_to_log("TVM tune"):
        text = target_string(spec)
        tvm_target = tuning_target(spec)
        module = relax_module(export_onnx(graph), graph.opset_version("") or 17)
        tasks = extract_tasks(module, tvm_target)
        folder = db.add_target(text)
        dropped = db.drop_partial(folder)
        runner = make_runner(rpc)
        builder = make_builder()
    if dropped:
        say(f"dropped {len(dropped)} unfinished task(s) of an interrupted run: {', '.join(dropped)}")
    done = db.finished(folder)
    summary = TuneSummary(Path(database), text)
    say(f"{len(tasks)} task(s) for {text}; {sum(1 for t in tasks if t.key in done)} already in {database}")
    # The costliest kernels first (FLOPs x uses), so that a time budget goes where the model's time goes.
    for index, task in enumerate(sorted(tasks, key=lambda t: (-t.flop * t.weight, t.key)), 1):
        head = f"[{index}/{len(tasks)}] {task.name} (x{task.weight})"
        if task.key in done:
            saved = json.loads((done[task.key] / TASK_FILE).read_text())
            row = TaskResult(task.name, task.key, task.weight, saved.get("default_s"), saved.get("best_s"),
                             int(saved.get("trials", 0)), "recorded", bool(saved.get("kept")))
            summary.tasks.append(row)
            say(f"{head}: in the database: best {_ms(row.best_s)}, default {_ms(row.default_s)}")
            continue
        if task.dynamic:
            summary.tasks.append(TaskResult(task.name, task.key, task.weight, None, None, 0, "dynamic"))
            say(f"{head}: not tunable, its shapes are dynamic (tune and compile with --input-shape to fix them)")
            continue
        if time_budget_s is not None and time.monotonic() - started >= time_budget_s:
            summary.tasks.append(TaskResult(task.name, task.key, task.weight, None, None, 0, "skipped"))
            say(f"{head}: skipped, time budget spent (a later run tunes it)")
            continue
        partial = folder / (task.key + PARTIAL)
        partial.mkdir()
        with native_stderr_to_log("TVM tune"):
            default_s = measure(default_schedule(task.mod, tvm_target), tvm_target, builder, runner)
            best_s = tune_task(task, tvm_target, partial, trials, builder, runner, strategy, cost_model)
        kept = best_s is not None and (keep_slower or default_s is None or best_s < default_s)
        if not kept:  # the build keeps mlc's default schedule for it
            for name in RECORD_FILES:
                (partial / name).write_text("")
        row = TaskResult(task.name, task.key, task.weight, default_s, best_s, trials,
                         "tuned" if kept else "kept-default", kept)
        (partial / TASK_FILE).write_text(json.dumps(
            {"name": task.name, "workload": task.key, "trials": trials, "best_s": best_s, "default_s": default_s,
             "kept": kept, "strategy": strategy, "target": text}, indent=2, sort_keys=True) + "\n")
        os.replace(partial, folder / task.key)
        summary.tasks.append(row)
        verdict = (f"{default_s / best_s:.2f}x" if kept and default_s and best_s else
                   "tuned; mlc's schedule did not run" if kept else "default kept")
        say(f"{head}: best {_ms(best_s)}, default {_ms(default_s)} ({verdict}); {trials} trials")
    tuned, untuned = summary.estimate_ms()
    finished = sum(1 for t in summary.tasks if t.status not in ("skipped", "dynamic"))
    line = f"{finished}/{len(tasks)} task(s) in {database}"
    if tuned is not None and untuned is not None:
        line += f"; estimated model latency {tuned:.4g} ms tuned vs {untuned:.4g} ms untuned"
    say(line)
    return summary
