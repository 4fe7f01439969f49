"""The cutoff: decide what runs tonight and freeze it.

Each eligible row is checked (known type, an input, a usable priority, every
column its templates name), then taken highest priority first, oldest first, up
to the workflow's and the night's caps. What is taken is snapshotted into the
state: tonight runs what the row said now, whatever happens to the sheet later.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from sheetbot.boards.base import BoardRow, Sheet
from sheetbot.boards.capabilities import ProtectsInputs
from sheetbot.errors import BoardSchemaError
from sheetbot.night.context import NightContext
from sheetbot.night.prompts import missing_columns, template_names
from sheetbot.night.repair import take_stock
from sheetbot.night.writeback import write_with_ids
from sheetbot.state import Task
from sheetbot.state.audit import input_hash, record_workflow_versions
from sheetbot.status import LOCKABLE, Status, parse_priority, parse_status


@dataclass
class LockReport:
    night: str
    locked: Counter[str] = field(default_factory=Counter)
    deferred: Counter[str] = field(default_factory=Counter)
    #: Rows found unable to run at this lock: new ones, or for a new reason (said once, not every night).
    failed: list[tuple[str, str]] = field(default_factory=list)
    #: Rows that still cannot run, for the reason reported before (the error column says it).
    still_failed: int = 0
    new_ids: int = 0
    missing: list[str] = field(default_factory=list)
    columns_added: list[str] = field(default_factory=list)
    #: Rows of paused workflows (escalation.py), left in the queue with a note.
    paused: Counter[str] = field(default_factory=Counter)
    #: Rows not taken because of their status (review, locked, approved …): why a lock that takes 0 took 0.
    waiting: Counter[str] = field(default_factory=Counter)


class Lane(Protocol):
    """A daytime lock of a subset of the rows (the urgent lane, sheetbot/night/urgent.py): the same checks,
    snapshot and write-back as the night's lock, but only the rows it ``wants``, under its own caps."""

    def wants(self, task: Task, row: BoardRow) -> bool:
        """Whether the lane looks at this row at all (the others are left as they are, for the night)."""
        ...

    def full(self, workflow: str) -> str | None:
        """Why the lane takes no more of ``workflow``'s rows now (its cap), or None."""
        ...

    def took(self, task: Task, workflow: str, *, reason: str = "") -> None:
        """Mark the row as the lane's (``reason`` empty) or as deferred by it to the night (``reason``)."""
        ...


def lacking(ctx: NightContext, sheet: Sheet) -> list[str]:
    """sheetbot's columns the sheet does not have (`init` adds them)."""
    return [c for c in ctx.schema().columns if c not in sheet.columns]


def read_board(ctx: NightContext) -> tuple[Sheet, list[str]]:
    """Read the board, adding sheetbot's columns first if the sheet lacks them."""
    sheet = ctx.board.read()
    if not lacking(ctx, sheet):
        return sheet, []
    added = ctx.board.ensure_schema(ctx.schema())
    sheet = ctx.board.read()
    still = lacking(ctx, sheet)
    if still:
        raise BoardSchemaError(f"{ctx.board.describe()} lacks the columns {', '.join(still)}: run `sheetbot init`")
    return sheet, added


def _eligible(task: Task, row: BoardRow, col: Mapping[str, str]) -> bool:
    if task.status in LOCKABLE:
        return True
    if task.status == Status.FAILED:
        # Invalid rows are re-checked every night; a dead-lettered row waits for a person to type `queued`.
        return task.failure == "invalid" or parse_status(row.get(col["status"])) == Status.QUEUED
    return False


def validate(ctx: NightContext, row: BoardRow, columns: set[str]) -> tuple[str, str] | str:
    """(workflow, priority) for a runnable row, else the reason it cannot run, for the `error` column."""
    col = ctx.col
    workflows = ctx.config.workflows
    kind = row.get(col["type"]).strip()
    unreadable = _unreadable(ctx, row, kind)
    if unreadable:
        return unreadable
    known = ", ".join(sorted(workflows))
    if not kind:
        return f"no type: set `{col['type']}` to one of: {known}"
    if kind not in workflows:
        close = difflib.get_close_matches(kind, list(workflows), n=1)
        hint = f" Did you mean {close[0]}?" if close else ""
        return f"unknown type {kind!r}.{hint} Known types: {known}"
    if not row.get(col["input"]).strip():
        return f"the input is empty: put the work for {kind} in the `{col['input']}` column"
    priority = parse_priority(row.get(col["priority"]))
    if priority is None:
        return f"priority {row.get(col['priority'])!r} is not one of P0, P1, P2, P3 (blank means P2)"
    missing = missing_columns(workflows[kind], columns, col)
    if missing:
        names = ", ".join(f"{{{{{m}}}}}" for m in missing)
        return f"workflow {kind} uses {names}, but the board has no such column: add it, or fix the template"
    return kind, priority


def _unreadable(ctx: NightContext, row: BoardRow, kind: str) -> str | None:
    """Why a cell the row's prompts read has no usable value (a formula never calculated), if one has not.
    The model gets a cell's value on every board; never the formula's text, never a silent blank."""
    if not row.problems:
        return None
    col = ctx.col
    used = {col["type"], col["input"], col["priority"]}
    workflow = ctx.config.workflows.get(kind)
    if workflow is not None:
        names = [n for n in template_names(workflow) if not n.startswith("steps.")]
        used |= set(names) | {col[n] for n in names if n in col}
    return next((problem for column, problem in row.problems.items() if column in used), None)


def lock(ctx: NightContext, lane: Lane | None = None) -> LockReport:
    """Lock tonight's rows; with a ``lane``, only the rows it wants, under its caps (the night's record and
    caps are left alone: the evening lock still comes)."""
    window = ctx.night()
    now = ctx.now()
    ctx.progress(0, 0, "reading the board")  # reading and writing a big workbook take seconds each
    sheet, added = read_board(ctx)
    col = ctx.col
    state = ctx.state
    columns = set(sheet.columns)

    with state.transaction():
        ident, tasks = take_stock(ctx, sheet)  # ids, unknown rows, and cells the board shows wrongly
        report = LockReport(night=window.night, new_ids=len(ident.claims), columns_added=added)
        candidates: list[tuple[Task, BoardRow, str, str]] = []
        total = len(ident.rows)
        for checked, (task_id, row) in enumerate(ident.rows.items()):
            ctx.progress(checked, total, "checking rows")
            task = tasks[task_id]
            if lane is not None and not lane.wants(task, row):
                continue
            if not _eligible(task, row, col):
                report.waiting[task.status] += 1
                continue
            verdict = validate(ctx, row, columns)
            if isinstance(verdict, str):
                if task.status != Status.FAILED or task.error != verdict:
                    state.move(task_id, Status.FAILED, now=now, error=verdict, failure="invalid")
                    report.failed.append((task_id, verdict))
                else:  # reported when it was found; the error column keeps saying it
                    report.still_failed += 1
                continue
            candidates.append((task, row, *verdict))

        candidates.sort(key=lambda c: (c[3], c[0].seq))
        taken = _already_tonight(ctx, window.night)
        night_cap = ctx.config.limits.nightly_rows
        paused = state.paused()
        for task, row, workflow, priority in candidates:
            if workflow in paused:
                note = f"deferred: workflow {workflow} is paused ({paused[workflow]}); `sheetbot resume {workflow}`"
                if task.status != Status.DEFERRED or task.error != note:
                    state.move(task.task_id, Status.DEFERRED, now=now, error=note)
                report.paused[workflow] += 1
                continue
            if lane is not None:
                full = lane.full(workflow)
                if full is not None:
                    state.move(task.task_id, Status.DEFERRED, now=now, error=full)
                    lane.took(task, workflow, reason=full)
                    report.deferred[workflow] += 1
                    continue
            wf_cap = ctx.config.workflows[workflow].nightly_rows
            night_full = taken.total() >= night_cap or (wf_cap is not None and taken[workflow] >= wf_cap)
            if lane is None and night_full:
                reason = (
                    f"deferred: tonight's cap of {night_cap} rows is full"
                    if taken.total() >= night_cap
                    else f"deferred: tonight's cap for {workflow} ({wf_cap} rows) is full"
                )
                reason += "; it runs on a later night (highest priority first, then oldest)"
                state.move(task.task_id, Status.DEFERRED, now=now, error=reason)
                state.night_task(
                    window.night,
                    task.task_id,
                    workflow=workflow,
                    attempt=task.attempt,
                    outcome="over_cap",
                    reason=reason,
                )
                report.deferred[workflow] += 1
                continue
            state.move(
                task.task_id,
                Status.LOCKED,
                now=now,
                error="",
                workflow=workflow,
                priority=priority,
                night=window.night,
                snapshot=dict(row.values),
            )
            state.night_task(window.night, task.task_id, workflow=workflow, attempt=task.attempt, outcome="locked")
            state.audit(
                "lock_task",
                now=now,
                task_id=task.task_id,
                detail={
                    "night": window.night,
                    "workflow": workflow,
                    "priority": priority,
                    "attempt": task.attempt,
                    "input_hash": input_hash(row.values),
                },
            )
            if lane is not None:
                lane.took(task, workflow)
            taken[workflow] += 1
            report.locked[workflow] += 1
        if lane is None:  # a daytime lane's lock is not the night's: the cutoff still locks the rest
            state.night_event(window.night, locked_at=now.isoformat())
        state.audit(
            "lock",
            now=now,
            detail={
                "night": window.night,
                **({"lane": "urgent"} if lane is not None else {}),
                "locked": dict(report.locked),
                "deferred": dict(report.deferred),
                "failed": len(report.failed) + report.still_failed,
            },
        )
        record_workflow_versions(state, ctx.config.workflows, now=now)  # the weekly review's "what changed"
        ctx.progress(total, total, "writing the board")
        report.missing = write_with_ids(ctx, ident.claims, ident.new).missing
    if ctx.config.board.protect_locked and isinstance(ctx.board, ProtectsInputs):  # Google Sheets
        # Warning-only: a person editing a locked row's input learns that tonight runs what it said at the cutoff.
        owned = {header for name, header in col.items() if name not in ("type", "input", "priority")}  # sheetbot's
        ctx.board.protect_inputs(
            [t.task_id for t in state.tasks_with_status(Status.LOCKED)], [c for c in sheet.columns if c not in owned]
        )
    ctx.progress(total, total, "locked")
    return report


def _already_tonight(ctx: NightContext, night: str) -> Counter[str]:
    """Rows locked for this night by an earlier lock (a second `sheetbot lock` must respect the caps)."""
    return Counter(ctx.state.tasks_locked_for(night))
