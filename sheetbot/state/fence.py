"""Fencing: with a standby (issue 15), a state write commits only while this process leads the board.

`serve` leads a board in PostgreSQL by holding a session-level advisory lock on a connection of its own
(sheetbot.service.leader). If that connection dies (the server restarted, the network dropped it, an admin
ended the session), the lock is gone and a standby may already be working the board. Every state write of a
fenced board therefore checks, inside its own transaction and after taking the board's writer lock, that the
leader's lock is still held by our leader session (its backend pid, in ``pg_locks``). A write that finds it
gone rolls back and raises ``LeadershipLostError``: the night treats it as a state that cannot be written (no
new call starts, answers in flight go to the journal) and `serve` stops.

The window: none for the state. The check and the write are one transaction holding the board's writer
lock, which the new leader's writes wait for, so no write of the old leader commits after a write of the new
one. What is not in a transaction (a model call already sent, a board write already started) can still finish
after the lock was lost: at most the calls in flight, as after a ``kill -9``.

Process-wide on purpose: the leadership is a fact of the process, and the states are opened deep inside the
night's wiring. Keyed by schema, so boards that do not use a standby are never fenced.
"""

from __future__ import annotations

import threading

from sheetbot.errors import LeadershipLostError

_guard = threading.Lock()
#: schema → (the leader lock's key, the backend pid of the session that holds it).
_leaders: dict[str, tuple[int, int]] = {}

CHECK = (
    "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = %s"
    " AND classid = %s AND objid = %s AND objsubid = 1"
)


def lock_parts(key: int) -> tuple[int, int]:
    """A bigint advisory key as ``pg_locks`` shows it: (classid, objid), the high and low 32 bits."""
    return (key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF


def install(schema: str, key: int, pid: int) -> None:
    """From now on, writes to ``schema`` commit only while backend ``pid`` holds lock ``key``."""
    with _guard:
        _leaders[schema] = (key, pid)


def remove(schema: str, pid: int) -> None:
    """Writes to ``schema`` are no longer fenced by backend ``pid``'s lock (another session's fence stays)."""
    with _guard:
        if _leaders.get(schema, (0, pid))[1] == pid:
            _leaders.pop(schema, None)


def leader_of(schema: str) -> tuple[int, int] | None:
    with _guard:
        return _leaders.get(schema)


def still_leading(schema: str, has_lock: bool) -> None:
    """Raise LeadershipLostError unless ``has_lock`` (the check's result): the caller rolls back."""
    if not has_lock:
        raise LeadershipLostError(schema)
