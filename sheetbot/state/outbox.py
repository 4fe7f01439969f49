"""The outbox of approval-gated actions (morning/on_approve.py), and small facts kept between runs (meta).

A mixin of ``State``: each step commits on its own, so an action's progress survives a crash.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path

from sheetbot.safety.secrets import scrub
from sheetbot.state.faults import Db
from sheetbot.state.records import ActionRecord, _action


class ActionsMixin:
    """The actions queue (pending, sending, delivered) and the meta key/value facts."""

    _db: Db
    path: Path
    transaction: Callable[[], AbstractContextManager[None]]

    # -- approval-gated actions (sheetbot/morning/on_approve.py) and the dashboard's last digest ------
    def add_action(self, task_id: str, attempt: int, *, workflow: str, now: datetime) -> bool:
        """Queue the action for an approved attempt; False if it was queued before (never twice)."""
        cursor = self._db.execute(
            "INSERT INTO actions(task_id, attempt, workflow, state, created_at, updated_at) "
            "VALUES (?, ?, ?, 'pending', ?, ?) ON CONFLICT(task_id, attempt) DO NOTHING",
            (task_id, attempt, workflow, now.isoformat(), now.isoformat()),
        )
        return cursor.rowcount == 1

    def actions_undelivered(self) -> list[ActionRecord]:
        """Pending actions and those a crash left `sending` (their delivery is unknown), oldest first."""
        rows = self._db.execute(
            "SELECT * FROM actions WHERE state != 'delivered' ORDER BY created_at, task_id"
        ).fetchall()
        return [_action(r) for r in rows]

    def actions_delivered_unpublished(self) -> list[ActionRecord]:
        """Delivered actions whose task did not reach `published` (a crash between the two steps)."""
        rows = self._db.execute(
            "SELECT a.* FROM actions a JOIN tasks t ON t.task_id = a.task_id AND t.attempt = a.attempt "
            "WHERE a.state = 'delivered' AND t.status IN ('approved', 'edited')"
        ).fetchall()
        return [_action(r) for r in rows]

    def action_state(self, task_id: str, attempt: int, new: str, *, now: datetime, error: str | None = None) -> None:
        """Record an action's progress; each call commits on its own, so it survives a crash right after."""
        if new not in {"pending", "sending", "delivered"}:
            raise ValueError(f"unknown action state {new!r}")
        tries = 1 if new == "sending" else 0
        with self.transaction():
            self._db.execute(
                "UPDATE actions SET state = ?, tries = tries + ?, last_error = COALESCE(?, last_error), "
                "updated_at = ? WHERE task_id = ? AND attempt = ?",
                (new, tries, None if error is None else scrub(error), now.isoformat(), task_id, attempt),
            )

    def meta_value(self, key: str) -> str | None:
        """A small fact sheetbot keeps between runs (e.g. what the Dashboard last showed)."""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row["value"])

    def set_meta_value(self, key: str, value: str) -> None:
        if key == "schema_version":
            raise ValueError("schema_version is not sheetbot's to set at run time")
        with self.transaction():
            self._db.execute(
                "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )
