"""Batch API jobs: every create recorded before it is sent, every batch id stored the moment it is known.

A create is a *send* (table ``batch_sends``) first: its key, its requests and wire ids, the uploaded file,
then the moment it went out. A send whose batch id was never stored (a kill, a lost answer) is looked up
by the next round or run, which adopts what it finds (``adopt_batch``) or, sure there is none, closes
it and sends again. A restart polls stored batches and never resubmits them.

A mixin of ``State``: it relies on the store's connection; all of its SQL stays in the store package.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path

from sheetbot.errors import StateError
from sheetbot.state.faults import Db
from sheetbot.state.records import BatchRecord, BatchRequest, BatchSend, _batch, _send


class BatchesMixin:
    """The batches table: add, update, and find the jobs whose results are not all stored yet."""

    _db: Db
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
        requests: Mapping[str, BatchRequest],
        now: datetime,
        send_key: str | None = None,
    ) -> None:
        """Committed as soon as the provider returns the id (with its send closed, in the same commit):
        a restart polls this batch, never resubmits it."""
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
            if send_key is not None:
                self.close_send(send_key, "created")

    # -- sends: a create recorded before it goes out --------------------------------------
    def record_send(
        self,
        key: str,
        *,
        provider: str,
        model: str,
        night: str,
        step: str,
        requests: Mapping[str, BatchRequest],
        now: datetime,
    ) -> None:
        """Committed before anything reaches the provider: from here on these requests may be paid for."""
        with self.transaction():
            self._db.execute(
                "INSERT INTO batch_sends(key, provider, model, night, step, requests, recorded_at, status) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, 'sending')",
                (key, provider, model, night, step, json.dumps(requests), now.isoformat()),
            )

    def send_uploaded(self, key: str, file_id: str) -> None:
        with self.transaction():
            self._db.execute("UPDATE batch_sends SET file_id = ? WHERE key = ?", (file_id, key))

    def send_going_out(self, key: str, now: datetime) -> None:
        """Committed just before the create: from here on a batch may exist that only a listing can find."""
        with self.transaction():
            self._db.execute("UPDATE batch_sends SET sent_at = ? WHERE key = ?", (now.isoformat(), key))

    def close_send(self, key: str, status: str) -> None:
        """created or found (its batch is stored), absent (certainly none), refused (the provider said no)."""
        with self.transaction():
            self._db.execute("UPDATE batch_sends SET status = ? WHERE key = ?", (status, key))

    def open_sends(self) -> list[BatchSend]:
        """Sends whose batch is not known yet, oldest first: their requests must not be sent again."""
        rows = self._db.execute("SELECT * FROM batch_sends WHERE status = 'sending' ORDER BY recorded_at, rowid")
        return [_send(r) for r in rows.fetchall()]

    def adopt_batch(self, batch_id: str, send: BatchSend, *, found_by: str, now: datetime) -> None:
        """A batch found for ``send``, stored as if its create had answered, and the send closed (one commit).
        A batch several sends may own (found by listing) keeps every one's requests: its results decide."""
        with self.transaction():
            row = self._db.execute("SELECT requests FROM batches WHERE batch_id = ?", (batch_id,)).fetchone()
            if row is None:
                self.add_batch(
                    batch_id,
                    provider=send["provider"],
                    model=send["model"],
                    night=send["night"],
                    step=send["step"],
                    requests=send["requests"],
                    now=now,
                )
            else:
                merged = {**json.loads(row["requests"]), **send["requests"]}
                self._db.execute(
                    "UPDATE batches SET requests = ?, custom_ids = ? WHERE batch_id = ?",
                    (json.dumps(merged), json.dumps(list(merged)), batch_id),
                )
            self._db.execute("UPDATE batches SET found_by = ? WHERE batch_id = ?", (found_by, batch_id))
            self.close_send(send["key"], "found")

    def batch_ids(self, *, found_by: tuple[str, ...]) -> set[str]:
        marks = ",".join("?" * len(found_by))
        rows = self._db.execute(f"SELECT batch_id FROM batches WHERE found_by IN ({marks})", found_by)
        return {r["batch_id"] for r in rows.fetchall()}

    def update_batch(
        self, batch_id: str, *, status: str, counts: Mapping[str, int] | None = None, now: datetime | None = None
    ) -> None:
        values: dict[str, str] = {"status": status}
        if counts is not None:
            values["counts"] = json.dumps(dict(counts))
        if now is not None:
            values["finished_at"] = now.isoformat()
        assignments = ", ".join(f"{k} = ?" for k in values)
        with self.transaction():
            self._db.execute(f"UPDATE batches SET {assignments} WHERE batch_id = ?", [*values.values(), batch_id])

    def open_batches(self) -> list[BatchRecord]:
        """Batches whose results are not all stored yet (open, or ended but not read), oldest first.
        Statuses after that: collected, cancelled, foreign (found by listing, and its results were not ours)."""
        rows = self._db.execute(
            "SELECT * FROM batches WHERE status IN ('open', 'ended') ORDER BY submitted_at, rowid"
        ).fetchall()
        return [_batch(r) for r in rows]

    def batch(self, batch_id: str) -> BatchRecord:
        row = self._db.execute("SELECT * FROM batches WHERE batch_id = ?", (batch_id,)).fetchone()
        if row is None:
            raise StateError(f"batch {batch_id} is not in the state file {self.path}")
        return _batch(row)

    def batches(self, night: str | None = None) -> list[BatchRecord]:
        where, args = ("WHERE night = ?", [night]) if night else ("", [])
        rows = self._db.execute(f"SELECT * FROM batches {where} ORDER BY submitted_at, rowid", args).fetchall()
        return [_batch(r) for r in rows]
