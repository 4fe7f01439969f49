"""One sheetbot at a time per board: an exclusive lock on a `.lock` file next to the state DB, and a
record of the holder inside the state DB itself.

`serve` holds it for its whole life; `lock`, `run` and `harvest` hold it for their phase. The lock is
portalocker's (``flock`` on Linux and macOS, ``LockFileEx`` on Windows), taken on a file we open
ourselves: the operating system drops it when the holder dies, so a crash never leaves a stale lock.

Why the record in the state DB: an OS lock lives on the file's inode, not on its name. Deleting the
``.lock`` file while `serve` runs (what people do with a lock they think is stale) would let the next
sheetbot create a new file, lock that, and work the same board beside the first. So the holder also
writes who it is (pid, the process's start time, host, the lock file's inode) into the state DB's
``meta`` table, which cannot be deleted without deleting the state. A sheetbot that gets the file lock
then reads that record: if it names another process on this machine that is still running (same pid
*and* same start time, so a reused pid is not mistaken for it) and that locked a different inode, the
lock file was deleted under a live holder, and it is refused like any second sheetbot, naming the
holder. A record left by a crash names a dead process, or the very inode just locked: it is ignored.
On Windows an open file cannot be deleted at all, so there the record only names the holder (the
locked file cannot be read by others). If the state DB cannot be written (a backup tool holds it),
the file lock alone guards the phase, and the log says so.

The stop signals live here too: SIGTERM and SIGINT set an event that the night checks, so a
platform's restart never kills a write half-way.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import IO

import portalocker
import psutil

from sheetbot.errors import LockedError
from sheetbot.safety.private import create_private

#: The key of the holder's record in the state DB's ``meta`` table.
RECORD_KEY = "board_lock"
#: How long writing or clearing the record waits for another program's lock on the state DB.
RECORD_WAIT_S = 1.0

_log = logging.getLogger("sheetbot.service.process_lock")


def lock_path(state_path: Path) -> Path:
    return state_path.with_name(state_path.name + ".lock")


def _describe(info: dict[str, object]) -> str:
    since = str(info.get("since", ""))
    with suppress(ValueError):
        since = datetime.fromisoformat(since).strftime("%H:%M")
    return f"{info.get('command', '?')}, pid {info.get('pid', '?')}, since {since}"


def holder(path: Path, state_path: Path | None = None) -> str:
    """Who holds the lock, in words: "serve, pid 1234, since 01:00" (from the lock file, else the record)."""
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        info = {}
    if not info and state_path is not None:
        info = _read_record(state_path) or {}
    return _describe(info) if info else "unknown process"


def _start_time(pid: int) -> float | None:
    """When process ``pid`` started (psutil, on every OS), or None if there is no such process."""
    try:
        return float(psutil.Process(pid).create_time())
    except psutil.NoSuchProcess:
        return None
    except psutil.Error:  # another user's process: it runs, we cannot say since when
        return -1.0


def _connect(state_path: Path) -> sqlite3.Connection:
    create_private(state_path)
    db = sqlite3.connect(state_path, timeout=RECORD_WAIT_S, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    except BaseException:
        db.close()
        raise
    return db


def _read_record(state_path: Path) -> dict[str, object] | None:
    if not state_path.exists():
        return None
    try:
        db = sqlite3.connect(f"{state_path.resolve().as_uri()}?mode=ro", uri=True, timeout=RECORD_WAIT_S)
        try:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (RECORD_KEY,)).fetchone()
        finally:
            db.close()
        record = json.loads(row[0]) if row else None
    except (sqlite3.Error, ValueError, OSError):
        return None
    return record if isinstance(record, dict) else None


def _live_holder(record: dict[str, object] | None, locked: os.stat_result) -> dict[str, object] | None:
    """The record's holder if it is a running process on this machine that locked another inode."""
    if not record or record.get("host") != socket.gethostname():
        return None  # no record, or another machine's: the file lock is all there is
    if (record.get("dev"), record.get("ino")) == (locked.st_dev, locked.st_ino):
        return None  # the holder locked this very file, which we hold now: it is gone
    pid = record.get("pid")
    started = _start_time(pid) if isinstance(pid, int) else None
    if started is None or (started != -1.0 and started != record.get("started")):
        return None  # dead, or the pid belongs to another process now
    return record


def _write_record(state_path: Path, record: dict[str, object]) -> bool:
    try:
        db = _connect(state_path)
        try:
            db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (RECORD_KEY, json.dumps(record)))
        finally:
            db.close()
    except (sqlite3.Error, OSError) as exc:
        # A state locked by another program fails the phase itself a moment later, in one line: no second one.
        busy = isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)
        _log.log(
            logging.INFO if busy else logging.WARNING,
            "could not record this sheetbot as the board's holder in %s (%s): only the lock file %s guards it",
            state_path,
            exc,
            lock_path(state_path),
        )
        return False
    return True


def _clear_record(state_path: Path, token: str) -> None:
    with suppress(sqlite3.Error, OSError):
        db = sqlite3.connect(state_path, timeout=RECORD_WAIT_S, isolation_level=None)
        try:
            db.execute("DELETE FROM meta WHERE key = ? AND json_extract(value, '$.token') = ?", (RECORD_KEY, token))
        finally:
            db.close()


def _lock_file(path: Path) -> IO[bytes] | None:
    """The lock file, open and locked by us; None if another process holds it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o600)
        handle = os.fdopen(fd, "r+b", buffering=0)
        try:
            portalocker.lock(handle, portalocker.LockFlags.EXCLUSIVE | portalocker.LockFlags.NON_BLOCKING)
        except portalocker.AlreadyLocked:
            handle.close()
            return None
        except BaseException:
            handle.close()
            raise
        try:
            same = os.path.samestat(os.fstat(handle.fileno()), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            return handle
        handle.close()  # deleted or replaced between our open and our lock: lock what the name holds now


@contextmanager
def board_lock(
    state_path: Path,
    command: str,
    *,
    wait: bool = False,
    poll_s: float = 0.5,
    sleep: Callable[[float], object] = time.sleep,
    now: Callable[[], datetime] = lambda: datetime.now().astimezone(),
    cancelled: Callable[[], bool] = lambda: False,
) -> Iterator[Path]:
    """Hold the board's lock; without ``wait``, raise LockedError naming the holder if it is taken."""
    state_path = Path(state_path)
    path = lock_path(state_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        handle = _lock_file(path)
        if handle is not None:
            other = _live_holder(_read_record(state_path), os.fstat(handle.fileno()))
            if other is None:
                break
            handle.close()
            who = _describe(other) + "; its lock file was deleted"
        else:
            who = holder(path, state_path)
        if not wait or cancelled():
            raise LockedError(
                f"another sheetbot ({who}) is working this board ({state_path}): "
                "wait for it to finish, stop it, or pass --wait"
            )
        sleep(poll_s)
    try:
        info = {"pid": os.getpid(), "command": command, "since": now().isoformat(timespec="seconds")}
        locked = os.fstat(handle.fileno())
        token = uuid.uuid4().hex
        started = _start_time(os.getpid())
        record = {**info, "started": started, "host": socket.gethostname(), "token": token}
        recorded = _write_record(state_path, record | {"dev": locked.st_dev, "ino": locked.st_ino})
        handle.truncate(0)
        handle.seek(0)
        handle.write(json.dumps(info).encode())
        try:
            yield path
        finally:
            if recorded:
                _clear_record(state_path, token)
            handle.truncate(0)
            portalocker.unlock(handle)
    finally:
        handle.close()


def install_stop_handlers(stop: threading.Event) -> threading.Event:
    """SIGTERM and SIGINT set ``stop`` instead of killing the process mid-write."""

    def handle(signum: int, frame: object) -> None:
        logging.getLogger("sheetbot.service.serve").info(
            "received %s: finishing what is in flight, then stopping", signal.Signals(signum).name
        )
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return stop
