"""Calibration: observe the range of every float tensor on calibration data and keep the table.

    calibrate{data=cal.npz,method=entropy,cache=cal.json}

The graph is not changed (numerics exact): the pass runs it under onnxruntime with the observed
tensors exposed as outputs (`mlc.quantize.calibrate`) and writes the ranges to `cache`, where
`quantize-qdq{calibration=...}` reads them. A table already at `cache` whose keys match (the
graph's digest, the data's digest, the method and its options) is reused without running
anything (statistic `reused`); a stale or damaged table of mlc's is replaced, atomically. A file
at `cache` that is not an mlc calibration table is never overwritten: the pass refuses in one
line. The data (`mlc.quantize.data`): an .npz keyed by input name with samples on axis 0, a
folder of .npz/.npy files, or `random[:N]` (with a warning: noise gives noise's ranges).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

from mlc import progress
from mlc.errors import BadInputError
from mlc.ir.core import Graph
from mlc.output_guard import guard_output, mlc_wrote, show
from mlc.pass_api import Numerics, Pass, PassContext, PassOption, register_pass
from mlc.quantize.cache import CalibrationTable, graph_digest, is_calibration_table, load_table, save_table
from mlc.quantize.calibrate import CalibrationRun, calibrate, method_options
from mlc.quantize.data import CalibrationData

log = logging.getLogger("mlc")


def _ours(path: Path) -> bool:
    """Whether the existing file at `path` is a calibration table of mlc's (by content, whatever
    its suffix: `mlc_wrote` judges `.json` files by content, other suffixes are read here)."""
    if mlc_wrote(path):
        return True
    try:
        if path.stat().st_size > 64 << 20:
            return False
        return is_calibration_table(json.loads(path.read_bytes()))
    except (OSError, ValueError, RecursionError):
        return False


@register_pass
class Calibrate(Pass):
    name = "calibrate"
    description = "Observe activation ranges on calibration data (min-max, percentile, entropy) into a table"
    numerics = Numerics.EXACT
    options = (
        PassOption("data", str, "", "calibration data: an .npz keyed by input name (samples on axis 0), a folder "
                                    "of .npz/.npy, or random[:N]"),
        PassOption("method", str, "minmax", "minmax | percentile | entropy"),
        PassOption("percentile", float, 99.99, "percentile of |x| kept by the percentile method"),
        PassOption("batch", int, 16, "samples per onnxruntime run (memory: one batch's activations)"),
        PassOption("cache", str, "", "the calibration table to reuse or write (required)"),
    )
    statistics = ("tensors", "samples", "runs", "reused", "skipped")

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        if not self.option("data"):
            raise BadInputError("calibrate: option data is required (an .npz, a folder of .npz/.npy, or random)")
        if not self.option("cache"):
            raise BadInputError("calibrate: option cache is required (the table quantize-qdq reads)")
        if self.option("batch") < 1:
            raise BadInputError(f"calibrate: batch {self.option('batch')}: must be at least 1")
        method = self.option("method")
        keyed = method_options(method, {"percentile": self.option("percentile")})
        if method == "percentile" and not 0.0 < self.option("percentile") <= 100.0:
            raise BadInputError(f"calibrate: percentile {self.option('percentile'):g}: must be in (0, 100]")
        cache = Path(self.option("cache"))
        existing = self._existing(cache)
        data = CalibrationData.load(self.option("data"), graph)
        if data.is_random:
            ctx.remark(f"calibrating on {data.description}: the ranges are those of noise, not of real inputs")
        digest = graph_digest(graph)
        if existing is not None and existing.matches(digest, data.digest(), method, keyed):
            ctx.stats["reused"] += 1
            ctx.stats["tensors"] += len(existing.ranges)
            ctx.stats["samples"] += existing.samples
            ctx.remark(f"reused the calibration table {show(cache)} ({len(existing.ranges)} tensors)")
            return False
        if existing is not None:
            ctx.remark(f"{show(cache)}: made for another {self._difference(existing, digest, data, method, keyed)}; "
                       "calibrating again")
        record = CalibrationRun()
        table = calibrate(graph, data, method, keyed, self.option("batch"), progress=_progress_callback(), run=record)
        save_table(table, cache)
        ctx.stats["tensors"] += len(table.ranges)
        ctx.stats["samples"] += table.samples
        ctx.stats["runs"] += record.runs
        ctx.stats["skipped"] += len(record.skipped)
        for why in record.skipped:
            ctx.remark(f"not calibrated: {why}")
        ctx.remark(f"{method} calibration of {len(table.ranges)} tensors on {len(data)} samples "
                   f"({record.runs} onnxruntime runs) written to {show(cache)}")
        return False

    def _existing(self, cache: Path) -> CalibrationTable | None:
        """The table at `cache` when it is a readable one of mlc's; None when there is none or an
        unreadable one of mlc's (replaced); a refusal when the path holds anything else."""
        if not cache.exists() and not cache.is_symlink():
            guard_output(cache, flag="calibrate: cache")
            return None
        if not cache.is_file() or not _ours(cache):
            what = "folder" if cache.is_dir() else "file"
            raise BadInputError(f"calibrate: cache {show(cache)}: refusing to replace it: it is a {what} that is "
                                "not an mlc calibration table")
        guard_output(cache, flag="calibrate: cache", force=True)  # the current folder, home, unwritable...
        try:
            return load_table(cache)
        except BadInputError as error:
            log.info("%s; it will be replaced", error)
            return None

    @staticmethod
    def _difference(table: CalibrationTable, graph: str, data: CalibrationData, method: str,
                    options: dict[str, object]) -> str:
        if table.graph != graph:
            return "graph"
        if table.data != data.digest():
            return "calibration set"
        if table.method != method:
            return f"method ({table.method})"
        return f"set of options ({table.options})"


def _progress_callback() -> Callable[[int, int], None] | None:
    """Adds `run k/n` to mlc's status line while calibration runs, when one is showing."""
    shown = progress.current()
    if shown is None:
        return None
    base = shown.text

    def update(done: int, total: int) -> None:
        shown.update(f"{base}: calibration run {done}/{total}")

    return update
