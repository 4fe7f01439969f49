"""The intake API's tasks (sheetbot/morning/intake.py): a row a caller asked for, recorded before the board's
append, so a crash between the two neither loses the row nor adds it twice (as chains' intents do).

A mixin of ``State``. Each call commits on its own. The idempotency key is kept as its SHA-256 only: a caller
may put anything in it, and the state needs only to recognise it again.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime

from sheetbot.safety.secrets import scrub
from sheetbot.state.faults import Db


@dataclass(frozen=True)
class IntakeTask:
    """A row a caller added through `POST /tasks`: its cells, and where its decision goes."""

    task_id: str
    key_sha256: str | None
    body_sha256: str
    row: dict[str, str]
    callback_url: str | None
    state: str  # pending (not known to be on the board yet) | done
    created_at: str
    callback_delivered: int = 0  # the attempt whose decision the callback received; 0: none yet
    callback_error: str | None = None


def _intake(r: sqlite3.Row) -> IntakeTask:
    return IntakeTask(
        task_id=r["task_id"],
        key_sha256=r["key_sha256"],
        body_sha256=r["body_sha256"],
        row=json.loads(r["row"]),
        callback_url=r["callback_url"],
        state=r["state"],
        created_at=r["created_at"],
        callback_delivered=int(r["callback_delivered"]),
        callback_error=r["callback_error"],
    )


class IntakeMixin:
    """The intake tasks: pending until their row is on the board, then done; their callbacks' progress."""

    _db: Db
    transaction: Callable[[], AbstractContextManager[None]]

    def add_intake(self, task: IntakeTask, *, now: datetime) -> IntakeTask:
        """Record the task, or return the one recorded before under the same idempotency key (never two)."""
        with self.transaction():
            if task.key_sha256 is not None:
                found = self._db.execute("SELECT * FROM intake_tasks WHERE key_sha256 = ?", (task.key_sha256,))
                row = found.fetchone()
                if row is not None:
                    return _intake(row)
            self._db.execute(
                "INSERT INTO intake_tasks(task_id, key_sha256, body_sha256, row, callback_url, state, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)",
                (
                    task.task_id,
                    task.key_sha256,
                    task.body_sha256,
                    json.dumps(task.row, ensure_ascii=False, sort_keys=True),
                    task.callback_url,
                    now.isoformat(),
                    now.isoformat(),
                ),
            )
        return task

    def intake(self, task_id: str) -> IntakeTask | None:
        row = self._db.execute("SELECT * FROM intake_tasks WHERE task_id = ?", (task_id,)).fetchone()
        return None if row is None else _intake(row)

    def intake_ids(self) -> set[str]:
        """Every id the API ever gave out: never given to another row."""
        return {str(r[0]) for r in self._db.execute("SELECT task_id FROM intake_tasks")}

    def intake_pending(self) -> list[IntakeTask]:
        """Tasks whose row is not known to be on the board yet, oldest first."""
        rows = self._db.execute("SELECT * FROM intake_tasks WHERE state = 'pending' ORDER BY created_at, task_id")
        return [_intake(r) for r in rows.fetchall()]

    def intake_done(self, task_ids: Iterable[str], *, now: datetime) -> None:
        """The rows are on the board: never append them again."""
        with self.transaction():
            self._db.executemany(
                "UPDATE intake_tasks SET state = 'done', updated_at = ? WHERE task_id = ?",
                [(now.isoformat(), task_id) for task_id in task_ids],
            )

    def intake_callbacks_due(self) -> list[tuple[IntakeTask, int]]:
        """(task, attempt) for each task with a callback whose decided attempt (approved, edited, published)
        the callback has not received yet, oldest first."""
        rows = self._db.execute(
            "SELECT i.*, t.attempt AS decided FROM intake_tasks i JOIN tasks t ON t.task_id = i.task_id "
            "WHERE i.callback_url IS NOT NULL AND t.status IN ('approved', 'edited', 'published') "
            "AND i.callback_delivered < t.attempt ORDER BY i.created_at, i.task_id"
        ).fetchall()
        return [(_intake(r), int(r["decided"])) for r in rows]

    def intake_callback_result(self, task_id: str, attempt: int, *, now: datetime, error: str | None) -> None:
        """The callback for ``attempt`` was received (``error`` None), or why not (tried again next harvest)."""
        with self.transaction():
            if error is None:
                self._db.execute(
                    "UPDATE intake_tasks SET callback_delivered = ?, callback_error = NULL, updated_at = ? "
                    "WHERE task_id = ?",
                    (attempt, now.isoformat(), task_id),
                )
            else:
                self._db.execute(
                    "UPDATE intake_tasks SET callback_error = ?, updated_at = ? WHERE task_id = ?",
                    (scrub(error), now.isoformat(), task_id),
                )

    def last_decision(self, task_id: str) -> tuple[str, str, int] | None:
        """(decision, when, attempt) of the task's latest review, or None."""
        row = self._db.execute(
            "SELECT decision, at, attempt FROM reviews WHERE task_id = ? ORDER BY id DESC LIMIT 1", (task_id,)
        ).fetchone()
        return None if row is None else (str(row["decision"]), str(row["at"]), int(row["attempt"]))

    def task_cost(self, task_id: str) -> float:
        """Dollars spent on the task's model calls, every attempt."""
        row = self._db.execute("SELECT COALESCE(SUM(cost_usd), 0) FROM attempts WHERE task_id = ?", (task_id,))
        return float(row.fetchone()[0])
