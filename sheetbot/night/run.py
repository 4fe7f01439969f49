"""The night window: call the model for every locked task, store each output, write them back.

Money rules, in order: a task whose output is already stored is never called
again (a second `sheetbot run`, or a run after a crash, pays only for what is
missing); every output is committed to the state before the board is touched;
the window end is a hard stop, after which nothing new starts and what did not
finish goes back to the queue as `deferred`.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sheetbot.config import WorkflowConfig
from sheetbot.errors import PermanentProviderError, ProviderError, SheetbotError
from sheetbot.night.context import NightContext
from sheetbot.night.prompts import render_prompts
from sheetbot.night.writeback import write_back
from sheetbot.pricing import cost_usd
from sheetbot.providers.base import Completion, CompletionRequest, Provider
from sheetbot.providers.preview import PreviewProvider
from sheetbot.state import Attempt, Task
from sheetbot.status import Status

FINAL_STEP = "final"
#: Calls a task may fail with a retryable error in one night before it is dead-lettered.
MAX_FAILED_CALLS_PER_NIGHT = 3


@dataclass
class RunReport:
    night: str
    done: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    deferred: Counter[str] = field(default_factory=Counter)
    reused: int = 0
    cost_usd: float = 0.0
    changed_after_lock: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    drained: bool = True
    deadline: datetime | None = None


class _Night:
    def __init__(self, ctx: NightContext, report: RunReport, deadline: datetime | None) -> None:
        self.ctx = ctx
        self.report = report
        self.deadline = deadline
        self.providers: dict[str, Provider] = {}
        self.gates: dict[str, asyncio.Semaphore] = {}
        self.unavailable: dict[str, SheetbotError] = {}
        self.total = 0
        self.finished = 0

    def provider_for(self, wf: WorkflowConfig) -> tuple[str, Provider]:
        """The provider and its concurrency gate; `batch` runs live until the Batch APIs land."""
        if wf.mode == "preview":
            key = f"preview:{wf.model}"
            if key not in self.providers:
                price = self.ctx.config.prices[wf.model]
                self.providers[key] = PreviewProvider(
                    price_per_mtok_input=price.input, price_per_mtok_output=price.output
                )
                self.gates[key] = asyncio.Semaphore(64)
            return key, self.providers[key]
        if wf.provider in self.unavailable:
            raise self.unavailable[wf.provider]
        if wf.provider not in self.providers:
            try:
                self.providers[wf.provider] = self.ctx.providers(wf.provider)
            except SheetbotError as exc:  # e.g. no API key: nothing was called, so the rows wait, unharmed
                self.unavailable[wf.provider] = exc
                raise
            self.gates[wf.provider] = asyncio.Semaphore(self.ctx.config.providers[wf.provider].concurrency)
        return wf.provider, self.providers[wf.provider]

    def out_of_time(self) -> bool:
        return self.deadline is not None and self.ctx.now() >= self.deadline

    def tick(self) -> None:
        self.finished += 1
        self.ctx.progress(self.finished, self.total, "run")

    async def work(self, task: Task) -> None:
        try:
            await self._work(task)
        finally:
            self.tick()

    async def _work(self, task: Task) -> None:
        ctx, state = self.ctx, self.ctx.state
        workflow = task.workflow or ""
        stored = state.stored_output(task.task_id, task.attempt, FINAL_STEP)
        if stored is not None:
            self.report.reused += 1
            self._finish(task, stored)
            return
        wf = ctx.config.workflows.get(workflow)
        if wf is None:
            self._fail(task, f"workflow {workflow!r} is no longer in the YAML; it was locked before it was removed")
            return
        spent = state.spent_usd(night=task.night)
        budget = ctx.config.limits.nightly_usd
        if spent >= budget:
            self._defer(task, f"deferred: tonight's budget of ${budget:.2f} is spent")
            return
        if self.out_of_time():
            self._defer(task, "deferred: the night window ended before this row started")
            return
        try:
            key, provider = self.provider_for(wf)
        except SheetbotError as exc:
            self._defer(task, f"deferred: {exc}")
            return
        system, prompt = render_prompts(
            wf,
            task.snapshot,
            ctx.col,
            attempt=task.attempt,
            previous_output=task.previous_output,
            notes=task.rework_notes,
        )
        request = CompletionRequest(
            custom_id=f"{task.task_id}:{task.attempt}:{FINAL_STEP}",
            model=wf.model,
            system=system,
            prompt=prompt,
            max_tokens=wf.max_tokens,
            temperature=wf.temperature,
            timeout_s=wf.timeout_s or ctx.config.providers[wf.provider].timeout_s,
        )
        attempt_base = dict(
            task_id=task.task_id,
            night=task.night or "",
            attempt=task.attempt,
            step=FINAL_STEP,
            workflow=workflow,
            provider=key,
            model=wf.model,
            mode=wf.mode,
            system=system,
            prompt=prompt,
        )
        async with self.gates[key]:
            if self.out_of_time():
                self._defer(task, "deferred: the night window ended before this row started")
                return
            try:
                completion = await self._call(provider, request)
            except ProviderError as exc:
                state.record_attempt(Attempt(**attempt_base, ok=False, error=str(exc)), now=ctx.now())
                self._call_failed(task, exc)
                return
            except TimeoutError:
                self._defer(task, "deferred: the night window ended while this row was running")
                return
        price = ctx.config.prices[wf.model]
        attempt = Attempt(
            **attempt_base,
            ok=True,
            output=completion.text,
            truncated=completion.truncated,
            input_tokens=completion.usage.input_tokens,
            output_tokens=completion.usage.output_tokens,
            cache_write_tokens=completion.usage.cache_write_tokens,
            cache_read_tokens=completion.usage.cache_read_tokens,
            cost_usd=0.0 if completion.preview else cost_usd(price, completion.usage),
            estimated_usd=completion.estimated_usd,
            latency_s=completion.latency_s,
        )
        state.record_attempt(attempt, now=ctx.now())  # stored before anything reaches the board
        self.report.cost_usd += attempt.cost_usd
        self._finish(task, attempt)

    async def _call(self, provider: Provider, request: CompletionRequest) -> Completion:
        if self.deadline is None:
            return await provider.complete(request)
        remaining = (self.deadline - self.ctx.now()).total_seconds()
        return await asyncio.wait_for(provider.complete(request), timeout=max(remaining, 0.001))

    # -- outcomes ------------------------------------------------------------------
    def _finish(self, task: Task, attempt: Attempt) -> None:
        error = ""
        if attempt.truncated:
            error = "the answer was cut off at max_tokens: raise max_tokens for this workflow, or choose rework"
        self.ctx.state.move(task.task_id, Status.REVIEW, now=self.ctx.now(), error=error, clear_review=1)
        self.ctx.state.night_task(
            task.night or "", task.task_id, workflow=task.workflow or "", attempt=task.attempt, outcome="done"
        )
        self.report.done[task.workflow or ""] += 1

    def _fail(self, task: Task, reason: str) -> None:
        self.ctx.state.move(task.task_id, Status.FAILED, now=self.ctx.now(), error=reason, failure="call")
        self.ctx.state.night_task(
            task.night or "",
            task.task_id,
            workflow=task.workflow or "",
            attempt=task.attempt,
            outcome="failed",
            reason=reason,
        )
        self.report.failed[task.workflow or ""] += 1

    def _defer(self, task: Task, reason: str) -> None:
        self.ctx.state.move(task.task_id, Status.DEFERRED, now=self.ctx.now(), error=reason)
        self.ctx.state.night_task(
            task.night or "",
            task.task_id,
            workflow=task.workflow or "",
            attempt=task.attempt,
            outcome="deferred",
            reason=reason,
        )
        self.report.deferred[task.workflow or ""] += 1
        self.report.drained = False

    def _call_failed(self, task: Task, exc: ProviderError) -> None:
        if isinstance(exc, PermanentProviderError):
            self._fail(task, f"{exc}. Fix it, then set status to queued to run it again")
            return
        failures = self.ctx.state.failed_calls(task.task_id, task.night or "")
        if failures >= MAX_FAILED_CALLS_PER_NIGHT:
            self._fail(
                task,
                f"gave up after {failures} failed calls tonight: {exc}. Set status to queued to try again",
            )
        else:
            # Still RUNNING: the next `sheetbot run` in the window tries it again.
            self.ctx.state.move(
                task.task_id, Status.RUNNING, now=self.ctx.now(), error=f"call failed, will be retried: {exc}"
            )
            self.report.drained = False


def _changed_after_lock(ctx: NightContext, report: RunReport) -> None:
    """Flag outputs whose row was edited after the lock: the output answers the locked input."""
    try:
        sheet = ctx.board.read()
    except SheetbotError:
        return
    col = ctx.col
    rows = {r.get(col["id"]).strip(): r for r in sheet.rows}
    for projection in ctx.state.dirty():
        task = ctx.state.task(projection.task_id)
        row = rows.get(projection.task_id)
        if task is None or row is None or task.status != Status.REVIEW or not task.snapshot:
            continue
        watched = [col["type"], col["input"], *[c for c in task.snapshot if c not in _sheetbot_columns(col)]]
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
    return {
        col[c]
        for c in (
            "id",
            "status",
            "night",
            "output",
            "review",
            "notes",
            "edited_output",
            "error",
            "cost",
            "priority",
        )
    }


async def run_async(ctx: NightContext, *, until: datetime | None = None) -> RunReport:
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
        write_back(ctx)
        night = _Night(ctx, report, deadline)
        night.total = len(tasks)
        try:
            await asyncio.gather(*(night.work(state.task(t.task_id) or t) for t in tasks))
        finally:
            for provider in night.providers.values():
                await provider.aclose()
        with state.transaction():
            _changed_after_lock(ctx, report)
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
                },
            )
    report.missing = write_back(ctx).missing
    return report


def run(ctx: NightContext, *, until: datetime | None = None) -> RunReport:
    return asyncio.run(run_async(ctx, until=until))
