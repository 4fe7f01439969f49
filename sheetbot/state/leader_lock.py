"""The board's leader lock in PostgreSQL: a session-level advisory lock on a connection of its own (issue 15).

Any number of `serve` processes may point at one board in PostgreSQL; the one whose session holds this lock
works it (sheetbot.service.leader decides what to do with it). The server drops a session's advisory locks
the moment the session ends, so a leader that dies hands the board over with no stale lock to clear:

- ``kill -9`` (or a crash): the kernel closes the socket, the server ends the session at once;
- a lost machine or network: nothing closes the socket, so both ends probe it. The server side is set per
  session (``tcp_keepalives_idle`` 5 s, ``tcp_keepalives_interval`` 2 s, ``tcp_keepalives_count`` 3,
  ``tcp_user_timeout`` 10 s): the server ends a silent leader's session, and frees its lock, within about
  11 s. The client side has the same libpq keepalives, so a leader cut off from the server learns it in about
  as long (its watchdog's ``SELECT 1`` fails) and stops.

The key is derived from the board's schema and the purpose "leader" (sheetbot.state.postgres.lock_key), so it
never blocks the state's writers, and boards sharing a database lead independently. The session's
``application_name`` says who holds it ("sheetbot serve pid 1234 on host-a"), which is how a standby or a
refused command names the leader (``pg_stat_activity``). Unix-socket connections have no TCP to probe; only
a ``kill -9``-style end is noticed there, which is all a single machine needs.
"""

from __future__ import annotations

import os
import socket
from contextlib import suppress
from datetime import datetime

import psycopg

from sheetbot.config.state_target import PostgresTarget, shown_url
from sheetbot.errors import StateUnavailableError
from sheetbot.state import fence
from sheetbot.state.postgres import lock_key, pg_fault

#: Server- and client-side TCP keepalives of the lock's session (seconds), and the unacknowledged-data limit.
KEEPALIVE_IDLE_S = 5
KEEPALIVE_INTERVAL_S = 2
KEEPALIVE_COUNT = 3
USER_TIMEOUT_MS = 10_000
#: How long one statement on the lock's session may take (a probe that hangs is a lost leadership).
STATEMENT_TIMEOUT_MS = 10_000

HOLDER = (
    "SELECT a.application_name, a.backend_start FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s AND l.objid = %s AND l.objsubid = 1"
)


def session_name(command: str) -> str:
    """What ``pg_stat_activity`` shows for our lock's session (at most 63 bytes there)."""
    return f"sheetbot {command} pid {os.getpid()} on {socket.gethostname()}"[:63]


class LeaderLock:
    """One dedicated session that takes, holds and probes the board's leader lock."""

    def __init__(self, target: PostgresTarget, command: str) -> None:
        self.target = target
        self.key = lock_key(target.schema, "leader")
        try:
            self._conn = psycopg.connect(
                target.url,
                autocommit=True,
                connect_timeout=10,
                application_name=session_name(command),
                keepalives=1,
                keepalives_idle=KEEPALIVE_IDLE_S,
                keepalives_interval=KEEPALIVE_INTERVAL_S,
                keepalives_count=KEEPALIVE_COUNT,
                tcp_user_timeout=USER_TIMEOUT_MS,
            )
            for name, value in (
                ("tcp_keepalives_idle", KEEPALIVE_IDLE_S),
                ("tcp_keepalives_interval", KEEPALIVE_INTERVAL_S),
                ("tcp_keepalives_count", KEEPALIVE_COUNT),
                ("tcp_user_timeout", USER_TIMEOUT_MS),
                ("statement_timeout", STATEMENT_TIMEOUT_MS),
            ):
                self._conn.execute(f"SET {name} = {int(value)}".encode())
        except psycopg.Error as exc:
            raise StateUnavailableError(
                "unusable",
                f"cannot connect to the state database {shown_url(target.url)} for the board's leader lock "
                f"({str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__})",
                "check the server is running, the URL, and PGPASSWORD",
            ) from None
        self.held = False
        #: The server process of our session: what the fence looks for in ``pg_locks``.
        self.pid = int(self._conn.info.backend_pid)

    def try_take(self) -> bool:
        """Take the lock if no other session holds it (never waits); True if this session holds it now."""
        row = self._guarded("SELECT pg_try_advisory_lock(%s)", (self.key,))
        self.held = bool(row and row[0])
        return self.held

    def holder(self) -> tuple[str, datetime] | None:
        """Who holds the lock (its session's application name, and since when), or None if nobody does."""
        row = self._guarded(HOLDER, fence.lock_parts(self.key))
        if row is None:
            return None
        since = row[1]
        return str(row[0]), since if isinstance(since, datetime) else datetime.now().astimezone()

    def _guarded(self, sql: str, params: tuple[int, ...]) -> tuple[object, ...] | None:
        try:
            row = self._conn.execute(sql.encode(), params).fetchone()
        except psycopg.Error as exc:
            raise pg_fault(exc, self.target) or StateUnavailableError(
                "unusable", f"the board's leader lock in {self.target} failed ({exc})", "check the server"
            ) from None
        return None if row is None else tuple(row)

    def alive(self) -> bool:
        """Whether our session is still there (and so still holds the lock it took): a round trip."""
        try:
            self._conn.execute("SELECT 1")
        except psycopg.Error:
            return False
        return not self._conn.closed

    def fence_writes(self) -> None:
        """From now on this process's writes to the board commit only while this session leads it."""
        fence.install(self.target.schema, self.key, self.pid)

    def close(self) -> None:
        """Let go: unlocked first, so a standby may lead at its next poll (a closed session's locks are freed
        only once the server process behind it has ended, a moment later)."""
        with suppress(psycopg.Error):
            fence.remove(self.target.schema, self.pid)
            if self.held:
                self._conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
        with suppress(psycopg.Error):
            self._conn.close()
