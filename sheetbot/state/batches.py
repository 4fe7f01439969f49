"""Batch API jobs: stored the moment the provider returns an id, so a restart polls rather than pays twice.

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

from sheetbot.errors import StateError
from sheetbot.state.records import _batch


class BatchesMixin:
    """The batches table: add, update, and find the jobs whose results are not all stored yet."""

    _db: sqlite3.Connection
    path: Path
    transaction: Callable[[], AbstractContextManager[None]]

    # -- batches (Batch API jobs) -------------------------------------------------------
    def add_batch(
        self,
        batch_id: str,
        *,
        provider: str,
        model: str,
        night: str,
        step: str,
        requests: Mapping[str, Mapping[str, Any]],
        now: datetime,
    ) -> None:
        """Committed as soon as the provider returns the id: a restart polls this batch, never resubmits it."""
        with self.transaction():
            self._db.execute(
                "INSERT INTO batches(batch_id, provider, model, night, step, status, custom_ids, requests, "
                "submitted_at) VALUES (?, ?, ?, ?, ?, 'open', ?, ?, ?)",
                (
                    batch_id,
                    provider,
                    model,
                    night,
                    step,
                    json.dumps(list(requests)),
                    json.dumps(requests),
                    now.isoformat(),
                ),
            )

    def update_batch(
        self, batch_id: str, *, status: str, counts: Mapping[str, int] | None = None, now: datetime | None = None
    ) -> None:
        values: dict[str, Any] = {"status": status}
        if counts is not None:
            values["counts"] = json.dumps(dict(counts))
        if now is not None:
            values["finished_at"] = now.isoformat()
        assignments = ", ".join(f"{k} = ?" for k in values)
        with self.transaction():
            self._db.execute(f"UPDATE batches SET {assignments} WHERE batch_id = ?", [*values.values(), batch_id])

    def open_batches(self) -> list[dict[str, Any]]:
        """Batches whose results are not all stored yet (open, or ended but not read), oldest first."""
        rows = self._db.execute(
            "SELECT * FROM batches WHERE status IN ('open', 'ended') ORDER BY submitted_at, rowid"
        ).fetchall()
        return [_batch(r) for r in rows]

    def batch(self, batch_id: str) -> dict[str, Any]:
        row = self._db.execute("SELECT * FROM batches WHERE batch_id = ?", (batch_id,)).fetchone()
        if row is None:
            raise StateError(f"batch {batch_id} is not in the state file {self.path}")
        return _batch(row)

    def batches(self, night: str | None = None) -> list[dict[str, Any]]:
        where, args = ("WHERE night = ?", [night]) if night else ("", [])
        rows = self._db.execute(f"SELECT * FROM batches {where} ORDER BY submitted_at, rowid", args).fetchall()
        return [_batch(r) for r in rows]
