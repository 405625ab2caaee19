"""`mlc bench` with several targets, a tuning database and fixed shapes: one interleaved loop over
every artifact and plain onnxruntime, each artifact's numbers checked against plain onnxruntime,
and one-line refusals (exit 2) naming the flag. Functional only: timing goals live in benchmarks/."""

from __future__ import annotations

import json
from collections import Counter
from itertools import pairwise
from pathlib import Path

import numpy as np
import onnx
import pytest

from mlc.benchmark import cpu_line, parse_targets, round_order
from mlc.errors import BadInputError
from tests.cli.helpers import DIGITS, exit_of, mlc, one_error_line

FAST = ("--runs", "3", "--warmup", "1")


def _bench_json(capfd: pytest.CaptureFixture[str], *args: object) -> dict:
    code, out, err = mlc(capfd, "--json", "bench", *(str(a) for a in args), *FAST)
    assert code == 0, err
    payload: dict = json.loads(out)
    return payload


# ----------------------------------------------------------------- the order within a round
@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_each_variant_runs_once_in_each_position_over_a_cycle(count: int) -> None:
    for cycle in range(3):
        rounds = [round_order(count, cycle * count + r) for r in range(count)]
        assert all(sorted(order) == list(range(count)) for order in rounds)  # each variant once per round
        for position in range(count):
            assert sorted(order[position] for order in rounds) == list(range(count))


def test_the_variant_before_each_one_changes() -> None:
    """Rotation alone keeps 1 right after 0 in every round where both run after the first; the
    reversed cycles give each variant its other neighbour too."""
    before: dict[int, Counter[int]] = {v: Counter() for v in range(3)}
    for r in range(6):
        order = round_order(3, r)
        for previous, current in pairwise(order):
            before[current][previous] += 1
    assert all(len(neighbours) == 2 for neighbours in before.values()), before
    assert round_order(3, 0) != round_order(3, 1)
    assert round_order(0, 4) == []


def test_targets_are_parsed_in_order_each_once() -> None:
    assert parse_targets("llvm, onnxruntime") == ["llvm", "onnxruntime"]
    with pytest.raises(BadInputError, match="--target onnxruntim: unknown target; did you mean onnxruntime"):
        parse_targets("llvm,onnxruntim")
    with pytest.raises(BadInputError, match="given twice"):
        parse_targets("llvm,onnxruntime,llvm")
    with pytest.raises(BadInputError, match="--target"):
        parse_targets("llvm,")


def test_cpu_line_names_cores_and_isa() -> None:
    line = cpu_line()
    assert " core" in line and line.count(",") >= 2


# ----------------------------------------------------------------- several targets, one loop
def test_two_targets_are_timed_and_checked(capfd: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tvm", reason="--target llvm needs apache-tvm (pip install 'mlc[tvm]')")
    payload = _bench_json(capfd, DIGITS, "--target", "llvm,onnxruntime")
    assert payload["target"] == "llvm,onnxruntime" and payload["model"] == str(DIGITS)
    assert [v["label"] for v in payload["variants"]] == ["mlc llvm", "mlc onnxruntime"]
    assert [v["target"] for v in payload["variants"]] == ["llvm", "onnxruntime"]
    for variant in payload["variants"]:
        assert variant["tuned"] is False and variant["runs"] == 3
        assert variant["check"]["ok"] is True and variant["check"]["verdict"] == "ok"
        assert 0 <= variant["check"]["max_abs_err"] < 1e-4
        assert variant["p10_ms"] <= variant["median_ms"] <= variant["p90_ms"]
        ratio = payload["baseline"]["median_ms"] / variant["median_ms"]
        assert variant["speed_vs_onnxruntime"] == pytest.approx(ratio)
    # the keys of the single-target JSON keep working: runs (variants, then plain) and the ratio
    assert [r["label"] for r in payload["runs"]] == ["mlc llvm", "mlc onnxruntime", "plain onnxruntime"]
    assert payload["speedup_vs_onnxruntime"] == payload["variants"][0]["speed_vs_onnxruntime"]
    assert payload["cpu"] == cpu_line()
    assert payload["feeds"] == {"pixels": [2, 64]}  # the checks' first shape set: batch 2
    assert payload["variants"][0]["inputs"] == {"pixels": "f32[N,64]"}  # --input-shape: feeds only

    code, out, err = mlc(capfd, "bench", DIGITS, "--target", "onnxruntime,llvm", *FAST)
    assert code == 0, err
    rows = [line for line in out.splitlines() if line.startswith(("mlc ", "plain "))]
    assert [row.split("│")[0].strip() for row in rows[1:]] == ["mlc onnxruntime", "mlc llvm", "plain onnxruntime"]
    assert "interleaved, medians" in rows[0] and cpu_line() in rows[0] and "3 runs each" in rows[0]
    assert all(row.rstrip().endswith("ok") for row in rows[1:3]) and rows[3].rstrip().endswith("reference")


def test_a_wrong_artifact_is_reported_not_hidden(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """The artifact is timed against a baseline whose weights differ: its check fails, visibly, in
    the JSON, the table and on stderr."""
    folder = tmp_path / "digits.ort"
    code, _, err = mlc(capfd, "compile", DIGITS, "-o", folder, "-q")
    assert code == 0, err
    model = onnx.load(DIGITS)
    weight = next(t for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT and len(t.dims) == 2)
    weight.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(weight) * 1.5, weight.name))
    other = tmp_path / "other.onnx"
    onnx.save(model, other)

    code, out, err = mlc(capfd, "--json", "bench", folder, "--original", other, *FAST)
    assert code == 0, err
    check = json.loads(out)["variants"][0]["check"]
    assert check["ok"] is False and check["verdict"] == "fail" and check["max_abs_err"] > 1e-3
    assert "mlc onnxruntime computes other numbers than plain onnxruntime" in err
    code, out, _ = mlc(capfd, "bench", folder, "--original", other, *FAST)
    assert code == 0
    assert "FAILED max abs err" in out

    payload = _bench_json(capfd, folder, "--original", DIGITS)  # the right baseline: ok
    assert payload["variants"][0]["check"]["ok"] is True and payload["target"] == "onnxruntime"


def test_an_artifact_folder_alone_has_no_baseline_and_no_check(capfd: pytest.CaptureFixture[str],
                                                                tmp_path: Path) -> None:
    folder = tmp_path / "digits.ort"
    assert mlc(capfd, "compile", DIGITS, "-o", folder, "-q")[0] == 0
    payload = _bench_json(capfd, folder)
    assert payload["baseline"] is None and payload["speedup_vs_onnxruntime"] is None
    assert payload["variants"][0]["check"] is None and len(payload["runs"]) == 1


# ----------------------------------------------------------------- refusals: one line, exit 2
@pytest.mark.parametrize(("args", "needle"), [
    (("--target", "llvm,onnxruntim"), "--target onnxruntim: unknown target"),
    (("--target", "onnxruntime,onnxruntime"), "--target onnxruntime,onnxruntime: onnxruntime given twice"),
    (("--target", "onnxruntime", "--tuning-db", "{tmp}"), "--tuning-db is for the TVM targets"),
    (("--target", "llvm", "--tuning-db", "{tmp}/missing"), "--tuning-db {tmp}/missing: no such folder"),
    (("--static-shape", "pixels:1,x"), "--static-shape 'pixels:1,x'"),
    (("--static-shape", "pixels:1,64", "--input-shape", "pixels:2,64"), "contradicts --static-shape pixels:1,64"),
    (("--runs", "0"), "--runs 0"),
])
def test_bad_flags_exit_2_in_one_line(capfd: pytest.CaptureFixture[str], tmp_path: Path, args: tuple[str, ...],
                                      needle: str) -> None:
    given = [a.replace("{tmp}", str(tmp_path)) for a in args]
    code, _, err = exit_of(capfd, "bench", DIGITS, *given)
    assert code == 2, err
    assert needle.replace("{tmp}", str(tmp_path)) in one_error_line(err)


def test_compile_flags_are_refused_for_an_artifact_folder(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    folder = tmp_path / "digits.ort"
    assert mlc(capfd, "compile", DIGITS, "-o", folder, "-q")[0] == 0
    for args, flag in ((("--target", "llvm,onnxruntime"), "--target"), (("--static-shape", "pixels:1,64"),
                                                                         "--static-shape")):
        code, _, err = exit_of(capfd, "bench", folder, *args)
        assert code == 2
        assert one_error_line(err).startswith(f"mlc: error: {flag}: {folder} is an artifact folder")


# ----------------------------------------------------------------- fixed shapes and a tuning database
@pytest.fixture(scope="module")
def tuning_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real, tiny database: the digits MLP's kernels at batch 1, two random-model trials each, kept
    even where mlc's own schedule measured faster (`keep_slower`: otherwise whether any kernel counts
    as tuned depends on two random trials against a busy machine's noise)."""
    pytest.importorskip("tvm", reason="apache-tvm is not installed (pip install 'mlc[tvm]')")
    import mlc

    db = tmp_path_factory.mktemp("bench-tuning") / "db"
    mlc.tune(DIGITS, "llvm", db, trials=2, static_shapes={"pixels": [1, 64]}, strategy="replay-trace",
             cost_model="random", keep_slower=True, progress=lambda _line: None)
    return db


def test_static_shape_fixes_the_artifact_and_the_feeds(capfd: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tvm", reason="--target llvm needs apache-tvm (pip install 'mlc[tvm]')")
    payload = _bench_json(capfd, DIGITS, "--target", "llvm", "--static-shape", "pixels:1,64")
    assert payload["feeds"] == {"pixels": [1, 64]}
    (variant,) = payload["variants"]
    assert variant["inputs"] == {"pixels": "f32[1,64]"} and variant["check"]["ok"] is True


def test_tuning_db_adds_a_tuned_variant(capfd: pytest.CaptureFixture[str], tuning_db: Path) -> None:
    payload = _bench_json(capfd, DIGITS, "--target", "llvm,onnxruntime", "--static-shape", "pixels:1,64",
                          "--tuning-db", tuning_db)
    labels = [v["label"] for v in payload["variants"]]
    assert labels[0] == "mlc llvm" and labels[2] == "mlc onnxruntime", labels
    untuned, tuned = payload["variants"][:2]
    assert untuned["tuned"] is False and tuned["tuned"] is True and tuned["target"] == "llvm"
    record = tuned["tuning_db"]
    assert record["tuned"] > 0 and len(record["hash"]) == 64
    assert tuned["label"].startswith(f"mlc llvm tuned ({record['tuned']} tuned, {record['defaulted']} defaulted")
    assert tuned["inputs"] == untuned["inputs"] == {"pixels": "f32[1,64]"}
    assert all(v["check"]["ok"] for v in payload["variants"])
    assert not any(v["tuned"] for v in payload["variants"] if v["target"] == "onnxruntime")
    assert np.isfinite(tuned["speed_vs_onnxruntime"])
