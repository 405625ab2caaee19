"""Pause Python's cyclic garbage collector while building or walking a large IR.

Import and export allocate a few objects per node that all stay alive; the collector keeps
scanning them, which measured 25-37 % of import+verify+export time on 30k-100k node graphs
(benchmarks/bench_import_export.py). Nothing collectable is created meanwhile, so pausing it
costs nothing; it is restored to its previous state on exit, also on errors.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
