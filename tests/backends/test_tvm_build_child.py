"""The TVM build child's failures reach the user as one line that says what happened: a signal
death inside TVM's compiler (fuzz seed 600234: SIGFPE) is named by its signal, not as an exit
code of -8."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

pytest.importorskip("tvm", reason="apache-tvm is not installed (pip install 'mlc[tvm]')")

from mlc.backends import tvm_build


@pytest.mark.parametrize(("code", "said"), [(-8, "died of SIGFPE"), (-11, "died of SIGSEGV"), (3, "exited with 3")])
def test_a_build_child_that_dies_is_named_by_its_signal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        code: int, said: str) -> None:
    monkeypatch.setattr(tvm_build.subprocess, "run",
                        lambda *a, **k: subprocess.CompletedProcess(a[0], code, stdout="", stderr=""))
    failure = tvm_build.build_in_child(tmp_path / "m.onnx", {"kind": "llvm"}, tmp_path / "module.so", 17)
    assert failure is not None and said in failure
