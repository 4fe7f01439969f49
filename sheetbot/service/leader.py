"""Who works the board: exactly one sheetbot, whichever way the state is kept (issue 15).

One seam, two ways to hold it:

- SQLite (the default): the lock file beside the state (sheetbot.service.process_lock). The operating system
  holds it for the life of the process, so it cannot be lost while the process runs. A second `serve` is
  refused (or waits, with ``--wait``).
- PostgreSQL: a session-level advisory lock on a connection of its own (sheetbot.state.leader_lock), which any
  number of `serve` processes, on any machines, may point at. The one that takes it leads; the others are
  *standbys*: they poll every ``STANDBY_POLL_S`` seconds and the first to find it free takes over, then
  finishes the night from the state (what was stored is never paid again; batches recorded as submitted are
  polled, never resubmitted). A dead leader's lock is freed by the server when its session ends: at once after
  a ``kill -9``, within about 11 s for a lost machine (the lock session's TCP keepalives); so a standby leads
  within about 16 s, under the 30 s the issue asks.

Fencing. A leader that loses its lock session (the server restarted, the network dropped it) must stop at
once, since a standby may take over. Two guards, and their window:

- every state write checks, in its own transaction, that our session still holds the lock
  (sheetbot.state.fence): no write commits after the loss, whatever is in flight;
- a watchdog probes the session every ``WATCH_S`` seconds; when the probe fails it sets the stop event, so no
  new phase and no new model call starts. Between the loss and the watchdog's noticing (at most ``WATCH_S``
  plus the keepalive time, ~11 s, for a silent network; at once for a closed socket) calls may still be sent;
  their answers cannot be stored here (they go to the journal) and the new leader may call those rows again.
  That is the "calls in flight" a ``kill -9`` costs too. A board write of outputs already in the state may
  also finish in that window; it writes the values the new leader would write.

A leader that lost its lock does not go back to waiting: `serve` stops with exit code 1, and its supervisor
(systemd ``Restart=always``, a platform's restart) starts it again as a standby with a clean slate.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Protocol

from sheetbot.config.models import Config
from sheetbot.config.state_target import PostgresTarget
from sheetbot.errors import LockedError, StateUnavailableError
from sheetbot.service.health import Health
from sheetbot.service.process_lock import board_lock
from sheetbot.state.leader_lock import LeaderLock

log = logging.getLogger("sheetbot.service.leader")

#: Seconds between a standby's tries for the lock.
STANDBY_POLL_S = 5.0
#: Seconds between the leader's probes of its lock session.
WATCH_S = 1.0


class Lease(Protocol):
    """The leadership of one board, held by this process."""

    def lost(self) -> bool:
        """True once the leadership is gone (then nothing more may be done for the board)."""
        ...


class FileLease:
    """The lock file (SQLite): the operating system holds it until the process ends; it is never lost."""

    def lost(self) -> bool:
        return False


class PostgresLease:
    """The advisory lock's session, probed every ``watch_s`` seconds by a daemon thread."""

    def __init__(self, lock: LeaderLock, *, on_lost: Callable[[], None], watch_s: float) -> None:
        self._lock = lock
        self._on_lost = on_lost
        self._watch_s = watch_s
        self._lost = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="sheetbot-leader-watch", daemon=True)
        self._thread.start()

    @property
    def pid(self) -> int:
        """The server process of the lock's session (what ``pg_stat_activity`` and the fence know it by)."""
        return self._lock.pid

    def lost(self) -> bool:
        if not self._lost.is_set() and not self._lock.alive():
            self._lose()
        return self._lost.is_set()

    def _watch(self) -> None:
        while not self._done.wait(self._watch_s):
            if self._lost.is_set() or not self._lock.alive():
                self._lose()
                return

    def _lose(self) -> None:
        if self._lost.is_set():
            return
        self._lost.set()
        log.error("lost the leadership of this board (the lock's connection to PostgreSQL ended): stopping at once")
        self._on_lost()

    def release(self) -> None:
        self._done.set()
        self._thread.join(timeout=self._watch_s + 1)


def _who(lock: LeaderLock) -> str:
    held = lock.holder()
    if held is None:
        return "unknown process"
    name, since = held
    when = since.astimezone().strftime("%H:%M") if isinstance(since, datetime) else "?"
    return f"{name.removeprefix('sheetbot ')}, since {when}"


@contextmanager
def leadership(
    config: Config,
    command: str,
    *,
    wait: bool,
    sleep: Callable[[float], object],
    cancelled: Callable[[], bool] = lambda: False,
    poll_s: float = STANDBY_POLL_S,
    on_standby: Callable[[str], None] = lambda who: None,
    on_lost: Callable[[], None] = lambda: None,
    watch_s: float = WATCH_S,
) -> Iterator[Lease | None]:
    """Lead the board for the block; None if ``cancelled`` while waiting as a standby.

    Without ``wait`` a board led by another process raises LockedError naming it. With it this process is a
    standby: ``on_standby(who)`` is called once, then the lock is tried every ``poll_s`` (``sleep``)."""
    target = config.state_target
    if not isinstance(target, PostgresTarget):
        with board_lock(config.state_path, command, wait=wait, sleep=sleep, cancelled=cancelled):
            yield FileLease()
        return
    lock: LeaderLock | None = None
    told = False
    try:
        while True:
            try:
                lock = lock or LeaderLock(target, command)
                if lock.try_take():
                    break
                who = _who(lock)
            except StateUnavailableError as exc:  # the server is away: a standby keeps trying
                if not wait:
                    raise
                if lock is not None:
                    lock.close()
                lock, who = None, f"unknown: {exc.problem}"
            if not wait:
                raise LockedError(
                    f"another sheetbot ({who}) is working this board ({target}): "
                    "wait for it to finish, stop it, or pass --wait"
                )
            if not told:
                on_standby(who)
                told = True
            if cancelled():
                yield None
                return
            sleep(poll_s)
            if cancelled():
                yield None
                return
        lock.fence_writes()
        lease = PostgresLease(lock, on_lost=on_lost, watch_s=watch_s)
        try:
            yield lease
        finally:
            lease.release()
    finally:
        if lock is not None:
            lock.close()


@contextmanager
def serve_leadership(config: Config, health: Health, stop: threading.Event, *, wait: bool) -> Iterator[Lease | None]:
    """`serve`'s leadership: with PostgreSQL every serve is a standby while another leads; with SQLite a second
    serve is refused unless ``wait``. /healthz and the log say which this process is; a lost lock sets ``stop``."""

    def standby(who: str) -> None:
        health.lead("standby", who)
        log.info("standby: another sheetbot (%s) works this board; taking over when it stops", who)

    def lose() -> None:
        health.lead("lost")
        stop.set()

    wait = wait or isinstance(config.state_target, PostgresTarget)
    with leadership(
        config, "serve", wait=wait, sleep=stop.wait, cancelled=stop.is_set, on_standby=standby, on_lost=lose
    ) as lease:
        if lease is None:
            log.info("stopped (a standby)")
        else:
            health.lead("leader")
            log.info("leader: this sheetbot works the board")
        yield lease
