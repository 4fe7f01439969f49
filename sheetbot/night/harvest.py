"""The morning: read the reviewers' decisions and move each row on.

approve → approved (final); edit → edited, the reviewer's text kept (final);
rework → back in the queue with the next attempt number, the previous output and
the reviewer's notes, which go into tomorrow's prompt. A row a person set back to
`queued` after it failed is queued again.

What the morning adds (approval-gated actions, the Dashboard) comes through ``ctx.morning``
(sheetbot.night.context.MorningSteps), filled by the composition root: the night does not import it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sheetbot.boards.base import Sheet
from sheetbot.boards.capabilities import Flushes, ProtectsInputs, StagesDashboard
from sheetbot.night.context import MorningSteps, NightContext
from sheetbot.night.gates import pass_gate
from sheetbot.night.identify import Identified
from sheetbot.night.lock import lacking, read_board
from sheetbot.night.morning_reports import ActionsReport, DashboardReport
from sheetbot.night.repair import take_stock
from sheetbot.night.writeback import reconcile, write_with_ids
from sheetbot.safety.csvsafe import looks_like_formula
from sheetbot.state import Task
from sheetbot.status import Decision, Status, parse_decision, parse_status

_CHOICES = ", ".join(str(d) for d in Decision)
#: A reviewer's name is a label, not a text: longer than this is cut (the cell may hold anything at all).
REVIEWER_CHARS = 80


def reviewer_name(cell: str) -> str | None:
    """Who decided, from the board's `reviewer` cell: one line of plain text, at most REVIEWER_CHARS, None if
    blank. It goes into the state, the audit log and the report, and from there into CSVs and messages, so a
    cell that would start a formula keeps its text behind a quote (as every CSV cell does) and never runs."""
    name = " ".join("".join(c if c.isprintable() else " " for c in cell).split())
    if not name:
        return None
    if looks_like_formula(name):
        name = "'" + name
    return name if len(name) <= REVIEWER_CHARS else name[: REVIEWER_CHARS - 1] + "…"


@dataclass
class HarvestReport:
    decisions: Counter[str] = field(default_factory=Counter)
    requeued: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)
    waiting: int = 0
    missing: list[str] = field(default_factory=list)
    #: Decisions on review gates between steps ("<step>:<decision>"), apart from `decisions` (night/gates.py).
    gates: Counter[str] = field(default_factory=Counter)
    #: Approval-gated actions (morning/on_approve.py) and the Dashboard refresh (morning/dashboard.py).
    actions: ActionsReport | None = None
    dashboard: DashboardReport | None = None


class _DecisionsOnly:
    """The morning's steps of a context built without them: no action, no dashboard."""

    def queue_action(self, ctx: NightContext, task: Task) -> bool:
        return False

    def refresh_dashboard(self, ctx: NightContext, *, stage: bool) -> DashboardReport:
        return DashboardReport(skipped=True)

    def staged_outcome(self, ctx: NightContext, report: DashboardReport) -> DashboardReport:
        return report

    def deliver_actions(self, ctx: NightContext) -> ActionsReport:
        return ActionsReport()


class _ColumnsMissing(Exception):
    """The board lacks some of sheetbot's columns: the harvest adds them before it reads the decisions."""


def harvest(ctx: NightContext) -> HarvestReport:
    morning: MorningSteps = ctx.morning or _DecisionsOnly()
    now = ctx.now()
    ctx.progress(0, 0, "reading the board")  # reading and writing a big workbook take seconds each
    col = ctx.col
    state = ctx.state
    report = HarvestReport()
    staging = isinstance(ctx.board, StagesDashboard)
    total = 0

    def plan(sheet: Sheet) -> Identified:
        """The decisions on the board as read; the rows' ids and cells to write come back (writeback.reconcile)."""
        nonlocal total
        if lacking(ctx, sheet):
            raise _ColumnsMissing  # before anything changes: init's columns first, then this all again
        ident, tasks = take_stock(ctx, sheet)  # ids, unknown rows, and cells the board shows wrongly
        total = len(ident.rows)
        for checked, (task_id, row) in enumerate(ident.rows.items()):
            ctx.progress(checked, total, "reading the decisions")
            task = tasks[task_id]
            if (
                task.status == Status.FAILED
                and task.failure == "call"
                and parse_status(row.get(col["status"])) == Status.QUEUED
            ):
                state.move(task_id, Status.QUEUED, now=now, error="")
                report.requeued += 1
                continue
            if task.status != Status.REVIEW:
                continue
            typed = row.get(col["review"])
            choice = parse_decision(typed)
            if not typed.strip():
                report.waiting += 1
                continue
            notes = row.get(col["notes"]).strip()
            reviewer = reviewer_name(row.get(col["reviewer"]))  # "" on a board without the column: None
            problem = None
            gate = state.latest_gate(task_id)
            if gate is not None and gate.decision is None and choice is not None:  # a gate between steps
                problem = pass_gate(ctx, task, gate, choice, row, notes=notes, reviewer=reviewer)
            elif choice == Decision.APPROVE:
                state.move(task_id, Status.APPROVED, now=now, error="")
            elif choice == Decision.EDIT:
                edited = row.get(col["edited_output"])
                if not edited.strip():
                    problem = (
                        f"you chose edit, but `{col['edited_output']}` is empty: paste your version there, "
                        "or choose approve"
                    )
                else:
                    state.move(task_id, Status.EDITED, now=now, error="")
                    state.record_review(
                        task, Decision.EDIT, notes=notes, edited_output=edited, now=now, reviewer=reviewer
                    )
            elif choice == Decision.REWORK and not notes:
                # Without notes the model would be asked to redo the work blind, and pay for it: ask first.
                problem = (
                    f"you chose rework, but `{col['notes']}` is empty: say what to change there, "
                    "or choose approve or edit"
                )
            elif choice == Decision.REWORK:
                output = state.final_output(task_id, task.attempt)  # the last step's answer, whatever its name
                state.move(
                    task_id,
                    Status.REWORK,
                    now=now,
                    error="",
                    attempt=task.attempt + 1,
                    previous_output=output.output if output else None,
                    rework_notes=notes,
                )
            else:
                problem = f"review {typed.strip()!r} is not one of {_CHOICES}: pick one from the dropdown"
            if problem:
                if task.error != problem:
                    state.move(task_id, Status.REVIEW, now=now, error=problem)
                report.problems.append((task_id, problem))
                continue
            assert choice is not None  # an unknown choice is a problem, above
            if gate is not None and gate.decision is None:  # counted per gate, apart from final outputs
                report.gates[f"{gate.step}:{choice}"] += 1
                state.audit("gate", now=now, task_id=task_id, detail={"step": gate.step, "decision": choice})
                continue
            if choice != Decision.EDIT:
                state.record_review(task, choice, notes=notes, edited_output=None, now=now, reviewer=reviewer)
            report.decisions[choice] += 1
            if choice != Decision.REWORK:
                morning.queue_action(ctx, task)
            detail: dict[str, object] = {"decision": choice, "attempt": task.attempt}
            if reviewer is not None:
                detail["reviewer"] = reviewer
            state.audit("decision", now=now, task_id=task_id, detail=detail)
        # The decisions are in the state. The dashboard rides on the harvest's own write where it can (the
        # workbook: one save); elsewhere it is drawn after the write, so the write is placed by its own read.
        ctx.progress(total, total, "writing the board")
        if staging:
            report.dashboard = morning.refresh_dashboard(ctx, stage=True)
        return ident

    try:
        report.missing = reconcile(ctx, plan)[1].missing  # the decisions and the write: one transaction
    except _ColumnsMissing:
        sheet, _ = read_board(ctx)  # adds the columns, and reads again
        with state.transaction():
            ident = plan(sheet)
            report.missing = write_with_ids(ctx, ident.claims, ident.new).missing
    with state.transaction():
        if not staging:  # drawn now, the decisions written
            report.dashboard = morning.refresh_dashboard(ctx, stage=True)
        if isinstance(ctx.board, Flushes):  # the workbook: save a staged dashboard if nothing was written
            ctx.board.flush()
        assert report.dashboard is not None  # staged by plan, or drawn above
        report.dashboard = morning.staged_outcome(ctx, report.dashboard)
    if (
        ctx.config.board.protect_locked
        and isinstance(ctx.board, ProtectsInputs)  # Google Sheets
        and not state.tasks_with_status(Status.LOCKED, Status.RUNNING)
    ):
        ctx.board.unprotect_inputs()  # nothing is locked or running any more: lift the lock's warnings
    ctx.progress(total, total, "delivering approved actions")
    report.actions = morning.deliver_actions(ctx)
    ctx.progress(total, total, "harvested")
    return report
