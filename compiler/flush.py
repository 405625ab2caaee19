"""Flushing written files to the disk before a rename publishes them.

A rename reaches the disk independently of the data of the files it moves: after a power cut,
a file system may show the new name over a file whose contents were never written (ext4 with
`data=writeback`, XFS; ext4 guards only some rename patterns). So an output is flushed (`fsync`)
before it is renamed into place, and the folder holding it after, the order databases and package
managers use. A file system that cannot sync (a pipe, some network or virtual file systems)
is not waited for: there is nothing more to do there.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
# fsync refusals that mean "nothing to sync here", not a failed write.
_CANNOT_SYNC = frozenset({errno.EINVAL, errno.EBADF, errno.EROFS, errno.ENOTSUP, errno.EOPNOTSUPP})


def _fsync(path: Path, flags: int) -> None:
    try:
        handle = os.open(path, flags)
    except OSError:
        return  # a link to nowhere, a file that went away: nothing of ours to flush
    try:
        os.fsync(handle)
    except OSError as error:
        if error.errno not in _CANNOT_SYNC:
            raise  # EIO, ENOSPC: the data did not reach the disk, which the writer must hear
    finally:
        os.close(handle)


def flush_file(path: Path) -> None:
    """Flush the file `path` to the disk (OSError when its data could not be written)."""
    _fsync(path, os.O_RDONLY)


def flush_folder(path: Path) -> None:
    """Flush the folder `path` (its entries: names created or renamed in it) to the disk."""
    _fsync(path, os.O_RDONLY | _O_DIRECTORY)


def flush_tree(folder: Path) -> None:
    """Flush every file under `folder`, then each folder, to the disk."""
    for root, _folders, files in os.walk(folder):
        for name in sorted(files):
            flush_file(Path(root) / name)
        flush_folder(Path(root))
