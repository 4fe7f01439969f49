"""The workbook as a file on disk: how sheetbot notices a person's save, and what it must not overwrite.

A save goes through a temp file beside the workbook (local.py); this module holds the file-level rules
around it: the (mtime, size) signature, refusing a workbook or folder made read-only on purpose, and
sweeping the temp files a killed save left behind.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import time
from glob import escape as glob_escape
from pathlib import Path

from sheetbot.errors import BoardWriteError

#: (st_mtime_ns, st_size) of the file as we last read or wrote it: how we notice a person's save.
Signature = tuple[int, int]
#: A temp file of ours older than this was left by a killed save (a save takes seconds): it is removed.
STALE_TEMP_S = 15 * 60


def writable(path: Path) -> bool:
    """Write permission that is meant, not just possible: root may write anything, but a file or folder
    with no write bit at all was made read-only on purpose."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return True  # not there yet: creating it will say what is wrong
    return os.access(path, os.W_OK) and bool(mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def refuse_read_only(path: Path, target: Path) -> None:
    """Replacing a file works even when the file itself is read-only (a rename only needs the folder):
    a person who made the workbook read-only asked sheetbot not to change it."""
    keep = "outputs are kept in the state and written once it is writable"
    if target.exists() and not writable(target):
        raise BoardWriteError(
            f"{path} is read-only, so sheetbot leaves it alone: make it writable "
            f"(chmod u+w {path}) or point board.path at a writable copy; {keep}"
        )
    if not writable(target.parent):
        raise BoardWriteError(
            f"the folder of {path} is read-only, and sheetbot saves through a temp file beside the workbook: "
            f"make {target.parent} writable or move the workbook; {keep}"
        )


def sweep_temp_files(target: Path, *, now_s: float | None = None) -> None:
    """Remove temp files a killed save of this workbook left behind: only ours (``.NAME.<8 hex>.tmp``),
    and only old ones, so another save in progress keeps its file."""
    pattern = re.compile(rf"\.{re.escape(target.name)}\.[0-9a-f]{{8}}\.tmp")
    cutoff = (time.time() if now_s is None else now_s) - STALE_TEMP_S
    with contextlib.suppress(OSError):
        for leftover in target.parent.glob(f".{glob_escape(target.name)}.*.tmp"):
            with contextlib.suppress(OSError):
                if pattern.fullmatch(leftover.name) and leftover.stat().st_mtime < cutoff:
                    leftover.unlink()


def file_signature(path: Path) -> Signature | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size)


def one_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__
