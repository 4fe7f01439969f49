"""One sheetbot at a time per board: an exclusive flock on a `.lock` file next to the state DB.

`serve` holds it for its whole life; `lock`, `run` and `harvest` hold it for their phase. The
file says who holds it (pid, command, since) so the second process can name the first. flock is
released by the kernel when the holder dies, so a crash never leaves a stale lock behind.
The stop signals live here too: SIGTERM and SIGINT set an event that the night checks, so a
platform's restart never kills a write half-way.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path

from sheetbot.errors import LockedError


def lock_path(state_path: Path) -> Path:
    return state_path.with_name(state_path.name + ".lock")


def holder(path: Path) -> str:
    """Who holds the lock, in words: "serve, pid 1234, since 01:00"."""
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return "unknown process"
    since = str(info.get("since", ""))
    with suppress(ValueError):
        since = datetime.fromisoformat(since).strftime("%H:%M")
    return f"{info.get('command', '?')}, pid {info.get('pid', '?')}, since {since}"


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
    path = lock_path(Path(state_path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not wait or cancelled():
                    raise LockedError(
                        f"another sheetbot ({holder(path)}) is working this board ({state_path}): "
                        "wait for it to finish, stop it, or pass --wait"
                    ) from None
                sleep(poll_s)
        info = {"pid": os.getpid(), "command": command, "since": now().isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def install_stop_handlers(stop: threading.Event) -> threading.Event:
    """SIGTERM and SIGINT set ``stop`` instead of killing the process mid-write."""

    def handle(signum: int, frame: object) -> None:
        logging.getLogger("sheetbot.serve").info(
            "received %s: finishing what is in flight, then stopping", signal.Signals(signum).name
        )
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return stop
