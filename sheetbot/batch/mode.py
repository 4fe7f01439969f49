"""Batch mode through the night window: rounds of batches, polled until they end or the window does.

A round sends every batch task's next step (one batch per provider and model, split at the limits),
so a three-step workflow takes three rounds. Each create is recorded before it is sent and each batch id
the moment it is known (send.py): a restarted process polls those batches, looks up any create whose
answer was lost, and never sends their requests again. Every batch call is bounded in time and the
night's deadline wins (timing.py). Results are matched through the stored wire ids and stored as they
are read (attempt rows at batch price); the board is
written once, by the caller, when the night's work is done. Errors, expiries and invalid structured
answers get one follow-up in the next round; a batch still running at the window end is cancelled,
what finished is kept, and the rest is deferred. A server without a Batch API (HTTP 404) makes its
rows run live, with a note in the run report.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

from sheetbot.batch.base import BatchProvider, ItemError, key_of, legacy_wire_id, split
from sheetbot.batch.collect import WINDOW_ENDED, Pending, store
from sheetbot.batch.estimate import preview_notes
from sheetbot.batch.factory import make_batch_provider
from sheetbot.batch.grading import is_grading, not_graded, skip, store_grading, wanted
from sheetbot.batch.poll import Polling
from sheetbot.batch.send import Sending, unclear
from sheetbot.batch.timing import Bounds
from sheetbot.config.models import Config
from sheetbot.errors import (
    AccountProviderError,
    BatchUnsupportedError,
    PermanentProviderError,
    ProviderError,
    TemplateError,
)
from sheetbot.night.context import BatchNight
from sheetbot.night.fallback import REFUSED
from sheetbot.night.task import Outcome, workflow_steps, worst_case
from sheetbot.providers.base import Completion, CompletionRequest
from sheetbot.providers.pricing import cost_usd
from sheetbot.state import Task
from sheetbot.state.records import BatchRecord, BatchSend

#: Rounds at most (steps plus follow-ups): a guard against a loop that makes no progress.
MAX_ROUNDS = 50


async def run_batch_tasks(night: BatchNight, tasks: list[Task]) -> None:
    """Every task here reaches an outcome (settled), or runs live when its server has no Batch API."""
    rounds = _Rounds(night)
    try:
        live = await rounds.run(tasks)
    finally:
        for client in rounds.clients.values():
            await client.aclose()
    for task in live:
        await night.work(task)


class Batches:
    """Batch mode as the night's run asks for it (sheetbot.night.context.BatchMode): the composition root
    (sheetbot/service/wiring.py) puts one in every NightContext, so the night never imports this package."""

    def preview_notes(self, config: Config, tasks: Iterable[Task], aliases: Mapping[str, str]) -> list[str]:
        return preview_notes(config, tasks, aliases)

    async def run(self, night: BatchNight, tasks: list[Task]) -> None:
        await run_batch_tasks(night, tasks)


class _Rounds(Polling, Sending):
    def __init__(self, night: BatchNight) -> None:
        self.night = night
        self.ctx = night.ctx
        self.state = night.ctx.state
        self.notes = night.notes
        self.bounds = Bounds(night.ctx.now, night.deadline)
        self.clients: dict[str, BatchProvider] = {}
        self.pending: dict[str, Pending] = {}
        self.live: list[Task] = []
        self.cancelled: set[str] = set()
        #: Budget held per request until its result is stored: (workflow, worst-case dollars).
        self.held: dict[str, tuple[str, float]] = {}
        self.refused: dict[str, AccountProviderError] = {}

    def client(self, provider: str) -> BatchProvider:
        if provider not in self.clients:
            factory = self.ctx.batch_providers
            if factory is not None:
                self.clients[provider] = factory(provider)
            else:
                config = self.ctx.config.providers[provider]
                self.clients[provider] = make_batch_provider(provider, config, env=self.ctx.env)
        return self.clients[provider]

    def release(self, custom_id: str) -> None:
        if custom_id in self.held:
            self.night.budget.release(*self.held.pop(custom_id))

    async def run(self, tasks: list[Task]) -> list[Task]:
        for task in tasks:
            self.pending[task.task_id] = Pending(task, self.ctx.config.workflows[task.workflow or ""])
        for _ in range(MAX_ROUNDS):
            # A restart, or a create whose answer was lost: open batches are paid for (poll, never resubmit),
            # and so may be open sends (look them up first).
            await self._look_up_sends()
            open_batches, sends = self._open()
            in_flight = {c for b in open_batches for c in b["custom_ids"]} | {c for x in sends for c in x["requests"]}
            if not self.night.out_of_time():
                await self._submit(self._next_requests(in_flight))
                open_batches, sends = self._open()
            if not open_batches and not sends:
                break
            # With a send to look up, wait one poll only, then look again.
            await self._wait(open_batches, providers={s["provider"] for s in sends}, once=bool(sends))
            for batch in open_batches:
                await self._collect(batch)
            if self.night.out_of_time():
                break
        waiting = {c.rsplit(":", 2)[0]: s for s in self.state.open_sends() for c in s["requests"]}
        live_ids = {t.task_id for t in self.live}
        for p in self.pending.values():
            if p.task.task_id in live_ids:
                continue
            refused = self.refused.get(p.wf.provider)
            outcome = p.outcome or (
                Outcome("review", truncated=p.truncated, cost_usd=p.spent_usd)
                if p.complete
                else _account_deferral(refused)
                if refused is not None
                else Outcome("deferred", unclear(waiting[p.task.task_id]))
                if p.task.task_id in waiting
                else Outcome("deferred", WINDOW_ENDED)
            )
            self.night.settle(p.task, outcome)
        return self.live

    def _open(self) -> tuple[list[BatchRecord], list[BatchSend]]:
        """The open batches and sends to wait on: not those of a provider that refused the key tonight
        (they stay open in the state; the next run, key fixed, collects them)."""
        batches = [b for b in self.state.open_batches() if b["provider"] not in self.refused]
        sends = [s for s in self.state.open_sends() if s["provider"] not in self.refused]
        return batches, sends

    def _next_requests(self, in_flight: set[str]) -> dict[tuple[str, str], list[tuple[Pending, CompletionRequest]]]:
        """Each unfinished task's next step, grouped by provider and model; in-flight ones are skipped."""
        groups: dict[tuple[str, str], list[tuple[Pending, CompletionRequest]]] = defaultdict(list)
        for p in self.pending.values():
            if p.outcome is not None or p.complete:
                self._grading(p, groups, in_flight)
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
                    system, prompt = self.night.runner.render(p.wf, step, p.task, p.done, last=last)
                except TemplateError as exc:
                    p.outcome = Outcome("failed", f"{exc}: fix the workflow's template, then set status to queued")
                    break
                request = self.night.runner.request_for(p.task, p.wf, step, system, p.repair or prompt, last=last)
                if request.custom_id not in in_flight:
                    groups[(p.wf.provider, request.model)].append((p, request))
                break
            self._grading(p, groups, in_flight)  # every step was stored before a restart: grade it now
        return groups

    def _grading(
        self,
        p: Pending,
        groups: dict[tuple[str, str], list[tuple[Pending, CompletionRequest]]],
        in_flight: set[str],
    ) -> None:
        """A complete row's self-check, in a batch of its own (sheetbot/batch/grading.py)."""
        request = wanted(p, self.state, self.ctx.config)
        if request is not None and request.custom_id not in in_flight:
            assert p.wf.self_check is not None
            groups[(p.wf.self_check.provider or p.wf.provider, request.model)].append((p, request))

    async def _submit(
        self, groups: dict[tuple[str, str], list[tuple[Pending, CompletionRequest]]]
    ) -> list[BatchRecord]:
        submitted: list[BatchRecord] = []
        budget = self.night.budget
        for (provider, model), items in groups.items():
            if provider in self.refused:  # its key was refused tonight: sending would be refused alike
                self._not_sent(self.refused[provider], [p for p, _ in items])
                continue
            night_name = items[0][0].task.night or self.ctx.night().night
            price = self.ctx.config.prices[model]
            allowed: list[tuple[Pending, CompletionRequest]] = []
            for p, request in items:
                worst = cost_usd(price, worst_case(request), batch=True)
                refused = budget.refuse(p.task.workflow or "", worst)
                cap = p.wf.max_usd_per_task
                if is_grading(request.custom_id) and (refused or (cap is not None and p.spent_usd + worst > cap)):
                    skip(p, self.state, self.ctx.now())  # never the row's failure: it goes to review ungraded
                elif cap is not None and p.spent_usd + worst > cap:
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
                    batch = await self._send(provider, model, night_name, [by_id[r.custom_id] for r in chunk])
                    sent.update(r.custom_id for r in chunk)  # sent, or unclear: in flight either way
                    if batch is not None:
                        submitted.append(batch)
            except ProviderError as exc:
                unsent = [(p, r) for p, r in allowed if r.custom_id not in sent]
                for _, r in unsent:
                    self.release(r.custom_id)
                if not isinstance(exc, BatchUnsupportedError):  # a grading not sent is never the row's failure
                    for p, _ in [(p, r) for p, r in unsent if is_grading(r.custom_id)]:
                        not_graded(p, self.state, f"the batch could not be sent ({exc})", self.ctx.now())
                    unsent = [(p, r) for p, r in unsent if not is_grading(r.custom_id)]
                self._not_sent(exc, [p for p, _ in unsent])
        return submitted

    def _not_sent(self, exc: ProviderError, unsent: list[Pending]) -> None:
        """A batch that could not be created: live instead (no Batch API here), failed, or deferred.

        A refused key sends the rows of workflows with a `fallback:` to it, live (issue 14): one live call each,
        never a second batch to poll; their steps stored in batch are kept (sheetbot/night/fallback.py)."""
        if isinstance(exc, AccountProviderError):
            degraded = [p for p in unsent if p.wf.fallback is not None]
            for p in degraded:
                self.night.runner.down[p.wf.provider] = REFUSED
                p.outcome = Outcome("deferred", "running live on the fallback")
            if degraded:
                self.live += [p.task for p in degraded]
                self.night.notes.append(f"{exc}; rows with a fallback ran live on it tonight")
            unsent = [p for p in unsent if p.wf.fallback is None]
        if isinstance(exc, BatchUnsupportedError):
            # Live resumes after the stored steps, so nothing is paid twice; the note says why.
            self.night.notes.append(f"{exc}; its rows ran live tonight")
            self.live += [p.task for p in unsent]
        for p in unsent:
            if isinstance(exc, BatchUnsupportedError):
                p.outcome = Outcome("deferred", "running live")
            elif isinstance(exc, AccountProviderError):  # the account's problem, not the rows': they wait
                p.outcome = _account_deferral(exc)
            elif isinstance(exc, PermanentProviderError):
                p.outcome = Outcome("failed", f"{exc}. Fix it, then set status to queued to run it again")
            else:
                p.outcome = Outcome("deferred", f"deferred: the batch could not be sent ({exc})")

    async def _collect(self, batch: BatchRecord) -> None:
        """Store every result of an ended batch; a batch that has not ended stays open for the next run.

        Results are matched through the stored wire ids, never by position. A batch found by listing
        (send.py) is ours only for the sends whose wire ids its results carry; one that carries none was
        another program's: it is set aside as ``foreign`` and its rows are sent again."""
        current = self.state.batch(batch["batch_id"])
        if current["status"] != "ended":
            return
        by_wire: dict[str, str] = {}
        for custom_id, record in current["requests"].items():
            for known in (record.get("wire"), legacy_wire_id(custom_id), custom_id):  # older batches: no "wire"
                if known:
                    by_wire.setdefault(known, custom_id)
        client = self.client(batch["provider"])
        seen: set[str] = set()
        keys: set[str] = set()
        try:
            results = self.bounds.each(
                client.results(batch["batch_id"]),
                limit_s=client.time_limit_s,
                label=batch["provider"],
                what=f"read the results of batch {batch['batch_id']}",
            )
            async for wire, result in results:
                ours = by_wire.get(wire)
                if ours is None:
                    continue  # not a request of ours
                seen.add(ours)
                keys.add(key_of(wire))
                self._store(ours, result, current)
        except AccountProviderError as exc:  # refused alike on every try until the key is fixed: stop asking
            self.refused[batch["provider"]] = exc
            return
        except ProviderError:
            return  # read again on the next round or run
        expected = set(current["custom_ids"])
        if current.get("found_by") == "listing":
            if not seen:
                self.state.update_batch(batch["batch_id"], status="foreign")
                self.notes.append(
                    f"{batch['provider']} batch {batch['batch_id']} was another program's, not sheetbot's: "
                    "left alone, and its rows sent in a batch of their own"
                )
                return
            expected = {c for c, r in current["requests"].items() if r.get("wire") and key_of(r["wire"]) in keys}
        for custom_id in sorted(expected - seen):  # no result at all: as if it expired
            kind = "canceled" if batch["batch_id"] in self.cancelled else "expired"
            self._store(custom_id, ItemError(kind, "the batch returned no result for it"), current)
        status = "cancelled" if batch["batch_id"] in self.cancelled else "collected"
        self.state.update_batch(batch["batch_id"], status=status)

    def _store(self, custom_id: str, result: Completion | ItemError, batch: BatchRecord) -> None:
        pending = self.pending.get(custom_id.rsplit(":", 2)[0])
        self.release(custom_id)
        if is_grading(custom_id):
            store_grading(
                custom_id,
                f"batch request {result.kind}: {result.message}" if isinstance(result, ItemError) else result,
                batch=batch,
                pending=pending,
                config=self.ctx.config,
                state=self.state,
                budget=self.night.budget,
                now=self.ctx.now(),
            )
            return
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


def _account_deferral(exc: AccountProviderError) -> Outcome:
    """A row waiting on a refused key: the account's problem, not the row's (no failed call is counted)."""
    return Outcome("deferred", f"deferred: {exc}. The row runs again once this is fixed")
