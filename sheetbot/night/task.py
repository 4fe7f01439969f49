"""One task through the model: its steps, each checkpointed, with its money and its failures bounded.

A task is one or more steps (research → draft → polish). Each finished step is
stored before the next starts, so after a crash the task resumes after its last
finished step and no step is paid for twice. The last step's answer is the
task's output; with `outputs:` it must be a structured answer that validates
(one repair attempt, with the validation error in the prompt; an answer cut off at
max_tokens gets one more try with twice the room instead, within the caps).

What a failed call means for the row: a refused account (bad key, no money) is the
account's problem, so the row is deferred and no failed call is counted against it;
an open circuit breaker is waited out while the night's deadline allows (the
provider's half-open trial call goes first), and defers the row otherwise. A workflow with a `fallback:`
runs the call on it instead of deferring or waiting (sheetbot/night/fallback.py says when).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TypedDict

from sheetbot.config.models import Config, StepConfig, WorkflowConfig
from sheetbot.config.outputs import json_schema, repair_prompt, validate_answer
from sheetbot.errors import (
    AccountProviderError,
    CircuitOpenError,
    InvalidAnswer,
    PermanentProviderError,
    ProviderError,
    SheetbotError,
    TemplateError,
)
from sheetbot.night import gates
from sheetbot.night.budget import Budget
from sheetbot.night.fallback import BUDGET, CIRCUIT_OPEN, REFUSED, UNAVAILABLE, fallback_of, made_by
from sheetbot.night.keep import Keeper
from sheetbot.night.prompts import guidelines_section, rework_section
from sheetbot.night.templates import placeholders, render, row_lookup
from sheetbot.providers.base import Completion, CompletionRequest, Provider, Usage
from sheetbot.providers.pricing import cost_usd
from sheetbot.providers.tokens import estimate_tokens
from sheetbot.state import Attempt, State, Task

#: The step name of a single-prompt workflow.
FINAL_STEP = "final"
#: The most output tokens a retry of a cut-off answer asks for (the YAML's own limit on max_tokens).
MAX_TOKENS_CAP = 200_000


class CallBase(TypedDict):
    """Who, what and which step an attempt row is for: what live and batch mode know before the answer."""

    task_id: str
    night: str
    attempt: int
    step: str
    workflow: str
    provider: str
    model: str
    mode: str
    system: str
    prompt: str
    final: bool


@dataclass(frozen=True)
class Outcome:
    """How a task ended tonight: ``status`` is review, failed or deferred."""

    status: str
    reason: str = ""
    truncated: bool = False
    cost_usd: float = 0.0
    #: What the row's `error` cell says beside a good output, e.g. that the fallback model made it.
    note: str = ""
    #: A review gate (issue 14): the step whose answer waits for a person before the next step runs.
    gate: str = ""
    #: The row's answer (its last step's), as stored: a preview's grader reads it here, not back from the
    #: state, where a preview group holds it until the group ends (sheetbot/night/keep.py).
    output: str | None = None


def workflow_steps(wf: WorkflowConfig) -> list[StepConfig]:
    if wf.steps:
        return list(wf.steps)
    return [StepConfig(name=FINAL_STEP, prompt=wf.prompt, system=None)]


class TaskRunner:
    """Runs tasks for one night. Provider access, clock and sleep come from the caller."""

    def __init__(
        self,
        *,
        config: Config,
        state: State,
        budget: Budget,
        aliases: Mapping[str, str],
        provider_for: Callable[[WorkflowConfig], tuple[str, Provider]],
        call: Callable[[Provider, CompletionRequest], Awaitable[Completion]],
        now: Callable[[], datetime],
        sleep: Callable[[float], Awaitable[None]],
        out_of_time: Callable[[], bool],
        keep: Keeper,
        time_left_s: Callable[[], float | None] = lambda: None,
    ) -> None:
        self.config = config
        self.state = state
        self.budget = budget
        self.aliases = aliases
        self.provider_for = provider_for
        self.call = call
        self.now = now
        self.sleep = sleep
        self.out_of_time = out_of_time
        #: Stores each call's result; when the state cannot take it, keeps it in the journal.
        self.keep = keep
        #: Seconds until the night's deadline; None when the run has none (an open breaker then defers).
        self.time_left_s = time_left_s
        #: Tasks the state holds no call for, found once for a group of preview rows inside the group's
        #: transaction (no other program writes meanwhile): their stored answer and spend need no query each.
        self.uncalled: set[str] = set()
        #: Provider → why its rows go straight to their fallback tonight (batch mode: the key was refused).
        self.down: dict[str, str] = {}

    async def run(self, task: Task) -> Outcome:
        wf = self.config.workflows[task.workflow or ""]
        steps = workflow_steps(wf)
        # Review gates (sheetbot.night.gates): the steps up to the last passed gate are never called again.
        plan = gates.resume(self.state.latest_gate(task.task_id), steps) if wf.steps else gates.Resume()
        done: dict[str, str] = dict(plan.done)
        fresh = task.task_id in self.uncalled
        self.uncalled.discard(task.task_id)  # from its first call on, the state is asked as for any row
        spent = 0.0 if fresh else self.state.spent_usd(task_id=task.task_id, night=task.night)
        truncated = False
        notes: list[str] = []
        for index, step in enumerate(steps):
            if index < plan.start:
                continue
            last = index == len(steps) - 1
            gated = step.review and not last
            key = gates.round_key(step.name, plan.round) if gated else step.name
            stored = None if fresh else self.state.stored_output(task.task_id, task.attempt, key)
            if stored is not None and stored.output is not None:
                done[step.name] = stored.output
                truncated = truncated or stored.truncated
            else:
                try:
                    system, prompt = self.render(wf, step, task, done, last=last)
                except TemplateError as exc:
                    return Outcome("failed", f"{exc}: fix the workflow's template, then set status to queued")
                if step.name == plan.redo:  # a gate sent back: the answer and the reviewer's notes
                    prompt += rework_section(plan.round, plan.previous, plan.notes)
                called = step if key == step.name else step.model_copy(update={"name": key})
                named = step.name if len(steps) > 1 else None
                outcome = await self._step(
                    task, wf, called, system, prompt, last=last, spent=spent, notes=notes, named=named
                )
                if isinstance(outcome, Outcome):
                    return outcome
                attempt = outcome
                done[step.name] = attempt.output or ""
                spent += attempt.cost_usd
                truncated = truncated or attempt.truncated
            if gated:
                self._open_gate(task, steps, index, plan.round, done)
                return Outcome("review", cost_usd=spent, gate=step.name, note="; ".join(notes))
        output = done.get(steps[-1].name)
        return Outcome("review", truncated=truncated, cost_usd=spent, note="; ".join(notes), output=output)

    def _open_gate(self, task: Task, steps: list[StepConfig], index: int, round_: int, done: dict[str, str]) -> None:
        """The row waits at this gate: its round and every answer so far are kept (once, even on a restart)."""
        step = steps[index].name
        self.state.open_gate(
            task_id=task.task_id,
            workflow=task.workflow or "",
            step=step,
            round_=round_,
            attempt=task.attempt,
            night=task.night or "",
            outputs=done,
            shown=f"{gates.marker(step, index, len(steps))}\n{done[step]}",
            now=self.now(),
        )

    def render(
        self, wf: WorkflowConfig, step: StepConfig, task: Task, done: Mapping[str, str], *, last: bool
    ) -> tuple[str, str]:
        """A step's (system, prompt) for this row: earlier steps' answers, guidelines, a rework's notes.
        Public: batch mode renders its requests the same way (sheetbot.night.context.BatchNight)."""
        base = row_lookup(task.snapshot, self.aliases)

        def lookup(name: str) -> str | None:
            if name.startswith("steps."):
                return done.get(name.removeprefix("steps."))
            return base(name)

        system = render(step.system if step.system is not None else wf.system, lookup).strip()
        system = (system + guidelines_section(wf.guidelines)).strip()
        prompt = render(step.prompt, lookup).strip()
        if last and task.attempt > 1 and task.previous_output is not None:
            prompt += rework_section(task.attempt, task.previous_output, task.rework_notes)
        return system, prompt

    def request_for(
        self,
        task: Task,
        wf: WorkflowConfig,
        step: StepConfig,
        system: str,
        prompt: str,
        *,
        last: bool,
        max_tokens: int | None = None,
        model: str | None = None,
    ) -> CompletionRequest:
        """One step's call; live and batch mode build it the same way. ``model``: the fallback's, if it runs."""
        template = step.system if step.system is not None else wf.system
        return CompletionRequest(
            custom_id=f"{task.task_id}:{task.attempt}:{step.name}",
            model=model or step.model or wf.model,
            system=system,
            prompt=prompt,
            max_tokens=max_tokens or step.max_tokens or wf.max_tokens,
            temperature=wf.temperature,
            timeout_s=wf.timeout_s or self.config.providers[wf.provider].timeout_s,
            output_schema=json_schema(wf.outputs) if last and wf.outputs else None,
            # A system prompt without per-row placeholders is the same for every row: worth caching.
            cache_system=bool(system) and not placeholders(template),
        )

    async def _step(
        self,
        task: Task,
        wf: WorkflowConfig,
        step: StepConfig,
        system: str,
        prompt: str,
        *,
        last: bool,
        spent: float,
        notes: list[str],
        named: str | None = None,
    ) -> Attempt | Outcome:
        """Call until the step has a good answer, or the row is failed or deferred. When the primary cannot
        serve and the workflow has a fallback, the step's calls go to the fallback (``degraded`` says why)."""
        fallback = fallback_of(wf)
        degraded = self.down.get(wf.provider, "") if fallback is not None else ""
        structured = last and bool(wf.outputs)
        repaired = False
        room: int | None = None  # max_tokens of the retry after an answer was cut off
        while True:
            if self.out_of_time():
                return Outcome("deferred", "deferred: the night window ended before this row finished")
            runs, model = (
                (fallback, fallback.model) if degraded and fallback is not None else (wf, step.model or wf.model)
            )
            try:
                key, provider = self.provider_for(runs)
            except SheetbotError as exc:  # no key for the primary: as refused as a 401
                if fallback is None or degraded:
                    raise
                degraded = f"{UNAVAILABLE}: {exc}"
                continue
            price = self.config.prices[model]
            request = self.request_for(task, wf, step, system, prompt, last=last, max_tokens=room, model=model)
            worst = cost_usd(price, worst_case(request)) if wf.mode != "preview" else 0.0
            if wf.max_usd_per_task is not None and spent + worst > wf.max_usd_per_task:
                if room is not None:
                    why = f"a retry with room for {room} tokens would exceed max_usd_per_task"
                    return Outcome("failed", _cut_off(room // 2, why))
                return Outcome(
                    "failed",
                    f"this row could cost up to ${spent + worst:.4f}, over the workflow's "
                    f"max_usd_per_task of ${wf.max_usd_per_task:.4f}: shorten the input, lower "
                    "max_tokens or raise the cap, then set status to queued",
                )
            refused = self.budget.refuse(task.workflow or "", worst)
            if refused:
                # The same call on the fallback: the same tokens at the fallback's price.
                cheaper = cost_usd(self.config.prices[fallback.model], worst_case(request)) if fallback else 0.0
                if fallback is not None and not degraded and self.budget.refuse(task.workflow or "", cheaper) is None:
                    degraded = BUDGET
                    continue
                return Outcome("deferred", refused)
            self.budget.reserve(task.workflow or "", worst)
            base = CallBase(
                task_id=task.task_id,
                night=task.night or "",
                attempt=task.attempt,
                step=step.name,
                workflow=task.workflow or "",
                provider=key,
                model=model,
                mode="live" if wf.mode == "batch" else wf.mode,  # a batch row here runs live (no Batch API)
                system=system,
                prompt=prompt,
                final=last,
            )
            try:
                completion = await self.call(provider, request)
            except AccountProviderError as exc:  # the account's problem: no failed call counts against the row
                if fallback is not None and not degraded:
                    degraded = REFUSED
                    continue
                return Outcome("deferred", f"deferred: {exc}. The row runs again once this is fixed")
            except CircuitOpenError as exc:
                if fallback is not None and not degraded:  # the fallback now, rather than wait the cool-down out
                    degraded = CIRCUIT_OPEN
                    continue
                if await self._wait_out(exc):
                    continue
                return Outcome("deferred", f"deferred: {exc}")
            except TimeoutError:
                return Outcome("deferred", "deferred: the night window ended while this row was running")
            except ProviderError as exc:
                await self._record(task, Attempt(**base, ok=False, error=str(exc)))
                verdict = await self._after_failure(task, wf, exc)
                if verdict is not None:
                    return verdict
                continue
            finally:
                self.budget.release(task.workflow or "", worst)
            actual = 0.0 if completion.preview else cost_usd(price, completion.usage)
            self.budget.spend(task.workflow or "", actual)
            text = completion.text
            if structured and not completion.preview:
                try:
                    values = validate_answer(wf.outputs, completion.data if completion.data is not None else text)
                except InvalidAnswer as exc:
                    if completion.truncated:  # not a wrong answer: an unfinished one
                        cut = _cut_off(request.max_tokens)
                        await self._record(task, attempt_record(base, completion, actual, ok=False, error=cut))
                        if room is not None or request.max_tokens >= MAX_TOKENS_CAP:
                            return Outcome("failed", cut)
                        room = min(request.max_tokens * 2, MAX_TOKENS_CAP)
                        continue
                    await self._record(task, attempt_record(base, completion, actual, ok=False, error=str(exc)))
                    if repaired:
                        return Outcome("failed", f"the answer did not fit the workflow's outputs twice: {exc}")
                    repaired = True
                    prompt = repair_prompt(prompt, str(exc))
                    base["prompt"] = prompt
                    continue
                text = structured_text(values)
            attempt = attempt_record(base, completion, actual, ok=True, output=text)
            await self._record(task, attempt)  # stored (or journaled) before anything reaches the board
            if degraded:
                notes.append(made_by(model, degraded, step=named))
            return attempt

    async def _wait_out(self, exc: CircuitOpenError) -> bool:
        """Wait for an open breaker's cool-down if the night lasts beyond it; False: defer the row now.

        A run without a deadline (by hand, outside the window, no --until) does not wait: it would hold the
        terminal for a quarter of an hour on a provider that may stay down. With ``--until`` it waits too.
        """
        left = self.time_left_s()
        wait_s = exc.retry_after_s or 0.0
        if left is None or wait_s >= left:
            return False
        await self.sleep(wait_s)
        return not self.out_of_time()

    async def _record(self, task: Task, attempt: Attempt) -> None:
        """Store a model call and its audit entry (prompt and input hashes) in one transaction; if the state
        cannot take it, the journal keeps it and the night starts no new call (sheetbot.night.keep)."""
        await self.keep.store_call(attempt, task.snapshot)

    async def _after_failure(self, task: Task, wf: WorkflowConfig, exc: ProviderError) -> Outcome | None:
        """None: call again. Otherwise the row's outcome (dead-lettered after too many failures tonight)."""
        if isinstance(exc, PermanentProviderError):
            return Outcome("failed", f"{exc}. Fix it, then set status to queued to run it again")
        failures = self.state.failed_calls(task.task_id, task.night or "")
        if failures >= wf.max_failed_calls:
            return Outcome(
                "failed", f"gave up after {failures} failed calls tonight ({exc}); set status to queued to try again"
            )
        await self.sleep(min(2.0**failures, 60.0))
        return None


def _cut_off(max_tokens: int, why: str = "") -> str:
    """Why a structured answer was not used when the model ran out of room, and what to do about it."""
    because = f" ({why})" if why else ""
    return (
        f"the answer was cut off at max_tokens ({max_tokens}) before it was complete{because}: "
        "raise max_tokens for this workflow, then set status to queued"
    )


def worst_case(request: CompletionRequest) -> Usage:
    """The most a call may use: its prompt's estimated tokens and every allowed output token (what the budget
    holds while it runs, live or in batch)."""
    return Usage(input_tokens=estimate_tokens(request.system + request.prompt), output_tokens=request.max_tokens)


def attempt_record(
    base: CallBase,
    completion: Completion,
    cost: float,
    *,
    ok: bool,
    output: str | None = None,
    error: str | None = None,
) -> Attempt:
    """The attempt row of one answered call (``base``: who, what, which step): live and batch store the same."""
    usage = completion.usage
    return Attempt(
        **base,
        ok=ok,
        output=output if output is not None else (completion.text if ok else None),
        error=error,
        truncated=completion.truncated,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cost_usd=cost,
        estimated_usd=completion.estimated_usd,
        latency_s=completion.latency_s,
    )


def structured_text(values: Mapping[str, object]) -> str:
    """A validated structured answer as the stored output (JSON, non-ASCII kept), live or batch."""
    return json.dumps(values, ensure_ascii=False)


async def with_timeout(coro: Awaitable[Outcome], timeout_s: float | None) -> Outcome:
    if timeout_s is None:
        return await coro
    try:
        return await asyncio.wait_for(coro, timeout=timeout_s)
    except TimeoutError:
        return Outcome(
            "failed",
            f"the row took longer than task_timeout_s ({timeout_s:g} s); finished steps are "
            "kept. Set status to queued to resume it",
        )
