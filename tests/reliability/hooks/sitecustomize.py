"""Test instrumentation loaded into every Python process of an `mlc` run under test (it is put
first on PYTHONPATH as `sitecustomize`, which Python imports at start-up), configured by the
`hooks.json` beside it. Nothing here is part of mlc.

Through an audit hook (`sys.addaudithook`) it sees what Python code does to the file system and
the network, without patching mlc:

- file-system events under `watch` (a file opened for writing, or with `reads` for reading too,
  a folder created, a rename, a removal, mlc's own `mlc.atomic_rename`) of the process started
  by the test (`parent_pid`),
  numbered from 1: each is written to `log`; at event `pause_at` the process writes `paused`
  and sleeps (the test kills it there); at event `fail_at` the operation fails with `fail_errno`
  (a full disk); at its first rename from or onto `barrier_target` it waits until
  `barrier_count` processes got there in `barrier_dir` (so that concurrent compiles take their
  last steps together);
- network use in any process (the TVM build child included): sockets other than local pipes,
  connections, name look-ups, URL requests are written to `network_log` and refused;
- with `no_renameat2`, mlc's one-step renames are made unavailable (the fallback is tested);
- with `loaded_log`, each process that loaded these hooks says so there (pid, argv).
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

_CONFIG: dict[str, Any] = {}
_WRITES = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_LOCAL = {getattr(socket, "AF_UNIX", -1), getattr(socket, "AF_NETLINK", -2)}
_NETWORK = {"socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex",
            "socket.gethostbyaddr", "socket.getnameinfo", "socket.sendto", "socket.bind", "urllib.Request",
            "http.client.connect", "ftplib.connect", "smtplib.connect", "webbrowser.open"}
_state = {"count": 0, "busy": False, "barrier_done": False, "mine": False}


def _append(path: str, record: dict[str, Any]) -> None:
    """One JSON line appended with os-level calls (`open` here would call the hook again)."""
    handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(handle, (json.dumps(record, default=str) + "\n").encode())
    finally:
        os.close(handle)


def _watched(path: Any) -> bool:
    watch = _CONFIG.get("watch")
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, (str, os.PathLike)) or watch is None:
        return False
    text = os.path.abspath(os.fspath(path))
    return text == watch or text.startswith(watch.rstrip("/") + "/")


def _file_event(event: str, args: tuple[Any, ...]) -> tuple[str, str] | None:
    """(kind, path) of a file-system change under `watch`, None for anything else."""
    if event == "open":
        path, mode, flags = args
        writes = any(c in mode for c in "wax+") if isinstance(mode, str) else bool((flags or 0) & _WRITES)
        if not _watched(path):
            return None
        return ("write", str(path)) if writes else ("read", str(path)) if _CONFIG.get("reads") else None
    if event in ("os.mkdir", "os.remove", "os.rmdir", "shutil.rmtree", "os.truncate"):
        return (event, str(args[0])) if _watched(args[0]) else None
    if event in ("os.rename", "os.replace"):
        return (event, f"{args[0]} -> {args[1]}") if _watched(args[1]) else None
    if event == "mlc.atomic_rename":
        return (f"{event}.{args[0]}", f"{args[1]} -> {args[2]}") if _watched(args[2]) else None
    return None


def _barrier() -> None:
    folder = Path(_CONFIG["barrier_dir"])
    folder.mkdir(parents=True, exist_ok=True)
    _append(str(folder / f"{os.getpid()}.arrived"), {})
    deadline = time.monotonic() + float(_CONFIG.get("barrier_timeout", 60))
    while len(list(folder.glob("*.arrived"))) < int(_CONFIG["barrier_count"]) and time.monotonic() < deadline:
        time.sleep(0.002)


def _on_file_event(kind: str, path: str) -> None:
    _state["count"] += 1
    number = _state["count"]
    if _CONFIG.get("log"):
        _append(_CONFIG["log"], {"n": number, "kind": kind, "path": path})
    if number == _CONFIG.get("fail_at"):
        code = int(_CONFIG.get("fail_errno", errno.ENOSPC))
        raise OSError(code, os.strerror(code), path)
    if number == _CONFIG.get("pause_at"):
        _append(_CONFIG["paused"] + ".part", {"n": number, "kind": kind, "path": path})
        os.rename(_CONFIG["paused"] + ".part", _CONFIG["paused"])  # whole when the test sees it
        time.sleep(3600)
    target = _CONFIG.get("barrier_target")
    if target and "rename" in kind and target in path.split(" -> ") and not _state["barrier_done"]:
        _state["barrier_done"] = True
        _barrier()


def _on_network(event: str, args: tuple[Any, ...]) -> None:
    if event == "socket.__new__":
        family = args[1] if len(args) > 1 else None
        if family in _LOCAL:
            return  # a pipe between local processes, not the network
    elif event not in _NETWORK:
        return
    _append(_CONFIG["network_log"], {"pid": os.getpid(), "event": event, "args": [repr(a) for a in args]})
    raise OSError(errno.ENETUNREACH, f"network blocked by the test: {event}")


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if _state["busy"]:
        return
    _state["busy"] = True
    try:
        if _CONFIG.get("network_log") and (event.startswith(("socket.", "urllib.", "http.", "ftplib.", "smtplib."))
                                           or event == "webbrowser.open"):
            _on_network(event, args)
        if _state["mine"] and _CONFIG.get("watch") is not None:
            found = _file_event(event, args)
            if found is not None:
                _on_file_event(*found)
    finally:
        _state["busy"] = False


def install(config: dict[str, Any], *, mine: bool) -> None:
    """Start watching as `config` says; file-system events count only where `mine` (the process
    the test started, not its children). Once per process: audit hooks cannot be removed."""
    _CONFIG.update(config)
    _state["mine"] = mine
    if config.get("loaded_log"):
        _append(config["loaded_log"], {"pid": os.getpid(), "argv": sys.argv})
    sys.addaudithook(_hook)
    if config.get("no_renameat2"):
        import mlc.atomic_rename

        mlc.atomic_rename._renameat2 = lambda: None  # type: ignore[assignment]


if (Path(__file__).parent / "hooks.json").is_file():  # a copy made by `support.hooks_env`
    _config = json.loads((Path(__file__).parent / "hooks.json").read_text())
    install(_config, mine=_config.get("parent_pid") == os.getppid())
