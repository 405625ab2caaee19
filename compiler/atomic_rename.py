"""Renames that never leave a moment without something at the destination.

Replacing an existing artifact folder with plain `rename` takes two steps (the old folder set
aside, the new one moved in): a compile killed between them, or a second compile racing the first,
finds the destination missing. Linux's `renameat2` does it in one step: `RENAME_EXCHANGE` swaps
two existing paths atomically (folders or files, even of different kinds), `RENAME_NOREPLACE`
moves into a missing path and fails rather than replace one that appeared meanwhile. Python's
`os` module does not expose it, so it is called through the C library.

Both functions return False when the system cannot do it here (not Linux, an old C library, a
file system without the flags): the caller then falls back to plain renames. Every call raises
the audit event `mlc.atomic_rename` (operation, source, target), so that tests can watch or
interrupt each step the way they watch `os.rename` (see `sys.addaudithook`).
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path

# <linux/fs.h>
_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
# The system (kernel, C library, file system or sandbox) cannot do it: fall back to rename.
_UNSUPPORTED = frozenset({errno.EINVAL, errno.ENOSYS, errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP})


@cache
def _renameat2() -> Callable[..., int] | None:
    """The C library's `renameat2` (glibc 2.28+, musl 1.2.4+), or None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function  # type: ignore[no-any-return]


def _call(operation: str, flags: int, source: Path, target: Path) -> bool:
    sys.audit("mlc.atomic_rename", operation, str(source), str(target))
    function = _renameat2()
    if function is None:
        return False
    if function(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target), flags) == 0:
        return True
    code = ctypes.get_errno()
    if code in _UNSUPPORTED:
        return False
    raise OSError(code, os.strerror(code), str(source), None, str(target))


def exchange(first: Path, second: Path) -> bool:
    """Swap the two existing paths `first` and `second` in one step; False when this system
    cannot (nothing was changed). Raises OSError otherwise, FileNotFoundError when one of them
    does not exist."""
    return _call("exchange", _RENAME_EXCHANGE, first, second)


def rename_noreplace(source: Path, target: Path) -> bool:
    """Rename `source` to the missing path `target` in one step; False when this system cannot
    (nothing was changed). Raises FileExistsError when `target` exists, OSError otherwise."""
    return _call("noreplace", _RENAME_NOREPLACE, source, target)
