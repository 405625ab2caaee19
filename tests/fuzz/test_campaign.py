"""benchmarks/fuzz.py and the campaign behind it: seeds run in a worker process, verdicts counted,
the summary printed as JSON; a failing case is saved under --out with its reproducer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mlc.fuzzing.campaign import Failure, Settings, run_campaign

ROOT = Path(__file__).resolve().parents[2]


def test_cli_runs_seeds_and_prints_json(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fuzz.py"), "--seed-start", "3",
                           "--minutes", "0.15", "--targets", "onnxruntime", "--json", "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["seeds"] >= 1 and summary["seed_range"][0] == 3
    assert summary["verdicts"]["onnxruntime"]["ok"] == summary["valid"]
    assert summary["cpu_seconds"] > 0 and not summary["failures"]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_unknown_avoid_is_refused(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fuzz.py"), "--avoid", "nonsense"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2 and "not a known bug" in done.stderr


def test_campaign_counts_every_seed(tmp_path: Path) -> None:
    summary = run_campaign([0, 1, 2], Settings(targets=("onnxruntime",)), tmp_path, log=lambda _: None)
    assert summary.seeds == 3 and summary.valid + sum(summary.skipped.values()) == 3
    assert sum(summary.verdicts["onnxruntime"].values()) == summary.valid


def test_reproducer_names_the_avoided_bugs() -> None:
    failure = Failure(53, "llvm", {}, 3, avoid=("unit-reduction",))
    assert failure.reproducer() == "python benchmarks/fuzz.py --seed 53 --target llvm --avoid unit-reduction"
    assert Failure(2, "onnxruntime", {}, 1).reproducer() == "python benchmarks/fuzz.py --seed 2 --target onnxruntime"
