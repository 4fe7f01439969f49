"""The self-check in batch mode (issue 13, item 4): the gradings go as a batch of their own, once a row's
output is collected, in the round after it; the row is settled (and the board written) only after its verdict.

A grading is never a row's failure: a grading the budget cannot hold is skipped (said in the `checks` cell), an
error or an expiry is recorded as ``self-check failed``, and the row goes to review either way. Its verdict is
recorded with its call (State.record_self_check), so a restart that polls the batch again stores it once.
"""

from __future__ import annotations

from datetime import datetime

from sheetbot.batch.collect import Pending, batch_call_base
from sheetbot.config.models import Config
from sheetbot.night.budget import Budget
from sheetbot.night.self_check import (
    SELF_CHECK_STEP,
    SKIPPED_BUDGET,
    Verdict,
    failed_cell,
    grading_request,
    items_of,
    record,
    verdict_of,
)
from sheetbot.night.task import attempt_record, workflow_steps
from sheetbot.providers.base import Completion, CompletionRequest
from sheetbot.providers.pricing import cost_usd
from sheetbot.state import Attempt, State
from sheetbot.state.records import BatchRecord


def is_grading(custom_id: str) -> bool:
    return custom_id.rsplit(":", 1)[-1] == SELF_CHECK_STEP


def wanted(p: Pending, state: State, config: Config) -> CompletionRequest | None:
    """The grading request of a row whose output is complete tonight, or None (none asked, or graded)."""
    wf = p.wf
    if not p.complete or p.outcome is not None or wf.self_check is None or not items_of(wf):
        return None
    if state.self_check_verdict(p.task.task_id, p.task.attempt) is not None:
        return None
    output = p.done.get(workflow_steps(wf)[-1].name)
    if output is None:
        return None
    return grading_request(p.task, wf, output, config)


def skip(p: Pending, state: State, now: datetime) -> None:
    """The budget cannot hold the grading: the row goes to review without it, and its cell says so."""
    record(state, p.task, Verdict(SKIPPED_BUDGET, None), now_call=None, when=now)


def not_graded(p: Pending, state: State, why: str, now: datetime) -> None:
    """The grading could not be sent: the row goes to review, its cell says why."""
    record(state, p.task, failed_cell(why), now_call=None, when=now)


def store_grading(
    custom_id: str,
    result: Completion | str,
    *,
    batch: BatchRecord,
    pending: Pending | None,
    config: Config,
    state: State,
    budget: Budget,
    now: datetime,
) -> None:
    """One grading result (a Completion, or the text of an item's error) into the state, once."""
    task_id, attempt_no, _ = custom_id.rsplit(":", 2)
    info = batch["requests"][custom_id]
    if state.self_check_verdict(task_id, int(attempt_no)) is not None:
        return
    task = pending.task if pending is not None else state.tasks([task_id]).get(task_id)
    wf = config.workflows.get(info["workflow"])
    if task is None or wf is None or wf.self_check is None:
        return
    base = batch_call_base(batch, info, task_id, int(attempt_no), SELF_CHECK_STEP, final=False)
    if isinstance(result, str):
        call = Attempt(**base, ok=False, error=result)
        record(state, task, failed_cell(result), now_call=call, when=now)
        return
    cost = cost_usd(config.prices[batch["model"]], result.usage, batch=True)
    budget.spend(info["workflow"], cost)
    verdict = verdict_of(items_of(wf), result)
    record(state, task, verdict, now_call=attempt_record(base, result, cost, ok=True, output=verdict.cell), when=now)
    if pending is not None:
        pending.spent_usd += cost
