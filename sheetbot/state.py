"""The SQLite state: what must survive a crash. All of sheetbot's SQL is in this module.

What lives here: every task sheetbot has seen (its status is the truth; the
board's `status` cell is a mirror), the locked snapshot of each night, every
model call with its tokens and cost, review decisions, per-night events and an
append-only audit log.

Two rules keep money safe:

* An output is committed here before anything is written to the board, so a
  failed board write never costs a second model call.
* A task whose board cells are out of date is marked ``dirty``; each phase ends by
  writing every dirty task and marking it clean. A crash between the two only
  means the same values are written again.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sheetbot.errors import StateError, TransitionError
from sheetbot.status import Status, can_move

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,                 -- order first seen: "oldest first" among equals
    first_seen TEXT NOT NULL,
    status TEXT NOT NULL,
    failure TEXT,                         -- 'invalid' (re-checked every lock) | 'call' (needs a person)
    workflow TEXT,
    priority TEXT,
    attempt INTEGER NOT NULL DEFAULT 1,
    night TEXT,
    snapshot TEXT,                        -- JSON: the row as locked
    rework_notes TEXT,
    previous_output TEXT,
    error TEXT NOT NULL DEFAULT '',
    dirty INTEGER NOT NULL DEFAULT 0,     -- the board's cells are behind the state
    clear_review INTEGER NOT NULL DEFAULT 0,
    resend_output INTEGER NOT NULL DEFAULT 0, -- the board's output cells must be (re)written
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_status ON tasks(status);
CREATE INDEX IF NOT EXISTS tasks_seq ON tasks(seq);
CREATE INDEX IF NOT EXISTS tasks_dirty ON tasks(dirty) WHERE dirty = 1;
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY,
    task_id TEXT NOT NULL,
    night TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    step TEXT NOT NULL,
    final INTEGER NOT NULL DEFAULT 1,     -- the task's output (the last step); 0 for a checkpoint
    workflow TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    mode TEXT NOT NULL,
    system TEXT NOT NULL,
    prompt TEXT NOT NULL,
    ok INTEGER NOT NULL,
    output TEXT,
    error TEXT,
    truncated INTEGER NOT NULL DEFAULT 0,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cache_write_tokens INTEGER NOT NULL DEFAULT 0,
    cache_read_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL NOT NULL DEFAULT 0,
    estimated_usd REAL,
    latency_s REAL NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS attempts_task ON attempts(task_id, attempt, step);
CREATE UNIQUE INDEX IF NOT EXISTS attempts_one_output ON attempts(task_id, attempt, step) WHERE ok = 1;
CREATE TABLE IF NOT EXISTS reviews (
    id INTEGER PRIMARY KEY,
    task_id TEXT NOT NULL,
    night TEXT,
    attempt INTEGER NOT NULL,
    workflow TEXT,
    decision TEXT NOT NULL,
    notes TEXT NOT NULL DEFAULT '',
    edited_output TEXT,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS night_tasks (     -- what each night did with each task: the metrics' source
    night TEXT NOT NULL,
    task_id TEXT NOT NULL,
    workflow TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    outcome TEXT NOT NULL,                -- locked | done | failed | deferred | over_cap
    reason TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (night, task_id)
);
CREATE TABLE IF NOT EXISTS nights (
    night TEXT PRIMARY KEY,
    locked_at TEXT,
    run_started_at TEXT,
    run_finished_at TEXT,
    drained INTEGER,
    note TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS batches (         -- Batch API jobs: stored the moment the provider returns an id
    batch_id TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    night TEXT NOT NULL,
    step TEXT NOT NULL,                   -- the round: the step its requests are for ("+" joins several)
    status TEXT NOT NULL,                 -- open | ended | collected | cancelled
    custom_ids TEXT NOT NULL,             -- JSON list: these requests are paid for; never send them again
    requests TEXT NOT NULL DEFAULT '{}',  -- JSON: custom_id -> what the attempt row needs (system, prompt, ...)
    submitted_at TEXT NOT NULL,
    finished_at TEXT,
    counts TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    event TEXT NOT NULL,
    task_id TEXT,
    detail TEXT NOT NULL DEFAULT '{}'
);
-- governance: the audit log is append-only, enforced by the database itself
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TABLE IF NOT EXISTS alerts_sent (  -- one row per alert delivered: never the same alert twice
    kind TEXT NOT NULL,
    key TEXT NOT NULL,                    -- what it is about: workflow and night, or a task id
    at TEXT NOT NULL,
    PRIMARY KEY (kind, key)
);
CREATE TABLE IF NOT EXISTS paused (       -- workflows whose rows the lock skips until resumed
    workflow TEXT PRIMARY KEY,
    since TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS queue_samples (  -- queue depth over time, for "over N for M minutes"
    at_s REAL NOT NULL,                   -- unix seconds: comparable whatever the clock's timezone
    depth INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS actions (         -- approval-gated actions (sheetbot/actions.py): one per approval
    task_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    workflow TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'webhook',
    state TEXT NOT NULL,                  -- pending | sending | delivered
    tries INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (task_id, attempt)
);
"""


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


_TASK_COLUMNS = (
    "task_id, seq, first_seen, status, failure, workflow, priority, attempt, night, snapshot, "
    "rework_notes, previous_output, error, dirty, clear_review"
)


def _attempt(row: sqlite3.Row) -> Attempt:
    flags = ("ok", "truncated", "final")
    return Attempt(**{k: (bool(row[k]) if k in flags else row[k]) for k in Attempt.__dataclass_fields__})


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


class State:
    """The store. One connection, used from one thread; WAL so readers (report) never block the night."""

    def __init__(self, path: Path | str, *, now: datetime | None = None) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(SCHEMA)
            self._check_version()
        except sqlite3.DatabaseError as exc:
            raise StateError(f"cannot use the state file {self.path}: {exc} (is it a sheetbot state file?)") from None
        self._depth = 0

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> State:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_version(self) -> None:
        row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is None:
            self._db.execute("INSERT INTO meta(key, value) VALUES('schema_version', ?)", (str(SCHEMA_VERSION),))
        elif int(row["value"]) > SCHEMA_VERSION:
            raise StateError(
                f"the state file {self.path} was written by a newer sheetbot (schema {row['value']}); upgrade sheetbot"
            )

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE … COMMIT; nested calls join the outer transaction. Rolls back on error."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            self._db.execute("COMMIT")
        finally:
            self._depth = 0

    # -- tasks ---------------------------------------------------------------------
    def tasks(self, ids: Iterable[str] | None = None) -> dict[str, Task]:
        """The given tasks in full; without ids, every task without its snapshot and previous output (a
        10,000-row board's snapshots are most of a phase's memory, and lock and harvest only need statuses)."""
        if ids is None:
            light = _TASK_COLUMNS.replace("snapshot,", "NULL AS snapshot,").replace(
                "previous_output,", "NULL AS previous_output,"
            )
            rows = self._db.execute(f"SELECT {light} FROM tasks").fetchall()
            return {r["task_id"]: _task(r) for r in rows}
        out: dict[str, Task] = {}
        wanted = list(ids)
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for r in self._db.execute(f"SELECT {_TASK_COLUMNS} FROM tasks WHERE task_id IN ({marks})", chunk):
                out[r["task_id"]] = _task(r)
        return out

    def task(self, task_id: str) -> Task | None:
        return self.tasks([task_id]).get(task_id)

    def tasks_with_status(self, *statuses: Status) -> list[Task]:
        marks = ",".join("?" * len(statuses))
        rows = self._db.execute(
            f"SELECT {_TASK_COLUMNS} FROM tasks WHERE status IN ({marks}) ORDER BY priority, seq",
            [str(s) for s in statuses],
        ).fetchall()
        return [_task(r) for r in rows]

    def add_task(self, task_id: str, *, now: datetime) -> Task:
        with self.transaction():
            seq = self._db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM tasks").fetchone()[0]
            self._db.execute(
                "INSERT INTO tasks(task_id, seq, first_seen, status, updated_at) VALUES (?, ?, ?, ?, ?)",
                (task_id, seq, now.isoformat(), str(Status.QUEUED), now.isoformat()),
            )
        return Task(task_id=task_id, seq=seq, first_seen=now.isoformat(), status=Status.QUEUED)

    def move(
        self,
        task_id: str,
        new: Status,
        *,
        now: datetime,
        error: str | None = None,
        failure: str | None = None,
        board: bool = True,
        **fields: Any,
    ) -> None:
        """Change a task's status (refusing transitions the lifecycle forbids) and other fields."""
        row = self._db.execute("SELECT status FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
        if row is None:
            raise StateError(f"task {task_id} is not in the state file {self.path}")
        current = Status(row["status"])
        if current != new and not can_move(current, new):
            raise TransitionError(f"task {task_id}: {current} → {new} is not an allowed status change")
        allowed = {
            "workflow",
            "priority",
            "attempt",
            "night",
            "snapshot",
            "rework_notes",
            "previous_output",
            "clear_review",
        }
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"unknown task fields {sorted(unknown)}")
        values: dict[str, Any] = {"status": str(new), "updated_at": now.isoformat(), "failure": failure}
        if error is not None:
            values["error"] = error
        if board:
            values["dirty"] = 1
        for key, value in fields.items():
            values[key] = json.dumps(value) if key == "snapshot" else value
        assignments = ", ".join(f"{k} = ?" for k in values)
        with self.transaction():
            self._db.execute(f"UPDATE tasks SET {assignments} WHERE task_id = ?", [*values.values(), task_id])

    def forget(self, task_id: str) -> None:
        """Drop a task created in this phase whose id never reached the board (its row changed meanwhile)."""
        with self.transaction():
            self._db.execute("DELETE FROM night_tasks WHERE task_id = ?", (task_id,))
            self._db.execute("DELETE FROM tasks WHERE task_id = ?", (task_id,))

    # -- attempts ------------------------------------------------------------------
    def record_attempt(self, attempt: Attempt, *, now: datetime) -> None:
        """Store a model call's result. Committed before the caller writes anything to the board."""
        data = attempt.__dict__ | {
            "ok": int(attempt.ok),
            "truncated": int(attempt.truncated),
            "created_at": now.isoformat(),
        }
        columns = ", ".join(data)
        marks = ", ".join("?" * len(data))
        with self.transaction():
            self._db.execute(f"INSERT INTO attempts({columns}) VALUES ({marks})", list(data.values()))

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

    # -- the board mirror ----------------------------------------------------------
    def dirty(self) -> list[BoardProjection]:
        """Every task whose board cells are behind the state, with the values the board should show."""
        rows = self._db.execute(
            """SELECT t.task_id, t.workflow, t.status, t.night, t.error, t.clear_review, t.attempt,
                      CASE WHEN t.resend_output = 1 OR t.clear_review = 1 THEN
                      (SELECT a.output FROM attempts a WHERE a.task_id = t.task_id AND a.ok = 1
                         AND a.final = 1 ORDER BY a.attempt DESC, a.id DESC LIMIT 1) END AS output,
                      (SELECT COALESCE(SUM(a.cost_usd), 0) FROM attempts a WHERE a.task_id = t.task_id) AS cost
               FROM tasks t WHERE t.dirty = 1 ORDER BY t.seq"""
        ).fetchall()
        return [
            BoardProjection(
                task_id=r["task_id"],
                workflow=r["workflow"],
                status=Status(r["status"]),
                night=r["night"],
                output=r["output"],
                error=r["error"],
                cost_usd=float(r["cost"]),
                clear_review=bool(r["clear_review"]),
            )
            for r in rows
        ]

    def mark_dirty(self, task_ids: Iterable[str]) -> None:
        """The board lost what it should show for these tasks: rewrite all of it, outputs included."""
        with self.transaction():
            self._db.executemany(
                "UPDATE tasks SET dirty = 1, resend_output = 1 WHERE task_id = ?", [(i,) for i in task_ids]
            )

    def mark_synced(self, task_ids: Iterable[str]) -> None:
        ids = list(task_ids)
        with self.transaction():
            self._db.executemany(
                "UPDATE tasks SET dirty = 0, clear_review = 0, resend_output = 0 WHERE task_id = ?", [(i,) for i in ids]
            )

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
            "ON CONFLICT(night, task_id) DO UPDATE SET outcome = excluded.outcome, reason = excluded.reason, "
            "attempt = excluded.attempt",
            (night, task_id, workflow, attempt, outcome, reason),
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

    # -- approval-gated actions (sheetbot/actions.py) and the dashboard's last digest ------
    def add_action(self, task_id: str, attempt: int, *, workflow: str, now: datetime) -> bool:
        """Queue the action for an approved attempt; False if it was queued before (never twice)."""
        cursor = self._db.execute(
            "INSERT INTO actions(task_id, attempt, workflow, state, created_at, updated_at) "
            "VALUES (?, ?, ?, 'pending', ?, ?) ON CONFLICT(task_id, attempt) DO NOTHING",
            (task_id, attempt, workflow, now.isoformat(), now.isoformat()),
        )
        return cursor.rowcount == 1

    def actions_undelivered(self) -> list[dict[str, Any]]:
        """Pending actions and those a crash left `sending` (their delivery is unknown), oldest first."""
        rows = self._db.execute(
            "SELECT * FROM actions WHERE state != 'delivered' ORDER BY created_at, task_id"
        ).fetchall()
        return [dict(r) for r in rows]

    def actions_delivered_unpublished(self) -> list[dict[str, Any]]:
        """Delivered actions whose task did not reach `published` (a crash between the two steps)."""
        rows = self._db.execute(
            "SELECT a.* FROM actions a JOIN tasks t ON t.task_id = a.task_id AND t.attempt = a.attempt "
            "WHERE a.state = 'delivered' AND t.status IN ('approved', 'edited')"
        ).fetchall()
        return [dict(r) for r in rows]

    def action_state(self, task_id: str, attempt: int, new: str, *, now: datetime, error: str | None = None) -> None:
        """Record an action's progress; each call commits on its own, so it survives a crash right after."""
        if new not in {"pending", "sending", "delivered"}:
            raise ValueError(f"unknown action state {new!r}")
        tries = 1 if new == "sending" else 0
        with self.transaction():
            self._db.execute(
                "UPDATE actions SET state = ?, tries = tries + ?, last_error = COALESCE(?, last_error), "
                "updated_at = ? WHERE task_id = ? AND attempt = ?",
                (new, tries, error, now.isoformat(), task_id, attempt),
            )

    def meta_value(self, key: str) -> str | None:
        """A small fact sheetbot keeps between runs (e.g. what the Dashboard last showed)."""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row["value"])

    def set_meta_value(self, key: str, value: str) -> None:
        if key == "schema_version":
            raise ValueError("schema_version is not sheetbot's to set at run time")
        with self.transaction():
            self._db.execute(
                "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

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
                (workflow, now.isoformat(), reason),
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

    def query(self, sql: str, args: Iterable[Any] = ()) -> list[sqlite3.Row]:
        """Read-only queries for reports (SELECT only)."""
        if not sql.lstrip().upper().startswith(("SELECT", "WITH")):
            raise ValueError("State.query is for SELECT statements")
        return self._db.execute(sql, list(args)).fetchall()
