"""Eight compiles into one output folder at once (onnxruntime target, -O0 to -O3 so that their
artifacts differ): each ends with exit 0 or a clean one-line refusal, and the folder ends as one
whole artifact of one of them (its files match the manifest's sha256, nothing else is there,
`mlc run` runs it), with nothing left beside it.

Started at once, compiles still reach their last step at different moments; a barrier in
`hooks/sitecustomize.py` holds each at its first rename of the destination until all eight are
there, so that their swaps really race. Also without the barrier, as eight plain `mlc` commands,
and with the fallback of plain renames (where the system cannot swap in one step).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.support import (
    ForkServer,
    check_artifact,
    clean_env,
    digest,
    leftovers,
    one_error_line,
    small_cnn,
    start,
)

COMPILES = 8
LEVELS = ("-O0", "-O1", "-O2", "-O3")


@pytest.fixture(scope="module")
def work(forkserver: ForkServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The model and the artifact each -O level gives, compiled one at a time."""
    root = tmp_path_factory.mktemp("concurrent")
    model = small_cnn(root / "model" / "cnn.onnx")
    expected = {}
    for level in LEVELS:
        code, _, err = forkserver.run("compile", model, "-o", root / "alone" / level, level, cwd=root)
        assert code == 0, err
        expected[level] = digest(root / "alone" / level)
    assert len({str(v) for v in expected.values()}) >= 2, "the levels give different artifacts"
    return {"root": root, "model": model, "expected": expected}


def _outcome(code: int, err: str) -> str:
    if code == 0:
        return "written"
    assert code == 2, err
    one_error_line(err)
    return "refused"


def _check_final(work: dict[str, Any], destination: Path) -> None:
    final = digest(destination)
    assert final in work["expected"].values(), "the folder is not one whole artifact of one compile"
    check_artifact(destination, work["root"])


@pytest.mark.parametrize("has_old", [False, True], ids=["new-destination", "replacing-an-artifact"])
@pytest.mark.parametrize("renames", ["one-step", "plain"])
def test_eight_compiles_racing_to_the_same_folder(forkserver, work, tmp_path, has_old, renames) -> None:
    place = tmp_path / "place"
    place.mkdir()
    destination = place / "art"
    if has_old:
        shutil.copytree(work["root"] / "alone" / "-O0", destination)
    hooks = {"barrier_target": str(destination), "barrier_dir": str(tmp_path / "barrier"),
             "barrier_count": COMPILES, "barrier_timeout": 30, "watch": str(place),
             "no_renameat2": renames == "plain"}
    runs = [forkserver.start("compile", work["model"], "-o", destination, LEVELS[i % len(LEVELS)],
                             cwd=work["root"], hooks=hooks) for i in range(COMPILES)]
    outcomes = [_outcome(run.wait(), run.err.read_text()) for run in runs]
    assert len(list((tmp_path / "barrier").glob("*.arrived"))) == COMPILES, "all eight reached the barrier"
    _check_final(work, destination)
    if renames == "one-step":
        assert outcomes == ["written"] * COMPILES, [r.err.read_text() for r in runs]
        assert leftovers(place) == []
    else:
        assert "written" in outcomes
        # a refused compile may leave the artifact it set aside; the next compile removes it
        assert all(".old-" in name for name in leftovers(place)), leftovers(place)
        assert forkserver.run("compile", work["model"], "-o", destination, cwd=work["root"])[0] == 0
        assert leftovers(place) == []


def test_eight_mlc_commands_at_once(work, tmp_path) -> None:
    """As a user's build system would run them: eight `python -m mlc.cli compile` processes."""
    destination = tmp_path / "art"
    processes = [start("compile", work["model"], "-o", destination, LEVELS[i % len(LEVELS)], cwd=work["root"],
                       env=clean_env()) for i in range(COMPILES)]
    for process in processes:
        _, err = process.communicate(timeout=300)
        _outcome(process.returncode, err)
    _check_final(work, destination)
    assert leftovers(tmp_path) == []
