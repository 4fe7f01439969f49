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
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sheetbot.boards.base import BoardRow, Sheet
from sheetbot.config.models import WorkflowConfig
from sheetbot.errors import SheetbotError, StateUnavailableError
from sheetbot.night.budget import Budget
from sheetbot.night.context import NightContext
from sheetbot.night.gates import gate_note
from sheetbot.night.identify import Identified
from sheetbot.night.keep import Keeper, reserve_size
from sheetbot.night.outcomes import provider_of
from sheetbot.night.preview_group import run_grouped
from sheetbot.night.provider_pool import ProviderPool
from sheetbot.night.repair import owned_columns, refuse_unknown, take_stock, unknown_rows_error
from sheetbot.night.self_check import LiveGrader
from sheetbot.night.stopping import GRACE_S, call_until_stopped
from sheetbot.night.task import Outcome, TaskRunner, with_timeout
from sheetbot.night.writeback import reconcile, write_with_ids
from sheetbot.providers.base import Completion, CompletionRequest, Provider
from sheetbot.providers.preview import PreviewProvider
from sheetbot.state import Task
from sheetbot.state.journal import TaskSettled
from sheetbot.status import Status

TRUNCATED = "the answer was cut off at max_tokens: raise max_tokens for this workflow, or choose rework"
NO_BATCH_MODE = "deferred: this sheetbot was started without batch mode (NightContext.batch_mode)"


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
    #: Deferred rows by (provider, reason): sheetbot.night.outcomes tells a failed provider from a normal night.
    deferred_by: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: Rows the run's write brought up to date, and of those, rows the board showed wrongly (sheetbot.night.repair).
    written: int = 0
    repaired: int = 0


class _Night:
    def __init__(
        self, ctx: NightContext, report: RunReport, deadline: datetime | None, stop: Callable[[], bool] | None = None
    ) -> None:
        self.ctx = ctx
        self.report = report
        self.deadline = deadline
        self.stop = stop
        self.grace_s = GRACE_S  # how long a call in flight may still answer after a stop (run_async sets it)
        self.providers = ProviderPool(ctx)
        self.budget = Budget(ctx.config, ctx.state, report.night)
        self.keep = Keeper(
            ctx.state,
            wait_s=ctx.config.limits.state_wait_s,
            sleep=ctx.sleep,
            now=ctx.now,
            reserve_bytes=reserve_size(ctx.config),
        )
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
            keep=self.keep,
            time_left_s=self.time_left_s,
        )
        #: The self-check (`self_check:`): grades each live output before its row is settled.
        self.grader = LiveGrader(
            config=ctx.config,
            state=ctx.state,
            budget=self.budget,
            provider_for=self._provider_for,
            call=self._call,
            now=ctx.now,
            hold=self.keep.hold,
        )
        self.total = 0
        self.finished = 0
        self.notes = report.notes
        #: Tasks in progress per provider, at most its concurrency: a task reserves budget only once it is
        #: admitted here, so a cap defers only what cannot fit, and admission follows priority (FIFO).
        self.gates: dict[str, asyncio.Semaphore] = {}

    def group_starting(self, chunk: Sequence[Task]) -> None:
        """A group of preview rows starts (inside its transaction): which of them the state holds no call for."""
        self.runner.uncalled = self.ctx.state.never_called(t.task_id for t in chunk) if chunk else set()

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
        if self.keep.broken is not None:  # the state cannot record what a new call would buy
            return True
        return self.deadline is not None and self.ctx.now() >= self.deadline

    def time_left_s(self) -> float | None:
        """Seconds to the deadline (window end or --until): how long an open circuit breaker may be waited out."""
        return None if self.deadline is None else (self.deadline - self.ctx.now()).total_seconds()

    async def _call(self, provider: Provider, request: CompletionRequest) -> Completion:
        if self.stop is None:
            completion = await self._timed_call(provider, request)
        else:
            completion = await call_until_stopped(self._timed_call(provider, request), self.stop, grace_s=self.grace_s)
        # What the provider sent instead of what the server refused (e.g. JSON mode for json_schema).
        self.notes += [note for note in completion.notes if note not in self.notes]
        return completion

    async def _timed_call(self, provider: Provider, request: CompletionRequest) -> Completion:
        if self.deadline is None or isinstance(provider, PreviewProvider):
            return await provider.complete(request)  # a preview answers here and now: no timer, no task a row
        remaining = (self.deadline - self.ctx.now()).total_seconds()
        return await asyncio.wait_for(provider.complete(request), timeout=max(remaining, 0.001))

    def stopping(self) -> bool:
        """A stop (SIGTERM) or a state that cannot be written: rows not finished stay for the next run."""
        return (self.stop is not None and self.stop()) or self.keep.broken is not None

    def settle(self, task: Task, outcome: Outcome) -> None:
        """A batch row's outcome (sheetbot.batch.mode), counted like a live one."""
        if self.stopping() and outcome.status == "deferred":
            self.report.stopped = True  # its batch stays open in the state: a restart polls it
        else:
            self.keep.settle_now(self._settled(task, outcome))
        self.finished += 1
        self.ctx.progress(self.finished, self.total, "run")

    async def work(self, task: Task) -> None:
        try:
            outcome = await self.grader.grade(task, await self._outcome(task))
            if self.stopping() and outcome.status == "deferred":
                self.report.stopped = True  # left running: a restart inside the window picks it up
            else:
                await self.keep.settle(self._settled(task, outcome))
        except StateUnavailableError as exc:  # a read failed too: the row stays running for the next run
            self.keep.fail(exc)
            self.report.stopped = True
        finally:
            self.finished += 1
            self.ctx.progress(self.finished, self.total, "run")

    async def guarded(self, job: Awaitable[None]) -> None:
        """Batch rounds: a state fault stops them; their batches stay in the state and the next run polls them."""
        try:
            await job
        except StateUnavailableError as exc:
            self.keep.fail(exc)
            self.report.stopped = True

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

    def _settled(self, task: Task, outcome: Outcome) -> TaskSettled:
        """Count the outcome in the report; what the state records for it (the row's status and the night's
        record, one commit: State.settle_task)."""
        workflow = task.workflow or ""
        status, result, error, failure = Status.DEFERRED, "deferred", outcome.reason, None
        if outcome.status == "review" and outcome.gate:  # a step's answer waits for a person (night/gates.py)
            status, result, error = (
                Status.REVIEW,
                "gate",
                "; ".join(filter(None, [gate_note(self.ctx.config, workflow, outcome.gate), outcome.note])),
            )
            self.report.done[workflow] += 1
            self.report.cost_usd += outcome.cost_usd
        elif outcome.status == "review":
            said = [TRUNCATED] if outcome.truncated else []
            status, result, error = Status.REVIEW, "done", "; ".join([*said, *filter(None, [outcome.note])])
            self.report.done[workflow] += 1
            self.report.cost_usd += outcome.cost_usd
        elif outcome.status == "failed":
            status, result, failure = Status.FAILED, "failed", "call"
            self.report.failed[workflow] += 1
        else:
            self.report.deferred[workflow] += 1
            self.report.deferred_by[(provider_of(self.ctx.config, workflow), outcome.reason)] += 1
            self.report.drained = False
        if outcome.reason:
            self.report.reasons[outcome.reason] += 1
        return TaskSettled(
            task_id=task.task_id,
            night=task.night or "",
            workflow=workflow,
            attempt=task.attempt,
            status=status,
            result=result,
            error=error,
            failure=failure,
            reason=outcome.reason,
            clear_review=status == Status.REVIEW,
        )


class _Unavailable(SheetbotError):
    """The workflow's provider cannot be used tonight (e.g. its API key is not set)."""


def _changed_after_lock(
    ctx: NightContext, report: RunReport, rows: Mapping[str, BoardRow], locked: Mapping[str, Task]
) -> None:
    """Flag outputs whose row was edited after the lock: the output answers the locked input. ``rows`` are the
    board's rows by task id, a copy made with its id already told apart from its original (night/identify.py).
    ``locked``: the tasks this run read at its start, whose snapshots (fixed at the lock) need no second read."""
    col = ctx.col
    owned = _sheetbot_columns(col) | owned_columns(ctx)
    fresh = ctx.state.task_ids_to_write(Status.REVIEW)
    current = ctx.state.tasks(fresh, light=True)  # one query, not one per row; the error as it is now
    unknown = [task_id for task_id in fresh if task_id not in locked]  # settled by an earlier run
    snapshots = {t.task_id: t.snapshot for t in ctx.state.tasks(unknown).values()} if unknown else {}
    for task in current.values():
        snapshot = locked[task.task_id].snapshot if task.task_id in locked else snapshots.get(task.task_id, {})
        row = rows.get(task.task_id)
        if row is None or not snapshot:
            continue
        watched = [col["type"], col["input"], *[c for c in snapshot if c not in owned]]
        changed = [
            c
            for c in dict.fromkeys(watched)
            if c not in row.problems and row.get(c) != snapshot.get(c, "")  # a cell without a value: unknown
        ]
        if changed:
            note = (
                f"note: {', '.join(changed)} changed after the lock; this output answers the row as it "
                f"was locked for night {task.night}"
            )
            if note in task.error:
                continue  # already said (the row is rewritten because the board lost it)
            error = f"{task.error}; {note}" if task.error else note
            ctx.state.move(task.task_id, Status.REVIEW, now=ctx.now(), error=error)
            report.changed_after_lock.append(task.task_id)


def _read(ctx: NightContext, report: RunReport, *, when: str, skipped: str) -> Sheet | None:
    """The board now, or None when it cannot be read: the night runs anyway, its outputs wait in the state.
    The report says so, naming the check that was ``skipped``: a check skipped in silence reads as passed."""
    try:
        return ctx.board.read()
    except SheetbotError as exc:
        report.notes.append(_unread(ctx, exc, when=when, skipped=skipped))
        return None


def _unread(ctx: NightContext, exc: SheetbotError, *, when: str, skipped: str) -> str:
    return f"{ctx.board.describe()} could not be read {when} ({exc}): {skipped}"


def _sheetbot_columns(col: Mapping[str, str]) -> set[str]:
    names = ("id", "status", "night", "output", "review", "notes", "edited_output", "error", "cost", "priority")
    return {col[c] for c in names} | {col["model"]}  # which model made the output (issue 14)


async def run_async(
    ctx: NightContext,
    *,
    until: datetime | None = None,
    stop: Callable[[], bool] | None = None,
    grace_s: float = GRACE_S,
    only: Collection[str] | None = None,
) -> RunReport:
    """``stop`` (e.g. SIGTERM seen) ends the run early: nothing new starts, and calls in flight get ``grace_s``.
    ``only``: run just these locked tasks (the urgent daytime lane, sheetbot/night/urgent.py), with the same
    money rules, and leave the night's own record (run started, finished, drained) to the night."""
    window = ctx.night()
    now = ctx.now()
    deadline = until or (window.end if window.contains(now) else None)
    report = RunReport(night=window.night, deadline=deadline)
    state = ctx.state
    sheet = _read(ctx, report, when="before the run", skipped="rows the state does not know were not looked for")
    if sheet is not None:
        refuse_unknown(ctx, sheet)  # no call while the board holds rows this state file does not know
    tasks = state.tasks_with_status(Status.LOCKED, Status.RUNNING)
    if only is not None:
        tasks = [t for t in tasks if t.task_id in only]
    if tasks:
        with state.transaction():
            state.start_running([t.task_id for t in tasks if t.status == Status.LOCKED], now=now)
            if only is None:
                state.night_event(window.night, run_started_at=now.isoformat())
        # `running` is kept in the state only: marking it on the board would cost a read and a write per
        # night (1,000 requests for 10,000 Airtable rows) for a status nobody reads at 3am. The board shows
        # `locked` until the row's output arrives, or until the run's last write mirrors the state (a row
        # still in flight when the run stops then shows `running`).
        night = _Night(ctx, report, deadline, stop)
        night.total, night.grace_s = len(tasks), grace_s
        if ctx.batch_mode is not None and any(_mode(ctx, t) == "preview" for t in tasks):
            report.notes += ctx.batch_mode.preview_notes(ctx.config, tasks, ctx.col)  # live vs batch vs caching
        try:
            # Tasks start in priority order (P0 first, then oldest): when a cap or the window ends, the
            # lowest priorities are the ones that wait.
            # A row whose request sits in an open batch is never sent again: the batch rounds poll it.
            # So is a row in a send whose batch is not known yet (a create whose answer was lost): the
            # rounds look that batch up first, even if the workflow was switched to live since.
            in_batch = {c.rsplit(":", 2)[0] for b in state.open_batches() for c in b["custom_ids"]}
            in_batch |= {c.rsplit(":", 2)[0] for s in state.open_sends() for c in s["requests"]}
            batch = [t for t in tasks if _mode(ctx, t) == "batch" or t.task_id in in_batch]
            batched = {t.task_id for t in batch}  # by id: `t in batch` compared whole tasks, rows × rows times
            free = [t for t in tasks if t.task_id not in batched and _mode(ctx, t) == "preview"]  # a commit a group
            jobs = [night.work(t) for t in tasks if t.task_id not in batched and _mode(ctx, t) != "preview"]
            batch_mode = ctx.batch_mode  # sheetbot.batch, handed over by the composition root
            if batch and batch_mode is not None:
                jobs.append(night.guarded(batch_mode.run(night, batch)))
            elif batch:  # a context built without batch mode: nothing is sent, the rows wait
                for task in batch:
                    night.settle(task, Outcome("deferred", NO_BATCH_MODE))
            with night.keep.night():
                await run_grouped(night.keep, free, night.work, starting=night.group_starting)
                await asyncio.gather(*jobs)
        finally:
            await night.providers.aclose()
        night.keep.recover()  # a state write failed: store what the journal kept if it can be now, or stop here
        with state.transaction():
            if not report.stopped and only is None:
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
                    **({"lane": "urgent"} if only is not None else {}),
                },
            )
    locked = {t.task_id: t for t in tasks}
    planned = False

    def plan(seen: Sheet) -> Identified:
        nonlocal planned
        planned = True
        ident = take_stock(ctx, seen, refuse=False)[0]
        _changed_after_lock(ctx, report, ident.rows, locked)
        return ident

    # New rows' tasks are kept only if their ids reach the board: each branch is one transaction with its write.
    if tasks:  # read again: rows edited, copied or saved over during the night; that read places the write
        try:
            ident, wrote = reconcile(ctx, plan)
        except SheetbotError as exc:
            if planned or isinstance(exc, StateUnavailableError):
                raise
            skipped = "rows edited after the lock were not checked (their outputs may answer an older input)"
            report.notes.append(_unread(ctx, exc, when="after the run", skipped=skipped))
            with state.transaction():
                ident, wrote = Identified(), write_with_ids(ctx, [], [])
    else:  # nothing ran: the board as read before the run
        with state.transaction():
            ident = plan(sheet) if sheet is not None else Identified()
            wrote = write_with_ids(ctx, ident.claims, ident.new)
    report.written, report.repaired, report.missing = wrote.written, ident.repaired, wrote.missing
    unknown = {**ident.unknown, **ident.behind}
    if tasks:
        night.keep.check()  # the night stopped starting rows because of the state: exit non-zero, say why
    if unknown and not ctx.adopt_unknown:
        raise unknown_rows_error(ctx, unknown)  # the outputs are written; the rows the state lacks wait
    return report


def _mode(ctx: NightContext, task: Task) -> str:
    wf = ctx.config.workflows.get(task.workflow or "")
    return wf.mode if wf is not None else "live"


def run(
    ctx: NightContext,
    *,
    until: datetime | None = None,
    stop: Callable[[], bool] | None = None,
    grace_s: float = GRACE_S,
    only: Collection[str] | None = None,
) -> RunReport:
    return asyncio.run(run_async(ctx, until=until, stop=stop, grace_s=grace_s, only=only))
