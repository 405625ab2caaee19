"""Reproducible builds: the same model compiled again and again, each time from another working
folder, with the model in another folder, into another output path (relative or absolute, short
or long), under another time zone, locale, thread count, string-hash seed and temporary folder,
gives byte-identical artifacts: every file's sha256, the manifest's included (so it holds no
time, path or host-dependent order).

Each build is a fresh `python -m mlc.cli compile` (the hash seed is fixed when an interpreter
starts), two at a time. onnxruntime: 20 builds. llvm: 4 builds here (each takes seconds of
TVM); `MLC_REPRO_BUILDS=20` runs 20 for each target, e.g.
    MLC_REPRO_BUILDS=20 pytest -q tests/reliability/test_reproducible.py -k llvm
"""

from __future__ import annotations

import difflib
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.reliability.support import clean_env, digest, mlc_command, small_cnn

ZONES = ("UTC", "Asia/Kolkata", "America/St_Johns", "Pacific/Chatham", "Etc/GMT+12", "XST-5:45", "Europe/Berlin")
LOCALES = ("C", "C.UTF-8", "POSIX", "tr_TR.UTF-8", "de_DE.UTF-8", "ja_JP.eucJP", "en_US.UTF-8")
HASH_SEEDS = ("0", "1", "random", "4294967295", "31337", "random", "271828")


def builds(target: str) -> int:
    return int(os.environ.get("MLC_REPRO_BUILDS", "20" if target == "onnxruntime" else "4"))


def _build(root: Path, model: Path, target: str, index: int) -> tuple[Path, str]:
    """Build number `index`, everything that may vary varied; (artifact folder, stderr)."""
    cwd = root / f"cwd{index}" / ("w" * (index * 5 % 37))
    cwd.mkdir(parents=True)
    source = root / f"src{index}" / ("m" * (index * 3 % 11)) / model.name
    source.parent.mkdir(parents=True)
    shutil.copy(model, source)
    output = root / f"out{index}" / ("o" * (index * 7 % 29)) / "art"
    given = os.path.relpath(output, cwd) if index % 2 else str(output)
    tmp = root / f"tmp{index}"
    tmp.mkdir()
    threads = str(1 + index % 4)
    env = clean_env(TZ=ZONES[index % len(ZONES)], LC_ALL=LOCALES[index % len(LOCALES)],
                    LANG=LOCALES[(index + 3) % len(LOCALES)], PYTHONHASHSEED=HASH_SEEDS[index % len(HASH_SEEDS)],
                    OMP_NUM_THREADS=threads, TVM_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads,
                    MKL_NUM_THREADS=threads, TMPDIR=str(tmp))
    done = subprocess.run(mlc_command("compile", os.path.relpath(source, cwd), "--target", target, "-o", given),
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (index, done.stderr)
    return output, done.stderr


def _differences(first: Path, other: Path) -> str:
    lines = []
    for name in sorted(set(digest(first)) | set(digest(other))):
        a, b = first / name, other / name
        if not (a.is_file() and b.is_file()) or a.read_bytes() != b.read_bytes():
            lines.append(f"{name} differs")
            if name.endswith(".json") and a.is_file() and b.is_file():
                lines += list(difflib.unified_diff(a.read_text().splitlines(), b.read_text().splitlines(),
                                                   lineterm="", n=1))[:40]
    return "\n".join(lines)


@pytest.mark.parametrize("target", ["onnxruntime", pytest.param("llvm", marks=pytest.mark.slow)])
def test_rebuilds_are_byte_identical(tmp_path, target) -> None:
    if target == "llvm":
        pytest.importorskip("tvm")
    model = small_cnn(tmp_path / "model" / "cnn.onnx")
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda i: _build(tmp_path, model, target, i), range(builds(target))))
    first = results[0][0]
    assert sorted(digest(first)) == sorted(["manifest.json", "model.onnx" if target == "onnxruntime" else "module.so"])
    for index, (output, _) in enumerate(results[1:], start=1):
        assert digest(output) == digest(first), f"build {index} differs from build 0:\n{_differences(first, output)}"
