"""A night whose window ended with rows still locked or running (sheetbot was down, or the run crashed).

Nothing may run outside the window, so those rows go back to the queue as `deferred`, the night
is recorded as finished but not drained, and the caller sends the alert. Outputs already stored
for them are not lost: a deferred row that ran is not called again for the same attempt.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sheetbot.night.context import NightContext
from sheetbot.night.writeback import write_back
from sheetbot.status import Status


@dataclass
class ExpireReport:
    #: night → rows deferred
    deferred: Counter[str] = field(default_factory=Counter)
    #: nights whose run never started
    not_started: list[str] = field(default_factory=list)


def left_over(ctx: NightContext, before_night: str) -> list[str]:
    """Nights before ``before_night`` that still hold locked or running rows."""
    tasks = ctx.state.tasks_with_status(Status.LOCKED, Status.RUNNING)
    return sorted({t.night for t in tasks if t.night and t.night < before_night})


def expire(ctx: NightContext, before_night: str) -> ExpireReport:
    now, state, report = ctx.now(), ctx.state, ExpireReport()
    nights = {n["night"]: n for n in state.nights(limit=60)}
    with state.transaction():
        for task in state.tasks_with_status(Status.LOCKED, Status.RUNNING):
            if not task.night or task.night >= before_night:
                continue
            reason = "deferred: the night window ended before this row ran (sheetbot was not running); it runs later"
            state.move(task.task_id, Status.DEFERRED, now=now, error=reason)
            state.night_task(
                task.night,
                task.task_id,
                workflow=task.workflow or "",
                attempt=task.attempt,
                outcome="deferred",
                reason=reason,
            )
            report.deferred[task.night] += 1
        for night in report.deferred:
            record = nights.get(night)
            if record is None or not record["run_started_at"]:
                report.not_started.append(night)
            state.night_event(night, run_finished_at=now.isoformat(), drained=0, note="did not finish")
            state.audit("expire", now=now, detail={"night": night, "deferred": report.deferred[night]})
    write_back(ctx)
    return report
