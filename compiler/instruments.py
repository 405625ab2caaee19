"""Instruments that show the IR around passes: numbered dumps, print-after-change, per-pass diff."""

from __future__ import annotations

import difflib
import re
import sys
from pathlib import Path
from typing import TextIO

from mlc.errors import BadInputError
from mlc.ir.core import Graph
from mlc.ir.printer import print_ir
from mlc.onnx_io.exporter import save_onnx
from mlc.pass_api import Pass
from mlc.pass_manager import Instrument, PassRecord

_DUMP_NAME = re.compile(r"\d{3}_[A-Za-z0-9_.-]+\.(txt|onnx|data)")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


class IRDumper(Instrument):
    """`--dump-ir DIR`: `000_input.txt/.onnx`, then `NNN_<pass>.txt` (our text form, with
    provenance) and `NNN_<pass>.onnx` (for Netron) after each pass."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise BadInputError(f"--dump-ir {folder}: exists and is not a folder")
        if self.folder.is_dir():
            foreign = sorted(p.name for p in self.folder.iterdir() if not _DUMP_NAME.fullmatch(p.name))
            if foreign:  # dumps replace earlier dumps only, never a user's files
                raise BadInputError(f"--dump-ir {folder}: holds files mlc did not write ({', '.join(foreign[:3])}"
                                    f"{', ...' if len(foreign) > 3 else ''}); give a new or empty folder")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise BadInputError(f"--dump-ir {folder}: cannot create it ({error.strerror})") from None
        self.wrote_input = False

    def _write(self, stem: str, graph: Graph) -> None:
        (self.folder / f"{stem}.txt").write_text(print_ir(graph, debug_info=True))
        save_onnx(graph, self.folder / f"{stem}.onnx")

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
