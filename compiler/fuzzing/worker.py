"""Fuzz jobs in a child process, so that a signal death or a hang of mlc, onnxruntime or TVM on one
case is a verdict (`crash`) and not the end of the campaign.

The child is started with `spawn` (no inherited TVM or onnxruntime threads) and serves jobs over a
pipe until it is closed; a job it does not answer within the timeout, or a child that dies, is
answered here, and a fresh child serves the next job. Each answer carries the CPU seconds the job
took in the child (its own and its children's: TVM builds in a grandchild).
"""

from __future__ import annotations

import multiprocessing
import resource
import time
from typing import Any

from mlc.fuzzing.case import Case
from mlc.fuzzing.generator import GeneratorConfig, generate, validate
from mlc.fuzzing.oracle import CRASH, INVALID, Verdict, check_case


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """One job, in whatever process calls it: `validate` a seed, `check` a seed or a given case
    for a target."""
    config = GeneratorConfig(avoid=frozenset(job.get("avoid", ())))
    if job["op"] == "validate":
        case = generate(job["seed"], config)
        reason = validate(case)
        return {"valid": reason is None, "reason": reason, "nodes": case.node_count, "features": case.features}
    if "model" in job:
        import onnx  # noqa: TID251

        case = Case(onnx.load_model_from_string(job["model"]), job["feeds"], job.get("seed"))
    else:
        case = generate(job["seed"], config)
    verdict = check_case(case, job["target"], level=job.get("level", 3), verify=job.get("verify", "none"),
                         triage=job.get("triage", True))
    return {"verdict": verdict.to_json()}


def _serve(conn: Any) -> None:
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        before = _cpu()
        try:
            answer = run_job(job)
        except Exception as error:  # noqa: BLE001 - a fault of the fuzzer itself: reported, not fatal
            answer = {"error": f"{type(error).__name__}: {error}"[:500]}
        answer["cpu"] = _cpu() - before
        conn.send(answer)


class Worker:
    """A child process serving fuzz jobs; `call` never raises for the child's death or a hang."""

    def __init__(self, timeout: float = 600.0) -> None:
        self.timeout = timeout
        self.lost_cpu = 0.0  # wall seconds of jobs whose child was killed (their CPU time is unknown)
        self._context = multiprocessing.get_context("spawn")
        self._process: Any = None
        self._conn: Any = None

    def _start(self) -> None:
        parent, child = self._context.Pipe()
        self._process = self._context.Process(target=_serve, args=(child,), daemon=True)
        self._process.start()
        child.close()
        self._conn = parent

    def call(self, job: dict[str, Any]) -> dict[str, Any]:
        if self._process is None or not self._process.is_alive():
            self._start()
        started = time.monotonic()
        self._conn.send(job)
        try:
            if self._conn.poll(self.timeout):
                return dict(self._conn.recv())
            why = f"no answer within {self.timeout:.0f} s (hang)"
        except (EOFError, ConnectionResetError):
            why = "worker died"
        self._stop()
        code = self._process.exitcode if self._process is not None else None
        if code is not None and code < 0:
            why = f"worker killed by signal {-code}"
        self.lost_cpu += time.monotonic() - started
        if job["op"] == "validate":
            return {"valid": False, "reason": f"generator or onnxruntime: {why}", "cpu": 0.0}
        return {"verdict": Verdict(CRASH, job["target"], why).to_json(), "cpu": 0.0}

    def _stop(self) -> None:
        if self._process is not None and self._process.is_alive():
            self._process.kill()  # our own child, by its handle
        if self._process is not None:
            self._process.join(5)
        if self._conn is not None:
            self._conn.close()
        self._conn = None

    def close(self) -> None:
        if self._conn is not None and self._process is not None and self._process.is_alive():
            try:
                self._conn.send(None)
                self._process.join(10)
            except (BrokenPipeError, OSError):
                pass
        self._stop()
        self._process = None

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


__all__ = ["INVALID", "Worker", "run_job"]
