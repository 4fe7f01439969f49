"""The urgent daytime lane's marker (sheetbot/night/urgent.py): which rows the day took, and their figures.

A mixin of ``State``. One record per (night, task, attempt) the lane looked at: taken (``ran``) or deferred to
the night at its cap. A row is looked at once per day: a row the lane deferred waits for the night's lock.
"""

from __future__ import annotations

from datetime import datetime

from sheetbot.state.faults import Db
from sheetbot.state.records import UrgentRow
from sheetbot.status import Status


class UrgentMixin:
    """The lane marker: named questions over ``urgent_rows``, the only SQL about the daytime lane."""

    _db: Db

    def mark_urgent(
        self, night: str, task_id: str, *, attempt: int, workflow: str, ran: bool, now: datetime, reason: str = ""
    ) -> None:
        self._db.execute(
            "INSERT INTO urgent_rows(night, task_id, attempt, workflow, ran, reason, at) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(night, task_id, attempt) DO UPDATE SET ran = excluded.ran, reason = excluded.reason",
            (night, task_id, attempt, workflow, int(ran), reason, now.isoformat()),
        )

    def urgent_seen(self, night: str) -> set[tuple[str, int]]:
        """(task, attempt) the lane already looked at for ``night``: not taken again the same day."""
        rows = self._db.execute("SELECT task_id, attempt FROM urgent_rows WHERE night = ?", (night,)).fetchall()
        return {(r["task_id"], int(r["attempt"])) for r in rows}

    def urgent_taken(self, night: str) -> dict[str, int]:
        """Workflow → rows the lane ran for ``night``: what its own cap (urgent.nightly_rows) counts."""
        rows = self._db.execute(
            "SELECT workflow, COUNT(*) AS n FROM urgent_rows WHERE night = ? AND ran = 1 GROUP BY workflow", (night,)
        ).fetchall()
        return {r["workflow"]: int(r["n"]) for r in rows}

    def urgent_running(self, night: str) -> list[str]:
        """Tasks the lane took for ``night`` that are still locked or running (a crash's too): what it runs."""
        rows = self._db.execute(
            "SELECT u.task_id FROM urgent_rows u JOIN tasks t ON t.task_id = u.task_id AND t.attempt = u.attempt "
            "WHERE u.night = ? AND u.ran = 1 AND t.night = u.night AND t.status IN (?, ?) ORDER BY t.seq",
            (night, str(Status.LOCKED), str(Status.RUNNING)),
        ).fetchall()
        return [r["task_id"] for r in rows]

    def urgent_rows(self, night: str) -> list[UrgentRow]:
        """Every row the lane looked at for ``night``, with when it appeared, its output's time and its cost."""
        rows = self._db.execute(
            "SELECT u.task_id, u.attempt, u.workflow, u.ran, t.first_seen, "
            "(SELECT MAX(a.created_at) FROM attempts a WHERE a.task_id = u.task_id AND a.attempt = u.attempt "
            " AND a.night = u.night AND a.ok = 1 AND a.final = 1) AS output_at, "
            "(SELECT COALESCE(SUM(a.cost_usd), 0) FROM attempts a WHERE a.task_id = u.task_id "
            " AND a.attempt = u.attempt AND a.night = u.night) AS cost "
            "FROM urgent_rows u JOIN tasks t ON t.task_id = u.task_id WHERE u.night = ? ORDER BY u.at",
            (night,),
        ).fetchall()
        return [
            UrgentRow(
                task_id=r["task_id"],
                attempt=int(r["attempt"]),
                workflow=r["workflow"],
                ran=bool(r["ran"]),
                first_seen=datetime.fromisoformat(r["first_seen"]),
                output_at=datetime.fromisoformat(r["output_at"]) if r["output_at"] else None,
                cost_usd=float(r["cost"]),
            )
            for r in rows
        ]
