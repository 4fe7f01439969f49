"""Model calls: every attempt's result, tokens and cost, committed before anything is written to the board.

A mixin of ``State``: a stored output is never paid for twice, so a failed board write costs no second call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path

from sheetbot.state.faults import Db
from sheetbot.state.records import Attempt, _attempt


class AttemptsMixin:
    """The attempts table: record a call, find a stored output, count failures, sum spend."""

    _db: Db
    path: Path
    transaction: Callable[[], AbstractContextManager[None]]

    # -- attempts ------------------------------------------------------------------
    def record_attempt(self, attempt: Attempt, *, now: datetime) -> None:
        """Store a model call's result. Committed before the caller writes anything to the board."""
        self.record_attempts([(attempt, now)])

    def record_attempts(self, attempts: Sequence[tuple[Attempt, datetime]]) -> None:
        """Store calls' results, in their order: one statement for one, an executemany for a preview group's
        (sheetbot/night/keep.py)."""
        rows = [_row(attempt, now) for attempt, now in attempts]
        if not rows:
            return
        insert = f"INSERT INTO attempts({', '.join(rows[0])}) VALUES ({', '.join('?' * len(rows[0]))})"
        with self.transaction():
            if len(rows) == 1:
                self._db.execute(insert, list(rows[0].values()))
            else:
                self._db.executemany(insert, [list(r.values()) for r in rows])

    def stored_output(self, task_id: str, attempt: int, step: str) -> Attempt | None:
        row = self._db.execute(
            "SELECT * FROM attempts WHERE task_id = ? AND attempt = ? AND step = ? AND ok = 1",
            (task_id, attempt, step),
        ).fetchone()
        if row is None:
            return None
        return _attempt(row)

    def final_output(self, task_id: str, attempt: int) -> Attempt | None:
        """The task's answer for an attempt: the last step's stored output."""
        row = self._db.execute(
            "SELECT * FROM attempts WHERE task_id = ? AND attempt = ? AND ok = 1 AND final = 1 ORDER BY id DESC",
            (task_id, attempt),
        ).fetchone()
        return None if row is None else _attempt(row)

    def final_outputs(self, task_ids: Iterable[str]) -> dict[str, list[tuple[str, str]]]:
        """Every answer stored for these tasks, of any attempt: task id → [(workflow, output)], oldest first.
        One query per 500 ids, for the few rows a phase has to check against everything sheetbot ever wrote."""
        wanted = list(task_ids)
        out: dict[str, list[tuple[str, str]]] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            rows = self._db.execute(
                f"""SELECT task_id, workflow, output FROM attempts WHERE ok = 1 AND final = 1
                    AND output IS NOT NULL AND task_id IN ({",".join("?" * len(chunk))}) ORDER BY id""",
                chunk,
            ).fetchall()
            for r in rows:
                out.setdefault(r["task_id"], []).append((r["workflow"] or "", r["output"]))
        return out

    def never_called(self, task_ids: Iterable[str]) -> set[str]:
        """The tasks with no call stored at all, of any attempt: a group of preview rows asks once for them all,
        instead of asking for each row's stored answer and spend (sheetbot/night/preview_group.py)."""
        wanted = list(task_ids)
        called: set[str] = set()
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            rows = self._db.execute(
                f"SELECT DISTINCT task_id FROM attempts WHERE task_id IN ({','.join('?' * len(chunk))})", chunk
            ).fetchall()
            called.update(r["task_id"] for r in rows)
        return set(wanted) - called

    def latest_attempt(self, task_id: str) -> list[Attempt]:
        """The calls of the task's latest attempt that made any, oldest first (every step, failed calls too)."""
        rows = self._db.execute(
            """SELECT * FROM attempts WHERE task_id = ? AND attempt =
                   (SELECT MAX(attempt) FROM attempts WHERE task_id = ?) ORDER BY id""",
            (task_id, task_id),
        ).fetchall()
        return [_attempt(row) for row in rows]

    def failed_calls(self, task_id: str, night: str) -> int:
        return int(
            self._db.execute(
                "SELECT COUNT(*) FROM attempts WHERE task_id = ? AND night = ? AND ok = 0", (task_id, night)
            ).fetchone()[0]
        )

    def spent_usd(self, *, night: str | None = None, workflow: str | None = None, task_id: str | None = None) -> float:
        clauses, args = [], []
        for column, value in (("night", night), ("workflow", workflow), ("task_id", task_id)):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return float(self._db.execute(f"SELECT COALESCE(SUM(cost_usd), 0) FROM attempts {where}", args).fetchone()[0])


def _row(attempt: Attempt, now: datetime) -> dict[str, object]:
    """An attempt as the table's columns: its fields, booleans as 0/1 (both backends), and when it was stored."""
    stored = {"ok": int(attempt.ok), "truncated": int(attempt.truncated), "created_at": now.isoformat()}
    return attempt.__dict__ | stored
