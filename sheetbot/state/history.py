"""Reviews, per-night records and the audit log: what happened, kept for metrics and governance.

A mixin of ``State``: it relies on the store's connection; all of its SQL stays in the store package.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Any

from sheetbot.safety.secrets import scrub
from sheetbot.state.records import Task


class HistoryMixin:
    """Review decisions, what each night did with each task, night events, the append-only audit log."""

    _db: sqlite3.Connection
    path: Path
    transaction: Callable[[], AbstractContextManager[None]]

    # -- reviews, nights, audit ----------------------------------------------------
    def record_review(self, task: Task, decision: str, *, notes: str, edited_output: str | None, now: datetime) -> None:
        self._db.execute(
            "INSERT INTO reviews(task_id, night, attempt, workflow, decision, notes, edited_output, at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                task.task_id,
                task.night,
                task.attempt,
                task.workflow,
                decision,
                notes,
                edited_output,
                now.isoformat(),
            ),
        )

    def night_task(
        self, night: str, task_id: str, *, workflow: str, attempt: int, outcome: str, reason: str = ""
    ) -> None:
        self._db.execute(
            "INSERT INTO night_tasks(night, task_id, workflow, attempt, outcome, reason) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(night, task_id, attempt) DO UPDATE SET outcome = excluded.outcome, reason = excluded.reason",
            (night, task_id, workflow, attempt, outcome, scrub(reason)),
        )

    def night_event(self, night: str, **values: Any) -> None:
        self._db.execute("INSERT INTO nights(night) VALUES (?) ON CONFLICT(night) DO NOTHING", (night,))
        if values:
            assignments = ", ".join(f"{k} = ?" for k in values)
            self._db.execute(f"UPDATE nights SET {assignments} WHERE night = ?", [*values.values(), night])

    def nights(self, limit: int = 14) -> list[dict[str, Any]]:
        rows = self._db.execute("SELECT * FROM nights ORDER BY night DESC LIMIT ?", (limit,)).fetchall()
        return [dict(r) for r in rows]

    def audit(
        self,
        event: str,
        *,
        now: datetime,
        task_id: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        self._db.execute(
            "INSERT INTO audit(at, event, task_id, detail) VALUES (?, ?, ?, ?)",
            (now.isoformat(), event, task_id, json.dumps(dict(detail or {}), default=str)),
        )
