"""Progress on stderr for stages that take more than a moment (import, each pass, a TVM build,
the artifact check): a rich status line with the stage and its elapsed time, shown only when
stderr is a terminal and not silenced (`-q`, `--json`), so logs and pipes stay clean.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.markup import escape

from mlc.ir.core import Graph
from mlc.pass_api import Pass
from mlc.pass_manager import Instrument, PassRecord

_SHOWING: list[Progress] = []


def current() -> Progress | None:
    """The status line being shown now, if any (a long pass, e.g. calibration, adds its own
    progress to it: `current().update(...)`)."""
    return _SHOWING[-1] if _SHOWING else None


class Progress:
    """One status line; `stage(text)` shows what runs now and restores the previous text after."""

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._status: Any = None
        self._text = ""
        self._started = time.perf_counter()

    def __enter__(self) -> Progress:
        if self.enabled:
            self._status = Console(stderr=True).status("mlc: starting")
            self._status.__enter__()
            _SHOWING.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        if self in _SHOWING:
            _SHOWING.remove(self)
        if self._status is not None:
            self._status.__exit__(*exc)
            self._status = None

    @property
    def text(self) -> str:
        """What the line shows now (without the elapsed time)."""
        return self._text

    def update(self, text: str) -> None:
        self._text = text
        if self._status is not None:
            self._status.update(f"mlc: {escape(text)}  [dim]{time.perf_counter() - self._started:.1f} s[/dim]")

    @contextmanager
    def stage(self, text: str) -> Iterator[None]:
        previous = self._text
        self.update(text)
        try:
            yield
        finally:
            self.update(previous)


class PassProgress(Instrument):
    """Shows `pass k/n: name` while each pass runs."""

    def __init__(self, progress: Progress, total: int) -> None:
        self.progress = progress
        self.total = total

    def before_pass(self, index: int, pass_: Pass, graph: Graph) -> None:
        self.progress.update(f"pass {index + 1}/{self.total}: {pass_.spec()}")

    def after_pass(self, index: int, pass_: Pass, graph: Graph, record: PassRecord) -> None:
        if record.changed:
            self.progress.update(f"pass {index + 1}/{self.total}: {pass_.spec()} (checking)")
