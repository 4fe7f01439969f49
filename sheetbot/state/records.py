"""What the store hands back: plain dataclasses, and the converters from SQLite rows to them.

Kept apart from the SQL so callers (and type hints) can name a Task or an Attempt without reading the store.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NotRequired, TypedDict

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
    #: The model that made the output (its final step's stored call): the fallback's when it ran.
    model: str | None = None
    #: The self-check's verdict on the current attempt (its `checks` cell); None when it has none yet.
    checks: str | None = None


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


class AdoptFields(TypedDict, total=False):
    """The fields ``State.adopt_task`` may set on a row taken over from the board (its whitelist)."""

    workflow: str | None
    night: str | None
    snapshot: dict[str, str]
    error: str
    failure: str | None
    attempt: int
    rework_notes: str
    previous_output: str | None


class TakeOverFields(TypedDict, total=False):
    """The fields ``State.take_over_task`` may set on a known row the board is ahead of (its whitelist)."""

    workflow: str | None
    night: str | None
    error: str
    attempt: int
    rework_notes: str
    previous_output: str | None


class TaskFields(TypedDict, total=False):
    """The fields a status change (``State.move``) may set besides status, error and failure (its whitelist)."""

    workflow: str | None
    priority: str | None
    attempt: int
    night: str | None
    snapshot: dict[str, str]
    rework_notes: str | None
    previous_output: str | None
    clear_review: int


class NightFields(TypedDict, total=False):
    """What ``State.night_event`` may record about a night (the columns of ``nights``)."""

    locked_at: str
    run_started_at: str
    run_finished_at: str
    drained: int
    note: str


class NightRecord(TypedDict):
    """One row of ``nights``: when the night was locked, run and finished (None: not yet)."""

    night: str
    locked_at: str | None
    run_started_at: str | None
    run_finished_at: str | None
    drained: int | None
    note: str


class BatchRequest(TypedDict):
    """What the attempt row of one batch request needs when its result arrives (sheetbot/batch/collect.py),
    stored with the send and the batch under the request's custom_id."""

    workflow: str
    step: str
    system: str
    prompt: str
    final: bool
    structured: bool
    provider: str
    #: The id the request went out under (``<key>-<n>``); batches stored before wire ids have none.
    wire: NotRequired[str]


class BatchRecord(TypedDict):
    """One row of ``batches``, its JSON columns parsed."""

    batch_id: str
    provider: str
    model: str
    night: str
    step: str
    #: open | ended | collected | cancelled | foreign
    status: str
    custom_ids: list[str]
    requests: dict[str, BatchRequest]
    submitted_at: str
    finished_at: str | None
    counts: dict[str, int]
    #: '' its create answered; 'key' found by the key it carries; 'listing' found by size and time
    found_by: str


class BatchSend(TypedDict):
    """One row of ``batch_sends`` (a create recorded before it went out), its requests parsed."""

    key: str
    provider: str
    model: str
    night: str
    step: str
    requests: dict[str, BatchRequest]
    file_id: str
    recorded_at: str
    #: None: the create never went out, so no batch exists for it.
    sent_at: str | None
    #: sending | created | found | absent | refused
    status: str


class ActionRecord(TypedDict):
    """One row of ``actions``: an approval-gated action and how far its delivery got."""

    task_id: str
    attempt: int
    workflow: str
    kind: str
    #: pending | sending | delivered
    state: str
    tries: int
    last_error: str
    created_at: str
    updated_at: str


_TASK_COLUMNS = (
    "task_id, seq, first_seen, status, failure, workflow, priority, attempt, night, snapshot, "
    "rework_notes, previous_output, error, dirty, clear_review"
)


def _attempt(row: sqlite3.Row) -> Attempt:
    flags = ("ok", "truncated", "final")
    values: dict[str, Any] = {k: (bool(row[k]) if k in flags else row[k]) for k in Attempt.__dataclass_fields__}
    return Attempt(**values)


def _batch(row: sqlite3.Row) -> BatchRecord:
    return BatchRecord(
        batch_id=row["batch_id"],
        provider=row["provider"],
        model=row["model"],
        night=row["night"],
        step=row["step"],
        status=row["status"],
        custom_ids=json.loads(row["custom_ids"]),
        requests=json.loads(row["requests"]),
        submitted_at=row["submitted_at"],
        finished_at=row["finished_at"],
        counts=json.loads(row["counts"]),
        found_by=row["found_by"],
    )


def _send(row: sqlite3.Row) -> BatchSend:
    return BatchSend(
        key=row["key"],
        provider=row["provider"],
        model=row["model"],
        night=row["night"],
        step=row["step"],
        requests=json.loads(row["requests"]),
        file_id=row["file_id"],
        recorded_at=row["recorded_at"],
        sent_at=row["sent_at"],
        status=row["status"],
    )


def _night(row: sqlite3.Row) -> NightRecord:
    return NightRecord(
        night=row["night"],
        locked_at=row["locked_at"],
        run_started_at=row["run_started_at"],
        run_finished_at=row["run_finished_at"],
        drained=row["drained"],
        note=row["note"],
    )


def _action(row: sqlite3.Row) -> ActionRecord:
    return ActionRecord(
        task_id=row["task_id"],
        attempt=row["attempt"],
        workflow=row["workflow"],
        kind=row["kind"],
        state=row["state"],
        tries=row["tries"],
        last_error=row["last_error"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


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


@dataclass(frozen=True)
class UrgentRow:
    """A row the urgent daytime lane looked at (sheetbot/state/urgent.py): ran in the day, or deferred."""

    task_id: str
    attempt: int
    workflow: str
    ran: bool
    #: When sheetbot first saw the row (gave it an id): where its latency starts.
    first_seen: datetime
    #: When its output was stored; None while it has none.
    output_at: datetime | None
    cost_usd: float
