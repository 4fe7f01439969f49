"""Batch mode through the night window: rounds of batches, polled until they end or the window does.

A round sends every batch task's next step (one batch per provider and model, split at the limits),
so a three-step workflow takes three rounds. Each batch id is committed the moment the provider returns
it, with the custom_ids it carries: a restarted process polls those batches and never sends their
requests again. Results are stored as they are read (attempt rows at batch price); the board is
written once, by the caller, when the night's work is done. Errors, expiries and invalid structured
answers get one follow-up in the next round; a batch still running at the window end is cancelled,
what finished is kept, and the rest is deferred. A server without a Batch API (HTTP 404) makes its
rows run live, with a note in the run report.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any, Protocol

from sheetbot.batch.base import BatchProvider, BatchUnsupportedError, ItemError, split
from sheetbot.batch.collect import WINDOW_ENDED, Pending, request_record, store
from sheetbot.batch.factory import make_batch_provider
from sheetbot.batch.poll import Polling
from sheetbot.errors import PermanentProviderError, ProviderError, TemplateError
from sheetbot.night.budget import Budget
from sheetbot.night.context import NightContext
from sheetbot.night.task import Outcome, TaskRunner, _worst_case, workflow_steps
from sheetbot.pricing import cost_usd
from sheetbot.providers.base import Completion, CompletionRequest
from sheetbot.state import Task

#: Rounds at most (steps plus follow-ups): a guard against a loop that makes no progress.
MAX_ROUNDS = 50


class NightLike(Protocol):
    """What run.py's night gives the batch rounds: its context, runner, budget and bookkeeping."""

    ctx: NightContext
    runner: TaskRunner
    budget: Budget
    notes: list[str]
    deadline: datetime | None

    def out_of_time(self) -> bool: ...

    def settle(self, task: Task, outcome: Outcome) -> None: ...

    async def work(self, task: Task) -> None: ...


async def run_batch_tasks(night: NightLike, tasks: list[Task]) -> None:
    """Every task here reaches an outcome (settled), or runs live when its server has no Batch API."""
    rounds = _Rounds(night)
    try:
        live = await rounds.run(tasks)
    finally:
        for client in rounds.clients.values():
            await client.aclose()
    for task in live:
        await night.work(task)


class _Rounds(Polling):
    def __init__(self, night: NightLike) -> None:
        self.night = night
        self.ctx = night.ctx
        self.state = night.ctx.state
        self.clients: dict[str, BatchProvider] = {}
        self.pending: dict[str, Pending] = {}
        self.live: list[Task] = []
        self.cancelled: set[str] = set()
        #: Budget held per request until its result is stored: (workflow, worst-case dollars).
        self.held: dict[str, tuple[str, float]] = {}

    def client(self, provider: str) -> BatchProvider:
        if provider not in self.clients:
            factory = self.ctx.batch_providers
            if factory is not None:
                self.clients[provider] = factory(provider)
            else:
                config = self.ctx.config.providers[provider]
                self.clients[provider] = make_batch_provider(provider, config, env=self.ctx.env)
        return self.clients[provider]

    async def run(self, tasks: list[Task]) -> list[Task]:
        for task in tasks:
            self.pending[task.task_id] = Pending(task, self.ctx.config.workflows[task.workflow or ""])
        open_batches = self.state.open_batches()  # a restart: these are paid for; poll, never resubmit
        for _ in range(MAX_ROUNDS):
            in_flight = {c for b in open_batches for c in b["custom_ids"]}
            if not self.night.out_of_time():
                open_batches += await self._submit(self._next_requests(in_flight))
            if not open_batches:
                break
            await self._wait(open_batches)
            for batch in open_batches:
                await self._collect(batch)
            open_batches = self.state.open_batches()
            if self.night.out_of_time():
                break
        live_ids = {t.task_id for t in self.live}
        for p in self.pending.values():
            if p.task.task_id in live_ids:
                continue
            outcome = p.outcome or (
                Outcome("review", truncated=p.truncated, cost_usd=p.spent_usd)
                if p.complete
                else Outcome("deferred", WINDOW_ENDED)
            )
            self.night.settle(p.task, outcome)
        return self.live

    def _next_requests(self, in_flight: set[str]) -> dict[tuple[str, str], list[tuple[Pending, CompletionRequest]]]:
        """Each unfinished task's next step, grouped by provider and model; in-flight ones are skipped."""
        groups: dict[tuple[str, str], list[tuple[Pending, CompletionRequest]]] = defaultdict(list)
        for p in self.pending.values():
            if p.outcome is not None or p.complete:
                continue
            steps = workflow_steps(p.wf)
            for index, step in enumerate(steps):
                last = index == len(steps) - 1
                stored = self.state.stored_output(p.task.task_id, p.task.attempt, step.name)
                if stored is not None and stored.output is not None:
                    p.done[step.name] = stored.output
                    p.truncated = p.truncated or stored.truncated
                    p.complete = last
                    continue
                try:
                    system, prompt = self.night.runner._render(p.wf, step, p.task, p.done, last=last)
                except TemplateError as exc:
                    p.outcome = Outcome("failed", f"{exc}: fix the workflow's template, then set status to queued")
                    break
                request = self.night.runner.request_for(p.task, p.wf, step, system, p.repair or prompt, last=last)
                if request.custom_id not in in_flight:
                    groups[(p.wf.provider, request.model)].append((p, request))
                break
        return groups

    async def _submit(
        self, groups: dict[tuple[str, str], list[tuple[Pending, CompletionRequest]]]
    ) -> list[dict[str, Any]]:
        submitted: list[dict[str, Any]] = []
        budget = self.night.budget
        for (provider, model), items in groups.items():
            night_name = items[0][0].task.night or self.ctx.night().night
            price = self.ctx.config.prices[model]
            allowed: list[tuple[Pending, CompletionRequest]] = []
            for p, request in items:
                worst = cost_usd(price, _worst_case(request), batch=True)
                refused = budget.refuse(p.task.workflow or "", worst)
                cap = p.wf.max_usd_per_task
                if cap is not None and p.spent_usd + worst > cap:
                    p.outcome = Outcome(
                        "failed",
                        f"this row could cost up to ${p.spent_usd + worst:.4f} in batch, over the workflow's "
                        f"max_usd_per_task of ${cap:.4f}: shorten the input, lower max_tokens or raise the cap, "
                        "then set status to queued",
                    )
                elif refused:
                    p.outcome = Outcome("deferred", refused)
                else:
                    budget.reserve(p.task.workflow or "", worst)
                    self.held[request.custom_id] = (p.task.workflow or "", worst)
                    allowed.append((p, request))
            by_id = {r.custom_id: (p, r) for p, r in allowed}
            sent: set[str] = set()
            try:
                client = self.client(provider)
                chunks = split(
                    [r for _, r in allowed],
                    max_requests=client.max_requests,
                    max_bytes=client.max_bytes,
                    size=client.request_bytes,
                )
                for chunk in chunks:
                    batch_id = await client.submit(chunk)
                    sent.update(r.custom_id for r in chunk)
                    records = {r.custom_id: request_record(by_id[r.custom_id][0], r, provider) for r in chunk}
                    self.state.add_batch(
                        batch_id,
                        provider=provider,
                        model=model,
                        night=night_name,
                        step="+".join(sorted({r["step"] for r in records.values()})),
                        requests=records,
                        now=self.ctx.now(),
                    )
                    submitted.append(self.state.batch(batch_id))
            except ProviderError as exc:
                unsent = [(p, r) for p, r in allowed if r.custom_id not in sent]
                for _, r in unsent:
                    budget.release(*self.held.pop(r.custom_id))
                self._not_sent(exc, [p for p, _ in unsent])
        return submitted

    def _not_sent(self, exc: ProviderError, unsent: list[Pending]) -> None:
        """A batch that could not be created: live instead (no Batch API here), failed, or deferred."""
        if isinstance(exc, BatchUnsupportedError):
            # Live resumes after the stored steps, so nothing is paid twice; the note says why.
            self.night.notes.append(f"{exc}; its rows ran live tonight")
            self.live += [p.task for p in unsent]
        for p in unsent:
            if isinstance(exc, BatchUnsupportedError):
                p.outcome = Outcome("deferred", "running live")
            elif isinstance(exc, PermanentProviderError):
                p.outcome = Outcome("failed", f"{exc}. Fix it, then set status to queued to run it again")
            else:
                p.outcome = Outcome("deferred", f"deferred: the batch could not be sent ({exc})")

    async def _collect(self, batch: dict[str, Any]) -> None:
        """Store every result of an ended batch; a batch that has not ended stays open for the next run."""
        current = self.state.batch(batch["batch_id"])
        if current["status"] != "ended":
            return
        seen: set[str] = set()
        try:
            async for custom_id, result in self.client(batch["provider"]).results(batch["batch_id"]):
                seen.add(custom_id)
                self._store(custom_id, result, current)
        except ProviderError:
            return  # read again on the next round or run
        for custom_id in sorted(set(current["custom_ids"]) - seen):  # no result at all: as if it expired
            kind = "canceled" if batch["batch_id"] in self.cancelled else "expired"
            self._store(custom_id, ItemError(kind, "the batch returned no result for it"), current)
        status = "cancelled" if batch["batch_id"] in self.cancelled else "collected"
        self.state.update_batch(batch["batch_id"], status=status)

    def _store(self, custom_id: str, result: Completion | ItemError, batch: dict[str, Any]) -> None:
        pending = self.pending.get(custom_id.rsplit(":", 2)[0])
        if custom_id in self.held:
            self.night.budget.release(*self.held.pop(custom_id))
        store(
            custom_id,
            result,
            batch=batch,
            pending=pending,
            config=self.ctx.config,
            state=self.state,
            budget=self.night.budget,
            now=self.ctx.now(),
        )
