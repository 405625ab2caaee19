"""TVM's part of a compile: ONNX model in, `module.so` out, in a process of its own.

TVM 0.27 emits some functions (the VM's shape bookkeeping) with registers allocated in an order
that follows heap addresses: with address-space randomization, the same model compiled twice gave
3 different `module.so` in 5 runs (same code, other instruction order), and a process's first
compile differs from its later ones. Compiling in a child process that runs with randomization
off (Linux `personality(ADDR_NO_RANDOMIZE)`, which `setarch -R` also sets) made 5 of 5 identical,
so artifacts are byte-identical for identical inputs. Where the personality call is unavailable
the build still runs (in a child), only without that guarantee. What the child prints (TVM's and
LLVM's native warnings) goes to the debug log ("mlc.backends.tvm", shown by `mlc -v`), never to
mlc's stderr; in-process TVM calls get the same through `native_stderr_to_log`.

    python -m mlc.backends.tvm_build MODEL.onnx TARGET.json OUT.so
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ADDR_NO_RANDOMIZE = 0x0040000
FAILED = 3  # the child's exit code for a TVM error (its one-line message is on stderr)
MARKER = "mlc-tvm-error: "  # TVM may print warnings after the error; the parent looks for this line

log = logging.getLogger("mlc.backends.tvm")

_stderr_lock = threading.RLock()
_stderr_depth = 0  # nested native_stderr_to_log blocks; only the outermost redirects


@contextlib.contextmanager
def native_stderr_to_log(what: str) -> Iterator[None]:
    """Hold back what native code writes to stderr during the block; log it at DEBUG instead.

    Why: TVM's C++ logging (`LOG(ERROR)`, `LOG(WARNING)`: "Using LLVM 22.1.0 with `-mcpu=skylak` is
    not valid ...") and LLVM's `errs()` ("'+avx3' is not a recognized feature for this target")
    write straight to file descriptor 2 from C++, past Python's `sys.stderr`, so neither
    `contextlib.redirect_stderr` nor logging settings can stop them. mlc's rule is that nothing a
    backend library logs reaches stderr unasked: fd 2 points at a temporary file for the block
    (`os.dup2`, restored in `finally`), and each line written there is logged at DEBUG on the
    "mlc.backends.tvm" logger, which `mlc -v` shows. Python text written to stderr during the
    block lands there too. Only the outermost of nested blocks redirects, and a lock keeps two
    threads from redirecting at once (the other waits)."""
    global _stderr_depth
    with _stderr_lock:
        if _stderr_depth:
            _stderr_depth += 1
            try:
                yield
            finally:
                _stderr_depth -= 1
            return
        with contextlib.suppress(Exception):  # Python's own buffered text goes out first
            sys.stderr.flush()
        try:
            saved = os.dup(2)
        except OSError:  # no stderr at all: nothing can leak
            yield
            return
        with tempfile.TemporaryFile() as capture:
            os.dup2(capture.fileno(), 2)
            _stderr_depth = 1
            try:
                yield
            finally:
                _stderr_depth = 0
                with contextlib.suppress(Exception):
                    sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                capture.seek(0)
                text = capture.read().decode("utf-8", errors="replace")
                for line in text.splitlines():
                    if line.strip():
                        log.debug("%s: %s", what, line.rstrip())


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def bindable_dims(model: Any) -> Any:
    """The model with every symbolic dim of its inputs a plain name TVM can bind.

    TVM's frontend parses a dim named `4*h` (torch.export's derived dims) as the expression 4 * h,
    and then cannot find h from an input of that length ("PrimExpr T.int64(4) * h is not
    computed"). Such dims become names of their own (`4*h` -> `d_4_h`), the same name for the same
    text everywhere; TVM then derives the other dims from those, as it does for any input."""
    renamed: dict[str, str] = {}
    taken = set()
    graph = model.graph
    for info in [*graph.input, *graph.output, *graph.value_info]:
        for dim in info.type.tensor_type.shape.dim:
            if dim.HasField("dim_param"):
                taken.add(dim.dim_param)
    for info in graph.input:
        for dim in info.type.tensor_type.shape.dim:
            text = dim.dim_param if dim.HasField("dim_param") else ""
            if not text or _IDENTIFIER.fullmatch(text) or text in renamed:
                continue
            base = "d_" + (re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_") or "dim")
            name, count = base, 0
            while name in taken:
                count += 1
                name = f"{base}_{count}"
            taken.add(name)
            renamed[text] = name
    if not renamed:
        return model
    for info in [*graph.input, *graph.output, *graph.value_info]:
        for dim in info.type.tensor_type.shape.dim:
            if dim.HasField("dim_param") and dim.dim_param in renamed:
                dim.dim_param = renamed[dim.dim_param]
    return model


def relax_module(model: Any, opset: int) -> Any:
    """The model as a Relax module, as every TVM build (and `mlc tune`) starts from it:
    from_onnx (with tvm_rnn's recurrent converters) → DecomposeOpsForInference."""
    from tvm import relax
    from tvm.relax.frontend.onnx import from_onnx

    from mlc.backends.tvm_rnn import recurrent_converters

    with recurrent_converters():  # LSTM/GRU/RNN the frontend lacks: a loop kernel (tvm_rnn)
        module = from_onnx(bindable_dims(model), opset=opset, keep_params_in_input=False)
    return relax.transform.DecomposeOpsForInference()(module)


COUNTS_SUFFIX = ".tuning-counts.json"  # the child's tuned/defaulted/missing counts, beside OUT.so


def build_library(model: Any, target: dict[str, Any], out: Path, opset: int) -> dict[str, int] | None:
    """from_onnx → DecomposeOpsForInference → tvm.compile(opt_level 3) → export_library; on `llvm`
    with mlc's CPU schedules (`tvm_schedules`) unless the target says `mlc_schedules: none`.

    With `mlc_tuning_db` (a target folder of an mlc tuning database, `mlc compile --tuning-db`)
    the build applies its records after fusion (`tvm_tune.open_records`) and returns how many fused
    functions were tuned, defaulted and missing; otherwise None and the build is as without it."""
    import tvm

    module = relax_module(model, opset)
    target = dict(target)
    schedules = target.pop("mlc_schedules", "mlc")  # mlc's own keys: not TVM target attributes
    records = target.pop("mlc_tuning_db", None)
    tvm_target = tvm.target.Target(target)
    pipeline: Any = "default"
    if records is not None:
        from mlc.backends.tvm_schedules import relax_pipeline
        from mlc.backends.tvm_tune import open_records

        counts: dict[str, int] = {}
        rules: list[Any] | None = [] if schedules == "none" else None
        pipeline = relax_pipeline(tvm_target, rules, apply_database=True, counts=counts)
        with open_records(Path(records)), tvm_target, tvm.transform.PassContext(opt_level=3):
            executable = tvm.compile(module, target=tvm_target, relax_pipeline=pipeline)
        executable.export_library(str(out))
        return counts
    if tvm_target.kind.name == "llvm" and schedules == "mlc":
        from mlc.backends.tvm_schedules import relax_pipeline

        pipeline = relax_pipeline(tvm_target)
    with tvm_target, tvm.transform.PassContext(opt_level=3):
        executable = tvm.compile(module, target=tvm_target, relax_pipeline=pipeline)
    executable.export_library(str(out))
    return None


_CHILD_ENVIRONMENT = {"PATH", "HOME", "USER", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH",
                      "PYTHONNOUSERSITE", "PYTHONUSERBASE", "XDG_CACHE_HOME"}


def _no_aslr() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.personality(ADDR_NO_RANDOMIZE)
    except (OSError, AttributeError):
        pass


def build_in_child(model_path: Path, target: dict[str, Any], out: Path, opset: int) -> str | None:
    """Run build_library in a child process whose memory layout is the same every time (TVM orders
    some maps by object address, which leaks into the module's bytes); None on success, else the
    error's first line.

    Same layout: address randomization off; a fixed string-hash seed; the environment cut down to
    what the build reads (not PWD, OLDPWD, PYTEST_CURRENT_TEST, ..., whose lengths differ from
    one compile to the next); the working folder set to the model's, with file names passed
    relative to it and kept out of `sys.path` (`-P`), so that the temporary folder's name (it
    holds a process id) is never a string in the child's heap."""
    folder = model_path.parent
    env = {key: value for key, value in os.environ.items()
           if key in _CHILD_ENVIRONMENT or key.startswith(("TVM_", "LD_", "CUDA", "NVIDIA", "OMP_"))}
    env["PYTHONHASHSEED"] = "0"
    command = [sys.executable, "-P", "-m", "mlc.backends.tvm_build", os.path.relpath(model_path, folder),
               json.dumps(target), os.path.relpath(out, folder), str(opset)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=folder,
                          preexec_fn=_no_aslr if sys.platform.startswith("linux") else None)
    for stream in (done.stdout, done.stderr):
        for line in stream.splitlines():
            if line.strip() and not line.startswith(MARKER):
                log.debug("TVM build process: %s", line.rstrip())
    if done.returncode == 0:
        return None
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    marked = [line.removeprefix(MARKER) for line in lines if line.startswith(MARKER)]
    if marked:
        return marked[-1]
    if done.returncode < 0:  # killed by a signal: no Python error to report, only the signal
        try:
            name = signal.Signals(-done.returncode).name
        except ValueError:
            name = f"signal {-done.returncode}"
        return f"the TVM build process died of {name} (a fault inside TVM's compiler on this model)"
    return lines[-1] if lines else f"the TVM build process exited with {done.returncode}"


def error_line(text: str, fallback: str) -> str:
    """The line of a TVM error that says what failed: TVM puts it last, after the backtrace, but
    may follow it with the offending call and a comment (`# Metadata omitted. ...`, which alone
    said nothing: fuzz seed 28's unlowered conv2d_transpose)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip() and not line.strip().startswith("#")]
    if not lines:
        return fallback
    if len(lines) >= 3 and lines[-2].rstrip(":").strip() == "Offending call":
        return f"{lines[-3]} Offending call: {lines[-1][:240]}"
    return lines[-1]


def main(argv: list[str]) -> int:
    import onnx  # noqa: TID251 - the child reads the ONNX file the parent wrote for TVM's frontend

    model_path, target, out, opset = argv
    try:
        counts = build_library(onnx.load(model_path), json.loads(target), Path(out), int(opset))
    except Exception as error:  # noqa: BLE001 - reported to the parent as one line
        print(f"{MARKER}{type(error).__name__}: {error_line(str(error), type(error).__name__)}", file=sys.stderr,
              flush=True)
        return FAILED
    if counts is not None:
        Path(out + COUNTS_SUFFIX).write_text(json.dumps(counts, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
