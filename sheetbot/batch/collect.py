"""One batch result into the state: an attempt row at batch price, and what the task does next.

Kept apart from the polling loop so both the first read and a restart's read go through the same path,
and so a result already stored (a crash between storing and marking the batch read) is never stored twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sheetbot.batch.base import ItemError
from sheetbot.config.models import Config, WorkflowConfig
from sheetbot.config.outputs import repair_prompt, validate_answer
from sheetbot.errors import InvalidAnswer
from sheetbot.night.budget import Budget
from sheetbot.night.task import CallBase, Outcome, attempt_record, structured_text, workflow_steps
from sheetbot.providers.base import Completion, CompletionRequest
from sheetbot.providers.pricing import cost_usd
from sheetbot.state import Attempt, State, Task
from sheetbot.state.audit import store_call
from sheetbot.state.records import BatchRecord, BatchRequest

WINDOW_ENDED = "deferred: the batch did not finish before the window ended"


@dataclass
class Pending:
    """A task working through its steps in batch rounds."""

    task: Task
    wf: WorkflowConfig
    #: Follow-ups used on the current step (an error, an expiry or an invalid answer each use one).
    retries: int = 0
    #: The prompt for the next try of the current step when the answer must be repaired.
    repair: str | None = None
    outcome: Outcome | None = None
    spent_usd: float = 0.0
    truncated: bool = False
    #: Every step has its answer: the row goes to review.
    complete: bool = False
    done: dict[str, str] = field(default_factory=dict)


def request_record(pending: Pending, request: CompletionRequest, provider: str, *, wire: str) -> BatchRequest:
    """What the attempt row needs when the result arrives, stored with the batch (a restart may read it),
    and the ``wire`` id the request goes out under."""
    step = request.custom_id.rsplit(":", 1)[1]
    return {
        "workflow": pending.task.workflow or "",
        "step": step,
        "system": request.system,
        "prompt": request.prompt,
        "final": step == workflow_steps(pending.wf)[-1].name,
        "structured": request.output_schema is not None,
        "provider": provider,
        "wire": wire,
    }


def batch_call_base(
    batch: BatchRecord, info: BatchRequest, task_id: str, attempt: int, step: str, *, final: bool
) -> CallBase:
    """Who, what and which step a batch result answers, from what was stored with its batch at submit."""
    return CallBase(
        task_id=task_id,
        night=batch["night"],
        attempt=attempt,
        step=step,
        workflow=info["workflow"],
        provider=info["provider"],
        model=batch["model"],
        mode="batch",
        system=info["system"],
        prompt=info["prompt"],
        final=final,
    )


def store(
    custom_id: str,
    result: Completion | ItemError,
    *,
    batch: BatchRecord,
    pending: Pending | None,
    config: Config,
    state: State,
    budget: Budget,
    now: datetime,
) -> None:
    """Record the result (unless this step is already stored) and move ``pending`` on."""
    task_id, attempt_no, step = custom_id.rsplit(":", 2)
    info = batch["requests"].get(custom_id)
    if info is None or state.stored_output(task_id, int(attempt_no), step) is not None:
        return
    wf = config.workflows.get(info["workflow"])
    known = state.tasks([task_id]).get(task_id)
    snapshot = known.snapshot if known is not None else {}
    base = batch_call_base(batch, info, task_id, int(attempt_no), step, final=bool(info["final"]))
    if isinstance(result, ItemError):
        store_call(
            state, Attempt(**base, ok=False, error=f"batch request {result.kind}: {result.message}"), snapshot, now=now
        )
        if pending is not None and pending.outcome is None:
            _retry_or_give_up(pending, result)
        return
    price = config.prices[batch["model"]]
    cost = cost_usd(price, result.usage, batch=True)
    budget.spend(info["workflow"], cost)
    text = result.text
    if info["structured"] and wf is not None:
        try:
            text = structured_text(validate_answer(wf.outputs, result.data if result.data is not None else text))
        except InvalidAnswer as exc:
            store_call(state, attempt_record(base, result, cost, ok=False, error=str(exc)), snapshot, now=now)
            if pending is not None:
                pending.spent_usd += cost
                if pending.repair is not None or pending.retries >= 1:
                    pending.outcome = Outcome("failed", f"the answer did not fit the workflow's outputs twice: {exc}")
                else:
                    pending.retries += 1
                    pending.repair = repair_prompt(info["prompt"], str(exc))
            return
    store_call(state, attempt_record(base, result, cost, ok=True, output=text), snapshot, now=now)
    if pending is not None:
        pending.spent_usd += cost
        pending.truncated = pending.truncated or result.truncated
        pending.done[step] = text
        pending.complete = pending.complete or bool(info["final"])
        pending.retries, pending.repair = 0, None


def _retry_or_give_up(pending: Pending, error: ItemError) -> None:
    """Errors and expiries are retried once, in a follow-up batch; a second one ends the row for tonight."""
    if error.kind == "canceled":
        pending.outcome = Outcome("deferred", WINDOW_ENDED)
    elif pending.retries >= 1:
        if error.kind == "expired":
            pending.outcome = Outcome("deferred", "deferred: the batch request expired twice; it runs on a later night")
        else:
            pending.outcome = Outcome(
                "failed", f"the batch request failed twice ({error.message}); set status to queued to try again"
            )
    else:
        pending.retries += 1
