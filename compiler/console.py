"""The rich console mlc prints tables with: the terminal's width, or 160 columns when piped
(rich's 80-column default would wrap pass names and error figures in logs and CI output)."""

from __future__ import annotations

import shutil
import sys

from rich.console import Console


def make_console() -> Console:
    width = shutil.get_terminal_size((160, 24)).columns if sys.stdout.isatty() else 160
    return Console(highlight=False, soft_wrap=True, width=max(width, 100))
