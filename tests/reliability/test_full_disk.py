"""Output on a full disk: exit code 2 (DESIGN.md: bad usage or bad input, the user's environment,
not mlc's fault, which would be 70) with one line that names the output path and says why, no
traceback; the destination holds nothing, or the previous output byte-identical, never part of
a new one; nothing left beside it.

Three ways to fill the disk, from the most real to the most thorough:
- a small tmpfs mounted for the test (needs root and CAP_SYS_ADMIN, else skipped: see `disk`),
  for the onnxruntime target, `optimize` and the llvm target (whose linker, not Python, meets
  the full disk);
- RLIMIT_FSIZE in the compile's process (writes past the limit fail with EFBIG; Python ignores
  SIGXFSZ), which any user can set;
- ENOSPC injected at each file written, folder made or rename in turn (`hooks/sitecustomize.py`).
"""

from __future__ import annotations

import errno
import os
import resource
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.support import (
    ForkServer,
    check_artifact,
    clean_env,
    digest,
    leftovers,
    mlc_command,
    one_error_line,
    read_events,
    run_mlc,
    small_cnn,
)

MOUNT_BYTES = 256 << 10


@pytest.fixture(scope="module")
def work(forkserver: ForkServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("full")
    model = small_cnn(root / "model" / "cnn.onnx")
    old = root / "old" / "art"
    code, _, err = forkserver.run("compile", model, "-o", old, "-O0", cwd=root)
    assert code == 0, err
    return {"root": root, "model": model, "old": old}


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of MOUNT_BYTES mounted at `tmp_path/disk` for this test."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if not shutil.which("mount"):
        pytest.skip("no mount command here: the RLIMIT_FSIZE and injected-ENOSPC tests cover full disks")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={MOUNT_BYTES}", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}; needs root with CAP_SYS_ADMIN): "
                    "the RLIMIT_FSIZE and injected-ENOSPC tests cover full disks")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(folder: Path, leave: int) -> Path:
    """Fill the file system of `folder` up to `leave` bytes free; the filler file."""
    filler = folder / "filler"
    stats = os.statvfs(folder)
    free = stats.f_bavail * stats.f_frsize
    with filler.open("wb") as stream:
        stream.write(b"\xa5" * max(free - leave, 0))
    return filler


def refused_for_space(done: tuple[int, str, str] | subprocess.CompletedProcess[str], destination: Path,
                      reason: str = "No space left on device") -> str:
    code, err = (done.returncode, done.stderr) if isinstance(done, subprocess.CompletedProcess) else (done[0], done[2])
    assert code == 2, err
    return one_error_line(err, str(destination), f"cannot write: {reason}")


def test_onnxruntime_compile_on_a_full_tmpfs(forkserver, work, disk) -> None:
    filler = fill(disk, 4096)  # less than the model file and the manifest
    before = digest(filler)
    destination = disk / "out" / "art"
    refused_for_space(forkserver.run("compile", work["model"], "-o", destination, cwd=work["root"]), destination)
    assert not destination.exists() and leftovers(destination.parent) == []
    assert digest(filler) == before


def test_replacing_an_artifact_on_a_full_tmpfs_keeps_it(forkserver, work, disk) -> None:
    destination = disk / "art"
    shutil.copytree(work["old"], destination)
    fill(disk, 4096)  # the old artifact fits, a second copy beside it does not
    old = digest(destination)
    refused_for_space(forkserver.run("compile", work["model"], "-o", destination, cwd=work["root"]), destination)
    assert digest(destination) == old and leftovers(disk) == []
    check_artifact(destination, work["root"])


def test_optimize_on_a_full_tmpfs_keeps_the_old_model(forkserver, work, disk) -> None:
    output = disk / "opt.onnx"
    assert forkserver.run("optimize", work["model"], "-o", output, "-O0", cwd=work["root"])[0] == 0
    old = digest(output)
    fill(disk, 1024)
    refused_for_space(forkserver.run("optimize", work["model"], "-o", output, cwd=work["root"]), output)
    assert digest(output) == old and leftovers(disk) == []


@pytest.mark.slow
def test_llvm_compile_on_a_full_tmpfs_names_the_destination(work, disk) -> None:
    """TVM's linker meets the full disk and says so in its own words, which name neither the
    destination nor the reason: mlc probes the destination's room and says both."""
    pytest.importorskip("tvm")
    fill(disk, 16 << 10)  # room for TVM's input model, not for module.so
    destination = disk / "art"
    done = run_mlc("compile", work["model"], "--target", "llvm", "-o", destination, cwd=work["root"])
    refused_for_space(done, destination)
    assert not destination.exists() and leftovers(disk) == []


def _file_size_limited(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.mark.parametrize("has_old", [False, True], ids=["new-destination", "replacing-an-artifact"])
def test_a_file_size_limit_is_a_full_disk(work, tmp_path, has_old) -> None:
    """RLIMIT_FSIZE below the size of the model file: its write fails with EFBIG."""
    destination = tmp_path / "art"
    if has_old:
        shutil.copytree(work["old"], destination)
    old = digest(destination)
    done = subprocess.run(mlc_command("compile", work["model"], "-o", destination), cwd=work["root"],
                          env=clean_env(), capture_output=True, text=True, preexec_fn=lambda: _file_size_limited(2048))
    refused_for_space(done, destination, "File too large")
    assert digest(destination) == old and leftovers(tmp_path) == []


def _writes(forkserver: ForkServer, work: dict[str, Path], place: Path, *args: object) -> list[dict[str, object]]:
    """The changes `mlc ARGS` makes under `place` that need room: files written, folders made,
    renames (a rename may need a new directory block)."""
    log = place.parent / "events.log"
    log.unlink(missing_ok=True)
    code, _, err = forkserver.run(*args, cwd=work["root"], hooks={"watch": str(place), "log": str(log)})
    assert code == 0, err
    made = {str(place)}  # `mkdir(exist_ok=True)` of a folder that exists cannot run out of room
    writes = []
    for event in read_events(log):
        kind, path = str(event["kind"]), str(event["path"])
        if kind == "os.mkdir" and path not in made:
            made.add(path)
            writes.append(event)
        elif kind in ("write", "os.rename", "os.replace") or kind.startswith("mlc.atomic_rename"):
            writes.append(event)
    return writes


@pytest.mark.parametrize("command", ["compile", "optimize"])
def test_no_room_at_each_write_in_turn(forkserver, work, tmp_path, command) -> None:
    place = tmp_path / "place"
    place.mkdir()
    destination = place / ("art" if command == "compile" else "opt.onnx")
    args = (command, work["model"], "-o", destination)
    assert forkserver.run(*args, "-O0", cwd=work["root"])[0] == 0
    old = digest(destination)
    writes = _writes(forkserver, work, place, *args)
    assert len(writes) >= 4, writes
    for change in writes:
        assert forkserver.run(*args, "-O0", cwd=work["root"])[0] == 0  # the old output back
        done = forkserver.run(*args, cwd=work["root"], hooks={"watch": str(place), "fail_at": change["n"],
                                                              "fail_errno": errno.ENOSPC})
        assert done[0] == 2, (change, done[2])
        line = one_error_line(done[2], str(destination))
        assert "No space left on device" in line, (change, line)
        assert digest(destination) == old, f"no room at {change}"
        assert leftovers(place) == [], f"no room at {change}"
