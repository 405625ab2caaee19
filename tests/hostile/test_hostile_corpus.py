"""The hostile corpus through every mlc command, each run a fresh process under RLIMIT_AS 4 GiB,
a timeout and strace: every (case, command) keeps the contract (`tests.hostile.harness.judge`):
exit 2 (or 1 for numbers; 0 only on the extreme but valid cases), one `mlc: error:` line naming
the file and what the case names, no traceback, no exit 70, no signal death, no file outside the
case's folder opened or examined, bounded time and memory.

The corpus runs once per session (two runs at a time); each (case, command) is its own test so
that a failure names both. The harness itself is tested too, so that a pass cannot come from a
check that sees nothing: a run that reads the bait, one that dies by a signal and one that
allocates past the limit are caught. The check-then-read race of external data is tested
in-process, where the file can be swapped deterministically between the two.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from mlc.errors import BadInputError
from tests.hostile.corpus import BAIT, CASES, WEIGHTS, Case, CaseDir, case_external_valid
from tests.hostile.harness import (
    MEMORY_LIMIT,
    Outcome,
    judge,
    outside_accesses,
    run_argv,
    run_corpus,
    selected,
    strace_unavailable,
    table,
)

PAIRS = selected(CASES)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Outcome]:
    root = tmp_path_factory.mktemp("hostile")
    results = run_corpus(root, CASES, jobs=2)
    sys.stderr.write("\n" + table(results) + "\n")
    return {(o.case, o.command): o for o in results}


def test_the_corpus_covers_the_issue() -> None:
    groups = {c.group for c in CASES}
    assert len([c for c in CASES if not c.artifact]) >= 60
    assert {"container", "graph", "tensor", "attribute", "opset", "external", "artifact"} <= groups
    assert len({c.id for c in CASES}) == len(CASES)
    assert any(c.valid for c in CASES) and sum(not c.valid for c in CASES) > 100


@pytest.mark.parametrize(("case_id", "command"), [(c.id, command) for c, command in PAIRS],
                         ids=[f"{c.id}-{command}" for c, command in PAIRS])
def test_contract(outcomes: dict[tuple[str, str], Outcome], case_id: str, command: str) -> None:
    o = outcomes[(case_id, command)]
    if o.verdict == "skipped":
        pytest.skip(o.detail)
    assert o.verdict == "ok", (f"{o.verdict}: {o.detail}\n  command: {' '.join(o.argv[1:])}\n  exit {o.exit}, "
                               f"{o.seconds:.1f} s, {o.max_rss_mb:.0f} MB\n  stderr: {o.stderr[-1500:]}")


def test_reads_outside_are_checked(outcomes: dict[tuple[str, str], Outcome]) -> None:
    """Without strace the corpus still runs; this test says that the reads were not checked."""
    why = strace_unavailable()
    if why:
        pytest.skip(f"reads outside the case's folder not checked: {why}")
    assert all(not o.traced for o in outcomes.values() if o.verdict != "skipped")


# ===================================================================== the harness catches what it should
def _probe(tmp_path: Path, code: str, trace: bool = True) -> tuple[Outcome, CaseDir]:
    """Run `python -c code` the way corpus runs go (in work/, limits, strace) and judge it as a
    refusal of a hostile case."""
    d = CaseDir(tmp_path)
    d.prepare()
    log = tmp_path / "strace.log" if trace and not strace_unavailable() else None
    code_, err, seconds, rss = run_argv([sys.executable, "-c", code], d.work, log, timeout=60)
    o = Outcome("probe", "inspect", [], code_, err, seconds, rss)
    if log is not None:
        o.outside = outside_accesses(log, d)
    judge(Case("probe", "test", "", lambda _d: d.model), o, d.model)
    return o, d


def test_harness_sees_a_read_of_the_bait(tmp_path: Path) -> None:
    if strace_unavailable():
        pytest.skip(strace_unavailable())
    o, _ = _probe(tmp_path, f"open('../outside/{BAIT}', 'rb').read(); print('mlc: error: m.onnx: x', "
                            "file=__import__('sys').stderr); raise SystemExit(2)")
    assert o.verdict == "outside-read" and BAIT in o.detail, (o.verdict, o.detail)


def test_harness_sees_the_bait_through_a_hard_link(tmp_path: Path) -> None:
    if strace_unavailable():
        pytest.skip(strace_unavailable())
    d = CaseDir(tmp_path)
    d.prepare()
    os.link(d.outside / BAIT, d.model_dir / "w.bin")
    o, _ = _probe(tmp_path, "open('../model/w.bin', 'rb').read(); raise SystemExit(2)")
    assert o.verdict == "outside-read" and "bait" in o.detail, (o.verdict, o.detail)


def test_harness_accepts_a_clean_refusal(tmp_path: Path) -> None:
    o, _ = _probe(tmp_path, "import sys; open('../model/m.onnx', 'wb').close(); "
                            "print('mlc: error: m.onnx: refused', file=sys.stderr); raise SystemExit(2)")
    assert o.verdict == "ok", (o.verdict, o.detail)


@pytest.mark.parametrize(("code", "verdict"), [
    ("import os; os.kill(os.getpid(), 11)", "signal"),
    ("raise SystemExit(70)", "exit-70"),
    ("import sys; print('mlc: error: m.onnx: a', file=sys.stderr); print('more', file=sys.stderr); "
     "raise SystemExit(2)", "stderr"),
    ("import sys; print('mlc: error: something', file=sys.stderr); raise SystemExit(2)", "unnamed"),
    ("raise RuntimeError('boom')", "traceback"),
    ("pass", "accepted"),
], ids=["signal", "exit-70", "two-lines", "unnamed", "traceback", "exit-0"])
def test_harness_verdicts(tmp_path: Path, code: str, verdict: str) -> None:
    o, _ = _probe(tmp_path, code, trace=False)
    assert o.verdict == verdict, (o.verdict, o.detail, o.stderr)


def test_harness_memory_limit(tmp_path: Path) -> None:
    """The address-space limit holds: allocating past it fails inside the run."""
    o, _ = _probe(tmp_path, f"bytearray({MEMORY_LIMIT + (1 << 30)})", trace=False)
    assert o.exit == 1 and "MemoryError" in o.stderr, (o.exit, o.stderr)


# ===================================================================== external data swapped after its check
def test_external_data_swapped_for_a_link_after_the_check(tmp_path: Path) -> None:
    """The file is checked at import and read on first use: swapped in between for a symbolic link
    to a file outside (same bytes), the read refuses it instead of following the link."""
    import mlc

    d = CaseDir(tmp_path)
    d.prepare()
    path = case_external_valid(d)
    graph = mlc.import_onnx(path)
    data = d.model_dir / "w.bin"
    data.unlink()
    data.symlink_to(d.outside / BAIT)
    with pytest.raises(BadInputError, match=r"w\.bin"):
        graph.initializers["w"].const.numpy()


def test_external_data_replaced_after_the_check(tmp_path: Path) -> None:
    """Replaced by another regular file (a rename over it), the read refuses it too."""
    import mlc

    d = CaseDir(tmp_path)
    d.prepare()
    path = case_external_valid(d)
    graph = mlc.import_onnx(path)
    other = d.model_dir / "other.bin"
    other.write_bytes((WEIGHTS * 100).tobytes())
    os.replace(other, d.model_dir / "w.bin")
    with pytest.raises(BadInputError, match="replaced"):
        graph.initializers["w"].const.numpy()


def test_external_data_unchanged_reads(tmp_path: Path) -> None:
    """The control: untouched, the weights read back as written."""
    import mlc

    d = CaseDir(tmp_path)
    d.prepare()
    graph = mlc.import_onnx(case_external_valid(d))
    np.testing.assert_array_equal(graph.initializers["w"].const.numpy(), WEIGHTS)
    assert onnx.TensorProto.EXTERNAL == onnx.load(str(d.model), load_external_data=False).graph.initializer[
        0].data_location
