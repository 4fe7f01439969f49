"""The reserve: space held beside the state so that answers already paid for can be kept on a full disk.

The journal (sheetbot.state.journal) keeps a paid answer the state cannot take, but it lives on the same
disk: when the state write failed because the disk is full, the journal's append fails too, and the answer
would be paid again by the next run. So while a night makes calls, ``<state>.reserve`` holds real blocks
(``os.posix_fallocate``; where that is missing, written bytes) that nothing else may use. When an append
meets a full disk (ENOSPC, or EDQUOT for a quota), the night unlinks the reserve, which frees its blocks,
and appends again: the answers in flight fit in the space it held (sheetbot.night.keep sizes it).

The file stays between nights on purpose: a disk filled during the day (logs, a backup) would leave no
room to make it at the next night's start, just when it is needed. Once used, the next night makes it
again if there is space, and only notes in the log when it cannot (a night never fails for want of its
reserve). It holds no data and may be deleted at any time; sheetbot makes it again.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from sheetbot.safety.private import chmod_private

#: What a full disk looks like to a write: no space left, or the user's quota used up.
NO_SPACE = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})  # no EDQUOT on Windows
#: posix_fallocate refused by the file system itself (not for want of space): write the bytes instead.
_UNSUPPORTED = frozenset({errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS})
_CHUNK = 1 << 20


def reserve_path(state_path: Path) -> Path:
    return state_path.with_name(state_path.name + ".reserve")


def no_space(exc: OSError) -> bool:
    return exc.errno in NO_SPACE


class Reserve:
    """The file: held at a size (allocated for real, mode 0600), released by unlinking it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def hold(self, size_bytes: int) -> str:
        """Make sure the reserve holds ``size_bytes``; '' when it does, else why not (for the log). A reserve
        that was there already is left as it was when it cannot be grown; a new one that cannot be made whole
        is removed, so the file is either a real reserve or absent."""
        try:
            fd = os.open(
                self.path, os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0), 0o600
            )
        except OSError as exc:
            return f"cannot create {self.path} ({exc.strerror or exc})"
        try:
            before = os.fstat(fd)
            try:
                chmod_private(fd)
                # st_blocks: what is really allocated (absent on Windows: there the size alone is judged).
                allocated = getattr(before, "st_blocks", before.st_size // 512) * 512
                if before.st_size != size_bytes or allocated < size_bytes:
                    _allocate(fd, size_bytes)
                    os.ftruncate(fd, size_bytes)  # a smaller reserve than last night: give the rest back
                    os.fsync(fd)
            except OSError as exc:
                _undo(fd, self.path, before.st_size)
                return f"cannot hold {size_bytes:,} bytes in {self.path} ({exc.strerror or exc})"
        finally:
            os.close(fd)
        return ""

    def release(self) -> bool:
        """Unlink the reserve, freeing its blocks; False when there was none to release."""
        try:
            if not self.path.is_file() or self.path.is_symlink():
                return False
            os.unlink(self.path)
        except OSError:
            return False
        return True


def _allocate(fd: int, size_bytes: int) -> None:
    if hasattr(os, "posix_fallocate"):
        try:
            os.posix_fallocate(fd, 0, size_bytes)
            return
        except OSError as exc:
            if exc.errno not in _UNSUPPORTED:
                raise
    # Random bytes rather than zeros: a compressing file system (ZFS, btrfs) stores zeros in no space at all.
    chunk = os.urandom(_CHUNK)
    os.lseek(fd, 0, os.SEEK_SET)
    left = size_bytes
    while left > 0:
        left -= os.write(fd, chunk[: min(left, _CHUNK)])


def _undo(fd: int, path: Path, size_before: int) -> None:
    """A reserve that could not be made: give back what was allocated; remove a file that was new."""
    try:
        if size_before == 0:
            os.unlink(path)
        os.ftruncate(fd, size_before)
    except OSError:
        pass
