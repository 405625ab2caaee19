"""TVM backend options: `--mcpu`, `--mattr` and `--cuda-arch` are checked against what LLVM knows
before any work (one line, exit 2, with the nearest valid names), an option of the other target is
refused, and what TVM/LLVM write natively to stderr goes to the debug log instead."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import mlc
from mlc.backends.base import Backend
from mlc.errors import BadInputError

tvm = pytest.importorskip("tvm", reason="apache-tvm is not installed (pip install 'mlc[tvm]')")

from tvm.target import codegen  # noqa: E402 - only once tvm is known to import

from mlc.backends.tvm import TvmBackend, cpu_features, host_cpu, llvm_triple  # noqa: E402
from mlc.backends.tvm_build import native_stderr_to_log  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "models" / "digits_mlp.onnx"
X86 = pytest.mark.skipif(not llvm_triple().startswith("x86_64"), reason="x86-64 CPU names; LLVM targets another here")


def refusal(target: str, options: dict) -> str:
    with pytest.raises(BadInputError) as caught:
        TvmBackend().validate_options(target, options)
    assert caught.value.exit_code == 2
    message = str(caught.value)
    assert "\n" not in message, message
    return message


@X86
@pytest.mark.parametrize(("target", "options", "flag", "value", "suggestion"), [
    ("llvm", {"mcpu": "skylak"}, "--mcpu", "skylak", "skylake"),
    ("llvm", {"mcpu": "skylake-avx51"}, "--mcpu", "skylake-avx51", "skylake-avx512"),
    ("llvm", {"mcpu": "x86-64-v5"}, "--mcpu", "x86-64-v5", "x86-64-v4"),
    ("llvm", {"mattr": "+avx3"}, "--mattr", "+avx3", "avx2"),
    ("llvm", {"mcpu": "skylake", "mattr": "+avx2,-fmaa"}, "--mattr", "+avx2,-fmaa", "fma"),
    ("llvm", {"mattr": "avx2"}, "--mattr", "avx2", "+avx2"),
    ("cuda", {"cuda_arch": "sm80"}, "--cuda-arch", "sm80", "sm_80"),
    ("cuda", {"cuda_arch": "80"}, "--cuda-arch", "80", "sm_80"),
    ("cuda", {"cuda_arch": "sm_9O"}, "--cuda-arch", "sm_9O", "sm_90"),
    ("cuda", {"cuda_arch": "sm_90a"}, "--cuda-arch", "sm_90a", "sm_90"),
])
def test_a_bad_value_is_refused_in_one_line_with_the_nearest_names(target, options, flag, value, suggestion) -> None:
    message = refusal(target, options)
    assert message.startswith(f"{flag} {value}: "), message
    assert suggestion in message.split(": ", 1)[1], message


def test_several_unknown_features_are_named_in_one_line() -> None:
    message = refusal("llvm", {"mattr": "+avx3,-fmaa"})
    assert "avx3" in message and "fmaa" in message and "did you mean" in message


@pytest.mark.parametrize("options", [{"mcpu": "not-a-cpu-at-all"}, {"mattr": ","}, {"mattr": "+"}, {"mcpu": 7},
                                     {"cuda_arch": "sm_35"}, {"cuda_arch": "volta"}])
def test_other_bad_values_are_refused_in_one_line(options) -> None:
    target = "cuda" if "cuda_arch" in options else "llvm"
    flag = "--cuda-arch" if target == "cuda" else "--" + next(iter(options))
    assert refusal(target, options).startswith(flag)


def test_good_values_pass() -> None:
    backend = TvmBackend()
    backend.validate_options("llvm", {})
    backend.validate_options("llvm", {"mcpu": host_cpu()})
    backend.validate_options("llvm", {"mcpu": None, "mattr": "", "in_process": True})  # unset, internal
    backend.validate_options("cuda", {"cuda_arch": "sm_80"})
    backend.validate_options("cuda", {"cuda_arch": "sm_90"})


@X86
def test_good_x86_values_pass() -> None:
    backend = TvmBackend()
    for options in ({"mcpu": "skylake-avx512"}, {"mcpu": "x86-64-v3"}, {"mattr": "+avx2"},
                    {"mcpu": "skylake-avx512", "mattr": "+avx2,-avx512f"}, {"mattr": ["+avx2", "-fma"]}):
        backend.validate_options("llvm", options)


@pytest.mark.parametrize(("target", "options", "expected"), [
    ("cuda", {"mcpu": "skylake"}, "--mcpu is for --target llvm, not cuda"),
    ("cuda", {"mattr": "+avx2"}, "--mattr is for --target llvm, not cuda"),
    ("llvm", {"cuda_arch": "sm_80"}, "--cuda-arch is for --target cuda, not llvm"),
])
def test_an_option_of_the_other_target_is_refused(target, options, expected) -> None:
    assert refusal(target, options) == expected


def test_the_base_backend_accepts_any_options() -> None:
    assert Backend.validate_options(TvmBackend(), "anything", {"whatever": 1}) is None


def test_compile_refuses_a_bad_cpu_before_tvm_works(tmp_path) -> None:
    graph = mlc.import_onnx(DIGITS)
    with pytest.raises(BadInputError, match=r"^--mcpu skylak: .*skylake"):
        TvmBackend().compile(graph, "llvm", {"mcpu": "skylak"}, tmp_path)
    assert list(tmp_path.iterdir()) == []


# --- native stderr --------------------------------------------------------------------------


def log_natively() -> None:
    """A TVM call that writes to fd 2 from C++: an unknown CPU and an unknown feature (TVM's
    LOG(ERROR) and LLVM's "not a recognized feature")."""
    target = tvm.target.Target({"kind": "llvm", "mcpu": "skylak", "mattr": ["+avx3"]})
    codegen.llvm_get_cpu_features(target)


def test_the_native_call_really_writes_to_stderr(capfd) -> None:
    log_natively()  # without the guard: shows that the test below can fail
    assert "skylak" in capfd.readouterr().err


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def tvm_log() -> Iterator[Records]:
    """The "mlc.backends.tvm" records at DEBUG, kept from the root logger's handlers (which an
    earlier CLI test may have pointed at stderr or at a closed stream)."""
    logger = logging.getLogger("mlc.backends.tvm")
    handler, saved = Records(), (logger.level, logger.propagate)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def test_native_stderr_goes_to_the_debug_log(capfd, tvm_log) -> None:
    with native_stderr_to_log("LLVM"):
        log_natively()
    assert capfd.readouterr().err == ""
    logged = [r.getMessage() for r in tvm_log.records]
    assert any("skylak" in m for m in logged) and any("avx3" in m for m in logged), logged
    assert all(r.levelno == logging.DEBUG for r in tvm_log.records)


def test_nested_blocks_log_once_and_stderr_is_restored_after_an_error(capfd, tvm_log) -> None:
    before = os.fstat(2)
    with pytest.raises(RuntimeError), native_stderr_to_log("outer"), native_stderr_to_log("inner"):
        log_natively()
        raise RuntimeError("boom")
    after = os.fstat(2)
    assert (before.st_dev, before.st_ino) == (after.st_dev, after.st_ino)
    assert capfd.readouterr().err == ""
    logged = [r.getMessage() for r in tvm_log.records if "avx3" in r.getMessage()]
    assert len(logged) == 1 and logged[0].startswith("outer: "), logged
    os.write(2, b"after\n")  # fd 2 writes reach stderr again
    assert capfd.readouterr().err == "after\n"


def test_the_backend_checks_log_nothing_on_stderr(capfd, tvm_log) -> None:
    cpu_features("skylak", ("+avx3",))
    with pytest.raises(BadInputError):
        TvmBackend().validate_options("llvm", {"mattr": "+avx3"})
    assert capfd.readouterr().err == ""
    assert any("skylak" in r.getMessage() for r in tvm_log.records)
