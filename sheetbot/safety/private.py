"""Files only their owner can read: state, lock, exports and workbooks hold prompts, outputs and customer data.

The mode is set when the file is created (``os.open`` with 0600), never by a chmod afterwards: between a
create with the usual umask (0644) and a chmod, another user could already have opened the file. A file
that exists keeps the mode its owner gave it. SQLite creates the state's ``-wal`` and ``-shm`` files with
the database file's own mode, so a state file made here keeps them private too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any

PRIVATE = 0o600


def create_private(path: Path) -> None:
    """Make an empty ``path`` readable by its owner only, unless it exists already (then nothing changes)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE)
    except FileExistsError:
        return
    os.close(fd)


def chmod_private(fd: int) -> None:
    """Make an open file the owner's only. ``os.fchmod`` is POSIX (on Windows only from Python 3.13), and
    there a file's privacy is the folder's ACL: nothing to do without it."""
    fchmod = getattr(os, "fchmod", None)
    if fchmod is not None:
        fchmod(fd, PRIVATE)


def open_private(path: Path, mode: str, **kwargs: Any) -> IO[Any]:
    """``open(path, mode)`` for writing ("w", "wb", "x", "xb"): a new file is created 0600."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if "x" in mode else os.O_TRUNC)
    fd = os.open(path, flags | getattr(os, "O_BINARY", 0), PRIVATE)
    try:
        return open(fd, mode.replace("x", "w"), **kwargs)
    except BaseException:
        os.close(fd)
        raise
