"""Governance: alerts already sent, paused workflows, and queue-depth samples.

A mixin of ``State``: alerts are recorded so none is sent twice; samples feed "over N for M minutes".
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path

from sheetbot.safety.secrets import scrub
from sheetbot.state.faults import Db


class GovernanceMixin:
    """alerts_sent, paused and queue_samples."""

    _db: Db
    path: Path
    transaction: Callable[[], AbstractContextManager[None]]

    # -- governance: alerts sent, paused workflows, queue depth ----------------------
    def alert_sent(self, kind: str, key: str) -> bool:
        row = self._db.execute("SELECT 1 FROM alerts_sent WHERE kind = ? AND key = ?", (kind, key)).fetchone()
        return row is not None

    def record_alert(self, kind: str, key: str, *, now: datetime) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT INTO alerts_sent(kind, key, at) VALUES (?, ?, ?) ON CONFLICT(kind, key) DO NOTHING",
                (kind, key, now.isoformat()),
            )

    def pause(self, workflow: str, *, reason: str, now: datetime) -> bool:
        """Pause a workflow; False if it already was (its first reason is kept)."""
        with self.transaction():
            cursor = self._db.execute(
                "INSERT INTO paused(workflow, since, reason) VALUES (?, ?, ?) ON CONFLICT(workflow) DO NOTHING",
                (workflow, now.isoformat(), scrub(reason)),
            )
        return cursor.rowcount > 0

    def resume(self, workflow: str) -> bool:
        with self.transaction():
            cursor = self._db.execute("DELETE FROM paused WHERE workflow = ?", (workflow,))
        return cursor.rowcount > 0

    def paused(self) -> dict[str, str]:
        """Paused workflow -> why."""
        return {r["workflow"]: r["reason"] for r in self._db.execute("SELECT workflow, reason FROM paused")}

    def record_queue_depth(self, depth: int, *, now: datetime, keep_s: float = 7 * 86400) -> None:
        """One sample of the queue depth; samples older than ``keep_s`` are dropped."""
        with self.transaction():
            self._db.execute("INSERT INTO queue_samples(at_s, depth) VALUES (?, ?)", (now.timestamp(), depth))
            self._db.execute("DELETE FROM queue_samples WHERE at_s < ?", (now.timestamp() - keep_s,))

    def queue_depths(self) -> list[tuple[float, int]]:
        """Every kept sample as (unix seconds, depth), oldest first."""
        rows = self._db.execute("SELECT at_s, depth FROM queue_samples ORDER BY at_s").fetchall()
        return [(float(r["at_s"]), int(r["depth"])) for r in rows]
