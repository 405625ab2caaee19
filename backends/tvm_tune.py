"""TVM's side of `mlc tune`: the tuning database folder mlc owns, tasks, MetaSchedule, measurement.

Why a folder of mlc's own rather than MetaSchedule's two JSON files: records must be shareable
between models and runs, resumable after an interrupt, and keyed by target, and mlc must never
overwrite what it did not write. Layout (format version `FORMAT_VERSION`):

    DIR/mlc-tuning.json                 format, version, mlc/tvm versions, {target key: target string}
    DIR/<target key>/<workload hash>/   one finished task: MetaSchedule's database_workload.json and
                                        database_tuning_record.json, and mlc-task.json (name, trials,
                                        best and default latency)
    DIR/<target key>/<hash>.partial/    a task being tuned; renamed into place when it finishes

The target key is `<kind>-<sha256 of the target string>[:12]` (the string without `num-cores`,
which only tuning needs). The workload hash is TVM's structural hash of the fused PrimFunc, the
same key MetaSchedule's database looks functions up by, so a task tuned for one model is found
again for any model (or run) that fuses the same function. A task is tuned in one go with a seed
of its own (its hash): an interrupt loses only the task in progress (its `.partial` folder is
dropped on the next run) and a resumed run tunes the tasks left, so it ends with the same tasks,
trials and candidate schedules as a run never interrupted (measured latencies vary with timing).
When tuning finds nothing faster than mlc's default schedule for a task, the task folder keeps no
records: the build then schedules it with mlc's rules, as without a database.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlc.errors import BadInputError

FORMAT = "mlc-tuning-db"
FORMAT_VERSION = 1
MANIFEST = "mlc-tuning.json"
TASK_FILE = "mlc-task.json"
RECORD_FILES = ("database_workload.json", "database_tuning_record.json")
PARTIAL = ".partial"


def _tvm_version() -> str:
    import tvm

    return str(tvm.__version__)


def _mlc_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mlc")
    except PackageNotFoundError:
        return "unknown"


def target_string(spec: dict[str, Any]) -> str:
    """The canonical TVM target string of a backend target spec (mlc's own keys left out)."""
    import tvm

    return str(tvm.target.Target({k: v for k, v in spec.items() if not k.startswith("mlc_")}))


def target_key(text: str) -> str:
    """The folder name of a target's records: kind and a hash of the target string."""
    try:
        kind = str(json.loads(text)["kind"])  # TVM 0.27 writes targets as JSON
    except (ValueError, KeyError, TypeError):
        kind = text.split()[0] if text.split() else "target"
    return f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


class TuningDatabase:
    """A tuning database folder mlc owns (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # --- the folder ---------------------------------------------------------------------

    def manifest(self) -> dict[str, Any]:
        path = self.root / MANIFEST
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise BadInputError(f"tuning database {self.root}: {MANIFEST} unreadable ({error})") from error
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise BadInputError(f"tuning database {self.root}: {MANIFEST} is not an mlc tuning database")
        if data.get("version") != FORMAT_VERSION:
            raise BadInputError(f"tuning database {self.root}: format version {data.get('version')}, this mlc reads "
                                f"version {FORMAT_VERSION}")
        return data

    def check_readable(self) -> None:
        """BadInputError (one line) unless ROOT is an mlc tuning database."""
        if not self.root.is_dir():
            raise BadInputError(f"--tuning-db {self.root}: no such folder (create one with mlc tune)")
        if not (self.root / MANIFEST).is_file():
            raise BadInputError(f"--tuning-db {self.root}: not an mlc tuning database (no {MANIFEST})")
        self.manifest()

    def open_for_writing(self) -> None:
        """Create the folder, or check an existing one is mlc's; refuse a folder mlc did not
        write (not empty and no manifest) in one line: nothing of it is touched."""
        if self.root.exists() and not self.root.is_dir():
            raise BadInputError(f"--tuning-db {self.root}: exists and is not a folder")
        if self.root.is_dir() and not (self.root / MANIFEST).is_file():
            if any(self.root.iterdir()):
                raise BadInputError(f"--tuning-db {self.root}: not an mlc tuning database (no {MANIFEST}) and not "
                                    "empty; refusing to write into it")
        if (self.root / MANIFEST).is_file():
            self.manifest()
            return
        self.root.mkdir(parents=True, exist_ok=True)
        self._write_manifest({"format": FORMAT, "version": FORMAT_VERSION, "mlc": _mlc_version(),
                              "tvm": _tvm_version(), "targets": {}})

    def _write_manifest(self, data: dict[str, Any]) -> None:
        tmp = self.root / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, self.root / MANIFEST)

    def add_target(self, text: str) -> Path:
        """The records folder of target string `text` (registered in the manifest)."""
        data = self.manifest()
        key = target_key(text)
        if data["targets"].get(key) != text:
            data["targets"][key] = text
            data["tvm"] = _tvm_version()
            self._write_manifest(data)
        folder = self.root / key
        folder.mkdir(exist_ok=True)
        return folder

    def target_folder(self, text: str) -> Path:
        return self.root / target_key(text)

    # --- tasks --------------------------------------------------------------------------

    @staticmethod
    def finished(folder: Path) -> dict[str, Path]:
        """The finished tasks of a target folder: workload hash → task folder."""
        if not folder.is_dir():
            return {}
        return {p.name: p for p in sorted(folder.iterdir())
                if p.is_dir() and not p.name.endswith(PARTIAL) and (p / TASK_FILE).is_file()}

    @staticmethod
    def drop_partial(folder: Path) -> list[str]:
        """Remove the `.partial` task folders an interrupted run left (mlc wrote them); their names."""
        dropped = []
        if folder.is_dir():
            for p in sorted(folder.iterdir()):
                if p.is_dir() and p.name.endswith(PARTIAL):
                    shutil.rmtree(p)
                    dropped.append(p.name)
        return dropped

    @staticmethod
    def records_hash(folder: Path) -> str:
        """sha256 over the finished tasks' names and record files: what a build applies."""
        digest = hashlib.sha256()
        for name, task in TuningDatabase.finished(folder).items():
            digest.update(name.encode() + b"\0")
            for file in RECORD_FILES:
                path = task / file
                digest.update(file.encode() + b"\0" + (path.read_bytes() if path.is_file() else b"") + b"\0")
        return digest.hexdigest()


@contextlib.contextmanager
def open_records(folder: Path) -> Iterator[Any]:
    """A MetaSchedule database holding the records of `folder` (a target folder), entered (the
    build's `MetaScheduleApplyDatabase` finds it as the current database). Records are read in
    task-hash order into memory, so the same folder always gives the same database; nothing is
    written to the folder."""
    import tvm.s_tir.meta_schedule as ms

    memory = ms.database.MemoryDatabase()
    for task in TuningDatabase.finished(folder).values():
        paths = [task / f for f in RECORD_FILES]
        if not all(p.is_file() and p.stat().st_size for p in paths):
            continue  # a task tuning found nothing faster for: mlc's rules schedule it
        disk = ms.database.JSONDatabase(str(paths[0]), str(paths[1]), allow_missing=False)
        for record in disk.get_all_tuning_records():
            memory.commit_tuning_record(ms.database.TuningRecord(
                record.trace, memory.commit_workload(record.workload.mod), record.run_secs,
                record.target, record.args_info))
    with memory:
        yield memory


# --- tasks and measurement ---------------------------------------------------------------


@dataclass
class Task:
    name: str
    key: str  # TVM's structural hash of the function, hex
    weight: int  # how many times the model calls it
    mod: Any  # IRModule with the fused PrimFunc as "main"
    flop: float
    dynamic: bool = False  # symbolic shapes: MetaSchedule cannot measure it


def tuning_target(spec: dict[str, Any]) -> Any:
    """The target to tune for: the build's, plus `num-cores` (MetaSchedule needs it)."""
    import psutil
    import tvm

    cores = psutil.cpu_count(logical=False) or os.cpu_count() or 1
    clean = {k: v for k, v in spec.items() if not k.startswith("mlc_")}
    return tvm.target.Target({**clean, "num-cores": int(cores)} if clean.get("kind") == "llvm" else clean)


def extract_tasks(module: Any, target: Any) -> list[Task]:
    """The fused PrimFuncs of a Relax module after mlc's fusion passes (`tvm_schedules`), as
    tuning tasks, in hash order (deterministic)."""
    import tvm
    import tvm.s_tir.meta_schedule as ms
    import tvm_ffi

    from mlc.backends.tvm_schedules import fusion_passes

    with target:
        fused = tvm.transform.Sequential(fusion_passes(target))(module)
    found: dict[str, Task] = {}
    for task in ms.relax_integration.extract_tasks(fused, target):
        mod = task.dispatched[0]
        if mod["main"].attrs and mod["main"].attrs.get("tirx.is_scheduled", False):
            continue  # already scheduled (a library kernel): nothing to tune
        key = f"{tvm_ffi.structural_hash(mod) & (2**64 - 1):016x}"
        if key in found:
            found[key].weight += int(task.weight)
            continue
        try:
            from tvm.s_tir.analysis import estimate_tir_flops

            flop = float(estimate_tir_flops(mod))
        except Exception:  # noqa: BLE001 - FLOPs order the tasks and feed the progress line only
            flop = 0.0
        try:
            ms.arg_info.ArgInfo.from_prim_func(mod["main"])
            dynamic = False
        except Exception:  # noqa: BLE001 - TVM refuses symbolic buffer shapes with a TypeError
            dynamic = True
        found[key] = Task(str(task.task_name), key, int(task.weight), mod, flop, dynamic)
    return [found[k] for k in sorted(found)]


def make_runner(rpc: tuple[str, int, str] | None, timeout_s: float = 60.0) -> Any:
    """MetaSchedule's runner: local, or RPC through a tracker (host, port, key), with as many
    workers as the tracker has free servers for the key (at least 1)."""
    import tvm.s_tir.meta_schedule as ms

    evaluator = ms.runner.EvaluatorConfig(number=3, repeat=1, min_repeat_ms=20)
    if rpc is None:
        return ms.runner.LocalRunner(timeout_sec=timeout_s, evaluator_config=evaluator)
    host, port, key = rpc
    workers = max(1, tracker_free(host, port, key))
    config = ms.runner.RPCConfig(tracker_host=host, tracker_port=port, tracker_key=key,
                                 session_timeout_sec=int(timeout_s))
    return ms.runner.RPCRunner(rpc_config=config, evaluator_config=evaluator, max_workers=workers)


def tracker_free(host: str, port: int, key: str) -> int:
    """How many servers the tracker at host:port has for `key` (0 when none)."""
    from tvm import rpc

    try:
        summary = rpc.connect_tracker(host, port).summary()
    except Exception as error:  # the tracker is down or not a tracker: one line for the user
        raise BadInputError(f"--rpc-tracker {host}:{port}: cannot reach the tracker ({error})") from error
    queue = summary.get("queue_info", {}).get(key)
    if not queue:
        raise BadInputError(f"--rpc-key {key}: no server registered with the tracker at {host}:{port} under this key")
    return int(queue.get("free", 0))


def make_builder() -> Any:
    """A MetaSchedule builder that compiles candidates in this process.

    Why not MetaSchedule's LocalBuilder: it starts a new worker process for every batch, and the
    worker imports `tvm.s_tir.tensor_intrin` (30 s on the project's CI machines) before building
    a kernel that compiles in 40 ms; a tuning run was then 95% worker start. Candidates here are
    plain TIR functions; building them in-process is the same `tvm.compile` (after MetaSchedule's
    `RemoveWeightLayoutRewriteBlock`) and the same tar export the runners load."""
    import tempfile

    import tvm
    import tvm.s_tir.meta_schedule as ms
    from tvm.ir.utils import derived_object
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock
    from tvm.support.tar import tar

    @derived_object
    class InProcessBuilder(ms.builder.PyBuilder):
        def build(self, build_inputs: list[Any]) -> list[Any]:
            results = []
            for item in build_inputs:
                try:
                    mod = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(item.mod)
                    built = tvm.compile(mod, target=item.target)
                    path = os.path.join(tempfile.mkdtemp(prefix="mlc-tune-"), "mod." + tar.output_format)
                    built.export_library(path, fcompile=tar)
                    results.append(ms.builder.BuilderResult(path, None))
                except Exception as error:  # noqa: BLE001 - a candidate that fails to build is skipped
                    results.append(ms.builder.BuilderResult(None, f"{type(error).__name__}: {error}"))
            return results

    return InProcessBuilder()


def measure(mod: Any, target: Any, builder: Any, runner: Any) -> float | None:
    """Seconds per call of a scheduled PrimFunc module (built by `builder`, run by `runner`), or
    None when it fails to build or run."""
    import tvm.s_tir.meta_schedule as ms

    built = builder.build([ms.builder.BuilderInput(mod, target)])[0]
    if built.error_msg:
        return None
    try:
        # MetaSchedule's builder drops weight-packing blocks (the build folds them at compile time)
        # and the kernel then takes the packed weight: the arguments must be described the same way.
        from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

        args = ms.arg_info.ArgInfo.from_prim_func(RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod)["main"])
        device = "cpu" if target.kind.name == "llvm" else target.kind.name
        result = runner.run([ms.runner.RunnerInput(built.artifact_path, device, args)])[0].result()
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(os.path.dirname(built.artifact_path))
    if result.error_msg or not result.run_secs:
        return None
    return float(sorted(float(s) for s in result.run_secs)[len(result.run_secs) // 2])


def default_schedule(mod: Any, target: Any) -> Any:
    """The task's function as the build schedules it without a record (mlc's rules)."""
    import tvm
    import tvm.s_tir.dlight as dl

    from mlc.backends.tvm_schedules import cpu_rules, gpu_rules

    if target.kind.name == "llvm":
        rules = cpu_rules()
    else:
        rules = gpu_rules()
    copy = tvm.IRModule(dict(mod.functions.items()))  # dlight's pass updates the module it is given in place
    with target:
        return dl.ApplyDefaultSchedule(*rules)(copy)


def tune_task(task: Task, target: Any, folder: Path, trials: int, builder: Any, runner: Any,
              strategy: str = "evolutionary",
              cost_model: str = "xgb", per_iteration: int = 16) -> float | None:
    """Tune one task into `folder` (MetaSchedule's JSON database files); the best latency found
    (seconds) or None. The seed is the task's hash, so the same task gets the same candidates."""
    import logging

    import tvm.s_tir.meta_schedule as ms

    logger = logging.getLogger(f"mlc.tune.{task.name}")
    logger.propagate = False  # MetaSchedule's per-trial lines stay out of mlc's stderr
    context = ms.TuneContext(mod=task.mod, target=target, space_generator="post-order-apply",
                             search_strategy=strategy, task_name=task.name, num_threads=1,
                             rand_state=int(task.key, 16) % (2**31 - 1), logger=logger)
    database = ms.database.JSONDatabase(work_dir=str(folder))
    ms.tune_tasks(tasks=[context], task_weights=[1.0], work_dir=str(folder), max_trials_global=trials,
                  max_trials_per_task=trials, num_trials_per_iter=max(1, min(per_iteration, trials)),
                  builder=builder, runner=runner, database=database,
                  cost_model=cost_model, task_scheduler="round-robin")
    best = [float(sum(float(s) for s in r.run_secs) / len(r.run_secs)) for r in database.get_all_tuning_records()
            if r.run_secs and all(float(s) < 1e9 for s in r.run_secs)]
    return min(best) if best else None
