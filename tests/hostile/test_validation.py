"""The corpus's models imported in-process, the way every command starts (import, verify, the
checks before a pipeline runs): each hostile model is refused with a BadInputError that names
the file and what the case names, each valid one imports. Fast (no subprocess, no runtime), so
that a broken check shows here before the whole corpus runs.

Cases refused only later (a custom op no runtime has, an undefined model-local function) import
here: what refuses them is the reference run, which the subprocess corpus covers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mlc.errors import MlcError
from mlc.ir.verifier import verify
from mlc.onnx_io.importer import import_onnx
from mlc.onnx_io.static_checks import check_runnable
from tests.hostile.corpus import CASES, MODEL, Case, materialize

MODEL_CASES = [c for c in CASES if not c.artifact]
RUNTIME_REFUSES = {"unknown_domain_op", "function_missing"}  # import is right to accept these


def _import(path: Path) -> None:
    graph = import_onnx(path)
    verify(graph)
    check_runnable(graph, str(path))


@pytest.mark.parametrize("c", MODEL_CASES, ids=[c.id for c in MODEL_CASES])
def test_import_refuses_or_accepts(tmp_path: Path, c: Case) -> None:
    _, path = materialize(c, tmp_path / c.id)
    if "inspect" in c.valid or c.id in RUNTIME_REFUSES:
        _import(path)
        return
    with pytest.raises(MlcError) as caught:
        _import(path)
    text = str(caught.value).splitlines()[0]
    assert caught.value.exit_code in c.exits, text
    for name in (MODEL, *c.names):
        assert name in text, (name, text)


def test_size_estimate_names_the_limit(tmp_path: Path) -> None:
    """The small bomb (800 MB, less than the memory limit) is refused by the estimate, not by a
    failed allocation: the message gives the size and the limit."""
    from tests.hostile.corpus import BY_ID

    _, path = materialize(BY_ID["bomb_small"], tmp_path / "bomb")
    with pytest.raises(MlcError, match=r"762\.9 MiB, more than the 512\.0 MiB .*raise it with MLC_MAX_TENSOR_BYTES"):
        _import(path)


def test_the_size_limit_can_be_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """MLC_MAX_TENSOR_BYTES raises the limit for a model that really makes large tensors; a value
    that is no size is refused in one line naming the variable."""
    from tests.hostile.corpus import BY_ID

    _, path = materialize(BY_ID["bomb_small"], tmp_path / "bomb")
    monkeypatch.setenv("MLC_MAX_TENSOR_BYTES", "1G")
    _import(path)
    monkeypatch.setenv("MLC_MAX_TENSOR_BYTES", "700M")
    with pytest.raises(MlcError, match=r"more than the 700\.0 MiB"):
        _import(path)
    monkeypatch.setenv("MLC_MAX_TENSOR_BYTES", "lots")
    with pytest.raises(MlcError, match="MLC_MAX_TENSOR_BYTES='lots': expected a size") as caught:
        _import(path)
    assert caught.value.exit_code == 2


def test_api_run_checks_the_manifest_before_hashing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`mlc.run` refuses a manifest naming a file outside the artifact before it opens anything
    the manifest names (were the bait hashed, the hash function would see its path)."""
    import mlc
    import mlc.artifact
    from tests.hostile.corpus import BY_ID, tiny, write

    base = mlc.compile(write(tmp_path / "src" / "tiny.onnx", tiny()), "onnxruntime", tmp_path / "base.mlc",
                       verify="none")
    hashed: list[str] = []
    real_sha = mlc.artifact.file_sha256
    monkeypatch.setattr(mlc.artifact, "file_sha256", lambda p: hashed.append(str(p)) or real_sha(p))
    _, folder = materialize(BY_ID["art_manifest_outside"], tmp_path / "case", base)
    with pytest.raises(MlcError, match="not a file name inside"):
        mlc.run(folder)
    assert not any("secret.bin" in p for p in hashed), hashed
