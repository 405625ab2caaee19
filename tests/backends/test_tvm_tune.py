"""`mlc tune` and `--tuning-db`: the database folder, applying it (deterministically), resuming an
interrupted run, and measuring on RPC servers through a tracker.

Tuning is kept tiny (a 32x64 @ 64x64 matmul, 2-4 trials, the replay-trace strategy, which needs
no cost model) so that the tests fit CI's 2 cores."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

tvm = pytest.importorskip("tvm", reason="apache-tvm is not installed (pip install 'mlc[tvm]')")

import mlc  # noqa: E402
from mlc.api import tune  # noqa: E402
from mlc.backends import tvm_tune  # noqa: E402
from mlc.errors import BadInputError  # noqa: E402

FAST = {"strategy": "replay-trace", "cost_model": "random"}


def tiny_model(path: Path, softmax: bool = False) -> Path:
    """x[32,64] @ w[64,64] -> Relu (one fused kernel), optionally -> Softmax (more kernels)."""
    weight = numpy_helper.from_array(np.random.RandomState(0).rand(64, 64).astype(np.float32), "w")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"]), helper.make_node("Relu", ["y"], ["z"])]
    last = "z"
    if softmax:
        nodes.append(helper.make_node("Softmax", ["z"], ["s"], axis=-1))
        last = "s"
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [32, 64])],
                              [helper.make_tensor_value_info(last, TensorProto.FLOAT, [32, 64])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, path)
    return path


def task_folders(db: Path) -> dict[str, Path]:
    (target,) = [p for p in db.iterdir() if p.is_dir()]
    return tvm_tune.TuningDatabase.finished(target)


def traces(db: Path) -> dict[str, list[str]]:
    """Each task's tuned candidates (trace text), without the measured times."""
    import tvm.s_tir.meta_schedule as ms

    found = {}
    for key, folder in task_folders(db).items():
        database = ms.database.JSONDatabase(str(folder / "database_workload.json"),
                                            str(folder / "database_tuning_record.json"), allow_missing=False)
        found[key] = sorted(str(r.trace) for r in database.get_all_tuning_records())
    return found


def test_tune_writes_an_mlc_database_and_compile_applies_it(tmp_path: Path) -> None:
    model = tiny_model(tmp_path / "tiny.onnx")
    db = tmp_path / "db"
    lines: list[str] = []
    summary = tune(model, "llvm", db, trials=4, keep_slower=True, progress=lines.append, **FAST)
    manifest = json.loads((db / "mlc-tuning.json").read_text())
    assert manifest["format"] == "mlc-tuning-db" and manifest["version"] == 1
    assert list(manifest["targets"].values()) == [summary.target]
    (task,) = summary.tasks
    assert task.status == "tuned" and task.trials == 4 and task.best_s and task.default_s
    (folder,) = task_folders(db).values()
    assert folder.name == task.key
    assert len(traces(db)[task.key]) == 4  # every measured candidate is recorded
    assert any("estimated model latency" in line for line in lines)

    # A second run finds the task in the database and tunes nothing.
    again = tune(model, "llvm", db, trials=4, keep_slower=True, **FAST)
    assert [t.status for t in again.tasks] == ["recorded"]

    # compile --tuning-db applies the record: same database, same bytes; the manifest says so.
    outs = [mlc.compile(model, "llvm", tmp_path / f"a{i}", tuning_db=db) for i in range(2)]
    digests = {hashlib.sha256((out / "module.so").read_bytes()).hexdigest() for out in outs}
    assert len(digests) == 1
    recorded = json.loads((outs[0] / "manifest.json").read_text())["backend_options"]["tuning_db"]
    assert recorded["tuned"] == 1 and recorded["missing"] == 0
    assert recorded["hash"] == tvm_tune.TuningDatabase.records_hash(folder.parent)
    # Without the database the compile is mlc's default one: another module, no tuning record.
    plain = mlc.compile(model, "llvm", tmp_path / "plain")
    assert "tuning_db" not in json.loads((plain / "manifest.json").read_text())["backend_options"]
    assert hashlib.sha256((plain / "module.so").read_bytes()).hexdigest() not in digests


def test_a_task_not_faster_than_the_default_keeps_no_records(tmp_path: Path) -> None:
    """A database whose records were dropped (tuning lost to mlc's rule) builds as without one."""
    model = tiny_model(tmp_path / "tiny.onnx")
    db = tmp_path / "db"
    tune(model, "llvm", db, trials=2, keep_slower=True, **FAST)
    (folder,) = task_folders(db).values()
    for name in tvm_tune.RECORD_FILES:  # as tune_model leaves a task whose tuning lost
        (folder / name).write_text("")
    out = mlc.compile(model, "llvm", tmp_path / "a", tuning_db=db)
    recorded = json.loads((out / "manifest.json").read_text())["backend_options"]["tuning_db"]
    assert recorded["tuned"] == 0 and recorded["defaulted"] == 1


def test_refuses_a_folder_mlc_did_not_write(tmp_path: Path) -> None:
    model = tiny_model(tmp_path / "tiny.onnx")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(BadInputError, match="not an mlc tuning database"):
        tune(model, "llvm", foreign, trials=1, **FAST)
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
    with pytest.raises(BadInputError, match="not an mlc tuning database"):
        mlc.compile(model, "llvm", tmp_path / "a", tuning_db=foreign)
    with pytest.raises(BadInputError, match="no such folder"):
        mlc.compile(model, "llvm", tmp_path / "b", tuning_db=tmp_path / "missing")


def test_interrupted_then_resumed_equals_uninterrupted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tiny_model(tmp_path / "tiny.onnx", softmax=True)
    whole = tmp_path / "whole"
    tune(model, "llvm", whole, trials=2, keep_slower=True, **FAST)
    expected = traces(whole)
    assert len(expected) >= 2

    real = tvm_tune.tune_task
    calls = []

    def interrupted(task, target, folder, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(task.key)
        if len(calls) == 2:  # the second task: half-written, then Ctrl-C
            (folder / "database_tuning_record.json").write_text("[0, partial")
            raise KeyboardInterrupt
        return real(task, target, folder, *args, **kwargs)

    resumed = tmp_path / "resumed"
    monkeypatch.setattr(tvm_tune, "tune_task", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tune(model, "llvm", resumed, trials=2, keep_slower=True, **FAST)
    assert len(task_folders(resumed)) == 1
    monkeypatch.setattr(tvm_tune, "tune_task", real)
    lines: list[str] = []
    summary = tune(model, "llvm", resumed, trials=2, keep_slower=True, progress=lines.append, **FAST)
    assert any("dropped 1 unfinished" in line for line in lines)
    assert sorted(t.status for t in summary.tasks).count("recorded") == 1
    assert traces(resumed) == expected


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.skipif(importlib.util.find_spec("tornado") is None,
                    reason="TVM's RPC tracker needs tornado (pip install tornado)")
def test_rpc_tracker_spreads_measurements_over_two_servers(tmp_path: Path) -> None:
    """A tracker and two servers on loopback; tuning through --rpc-tracker measures on both."""
    import os
    import subprocess
    import sys
    import threading
    import time

    from tvm import rpc

    model = tiny_model(tmp_path / "tiny.onnx")
    port, key = _free_port(), "mlc-test"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    processes = [subprocess.Popen([sys.executable, "-m", "tvm.exec.rpc_tracker", "--host", "127.0.0.1",
                                   "--port", str(port), "--port-end", str(port + 1)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)]
    logs = [tmp_path / f"server{i}.log" for i in range(2)]
    # MetaSchedule's CPU design space registers TVM's tensor intrinsics on first use (about 30 s
    # on 2 cores, once per process): done while the servers start, so the test stays under a minute.
    warm = threading.Thread(target=importlib.import_module, args=("tvm.s_tir.tensor_intrin",))
    warm.start()
    try:
        time.sleep(1.0)
        for log in logs:
            server_port = _free_port()
            with log.open("w") as sink:
                processes.append(subprocess.Popen(
                    [sys.executable, "-m", "tvm.exec.rpc_server", "--host", "127.0.0.1", "--port", str(server_port),
                     "--port-end", str(server_port + 1), "--tracker", f"127.0.0.1:{port}", "--key", key],
                    stdout=sink, stderr=subprocess.STDOUT, env=env))
        deadline = time.monotonic() + 40
        free = 0
        while time.monotonic() < deadline:
            try:
                queue = rpc.connect_tracker("127.0.0.1", port).summary()["queue_info"].get(key, {})
                free = int(queue.get("free", 0))
            except Exception:  # noqa: BLE001 - the tracker is still starting
                free = 0
            if free == 2:
                break
            time.sleep(0.5)
        assert free == 2, "the two RPC servers did not register with the tracker"
        warm.join()
        summary = tune(model, "llvm", tmp_path / "db", trials=6, rpc_tracker=f"127.0.0.1:{port}", rpc_key=key,
                       keep_slower=True, **FAST)
        (task,) = summary.tasks
        assert task.best_s is not None and task.default_s is not None
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            process.wait(timeout=10)
    loads = [log.read_text().count("load_module") for log in logs]
    assert all(n > 0 for n in loads), f"modules loaded per server: {loads}"
    assert sum(loads) >= 7  # 6 candidates and the default schedule, each measured once


def test_rpc_options_are_checked(tmp_path: Path) -> None:
    model = tiny_model(tmp_path / "tiny.onnx")
    with pytest.raises(BadInputError, match="go together"):
        tune(model, "llvm", tmp_path / "db", rpc_tracker="127.0.0.1:9190")
    with pytest.raises(BadInputError, match="HOST:PORT"):
        tune(model, "llvm", tmp_path / "db", rpc_tracker="nowhere", rpc_key="k")


def test_time_budget_leaves_tasks_for_a_later_run(tmp_path: Path) -> None:
    model = tiny_model(tmp_path / "tiny.onnx", softmax=True)
    db = tmp_path / "db"
    summary = tune(model, "llvm", db, trials=2, time_budget=1e-9, **FAST)
    assert summary.tasks and {t.status for t in summary.tasks} == {"skipped"}
    assert task_folders(db) == {}
    later = tune(model, "llvm", db, trials=2, time_budget="10m", keep_slower=True, **FAST)
    assert {t.status for t in later.tasks} == {"tuned"}
    assert set(task_folders(db)) == {t.key for t in later.tasks}


def test_mlc_schedule_of_a_packed_conv_is_measured() -> None:
    """mlc's conv rule packs a constant weight in a block MetaSchedule's builder drops: the default's
    latency must still be measured (it was None for every conv, and a slower tuned schedule won)."""
    import tvm.s_tir.meta_schedule as ms

    from mlc.backends.tvm import host_cpu
    from tests.backends.conv_helpers import conv_module

    target = tvm.target.Target({"kind": "llvm", "mcpu": host_cpu(), "num-cores": 2})
    tasks = tvm_tune.extract_tasks(conv_module((1, 16, 14, 14), 32, 3, 1, 1, 1), target)
    (conv,) = [task for task in tasks if "conv2d" in task.name]
    assert conv.flop > 0  # tasks are ordered by FLOPs x uses
    scheduled = tvm_tune.default_schedule(conv.mod, target)
    assert "layout_rewrite_preproc" in scheduled.script()  # the weight is packed by mlc's rule
    # generous limits: a loaded 2-core machine took over 30 s (the default) to build this one kernel
    seconds = tvm_tune.measure(scheduled, target, ms.builder.LocalBuilder(timeout_sec=300),
                               ms.runner.LocalRunner(timeout_sec=120))
    assert seconds is not None and 0 < seconds < 1
