"""The store itself: one connection, WAL, ``transaction()``, tasks and their moves, and the board mirror.

``State`` stays one class (callers hold one object); the later concerns (attempts, history, reports, batches,
the outbox, governance, the journal, claims) are mixins in their own modules, and every one of them keeps its
SQL inside this package: callers outside it ask named questions (``tasks_locked_for``, ``calls_of_night``, …)
and get dataclasses back, never SQL or sqlite3 rows.

Moves: ``move`` refuses every change of status that ``TRANSITIONS`` (sheetbot/status.py) does not list. A move
to the status a task already has (X→X) is not a change of status: the store does not look it up in the table
and accepts it from every status, listed there or not (only deferred, failed and running list themselves). The
lifecycle uses it to update a row's note or fields in place: the harvest's problem with a review it cannot read
(review→review), the run's "changed after the lock" note (review→review), a failed publishing's error
(approved→approved, edited→edited, sheetbot/morning/on_approve.py), a claim's note on a new row (queued→queued,
sheetbot/night/repair.py), a lock re-deferring a row with a new reason (deferred→deferred).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import Unpack

from sheetbot.config.state_target import PostgresTarget
from sheetbot.errors import StateError, TransitionError
from sheetbot.safety.secrets import scrub
from sheetbot.state.attempts import AttemptsMixin
from sheetbot.state.batches import BatchesMixin
from sheetbot.state.chains import ChainsMixin
from sheetbot.state.claims import ClaimsMixin
from sheetbot.state.faults import Db, GuardedConnection
from sheetbot.state.gates import GatesMixin
from sheetbot.state.governance import GovernanceMixin
from sheetbot.state.history import HistoryMixin
from sheetbot.state.intake import IntakeMixin
from sheetbot.state.journal import JournalMixin
from sheetbot.state.opening import check_version, open_postgres, open_sqlite
from sheetbot.state.outbox import ActionsMixin
from sheetbot.state.postgres import DB_ERRORS
from sheetbot.state.postgres import Connection as PgConnection
from sheetbot.state.records import (
    _TASK_COLUMNS,
    AdoptFields,
    BoardProjection,
    TakeOverFields,
    Task,
    TaskFields,
    _task,
)
from sheetbot.state.reports import ReportsMixin
from sheetbot.state.schema import SCHEMA_VERSION
from sheetbot.state.self_checks import SelfChecksMixin
from sheetbot.state.tallies import TalliesMixin
from sheetbot.state.urgent import UrgentMixin
from sheetbot.status import MOVES_INTO, Status

#: A row in review at a gate between steps (issue 14) shows the gated step's answer, marked (sheetbot.state.gates).
WAITING_GATE = (
    "CASE WHEN t.status = 'review' THEN (SELECT g.shown FROM step_gates g WHERE g.task_id = t.task_id "
    "AND g.decision IS NULL ORDER BY g.id DESC LIMIT 1) END"
)
#: A task's columns without its snapshot and previous output, the two that hold customers' text.
_LIGHT = _TASK_COLUMNS.replace("snapshot,", "NULL AS snapshot,").replace("previous_output,", "NULL AS previous_output,")
#: The task's latest answer (its output and model), found once a row rather than by one subquery per column.
LATEST_ANSWER = (
    "LEFT JOIN attempts a ON a.id = (SELECT l.id FROM attempts l WHERE l.task_id = t.task_id AND l.ok = 1 "
    "AND l.final = 1 ORDER BY l.attempt DESC, l.id DESC LIMIT 1)"
)
#: The self-check's verdict on the row's current attempt (issue 13): its `checks` cell, in the projection's query.
VERDICT = "(SELECT s.verdict FROM self_checks s WHERE s.task_id = t.task_id AND s.attempt = t.attempt)"


class State(
    AttemptsMixin,
    HistoryMixin,
    ReportsMixin,
    BatchesMixin,
    ActionsMixin,
    ChainsMixin,
    GovernanceMixin,
    JournalMixin,
    ClaimsMixin,
    TalliesMixin,
    SelfChecksMixin,
    GatesMixin,
    UrgentMixin,
    IntakeMixin,
):
    """The store. One connection, used from one thread; WAL so readers (report) never block the night.
    Opened on a path, a SQLite file; on a ``PostgresTarget``, the board's schema in PostgreSQL, through the
    adapter in sheetbot.state.postgres that runs the same SQL (issue 15).

    ``busy_timeout_s`` bounds how long a statement waits for another program's lock (a backup tool) before
    it fails with StateUnavailableError; every SQLite fault of the machine (locked, disk full, I/O error,
    read-only) becomes that error at the connection (sheetbot.state.faults), never a raw OperationalError.
    Opening the state stores what the journal beside it keeps (answers paid for while it could not be
    written), before any phase can make a new call.
    """

    def __init__(
        self, path: Path | str | PostgresTarget, *, now: datetime | None = None, busy_timeout_s: float = 30.0
    ) -> None:
        #: What to open again for the same state (a SQLite file, or a board's PostgreSQL schema).
        self.target: Path | PostgresTarget = path if isinstance(path, PostgresTarget) else Path(path)
        self.busy_timeout_s = busy_timeout_s
        self._depth = 0
        if isinstance(path, PostgresTarget):
            self.path = path.path
            self._db: Db = open_postgres(path, busy_timeout_s)
        else:
            self.path = Path(path)
            self._db = open_sqlite(self.path, busy_timeout_s)
        try:
            check_version(self._db, self.target)
            version = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if version is not None and int(version["value"]) < SCHEMA_VERSION:  # read first: a write needs the lock
                self._db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
            self.replay_journal()
        except BaseException:
            self._db.close()
            raise

    @contextmanager
    def waiting_at_most(self, seconds: float) -> Iterator[None]:
        """Statements inside wait at most ``seconds`` for a lock (the night's short tries; it waits on its
        event loop in between instead of freezing it in SQLite's busy handler)."""
        db = self._db
        assert isinstance(db, (GuardedConnection, PgConnection))
        db.set_busy_timeout(seconds)
        try:
            yield
        finally:
            db.set_busy_timeout(self.busy_timeout_s)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> State:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
            self._db.execute("COMMIT")  # may fail too (disk full, I/O): then roll back like any error
            self.claims_committed()  # ids this transaction handed out are known now
        except BaseException:
            if self._db.in_transaction:  # SQLite rolls back by itself after some errors (SQLITE_FULL)
                with suppress(StateError, *DB_ERRORS):
                    self._db.execute("ROLLBACK")
            raise
        finally:
            self._depth = 0

    # -- tasks ---------------------------------------------------------------------
    def tasks(self, ids: Iterable[str] | None = None, *, light: bool = False) -> dict[str, Task]:
        """The given tasks in full (``light``: without snapshot and previous output); without ids, every task,
        light (a 10,000-row board's snapshots are most of a phase's memory, and lock and harvest only need
        statuses)."""
        if ids is None:
            rows = self._db.execute(f"SELECT {_LIGHT} FROM tasks ORDER BY seq").fetchall()  # both engines: seq order
            return {r["task_id"]: _task(r) for r in rows}
        out: dict[str, Task] = {}
        wanted, columns = list(ids), _LIGHT if light else _TASK_COLUMNS
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for r in self._db.execute(f"SELECT {columns} FROM tasks WHERE task_id IN ({marks})", chunk):
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
        **fields: Unpack[TaskFields],
    ) -> None:
        """Change a task's status and other fields, refusing a status change ``TRANSITIONS`` does not list;
        ``new`` equal to the current status passes from any status (the module docstring says why)."""
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
        # A column's new value; the whitelist above keeps the keys to TaskFields' (typed at the call site).
        values: dict[str, object] = {"status": str(new), "updated_at": now.isoformat(), "failure": failure}
        if error is not None:
            values["error"] = scrub(error)  # the state is an exit too: backups, `show`, the summary
        if board:
            values["dirty"] = 1
        for key, value in fields.items():
            values[key] = json.dumps(value) if key == "snapshot" else value
        assignments = ", ".join(f"{k} = ?" for k in values)
        # One statement, the allowed change in its WHERE: a night moves every row twice, and a SELECT before
        # each UPDATE was a third of a 10,000-row run's statements. Nothing changed: say why.
        sources = MOVES_INTO[new]
        marks = ", ".join("?" * len(sources))
        with self.transaction():
            changed = self._db.execute(
                f"UPDATE tasks SET {assignments} WHERE task_id = ? AND status IN ({marks})",
                [*values.values(), task_id, *sources],
            ).rowcount
            if changed != 1:
                row = self._db.execute("SELECT status FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
                if row is None:
                    raise StateError(f"task {task_id} is not in the state file {self.path}")
                raise TransitionError(f"task {task_id}: {row['status']} → {new} is not an allowed status change")

    def start_running(self, task_ids: Iterable[str], *, now: datetime) -> None:
        """``move(task, RUNNING)`` for these locked tasks, 500 to a statement: a 10,000-row run starts with
        them all. A task no longer locked (another program moved it) gets move's own error."""
        wanted = list(task_ids)
        with self.transaction():
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ",".join("?" * len(chunk))
                changed = self._db.execute(
                    "UPDATE tasks SET status = ?, updated_at = ?, failure = NULL, dirty = 1 "
                    f"WHERE status = ? AND task_id IN ({marks})",
                    [str(Status.RUNNING), now.isoformat(), str(Status.LOCKED), *chunk],
                ).rowcount
                if changed != len(set(chunk)):
                    for task_id in chunk:  # the few the statement skipped: moved one by one, or refused
                        self.move(task_id, Status.RUNNING, now=now)

    def forget(self, task_id: str) -> None:
        """Drop a task created in this phase whose id never reached the board (its row changed meanwhile)."""
        with self.transaction():
            self._db.execute("DELETE FROM night_tasks WHERE task_id = ?", (task_id,))
            self._db.execute("DELETE FROM tasks WHERE task_id = ?", (task_id,))

    # -- the board mirror ----------------------------------------------------------
    def dirty(self) -> list[BoardProjection]:
        """Every task whose board cells are behind the state, with the values the board should show."""
        rows = self._db.execute(
            f"""SELECT t.task_id, t.workflow, t.status, t.night, t.error, t.clear_review, t.attempt,
                      CASE WHEN t.resend_output = 1 OR t.clear_review = 1 THEN COALESCE({WAITING_GATE},
                      a.output) END AS output, a.model AS model,
                      {VERDICT} AS checks,
                      (SELECT COALESCE(SUM(c.cost_usd), 0) FROM attempts c WHERE c.task_id = t.task_id) AS cost
               FROM tasks t {LATEST_ANSWER} WHERE t.dirty = 1 ORDER BY t.seq"""
        ).fetchall()
        return [_projection(r, clear_review=bool(r["clear_review"])) for r in rows]

    def task_ids_to_write(self, status: Status) -> list[str]:
        """The tasks in ``status`` whose board cells are behind the state (e.g. outputs just stored for review)."""
        rows = self._db.execute("SELECT task_id FROM tasks WHERE dirty = 1 AND status = ?", (str(status),))
        return [r["task_id"] for r in rows.fetchall()]

    def projections(self, *, with_output: Iterable[Status]) -> list[BoardProjection]:
        """What the board should show for every task that is not queued and not already due a write, the
        output included for tasks in ``with_output``: what a phase compares the board against (one query)."""
        shown = [str(s) for s in with_output]
        marks = ",".join("?" * len(shown)) or "NULL"
        rows = self._db.execute(
            f"""SELECT t.task_id, t.workflow, t.status, t.night, t.error,
                       CASE WHEN t.status IN ({marks}) THEN COALESCE({WAITING_GATE},
                       a.output) END AS output, a.model AS model,
                       {VERDICT} AS checks,
                       (SELECT COALESCE(SUM(c.cost_usd), 0) FROM attempts c WHERE c.task_id = t.task_id) AS cost
                FROM tasks t {LATEST_ANSWER} WHERE t.dirty = 0 AND t.status != ?""",
            [*shown, str(Status.QUEUED)],
        ).fetchall()
        return [_projection(r, clear_review=False) for r in rows]

    def adopt_task(
        self,
        task_id: str,
        status: Status,
        *,
        now: datetime,
        output: str | None = None,
        cost_usd: float = 0.0,
        **fields: Unpack[AdoptFields],
    ) -> None:
        """Take over a row the state did not know, as the board shows it (sheetbot/night/repair.py). Its output
        and cost are kept as an attempt of mode ``adopted`` (nothing was called): a rework has its previous
        output, and the cost cell its figure."""
        allowed = {"workflow", "night", "snapshot", "error", "failure", "attempt", "rework_notes", "previous_output"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"unknown task fields {sorted(unknown)}")
        values: dict[str, object] = {k: json.dumps(v) if k == "snapshot" else v for k, v in fields.items()}
        with self.transaction():
            seq = self._db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM tasks").fetchone()[0]
            values |= {"task_id": task_id, "seq": seq, "first_seen": now.isoformat(), "status": str(status)}
            values |= {"updated_at": now.isoformat(), "dirty": 1}
            columns = ", ".join(values)
            self._db.execute(
                f"INSERT INTO tasks({columns}) VALUES ({','.join('?' * len(values))})", list(values.values())
            )
            if output is not None:
                self._adopted_attempt(task_id, 1, fields, output=output, cost_usd=cost_usd, now=now)

    def take_over_task(
        self,
        task_id: str,
        status: Status,
        *,
        now: datetime,
        output: str,
        output_attempt: int,
        cost_usd: float = 0.0,
        **fields: Unpack[TakeOverFields],
    ) -> None:
        """Take over a known task as the board shows it when the state file is behind the board (an older
        copy put back, sheetbot/night/repair.py): the status is set outright (the lifecycle between the two
        happened under the newer state file), and the board's output and the cost the state lacks are kept
        as an ``adopted`` attempt numbered ``output_attempt``, so the board keeps showing them."""
        allowed = {"workflow", "night", "error", "attempt", "rework_notes", "previous_output"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"unknown task fields {sorted(unknown)}")
        values: dict[str, object] = {**fields, "status": str(status), "failure": None, "updated_at": now.isoformat()}
        values |= {"dirty": 1, "resend_output": 1, "clear_review": 0}
        assignments = ", ".join(f"{k} = ?" for k in values)
        with self.transaction():
            self._db.execute(f"UPDATE tasks SET {assignments} WHERE task_id = ?", [*values.values(), task_id])
            self._adopted_attempt(task_id, output_attempt, fields, output=output, cost_usd=cost_usd, now=now)

    def _adopted_attempt(
        self,
        task_id: str,
        attempt: int,
        fields: AdoptFields | TakeOverFields,
        *,
        output: str,
        cost_usd: float,
        now: datetime,
    ) -> None:
        """An output taken from the board: nothing was called, so provider, model and prompt are blank."""
        self._db.execute(
            "INSERT INTO attempts(task_id, night, attempt, step, final, workflow, provider, model, mode, "
            "system, prompt, ok, output, cost_usd, created_at) "
            "VALUES (?, ?, ?, 'final', 1, ?, 'board', '', 'adopted', '', '', 1, ?, ?, ?)",
            (
                task_id,
                fields.get("night") or "",
                attempt,
                fields.get("workflow") or "",
                output,
                cost_usd,
                now.isoformat(),
            ),
        )

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


def _projection(r: sqlite3.Row, *, clear_review: bool) -> BoardProjection:
    return BoardProjection(
        task_id=r["task_id"],
        workflow=r["workflow"],
        status=Status(r["status"]),
        night=r["night"],
        output=r["output"],
        error=r["error"],
        cost_usd=float(r["cost"]),
        clear_review=clear_review,
        model=r["model"],
        checks=r["checks"],
    )
