"""mlc needs no network, and tells the libraries it loads not to use one either.

A compile runs unattended in build pipelines, often on machines that must not reach the internet
or must not be seen to try. mlc itself opens no socket; but onnxruntime (1.31 on Linux, which mlc
loads to run the reference and the onnxruntime target) ships Microsoft's 1DS telemetry: once
loaded, it writes a device id and an SQLite event store under
`$XDG_CACHE_HOME/Microsoft/DeveloperTools/.onnxruntime/`, and a background thread resolves
`mobile.events.data.microsoft.com` and posts events there over HTTPS a few seconds later (so
a long compile, the llvm target's, is caught at it). `onnxruntime.disable_telemetry_events()`
does not stop it; the environment variable `ORT_DISABLE_TELEMETRY`, read when the library is
loaded, does. Hence `opt_out_of_telemetry` must run before anything imports onnxruntime: first
thing in the `mlc` package (compiler/__init__.py). A value the user set is kept (setting
`ORT_DISABLE_TELEMETRY=0` is their choice to make).

tests/reliability/test_no_network.py runs compiles under strace and with Python's sockets
blocked to prove that nothing tries.
"""

from __future__ import annotations

import logging
import os
import sys

# Variables libraries read when they load, and the value that turns their network use off.
TELEMETRY_OPT_OUTS = {
    "ORT_DISABLE_TELEMETRY": "1",  # onnxruntime: 1DS telemetry (cache files, DNS, HTTPS uploads)
}
log = logging.getLogger("mlc.offline")


def opt_out_of_telemetry() -> None:
    """Set each opt-out the user has not set; say so when a library was loaded before (too late)."""
    for name, value in TELEMETRY_OPT_OUTS.items():
        os.environ.setdefault(name, value)
    if "onnxruntime" in sys.modules:
        log.debug("onnxruntime was imported before mlc: its telemetry follows ORT_DISABLE_TELEMETRY as it was then")
