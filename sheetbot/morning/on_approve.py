"""Approval-gated actions: a workflow's `on_approve` webhook, sent only after a person approved or edited.

The order of steps is what keeps a delivery from being sent twice:

1. the harvest queues the action (``pending``) in the same transaction as the decision;
2. before the POST the action is recorded ``sending`` (committed);
3. the POST, retried with backoff within this harvest;
4. on a 2xx the action is recorded ``delivered`` (committed) — *before* the row moves;
5. the row moves to ``published`` and the board is written.

A crash after 4 only leaves step 5 to do: a delivered action is never sent again. A crash between
3 and 4 (the receiver got it, we never learned) means the next harvest sends it once more, with
the same ``Idempotency-Key: <task>:<attempt>`` header and body field, which is also the Standard
Webhooks ``webhook-id`` the POST is signed with (sheetbot/safety/signing.py): receivers must use it to
drop the duplicate. A POST that still fails after its tries stays ``pending`` for the next harvest,
and the row's `error` cell says why.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import TypedDict

import requests

from sheetbot.errors import ConfigError, SheetbotError
from sheetbot.morning.signed_post import signed_post
from sheetbot.night.context import NightContext
from sheetbot.night.morning_reports import ActionsReport as ActionsReport
from sheetbot.night.writeback import write_back
from sheetbot.safety.signing import signing_key
from sheetbot.state import Task
from sheetbot.status import Status

log = logging.getLogger(__name__)


class ActionPayload(TypedDict):
    """The JSON body an on_approve webhook receives: the approved (or edited) text and the row it belongs to."""

    idempotency_key: str
    task_id: str
    attempt: int
    workflow: str | None
    night: str | None
    decision: str
    text: str


def queue_action(ctx: NightContext, task: Task) -> bool:
    """Called by the harvest for an approve or edit: queue the workflow's action, if it has one."""
    wf = ctx.config.workflows.get(task.workflow or "")
    if wf is None or wf.on_approve is None or wf.on_approve.webhook is None:  # a `queue:` only: morning/chains.py
        return False
    return ctx.state.add_action(task.task_id, task.attempt, workflow=task.workflow or "", now=ctx.now())


def _final_text(ctx: NightContext, task: Task) -> tuple[str, str] | None:
    """(decision, text): the reviewer's text for an edit, else the stored output of the approved attempt."""
    if task.status == Status.EDITED:
        edited = ctx.state.edited_text(task.task_id, task.attempt)
        return ("edit", edited) if edited is not None else None
    output = ctx.state.final_output(task.task_id, task.attempt)
    return ("approve", output.output or "") if output is not None else None


def _payload(task: Task, decision: str, text: str) -> ActionPayload:
    return {
        "idempotency_key": f"{task.task_id}:{task.attempt}",
        "task_id": task.task_id,
        "attempt": task.attempt,
        "workflow": task.workflow,
        "night": task.night,
        "decision": decision,
        "text": text,
    }


def deliver_actions(
    ctx: NightContext,
    *,
    session: requests.Session | None = None,
    sleep: Callable[[float], None] | None = None,
) -> ActionsReport:
    """Send every undelivered action, publish the rows whose action was delivered, write the board.

    ``sleep`` waits between tries; by default the context's (tests' contexts wait no real time)."""
    if sleep is None:
        sleep = sync_sleep(ctx)
    report = ActionsReport()
    http = session or requests.Session()
    for action in ctx.state.actions_delivered_unpublished():  # a crash between `delivered` and the move
        _publish(ctx, action["task_id"], report)
    for action in ctx.state.actions_undelivered():
        task = ctx.state.task(action["task_id"])
        if task is None or task.attempt != action["attempt"] or task.status not in (Status.APPROVED, Status.EDITED):
            continue
        problem = _send(ctx, http, task, sleep)
        if problem is None:
            _publish(ctx, task.task_id, report)
        else:
            report.pending.append((task.task_id, problem))
            error = f"publishing failed ({problem}); sheetbot tries again at the next harvest"
            ctx.state.move(task.task_id, task.status, now=ctx.now(), error=error)
    if ctx.state.dirty():
        try:
            write_back(ctx)
        except SheetbotError as exc:  # the rows stay dirty: the next phase writes them
            log.warning("published rows not written to the board yet: %s", exc)
    return report


def sync_sleep(ctx: NightContext) -> Callable[[float], None]:
    """The context's (async) sleep, for this synchronous phase; the wall clock's if it is asyncio's."""
    try:
        asyncio.get_running_loop()
        inside_loop = True
    except RuntimeError:
        inside_loop = False
    if ctx.sleep is asyncio.sleep or inside_loop:
        return time.sleep
    return lambda seconds: asyncio.run(ctx.sleep(seconds))  # type: ignore[arg-type]


def _publish(ctx: NightContext, task_id: str, report: ActionsReport) -> None:
    ctx.state.move(task_id, Status.PUBLISHED, now=ctx.now(), error="")
    ctx.state.audit("published", now=ctx.now(), task_id=task_id)
    report.published.append(task_id)


def _send(ctx: NightContext, http: requests.Session, task: Task, sleep: Callable[[float], None]) -> str | None:
    """POST the action; None once delivered (and recorded), else why not."""
    wf = ctx.config.workflows.get(task.workflow or "")
    action = wf.on_approve if wf is not None else None
    if action is None or action.webhook is None or action.secret_env is None:
        return f"workflow {task.workflow!r} no longer has on_approve.webhook in the YAML"
    webhook = action.webhook
    secret = (ctx.env.get(action.secret_env) or "").strip()
    if not secret:
        return f"the environment variable {action.secret_env} (on_approve.secret_env) is not set"
    try:
        signing_key(secret, name=action.secret_env)
    except ConfigError as exc:
        return exc.problems[0].message
    final = _final_text(ctx, task)
    if final is None:
        return "no final text is stored for this attempt"
    key = f"{task.task_id}:{task.attempt}"
    body = json.dumps(_payload(task, *final), ensure_ascii=False, separators=(",", ":"))
    problem = signed_post(
        http,
        webhook,
        body,
        key=key,
        secret=secret,
        now=ctx.now,
        timeout_s=action.timeout_s,
        tries=action.max_tries,
        sleep=sleep,
        before_try=lambda: ctx.state.action_state(task.task_id, task.attempt, "sending", now=ctx.now()),
    )
    if problem is None:
        ctx.state.action_state(task.task_id, task.attempt, "delivered", now=ctx.now(), error="")
        ctx.state.audit("action_delivered", now=ctx.now(), task_id=task.task_id, detail={"key": key})
        return None
    ctx.state.action_state(task.task_id, task.attempt, "pending", now=ctx.now(), error=problem)
    log.warning("on_approve for task %s: %s", task.task_id, problem)
    return problem


def describe_actions(report: ActionsReport | None) -> list[str]:
    """Lines for the harvest's summary."""
    if report is None:
        return []
    lines = [f"{len(report.published)} row(s) published through on_approve"] if report.published else []
    lines += [f"{task_id}: not published yet: {why}" for task_id, why in report.pending[:10]]
    lines += [f"{len(report.chained)} chained row(s) added to the board"] if report.chained else []
    lines += [report.chain_problem] if report.chain_problem else []
    return lines
