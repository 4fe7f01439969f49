"""The urgent daytime lane (issue 14, item 3): some rows cannot wait for the night.

A workflow with ``urgent: {priority: P0, within_min: 15, nightly_rows: 20}`` has its rows of that priority
locked and run live while `serve` runs outside the night window, checked every ``within_min / 3`` minutes
(sheetbot/service/scheduler.py), so a row typed at 11:00 has its output well before 11:15.

Not a second pipeline: the lane is the night's lock (sheetbot/night/lock.py, given a ``Lane``: only these rows,
its own cap) and the night's run (``run(only=...)``: the same task runner, budget and write-back). So the money
rules are the night's: an output stored is never paid again (a crash mid-run resumes after the stored steps),
every output is in the state before the board. Why the coming night's label: the day's urgent rows are locked
for the night that follows, so their spend counts against that night's ``limits.nightly_usd`` and the
workflow's ``nightly_usd`` (the caps hold over 24 hours) and its cap ``urgent.nightly_rows`` is per day.

A cap reached (rows, or the night's money) defers the rest to the night: the row's error cell says why, it stays
``deferred`` (the evening lock takes it like any row) and the lane does not look at it again that day. The
state marks the lane's rows (``urgent_rows``), so `report` keeps them apart from the night's.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from sheetbot.boards.base import BoardRow
from sheetbot.config.models import Config
from sheetbot.night.budget import Budget
from sheetbot.night.context import NightContext
from sheetbot.night.lock import lock
from sheetbot.night.run import RunReport, run
from sheetbot.night.stopping import GRACE_S
from sheetbot.state import Task
from sheetbot.status import Status, parse_priority

log = logging.getLogger("sheetbot.night.urgent")


def poll_every(config: Config) -> timedelta | None:
    """How often serve looks for urgent rows: a third of the shortest ``within_min`` (at least a minute), so a
    row is locked and run well within its promise; None when no workflow has an urgent lane."""
    within = [wf.urgent.within_min for wf in config.workflows.values() if wf.urgent is not None]
    return timedelta(minutes=max(1, min(within) // 3)) if within else None


@dataclass
class UrgentReport:
    night: str
    locked: Counter[str] = field(default_factory=Counter)
    #: Rows the lane deferred to the night, with why (its row cap, or the night's money).
    deferred: list[tuple[str, str]] = field(default_factory=list)
    ran: RunReport | None = None

    def describe(self) -> str:
        done = self.ran.done.total() if self.ran else 0
        cost = self.ran.cost_usd if self.ran else 0.0
        text = f"urgent lane (night {self.night}): locked {self.locked.total()}, {done} done, ${cost:.4f}"
        if self.deferred:
            text += f"; {len(self.deferred)} deferred to the night ({self.deferred[0][1]})"
        return text


class UrgentLane:
    """What the night's lock asks of the lane (sheetbot.night.lock.Lane): which rows, its caps, its marker."""

    def __init__(self, ctx: NightContext, night: str, report: UrgentReport) -> None:
        self.ctx = ctx
        self.night = night
        self.report = report
        self.seen = ctx.state.urgent_seen(night)
        self.taken: Counter[str] = Counter(ctx.state.urgent_taken(night))
        self.budget = Budget(ctx.config, ctx.state, night)  # the coming night's: the day's spend is in it

    def wants(self, task: Task, row: BoardRow) -> bool:
        col = self.ctx.col
        wf = self.ctx.config.workflows.get(row.get(col["type"]).strip())
        if wf is None or wf.urgent is None or wf.mode == "batch":
            return False
        if parse_priority(row.get(col["priority"])) != wf.urgent.priority:
            return False
        return (task.task_id, task.attempt) not in self.seen  # looked at once a day; a deferred row waits

    def full(self, workflow: str) -> str | None:
        urgent = self.ctx.config.workflows[workflow].urgent
        assert urgent is not None
        if self.taken[workflow] >= urgent.nightly_rows:
            why = f"today's urgent cap for {workflow} ({urgent.nightly_rows} rows, urgent.nightly_rows) is full"
        elif self.budget.exhausted():
            why = f"tonight's budget of ${self.budget.night_cap:.2f} (limits.nightly_usd) is spent"
        elif self._workflow_spent(workflow):
            why = f"tonight's budget for {workflow} (nightly_usd) is spent"
        else:
            return None
        return f"deferred: {why}; it runs tonight (the urgent lane shares the night's budget)"

    def _workflow_spent(self, workflow: str) -> bool:
        cap = self.ctx.config.workflows[workflow].nightly_usd
        return cap is not None and self.budget.spent_by_workflow[workflow] >= cap

    def took(self, task: Task, workflow: str, *, reason: str = "") -> None:
        self.ctx.state.mark_urgent(
            self.night,
            task.task_id,
            attempt=task.attempt,
            workflow=workflow,
            ran=not reason,
            now=self.ctx.now(),
            reason=reason,
        )
        self.seen.add((task.task_id, task.attempt))
        if reason:
            self.report.deferred.append((task.task_id, reason))
            log.info("urgent row %s deferred to the night: %s", task.task_id, reason)
        else:
            self.taken[workflow] += 1


def run_urgent(ctx: NightContext, *, stop: Callable[[], bool] | None = None, grace_s: float = GRACE_S) -> UrgentReport:
    """Lock the urgent rows that appeared, then run every urgent row still locked or running (a crash's rows
    too: their stored steps are not paid again). Runs until the coming night's cutoff at the latest."""
    window = ctx.night()
    report = UrgentReport(night=window.night)
    report.locked = lock(ctx, UrgentLane(ctx, window.night, report)).locked
    ours = ctx.state.urgent_running(window.night)
    if not ours:
        return report
    until = window.cutoff if ctx.now() < window.cutoff else window.start
    report.ran = run(ctx, until=until, stop=stop, grace_s=grace_s, only=ours)
    with ctx.state.transaction():  # a row the run deferred (the night's money) is the night's now
        for task in ctx.state.tasks(ours).values():
            if task.status == Status.DEFERRED:
                ctx.state.mark_urgent(
                    window.night,
                    task.task_id,
                    attempt=task.attempt,
                    workflow=task.workflow or "",
                    ran=False,
                    now=ctx.now(),
                    reason=task.error,
                )
                report.deferred.append((task.task_id, task.error))
                log.info("urgent row %s deferred to the night: %s", task.task_id, task.error)
    return report
