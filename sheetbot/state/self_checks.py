"""Self-check verdicts (issue 13, item 4): one per output, stored with the grading call that paid for it.

A mixin of ``State``. The verdict and the call's attempt row go in one transaction, before the board is
written: a restart finds the verdict and never grades that output again; a rework is a new attempt, graded anew.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime

from sheetbot.state.faults import Db
from sheetbot.state.records import Attempt


@dataclass(frozen=True)
class SelfCheckTally:
    """Decided outputs of one workflow by their self-check verdict, and how many a person approved as-is."""

    workflow: str
    passed: bool
    decided: int
    approved: int


class SelfChecksMixin:
    _db: Db
    transaction: Callable[[], AbstractContextManager[None]]
    record_attempt: Callable[..., None]
    audit: Callable[..., None]

    def record_self_check(
        self,
        task_id: str,
        attempt: int,
        verdict: str,
        passed: bool | None,
        *,
        now: datetime,
        call: Attempt | None = None,
        audit_detail: Mapping[str, object] | None = None,
    ) -> None:
        """The verdict, and the grading call (its cost, its audit entry) when one was made: one commit."""
        with self.transaction():
            if call is not None:
                self.record_attempt(call, now=now)
                self.audit("model_call", now=now, task_id=task_id, detail=audit_detail or {})
            self._db.execute(
                "INSERT INTO self_checks(task_id, attempt, verdict, passed, at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                (task_id, attempt, verdict, None if passed is None else int(passed), now.isoformat()),
            )

    def self_check_verdict(self, task_id: str, attempt: int) -> str | None:
        row = self._db.execute(
            "SELECT verdict FROM self_checks WHERE task_id = ? AND attempt = ?", (task_id, attempt)
        ).fetchone()
        return None if row is None else str(row["verdict"])

    def self_check_tallies(self, nights: Iterable[str] | None = None) -> list[SelfCheckTally]:
        """Per workflow and verdict (passed every item, or failed one): outputs a person decided, and those
        approved as-is. A graded output's first decision counts; skipped or failed gradings do not."""
        where, args = "", list(nights or [])
        if nights is not None:
            where = f"AND r.night IN ({','.join('?' * len(args)) or 'NULL'})"
        rows = self._db.execute(
            f"""SELECT r.workflow, s.passed, COUNT(*) AS decided,
                       SUM(CASE WHEN r.decision = 'approve' THEN 1 ELSE 0 END) AS approved
                FROM reviews r JOIN self_checks s ON s.task_id = r.task_id AND s.attempt = r.attempt
                WHERE s.passed IS NOT NULL AND r.id = (SELECT MIN(r2.id) FROM reviews r2
                      WHERE r2.task_id = r.task_id AND r2.attempt = r.attempt) {where}
                GROUP BY r.workflow, s.passed ORDER BY r.workflow, s.passed DESC""",
            args,
        ).fetchall()
        return [
            SelfCheckTally(str(r["workflow"] or ""), bool(r["passed"]), int(r["decided"]), int(r["approved"] or 0))
            for r in rows
        ]
