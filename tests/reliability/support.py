"""What the reliability tests share: a small CNN, `mlc` run as a separate process (so that it can
be killed, limited or cut off from the network), the instrumentation hooks, and checks of an
output folder (digests, leftovers, a valid artifact)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HOOKS = Path(__file__).resolve().parent / "hooks" / "sitecustomize.py"
FORKSERVER = Path(__file__).resolve().parent / "forkserver.py"
IR_VERSION = 8
OPSET = 17


def small_cnn(path: Path, *, external: bool = False, seed: int = 0) -> Path:
    """Conv+BatchNorm+Relu, a residual Conv*scale+Add, pooling and a MatMul+Add head: enough
    for the passes to rewrite something (fold BatchNorm and the scale, fuse MatMul+Add, drop an
    Identity), small enough to compile in a second. With `external`, every weight in
    `NAME.data` beside it."""
    rng = np.random.default_rng(seed)

    def const(name: str, shape: tuple[int, ...], positive: bool = False) -> TensorProto:
        values = rng.standard_normal(shape).astype(np.float32)
        return numpy_helper.from_array(np.abs(values) + 0.5 if positive else values, name)

    weights = [const("w1", (8, 3, 3, 3)), const("b1", (8,)), const("gamma", (8,)), const("beta", (8,)),
               const("mean", (8,)), const("var", (8,), positive=True), const("w2", (8, 8, 3, 3)),
               const("scale", (1, 8, 1, 1)), const("fc_w", (8, 10)), const("fc_b", (10,)),
               numpy_helper.from_array(np.array([1, -1], np.int64), "flat")]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c1", "gamma", "beta", "mean", "var"], ["bn"]),
             helper.make_node("Relu", ["bn"], ["r1"]),
             helper.make_node("Identity", ["r1"], ["i1"]),
             helper.make_node("Conv", ["i1", "w2"], ["c2"], pads=[1, 1, 1, 1]),
             helper.make_node("Mul", ["c2", "scale"], ["m2"]),
             helper.make_node("Add", ["m2", "i1"], ["a2"]),
             helper.make_node("Relu", ["a2"], ["r2"]),
             helper.make_node("GlobalAveragePool", ["r2"], ["pooled"]),
             helper.make_node("Reshape", ["pooled", "flat"], ["features"]),
             helper.make_node("MatMul", ["features", "fc_w"], ["logits"]),
             helper.make_node("Add", ["logits", "fc_b"], ["y"])]
    graph = helper.make_graph(nodes, "small_cnn",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)
    path.parent.mkdir(parents=True, exist_ok=True)
    if external:
        onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                  location=path.name + ".data", size_threshold=0)
    else:
        onnx.save(model, str(path))
    return path


def digest(root: Path) -> dict[str, str]:
    """Every file (sha256), folder and link under `root`, by relative path; {} when missing."""
    if not os.path.lexists(root):
        return {}
    if root.is_file():
        return {".": hashlib.sha256(root.read_bytes()).hexdigest()}
    state: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            state[key] = "link:" + os.readlink(path)
        elif path.is_file():
            state[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            state[key] = "folder"
    return state


def leftovers(folder: Path) -> list[str]:
    """mlc's temporary or set-aside names in `folder` (`.NAME.tmp-PID`, `.NAME.old-PID`, the
    exporter's `..NAME.tmp-PID.XXXX.tmp`)."""
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name or ".old-" in p.name)


def mlc_command(*args: object) -> list[str]:
    return [sys.executable, "-m", "mlc.cli", *(str(a) for a in args)]


def clean_env(**changes: str | None) -> dict[str, str]:
    """This environment with `changes` (None removes a variable); never pytest's own variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run_mlc(*args: object, cwd: Path, env: dict[str, str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(mlc_command(*args), cwd=cwd, env=env or clean_env(), capture_output=True, text=True,
                          timeout=timeout)


def one_error_line(stderr: str, *names: str) -> str:
    """The single `mlc: error: ...` line of `stderr`, which must name each of `names`."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("mlc: error: "), stderr
    assert "Traceback" not in stderr
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


def hooks_env(folder: Path, config: dict[str, Any], **changes: str | None) -> dict[str, str]:
    """An environment whose Python processes load `hooks/sitecustomize.py` configured by `config`
    (a copy of it with its `hooks.json` in `folder`, first on PYTHONPATH)."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(HOOKS, folder / "sitecustomize.py")
    (folder / "hooks.json").write_text(json.dumps({"parent_pid": os.getpid(), **config}))
    path = os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH", "")) if p)
    return clean_env(PYTHONPATH=path, **changes)


def read_events(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def start(*args: object, cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """`mlc ARGS` in a session of its own, so that killing it kills its children too (TVM's
    build process, the linker), as a cancelled CI job or a container's end does."""
    return subprocess.Popen(mlc_command(*args), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def kill_when(process: subprocess.Popen[str], ready: Any, timeout: float = 120) -> bool:
    """SIGKILL the process group of `process` once `ready()` holds; False if the process ended
    first (or the time ran out, then it is killed anyway). The process is reaped either way:
    a zombie's process id still counts as alive."""
    deadline = time.monotonic() + timeout
    while not ready() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    alive = process.poll() is None
    if alive:  # not reaped: its process id is still its own
        os.killpg(process.pid, signal.SIGKILL)
    process.communicate()
    return alive and ready()


def check_artifact(folder: Path, cwd: Path) -> dict[str, Any]:
    """`folder` is one whole artifact: every file the manifest lists matches its sha256, there
    is nothing else in it, and `mlc run` runs it; returns the manifest."""
    from mlc.artifact import read_manifest

    manifest = read_manifest(folder)
    assert sorted(p.name for p in folder.iterdir()) == sorted([*manifest["files"], "manifest.json"])
    done = run_mlc("run", folder, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return manifest


class ForkServer:
    """A client of `forkserver.py`: `mlc` processes started in milliseconds (see there)."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.process = subprocess.Popen([sys.executable, str(FORKSERVER)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, env=clean_env())
        self._runs = 0
        assert "ready" in self._reply()

    def _reply(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, "the fork server died"
        return json.loads(line)  # type: ignore[no-any-return]

    def _ask(self, message: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()
        return self._reply()

    def start(self, *args: object, cwd: Path, hooks: dict[str, Any] | None = None) -> ForkedRun:
        """`mlc ARGS` in a new process (a session of its own), with the hooks of
        `hooks/sitecustomize.py` configured by `hooks`."""
        self._runs += 1
        out = self.scratch / f"run{self._runs}.out"
        err = self.scratch / f"run{self._runs}.err"
        reply = self._ask({"run": {"args": [str(a) for a in args], "cwd": str(cwd), "stdout": str(out),
                                   "stderr": str(err), "hooks": hooks or {}}})
        return ForkedRun(self, int(reply["pid"]), out, err)

    def run(self, *args: object, cwd: Path, hooks: dict[str, Any] | None = None) -> tuple[int, str, str]:
        """(exit code, stdout, stderr) of `mlc ARGS`, run to its end."""
        forked = self.start(*args, cwd=cwd, hooks=hooks)
        code = forked.wait()
        return code, forked.out.read_text(), forked.err.read_text()

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=60)


class ForkedRun:
    """One process of a ForkServer."""

    def __init__(self, server: ForkServer, pid: int, out: Path, err: Path) -> None:
        self.server, self.pid, self.out, self.err = server, pid, out, err
        self.code: int | None = None

    def poll(self) -> int | None:
        if self.code is None:
            self.code = self.server._ask({"poll": self.pid})["code"]
        return self.code

    def wait(self) -> int:
        if self.code is None:
            self.code = int(self.server._ask({"wait": self.pid})["code"])
        return self.code

    def kill_when(self, ready: Any, timeout: float = 120) -> bool:
        """SIGKILL its process group once `ready()` holds; False when it ended first (or the time
        ran out). Reaped either way: a zombie's process id still counts as alive."""
        deadline = time.monotonic() + timeout
        while not ready() and self.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        alive = self.poll() is None
        if alive:  # not reaped: its process id is still its own
            os.killpg(self.pid, signal.SIGKILL)
        self.wait()
        return alive and ready()
