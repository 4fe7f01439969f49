"""Reviews, per-night records and the audit log: what happened, kept for metrics and governance.

A mixin of ``State``: it relies on the store's connection; all of its SQL stays in the store package.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Unpack

from sheetbot.safety.secrets import scrub
from sheetbot.state.faults import Db
from sheetbot.state.records import AuditEntry, NightFields, NightRecord, Task, _night

#: What a night did with a row (its outcome, and why): written once per row and attempt, the latest wins.
NIGHT_TASK = (
    "INSERT INTO night_tasks(night, task_id, workflow, attempt, outcome, reason) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT(night, task_id, attempt) DO UPDATE SET outcome = excluded.outcome, reason = excluded.reason"
)


class HistoryMixin:
    """Review decisions, what each night did with each task, night events, the append-only audit log."""

    _db: Db
    path: Path
    transaction: Callable[[], AbstractContextManager[None]]

    # -- reviews, nights, audit ----------------------------------------------------
    def record_review(
        self,
        task: Task,
        decision: str,
        *,
        notes: str,
        edited_output: str | None,
        now: datetime,
        reviewer: str | None = None,
    ) -> None:
        """One decision on one attempt; ``reviewer`` is who made it, when the board could tell (None if not)."""
        self._db.execute(
            "INSERT INTO reviews(task_id, night, attempt, workflow, decision, notes, edited_output, at, reviewer) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                task.task_id,
                task.night,
                task.attempt,
                task.workflow,
                decision,
                notes,
                edited_output,
                now.isoformat(),
                reviewer,
            ),
        )

    def edited_text(self, task_id: str, attempt: int) -> str | None:
        """The reviewer's own text for an attempt decided ``edit`` (the latest, if edited twice); None if none."""
        row = self._db.execute(
            "SELECT edited_output FROM reviews WHERE task_id = ? AND attempt = ? AND decision = 'edit' "
            "ORDER BY id DESC LIMIT 1",
            (task_id, attempt),
        ).fetchone()
        return None if row is None else row["edited_output"]

    def night_task(
        self, night: str, task_id: str, *, workflow: str, attempt: int, outcome: str, reason: str = ""
    ) -> None:
        self._db.execute(NIGHT_TASK, (night, task_id, workflow, attempt, outcome, scrub(reason)))

    def tasks_locked_for(self, night: str) -> dict[str, int]:
        """Workflow → rows an earlier lock took for ``night`` (whatever became of them since; rows deferred
        because a cap was full were never taken): what a second lock the same night counts against the caps.
        Rows the urgent daytime lane ran count against its own cap, not the night's (sheetbot/night/urgent.py)."""
        rows = self._db.execute(
            "SELECT workflow, COUNT(*) AS n FROM night_tasks n WHERE night = ? AND outcome != 'over_cap' "
            "AND NOT EXISTS (SELECT 1 FROM urgent_rows u WHERE u.night = n.night AND u.task_id = n.task_id "
            "AND u.attempt = n.attempt AND u.ran = 1) GROUP BY workflow",
            (night,),
        ).fetchall()
        return {r["workflow"]: int(r["n"]) for r in rows}

    def night_has_tasks(self, night: str) -> bool:
        """Whether any row was locked under ``night`` (a trial's label is taken once it has)."""
        return self._db.execute("SELECT 1 FROM night_tasks WHERE night = ? LIMIT 1", (night,)).fetchone() is not None

    def reasons_of_night(self, night: str, outcome: str) -> list[str]:
        """Why each row of ``night`` ended with ``outcome`` (``failed``, ``deferred``, …), one entry per row and
        attempt, in task order: what the morning counts under "what broke"."""
        rows = self._db.execute(
            "SELECT reason FROM night_tasks WHERE night = ? AND outcome = ? ORDER BY task_id, attempt",
            (night, outcome),
        ).fetchall()
        return [r["reason"] for r in rows]

    def night_event(self, night: str, **values: Unpack[NightFields]) -> None:
        self._db.execute("INSERT INTO nights(night) VALUES (?) ON CONFLICT(night) DO NOTHING", (night,))
        if values:
            assignments = ", ".join(f"{k} = ?" for k in values)
            self._db.execute(f"UPDATE nights SET {assignments} WHERE night = ?", [*values.values(), night])

    def nights(self, limit: int = 14) -> list[NightRecord]:
        rows = self._db.execute("SELECT * FROM nights ORDER BY night DESC LIMIT ?", (limit,)).fetchall()
        return [_night(r) for r in rows]

    def audit(
        self,
        event: str,
        *,
        now: datetime,
        task_id: str | None = None,
        detail: Mapping[str, object] | None = None,
    ) -> None:
        self.audit_many(event, [(now, task_id, detail or {})])

    def audit_many(self, event: str, entries: Sequence[tuple[datetime, str | None, Mapping[str, object]]]) -> None:
        """``audit`` for many entries of one event, in their order: (at, task id, detail); one statement for
        one entry, an executemany for many (a preview group's calls, sheetbot/night/keep.py)."""
        rows = [
            (now.isoformat(), event, task_id, json.dumps(dict(detail), default=str)) for now, task_id, detail in entries
        ]
        insert = "INSERT INTO audit(at, event, task_id, detail) VALUES (?, ?, ?, ?)"
        if len(rows) == 1:
            self._db.execute(insert, rows[0])
        elif rows:
            self._db.executemany(insert, rows)

    def audit_entries(self, event: str | None = None) -> list[AuditEntry]:
        """The audit log oldest first, or only its ``event`` entries: what `sheetbot audit` exports."""
        where, args = ("WHERE event = ?", [event]) if event is not None else ("", [])
        rows = self._db.execute(f"SELECT id, at, event, task_id, detail FROM audit {where} ORDER BY id", args)
        return [AuditEntry(r["id"], r["at"], r["event"], r["task_id"], r["detail"]) for r in rows.fetchall()]

    def audit_since(self, events: Sequence[str], since: datetime) -> list[AuditEntry]:
        """The audit entries of ``events`` recorded at or after ``since``, oldest first (compared as stored
        text: pass the clock's own timezone): what the weekly review reads for alerts, pauses and edits."""
        marks = ",".join("?" * len(events))
        rows = self._db.execute(
            f"SELECT id, at, event, task_id, detail FROM audit WHERE event IN ({marks}) AND at >= ? ORDER BY id",
            (*events, since.isoformat()),
        )
        return [AuditEntry(r["id"], r["at"], r["event"], r["task_id"], r["detail"]) for r in rows.fetchall()]

    def notification_delivered(self, kind: str, night: str) -> bool:
        """Whether a message of ``kind`` about ``night`` reached the notifier (a failed delivery does not count:
        it is tried again at the next chance)."""
        row = self._db.execute(
            "SELECT 1 FROM audit WHERE event = 'notified' AND json_extract(detail, '$.kind') = ? "
            "AND json_extract(detail, '$.night') = ? AND CAST(json_extract(detail, '$.ok') AS INTEGER) = 1 LIMIT 1",
            (kind, night),
        ).fetchone()
        return row is not None

    def notifications_of_night(self, night: str, *, except_kind: str) -> list[dict[str, object]]:
        """What was notified about ``night`` (sent or not), oldest first, but for messages of ``except_kind``:
        each as the detail it was recorded with (kind, night, title, ok)."""
        rows = self._db.execute(
            "SELECT detail FROM audit WHERE event = 'notified' AND json_extract(detail, '$.night') = ? "
            "AND json_extract(detail, '$.kind') != ? ORDER BY id",
            (night, except_kind),
        ).fetchall()
        return [json.loads(r["detail"]) for r in rows]

    def circuits_opened_since(self, since: datetime) -> list[dict[str, object]]:
        """Every opening of a provider's circuit breaker at or after ``since``, oldest first, as recorded (its
        ``provider`` among the details). ``since`` is compared as stored text: pass the clock's own timezone."""
        rows = self._db.execute(
            "SELECT detail FROM audit WHERE event = 'circuit_open' AND at >= ? ORDER BY id", (since.isoformat(),)
        ).fetchall()
        return [json.loads(r["detail"]) for r in rows]
