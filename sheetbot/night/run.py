"""The night window: run every locked task, store each output, write them back.

Money rules, in order: a task whose output is already stored is never called
again (a second `sheetbot run`, or a run after a crash, pays only for what is
missing); every output is committed to the state before the board is touched;
the window end is a hard stop, after which nothing new starts and what did not
finish goes back to the queue as `deferred`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sheetbot.config import WorkflowConfig
from sheetbot.errors import SheetbotError
from sheetbot.night.budget import Budget
from sheetbot.night.context import NightContext
from sheetbot.night.stopping import call_until_stopped
from sheetbot.night.task import Outcome, TaskRunner, with_timeout
from sheetbot.night.writeback import write_back
from sheetbot.providers.base import Completion, CompletionRequest, Provider
from sheetbot.providers.preview import PreviewProvider
from sheetbot.state import Task
from sheetbot.status import Status

TRUNCATED = "the answer was cut off at max_tokens: raise max_tokens for this workflow, or choose rework"


@dataclass
class RunReport:
    night: str
    done: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    deferred: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    cost_usd: float = 0.0
    changed_after_lock: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    drained: bool = True
    deadline: datetime | None = None
    #: Things the night did differently from the YAML, e.g. batch rows that ran live (no Batch API).
    notes: list[str] = field(default_factory=list)
    #: A stop (SIGTERM) ended the run early: unstarted rows stay locked for a restart in the window.
    stopped: bool = False


class _Providers:
    """The night's providers, made on first use; a provider that cannot be made (no key) is remembered."""

    def __init__(self, ctx: NightContext) -> None:
        self.ctx = ctx
        self.made: dict[str, Provider] = {}
        self.broken: dict[str, SheetbotError] = {}
        self.events: list[tuple[str, str]] = []

    def __call__(self, wf: WorkflowConfig) -> tuple[str, Provider]:
        if wf.mode == "preview":
            key = f"preview:{wf.model}"
            if key not in self.made:
                price = self.ctx.config.prices[wf.model]
                self.made[key] = PreviewProvider(price_per_mtok_input=price.input, price_per_mtok_output=price.output)
            return key, self.made[key]
        # `batch` rows come here only when they run live (a server without a Batch API): sheetbot.batch.
        if wf.provider in self.broken:
            raise self.broken[wf.provider]
        if wf.provider not in self.made:
            try:
                self.made[wf.provider] = self.ctx.providers(wf.provider, self._event_hook(wf.provider))
            except SheetbotError as exc:
                self.broken[wf.provider] = exc
                raise
        return wf.provider, self.made[wf.provider]

    def _event_hook(self, provider: str):  # type: ignore[no-untyped-def]
        def record(event: str, detail: dict[str, object]) -> None:
            # Retries are routine; the breaker is what the morning's alerts are made of.
            if event.startswith("circuit"):
                self.ctx.state.audit(event, now=self.ctx.now(), detail={"provider": provider, **detail})
                self.events.append((event, provider))

        return record

    async def aclose(self) -> None:
        for provider in self.made.values():
            await provider.aclose()


class _Night:
    def __init__(
        self, ctx: NightContext, report: RunReport, deadline: datetime | None, stop: Callable[[], bool] | None = None
    ) -> None:
        self.ctx = ctx
        self.report = report
        self.deadline = deadline
        self.stop = stop
        self.providers = _Providers(ctx)
        self.budget = Budget(ctx.config, ctx.state, report.night)
        self.runner = TaskRunner(
            config=ctx.config,
            state=ctx.state,
            budget=self.budget,
            aliases=ctx.col,
            provider_for=self._provider_for,
            call=self._call,
            now=ctx.now,
            sleep=ctx.sleep if stop is None else self._sleep_unless_stopped,
            out_of_time=self.out_of_time,
            time_left_s=self.time_left_s,
        )
        self.total = 0
        self.finished = 0
        self.notes = report.notes
        #: Tasks in progress per provider, at most its concurrency: a task reserves budget only once it is
        #: admitted here, so a cap defers only what cannot fit, and admission follows priority (FIFO).
        self.gates: dict[str, asyncio.Semaphore] = {}

    def gate(self, wf: WorkflowConfig) -> asyncio.Semaphore:
        key = "preview" if wf.mode == "preview" else wf.provider
        if key not in self.gates:
            limit = 64 if wf.mode == "preview" else self.ctx.config.providers[wf.provider].concurrency
            self.gates[key] = asyncio.Semaphore(limit)
        return self.gates[key]

    def _provider_for(self, wf: WorkflowConfig) -> tuple[str, Provider]:
        try:
            return self.providers(wf)
        except SheetbotError as exc:
            raise _Unavailable(str(exc)) from None

    async def _sleep_unless_stopped(self, seconds: float) -> None:
        """A retry's back-off that a stop cuts short (the row then stays locked for the next run)."""
        assert self.stop is not None
        with contextlib.suppress(TimeoutError):
            await call_until_stopped(self.ctx.sleep(seconds), self.stop, grace_s=0)

    def out_of_time(self) -> bool:
        if self.stop is not None and self.stop():
            return True
        return self.deadline is not None and self.ctx.now() >= self.deadline

    def time_left_s(self) -> float | None:
        """Seconds to the deadline (window end or --until): how long an open circuit breaker may be waited out."""
        return None if self.deadline is None else (self.deadline - self.ctx.now()).total_seconds()

    async def _call(self, provider: Provider, request: CompletionRequest) -> Completion:
        if self.stop is None:
            completion = await self._timed_call(provider, request)
        else:
            completion = await call_until_stopped(self._timed_call(provider, request), self.stop)
        # What the provider sent instead of what the server refused (e.g. JSON mode for json_schema).
        self.notes += [note for note in completion.notes if note not in self.notes]
        return completion

    async def _timed_call(self, provider: Provider, request: CompletionRequest) -> Completion:
        if self.deadline is None:
            return await provider.complete(request)
        remaining = (self.deadline - self.ctx.now()).total_seconds()
        return await asyncio.wait_for(provider.complete(request), timeout=max(remaining, 0.001))

    def settle(self, task: Task, outcome: Outcome) -> None:
        """A batch row's outcome (sheetbot.batch.night), counted like a live one."""
        if self.stop is not None and self.stop() and outcome.status == "deferred":
            self.report.stopped = True  # its batch stays open in the state: a restart polls it
        else:
            self._apply(task, outcome)
        self.finished += 1
        self.ctx.progress(self.finished, self.total, "run")

    async def work(self, task: Task) -> None:
        try:
            outcome = await self._outcome(task)
            if self.stop is not None and self.stop() and outcome.status == "deferred":
                self.report.stopped = True  # left running: a restart inside the window picks it up
            else:
                self._apply(task, outcome)
        finally:
            self.finished += 1
            self.ctx.progress(self.finished, self.total, "run")

    async def _outcome(self, task: Task) -> Outcome:
        wf = self.ctx.config.workflows.get(task.workflow or "")
        if wf is None:
            return Outcome(
                "failed",
                f"workflow {task.workflow!r} is no longer in the YAML; it was removed after this row was locked",
            )
        async with self.gate(wf):
            if self.out_of_time():
                return Outcome("deferred", "deferred: the night window ended before this row started")
            try:
                return await with_timeout(self.runner.run(task), wf.task_timeout_s)
            except _Unavailable as exc:
                return Outcome("deferred", f"deferred: {exc}")

    def _apply(self, task: Task, outcome: Outcome) -> None:
        with self.ctx.state.transaction():  # the row's status and the night's record: one commit
            self._record_outcome(task, outcome)

    def _record_outcome(self, task: Task, outcome: Outcome) -> None:
        state, now, workflow = self.ctx.state, self.ctx.now(), task.workflow or ""
        if outcome.status == "review":
            state.move(
                task.task_id, Status.REVIEW, now=now, error=TRUNCATED if outcome.truncated else "", clear_review=1
            )
            self.report.done[workflow] += 1
            self.report.cost_usd += outcome.cost_usd
            result = "done"
        elif outcome.status == "failed":
            state.move(task.task_id, Status.FAILED, now=now, error=outcome.reason, failure="call")
            self.report.failed[workflow] += 1
            result = "failed"
        else:
            state.move(task.task_id, Status.DEFERRED, now=now, error=outcome.reason)
            self.report.deferred[workflow] += 1
            self.report.drained = False
            result = "deferred"
        if outcome.reason:
            self.report.reasons[outcome.reason] += 1
        state.night_task(
            task.night or "",
            task.task_id,
            workflow=workflow,
            attempt=task.attempt,
            outcome=result,
            reason=outcome.reason,
        )


class _Unavailable(SheetbotError):
    """The workflow's provider cannot be used tonight (e.g. its API key is not set)."""


def _changed_after_lock(ctx: NightContext, report: RunReport) -> None:
    """Flag outputs whose row was edited after the lock: the output answers the locked input."""
    try:
        sheet = ctx.board.read()
    except SheetbotError:
        return
    col = ctx.col
    rows = {r.get(col["id"]).strip(): r for r in sheet.rows}
    owned = _sheetbot_columns(col)
    fresh = ctx.state.query("SELECT task_id FROM tasks WHERE dirty = 1 AND status = ?", (str(Status.REVIEW),))
    for task in ctx.state.tasks(r["task_id"] for r in fresh).values():  # one query, not one per row
        row = rows.get(task.task_id)
        if row is None or not task.snapshot:
            continue
        watched = [col["type"], col["input"], *[c for c in task.snapshot if c not in owned]]
        changed = [c for c in dict.fromkeys(watched) if row.get(c) != task.snapshot.get(c, "")]
        if changed:
            note = (
                f"note: {', '.join(changed)} changed after the lock; this output answers the row as it "
                f"was locked for night {task.night}"
            )
            error = f"{task.error}; {note}" if task.error else note
            ctx.state.move(task.task_id, Status.REVIEW, now=ctx.now(), error=error)
            report.changed_after_lock.append(task.task_id)


def _sheetbot_columns(col: Mapping[str, str]) -> set[str]:
    names = ("id", "status", "night", "output", "review", "notes", "edited_output", "error", "cost", "priority")
    return {col[c] for c in names}


async def run_async(
    ctx: NightContext, *, until: datetime | None = None, stop: Callable[[], bool] | None = None
) -> RunReport:
    """``stop`` (e.g. SIGTERM seen) ends the run early: nothing new starts, and calls in flight get a grace."""
    window = ctx.night()
    now = ctx.now()
    deadline = until or (window.end if window.contains(now) else None)
    report = RunReport(night=window.night, deadline=deadline)
    state = ctx.state
    tasks = state.tasks_with_status(Status.LOCKED, Status.RUNNING)
    if tasks:
        with state.transaction():
            for task in tasks:
                if task.status == Status.LOCKED:
                    state.move(task.task_id, Status.RUNNING, now=now)
            state.night_event(window.night, run_started_at=now.isoformat())
        # `running` is kept in the state only: marking it on the board would cost a read and a write per
        # night (1,000 requests for 10,000 Airtable rows) for a status nobody reads at 3am. The board shows
        # `locked` until the row's output arrives.
        night = _Night(ctx, report, deadline, stop)
        night.total = len(tasks)
        if any(_mode(ctx, t) == "preview" for t in tasks):
            from sheetbot.batch.estimate import preview_notes

            report.notes += preview_notes(ctx.config, tasks, ctx.col)  # live vs batch vs caching, before spending
        try:
            # Tasks start in priority order (P0 first, then oldest): when a cap or the window ends, the
            # lowest priorities are the ones that wait.
            # A row whose request sits in an open batch is never sent again: the batch rounds poll it.
            in_batch = {c.rsplit(":", 2)[0] for b in state.open_batches() for c in b["custom_ids"]}
            batch = [t for t in tasks if _mode(ctx, t) == "batch" or t.task_id in in_batch]
            jobs = [night.work(t) for t in tasks if t not in batch]
            if batch:
                from sheetbot.batch.night import run_batch_tasks

                jobs.append(run_batch_tasks(night, batch))
            await asyncio.gather(*jobs)
        finally:
            await night.providers.aclose()
        with state.transaction():
            _changed_after_lock(ctx, report)
            if not report.stopped:
                state.night_event(window.night, run_finished_at=ctx.now().isoformat(), drained=int(report.drained))
            state.audit(
                "run",
                now=ctx.now(),
                detail={
                    "night": window.night,
                    "done": dict(report.done),
                    "failed": dict(report.failed),
                    "deferred": dict(report.deferred),
                    "cost_usd": round(report.cost_usd, 6),
                    "stopped": report.stopped,
                },
            )
    report.missing = write_back(ctx).missing
    return report


def _mode(ctx: NightContext, task: Task) -> str:
    wf = ctx.config.workflows.get(task.workflow or "")
    return wf.mode if wf is not None else "live"


def run(ctx: NightContext, *, until: datetime | None = None, stop: Callable[[], bool] | None = None) -> RunReport:
    return asyncio.run(run_async(ctx, until=until, stop=stop))
