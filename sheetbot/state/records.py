"""What the store hands back: plain dataclasses, and the converters from SQLite rows to them.

Kept apart from the SQL so callers (and type hints) can name a Task or an Attempt without reading the store.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from sheetbot.status import Status


@dataclass
class Task:
    task_id: str
    seq: int
    first_seen: str
    status: Status
    failure: str | None = None
    workflow: str | None = None
    priority: str | None = None
    attempt: int = 1
    night: str | None = None
    snapshot: dict[str, str] = field(default_factory=dict)
    rework_notes: str | None = None
    previous_output: str | None = None
    error: str = ""
    dirty: bool = False
    clear_review: bool = False


@dataclass(frozen=True)
class Attempt:
    task_id: str
    night: str
    attempt: int
    step: str
    workflow: str
    provider: str
    model: str
    mode: str
    system: str
    prompt: str
    ok: bool
    output: str | None = None
    error: str | None = None
    truncated: bool = False
    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0
    cost_usd: float = 0.0
    estimated_usd: float | None = None
    latency_s: float = 0.0
    final: bool = True


@dataclass(frozen=True)
class BoardProjection:
    """What the board should show for a task: its sheetbot-owned cells."""

    task_id: str
    workflow: str | None
    status: Status
    night: str | None
    output: str | None
    error: str
    cost_usd: float
    clear_review: bool


@dataclass(frozen=True)
class AuditEntry:
    """One line of the append-only audit log; ``detail`` is the JSON text as stored (the export parses it)."""

    id: int
    at: str
    event: str
    task_id: str | None
    detail: str


@dataclass(frozen=True)
class CallUsage:
    """What one stored model call used and cost: enough to price it again (live instead of batch)."""

    model: str
    mode: str
    cost_usd: float
    input_tokens: int
    output_tokens: int
    cache_write_tokens: int
    cache_read_tokens: int


@dataclass(frozen=True)
class Spend:
    """A night's spend for one workflow: what was paid, and what its preview calls would have cost live."""

    cost_usd: float
    estimated_usd: float


@dataclass(frozen=True)
class ReviewedOutput:
    """A reviewer's decision beside the output it judged (None when that output is no longer stored)."""

    decision: str
    notes: str
    edited_output: str | None
    output: str | None


@dataclass(frozen=True)
class OutputProduced:
    """A task's output produced by a night: the row of ``night_tasks`` whose outcome is ``done``."""

    night: str
    task_id: str
    attempt: int


_TASK_COLUMNS = (
    "task_id, seq, first_seen, status, failure, workflow, priority, attempt, night, snapshot, "
    "rework_notes, previous_output, error, dirty, clear_review"
)


def _attempt(row: sqlite3.Row) -> Attempt:
    flags = ("ok", "truncated", "final")
    values: dict[str, Any] = {k: (bool(row[k]) if k in flags else row[k]) for k in Attempt.__dataclass_fields__}
    return Attempt(**values)


def _batch(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    for key in ("custom_ids", "requests", "counts"):
        out[key] = json.loads(out[key])
    return out


def _task(row: sqlite3.Row) -> Task:
    return Task(
        task_id=row["task_id"],
        seq=row["seq"],
        first_seen=row["first_seen"],
        status=Status(row["status"]),
        failure=row["failure"],
        workflow=row["workflow"],
        priority=row["priority"],
        attempt=row["attempt"],
        night=row["night"],
        snapshot=json.loads(row["snapshot"]) if row["snapshot"] else {},
        rework_notes=row["rework_notes"],
        previous_output=row["previous_output"],
        error=row["error"],
        dirty=bool(row["dirty"]),
        clear_review=bool(row["clear_review"]),
    )
