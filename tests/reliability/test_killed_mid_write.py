"""A compile killed with SIGKILL at any moment of writing its output leaves the previous output
byte-identical, or nothing (no output before), or the whole new one; never part of one. The next
run removes what the killed one left beside the output and writes a whole one.

The moments: a first run records every change it makes under the output's folder (a file opened
for writing, a folder made, a rename, a removal; `hooks/sitecustomize.py`); then one run per
change is stopped just before it and killed there, the whole process group, as a cancelled CI
job is. The llvm target is also killed while TVM's build process and the linker write.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.reliability.support import (
    ForkServer,
    check_artifact,
    clean_env,
    digest,
    kill_when,
    leftovers,
    read_events,
    run_mlc,
    small_cnn,
    start,
)


@pytest.fixture(scope="module")
def work(forkserver: ForkServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A model, the artifact an older compile wrote (at -O0: other bytes than the new one's),
    and the artifact a compile writes now."""
    root = tmp_path_factory.mktemp("killed")
    model = small_cnn(root / "model" / "cnn.onnx")
    old = root / "old" / "art"
    code, _, err = forkserver.run("compile", model, "-o", old, "-O0", cwd=root)
    assert code == 0, err
    new = root / "new" / "art"
    code, _, err = forkserver.run("compile", model, "-o", new, cwd=root)
    assert code == 0, err
    assert digest(old) != digest(new)
    return {"root": root, "model": model, "old": old, "new": new}


def _changes(forkserver: ForkServer, work: dict[str, Path], out: Path, *args: object,
             hooks: dict[str, object] | None = None) -> list[dict[str, object]]:
    """The file-system changes `mlc ARGS` makes under `out/place`, in order."""
    log = out / "events.log"
    log.unlink(missing_ok=True)
    code, _, err = forkserver.run(*args, cwd=work["root"],
                                  hooks={"watch": str(out / "place"), "log": str(log), **(hooks or {})})
    assert code == 0, err
    return read_events(log)


def _killed_at(forkserver: ForkServer, work: dict[str, Path], out: Path, step: int, *args: object,
               hooks: dict[str, object] | None = None) -> object:
    """Run `mlc ARGS`, stop it just before change `step` and SIGKILL it there; the change."""
    paused = out / "paused"
    paused.unlink(missing_ok=True)
    run = forkserver.start(*args, cwd=work["root"], hooks={"watch": str(out / "place"), "pause_at": step,
                                                           "paused": str(paused), **(hooks or {})})
    assert run.kill_when(paused.exists), f"the run ended before change #{step}: {run.err.read_text()}"
    return read_events(paused)[0]


def _fresh_place(work: dict[str, Path], out: Path, has_old: bool) -> Path:
    place = out / "place"
    shutil.rmtree(place, ignore_errors=True)
    place.mkdir(parents=True)
    destination = place / "art"
    if has_old:
        shutil.copytree(work["old"], destination)
    return destination


@pytest.mark.parametrize("has_old", [True, False], ids=["replacing-an-artifact", "new-destination"])
def test_compile_killed_at_every_change_leaves_old_or_nothing_or_new(forkserver, work, tmp_path, has_old) -> None:
    destination = _fresh_place(work, tmp_path, has_old)
    args = ("compile", work["model"], "-o", destination)
    changes = _changes(forkserver, work, tmp_path, *args)
    kinds = [str(c["kind"]) for c in changes]
    assert any(k.startswith(("mlc.atomic_rename", "os.rename")) for k in kinds), kinds
    old, new = digest(work["old"]), digest(work["new"])
    seen = set()
    for step in range(1, len(changes) + 1):
        destination = _fresh_place(work, tmp_path, has_old)
        change = _killed_at(forkserver, work, tmp_path, step, *args)
        state = digest(destination)
        assert state in ((old,) if has_old else ({},)) + (new,), f"killed before {change}: {sorted(state)}"
        seen.add("old" if state == old else "new" if state == new else "nothing")
        # the next compile removes the leftovers and writes a whole artifact
        assert forkserver.run(*args, cwd=work["root"])[0] == 0
        assert leftovers(destination.parent) == [], f"killed before {change}"
        assert digest(destination) == new
    assert seen == {"old" if has_old else "nothing", "new"}, "killed both before and after the artifact moved"
    check_artifact(destination, tmp_path)


def test_without_one_step_renames_the_previous_artifact_is_never_lost(forkserver, work, tmp_path) -> None:
    """Where the system cannot swap two folders in one step (not Linux, a file system without
    RENAME_EXCHANGE), the old artifact is renamed aside before the new one moves in. Killed
    between the two renames, the destination is missing, but the previous artifact is whole in
    `.art.old-PID`; the next compile writes the destination (keeping that copy), the one after
    removes it."""
    plain = {"no_renameat2": True}
    destination = _fresh_place(work, tmp_path, True)
    args = ("compile", work["model"], "-o", destination)
    changes = _changes(forkserver, work, tmp_path, *args, hooks=plain)
    assert any(c["kind"] == "os.rename" and ".art.old-" in str(c["path"]) for c in changes), "renamed aside"
    old, new = digest(work["old"]), digest(work["new"])
    seen = set()
    for step in range(1, len(changes) + 1):
        destination = _fresh_place(work, tmp_path, True)
        change = _killed_at(forkserver, work, tmp_path, step, *args, hooks=plain)
        state = digest(destination)
        if state == {}:
            asides = list(destination.parent.glob(".art.old-*"))
            assert [digest(a) for a in asides] == [old], f"killed before {change}: the old artifact is lost"
            seen.add("aside")
        else:
            assert state in (old, new), f"killed before {change}: {sorted(state)}"
        assert forkserver.run(*args, cwd=work["root"], hooks=plain)[0] == 0
        assert digest(destination) == new
        assert all(".old-" in name for name in leftovers(destination.parent)), f"killed before {change}"
        assert forkserver.run(*args, cwd=work["root"], hooks=plain)[0] == 0
        assert leftovers(destination.parent) == [], f"killed before {change}"
    assert "aside" in seen, "a kill between the two renames was tried"


def test_optimize_killed_at_every_change_keeps_the_old_model(forkserver, work, tmp_path) -> None:
    place = tmp_path / "place"
    place.mkdir()
    output = place / "opt.onnx"
    args = ("optimize", work["model"], "-o", output)
    assert forkserver.run(*args, "-O0", cwd=work["root"])[0] == 0
    old = digest(output)
    changes = _changes(forkserver, work, tmp_path, *args)
    new = digest(output)
    assert old != new
    for step in range(1, len(changes) + 1):
        assert forkserver.run(*args, "-O0", cwd=work["root"])[0] == 0  # the old model back
        assert digest(output) == old and leftovers(place) == []
        change = _killed_at(forkserver, work, tmp_path, step, *args)
        assert digest(output) in (old, new), f"killed before {change}"
        assert forkserver.run(*args, cwd=work["root"])[0] == 0
        assert leftovers(place) == [], f"killed before {change}"
        assert digest(output) == new


@pytest.mark.slow
def test_llvm_compile_killed_while_the_linker_writes_leaves_the_old_artifact(work, tmp_path) -> None:
    """Killed, with TVM's build process and the linker it runs, once module.so appears in the
    temporary folder: native code writing, not Python."""
    pytest.importorskip("tvm")
    place = tmp_path / "place"
    place.mkdir()
    destination = place / "art"
    shutil.copytree(work["old"], destination)
    process = start("compile", work["model"], "--target", "llvm", "-o", destination, cwd=work["root"], env=clean_env())
    killed = kill_when(process, lambda: any((t / "module.so").exists() for t in place.glob(".art.tmp-*")))
    assert killed, f"the compile ended before module.so was written: {process.stderr}"
    assert digest(destination) == digest(work["old"])
    assert leftovers(place), "the killed compile's temporary folder is there for the next one to remove"
    done = run_mlc("compile", work["model"], "-o", destination, cwd=work["root"])
    assert done.returncode == 0, done.stderr
    assert leftovers(place) == []
    check_artifact(destination, tmp_path)
