"""Instruments that show the IR around passes: numbered dumps, print-after-change, per-pass diff."""

from __future__ import annotations

import difflib
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from mlc.errors import BadInputError
from mlc.ir.core import Graph
from mlc.ir.printer import print_ir
from mlc.onnx_io.exporter import save_onnx
from mlc.output_guard import (
    MLC_PRODUCER_NAME,
    guard_output_folder,
    is_ir_text,
    mlc_wrote,
    never_replaced,
    show,
    write_file_atomically,
)
from mlc.pass_api import Pass
from mlc.pass_manager import Instrument, PassRecord

_DUMP_NAME = re.compile(r"\d{3}_[A-Za-z0-9_.-]+\.(txt|onnx|data)")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def save_mlc_onnx(graph: Graph, path: Path) -> Path:
    """`save_onnx` with mlc's producer name in the file (not in `graph`, which the pipeline goes
    on with): a dump or reproducer model is then known as mlc's (`mlc_wrote`), so that a later
    run may write over it, and a user's model of the same name is never taken for one."""
    model = graph.model
    if model is None:
        return save_onnx(graph, path)
    producer = model.producer_name
    model.producer_name = MLC_PRODUCER_NAME
    try:
        return save_onnx(graph, path)
    finally:
        model.producer_name = producer


def written_by_mlc(path: Path) -> bool:
    """Whether the file `path` is one of the files mlc writes beside its IR (a model with mlc's
    producer name, its `.onnx.data`, mlc's IR text form, a marked .npz, an mlc report)."""
    name = path.name
    if name.endswith(".onnx.data"):
        model = path.with_name(name[:-len(".data")])
        return model.is_file() and not model.is_symlink() and mlc_wrote(model)
    if name.endswith(".txt"):
        return is_ir_text(path)
    return mlc_wrote(path)


class IRDumper(Instrument):
    """`--dump-ir DIR`: `000_input.txt/.onnx`, then `NNN_<pass>.txt` (our text form, with
    provenance) and `NNN_<pass>.onnx` (for Netron) after each pass.

    The folder is checked when the dumper is made, before any work (`guard_output_folder`):
    dumps go over earlier dumps only, never over a user's file nor an input of the command
    (`protected`, which `protect` extends once the command knows all its inputs); each file is
    checked again just before it is written. The folder is created at the first dump.
    """

    def __init__(self, folder: str | Path, protected: Sequence[Path] = ()) -> None:
        self.given = folder
        self.protected: list[Path] = list(protected)
        self.folder = self._guard()
        self.written: set[Path] = set()
        self.wrote_input = False

    def _guard(self) -> Path:
        return guard_output_folder(self.given, writes=lambda name: _DUMP_NAME.fullmatch(name) is not None,
                                   ours=written_by_mlc, protected=self.protected, flag="--dump-ir")

    def protect(self, paths: Sequence[Path]) -> None:
        """Add inputs the dumps must never write over or sit beside, and check the folder again."""
        self.protected += [Path(p) for p in paths]
        self.folder = self._guard()

    def _check(self, path: Path) -> None:
        """Refuse writing `path` unless it is new, written by this run, or an earlier dump (a
        file that appeared since the folder was checked, or an input reached another way)."""
        if path in self.written or not os.path.lexists(path):
            return
        reason = never_replaced(path, self.protected)
        if reason is None and (path.is_symlink() or not written_by_mlc(path)):
            reason = "it is a file mlc did not write"
        if reason is not None:
            raise BadInputError(f"--dump-ir {show(self.given)}: refusing to write over {show(path)}: {reason}")

    def _write(self, stem: str, graph: Graph) -> None:
        text, model = self.folder / f"{stem}.txt", self.folder / f"{stem}.onnx"
        for path in (text, model, model.with_name(model.name + ".data")):
            self._check(path)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise BadInputError(f"--dump-ir {show(self.given)}: cannot create it ({error.strerror})") from None
        ir = print_ir(graph, debug_info=True)
        write_file_atomically(text, lambda tmp: tmp.write_text(ir))
        save_mlc_onnx(graph, model)
        self.written.update((text, model, model.with_name(model.name + ".data")))

    def before_pass(self, index: int, pass_: Pass, graph: Graph) -> None:
        if not self.wrote_input:
            self._write("000_input", graph)
            self.wrote_input = True

    def after_pass(self, index: int, pass_: Pass, graph: Graph, record: PassRecord) -> None:
        self._write(f"{index + 1:03d}_{_safe(pass_.name)}", graph)


class PrintAfterChange(Instrument):
    """`--print-ir-after-change`: the IR after every pass that changed something."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def after_pass(self, index: int, pass_: Pass, graph: Graph, record: PassRecord) -> None:
        if record.changed:
            self.stream.write(f"// ----- IR after pass #{index} {pass_.spec()} -----\n")
            self.stream.write(print_ir(graph, debug_info=True))


class IRDiff(Instrument):
    """`--ir-diff`: a unified diff of the text form across each pass that changed something."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.before = ""

    def before_pass(self, index: int, pass_: Pass, graph: Graph) -> None:
        self.before = print_ir(graph, debug_info=True)

    def after_pass(self, index: int, pass_: Pass, graph: Graph, record: PassRecord) -> None:
        if not record.changed:
            return
        after = print_ir(graph, debug_info=True)
        diff = difflib.unified_diff(self.before.splitlines(keepends=True), after.splitlines(keepends=True),
                                    fromfile=f"before #{index} {pass_.spec()}", tofile=f"after #{index} {pass_.spec()}")
        self.stream.writelines(diff)
