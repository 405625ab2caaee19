"""Many short `mlc` processes, fast: a server process imports mlc and the libraries a compile
uses once, then forks one child per run. Each child is a process of its own (its own session,
working folder, output files and instrumentation hooks) running `mlc.cli.main` as `python -m
mlc.cli` would, so that a test can kill it with SIGKILL at a chosen moment, or let it fail at one,
dozens of times within seconds instead of paying the ~2 s start of a fresh interpreter each time.
The server itself never runs a compile (no onnxruntime session, no thread): forking it is safe.

Protocol: one JSON object per line on stdin, one reply per line on stdout.
  {"run": {"args": [...], "cwd": ..., "stdout": FILE, "stderr": FILE, "hooks": {...}}} -> {"pid": PID}
  {"wait": PID} -> {"code": exit code, negative for a signal}
  {"poll": PID} -> {"code": the same, or null while it runs}
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

# What `mlc compile` and `mlc optimize` import on their way (not TVM: the llvm target is not forked).
PRELOAD = ("mlc.cli", "mlc.driver", "mlc.artifact", "mlc.pipelines", "mlc.runner", "mlc.report", "mlc.progress",
           "mlc.instruments", "mlc.feeds", "mlc.targets", "mlc.numerics.reference", "mlc.numerics.compare",
           "mlc.numerics.evaluate", "mlc.numerics.selection", "mlc.onnx_io.infer", "mlc.quantize.cache",
           "mlc.backends.onnxruntime", "mlc.passes", "onnxruntime")
HOOKS = Path(__file__).resolve().parent / "hooks" / "sitecustomize.py"


def _child(request: dict[str, Any]) -> int:
    os.setsid()
    os.chdir(request["cwd"])
    for descriptor, name in ((1, "stdout"), (2, "stderr")):
        handle = os.open(request[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(handle, descriptor)
        os.close(handle)
    if request.get("hooks"):
        spec = importlib.util.spec_from_file_location("mlc_test_hooks", HOOKS)
        assert spec is not None and spec.loader is not None
        hooks = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(hooks)
        hooks.install(request["hooks"], mine=True)
    from mlc.cli import main

    try:
        code = main(request["args"])
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 2
    sys.stdout.flush()
    sys.stderr.flush()
    return code


def serve() -> None:
    for name in PRELOAD:
        importlib.import_module(name)
    print(json.dumps({"ready": os.getpid()}), flush=True)
    for line in sys.stdin:
        message = json.loads(line)
        if "run" in message:
            pid = os.fork()
            if pid == 0:
                code = 70
                try:
                    code = _child(message["run"])
                finally:
                    os._exit(code)
            reply: dict[str, Any] = {"pid": pid}
        else:
            pid = int(message.get("wait") or message["poll"])
            done, status = os.waitpid(pid, 0 if "wait" in message else os.WNOHANG)
            reply = {"code": os.waitstatus_to_exitcode(status) if done else None}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    serve()
