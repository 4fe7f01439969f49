"""The intake API's work (issue 15, item 4): a task another system asks for becomes a `queued` row on the board.

The HTTP side (sheetbot/service/http_app.py) only parses and answers; what a request does is here, on a
NightContext like every phase, so the same code runs on the workbook, Google Sheets and Airtable.

Exactly one row per task, even when sheetbot is killed between the request and the board's write (the order
of sheetbot/morning/chains.py):

1. the task is recorded in the state (sheetbot/state/intake.py) with its id fixed, under the SHA-256 of its
   ``Idempotency-Key`` when the caller sent one; a retry with that key finds the record and gets the same id;
2. the row is appended to the board (AppendsRows, sheetbot/boards/capabilities.py);
3. only then the record is marked done.

A kill before 3 leaves the record pending: the next POST with the key, or the next harvest, looks for the id on
the board and appends it only if it is not there. The id has the shape of the ids sheetbot gives rows
(sheetbot/night/identify.py), and the row's status is `queued`, a status people type: the next lock takes it
like any row a person added. Every value is written as text (the boards' own rule), so an input such as
``=HYPERLINK(…)`` reaches its cell as written, never as a formula.

When a person approves or edits the row, the task's ``callback_url`` gets a POST signed like the on_approve
webhooks (Standard Webhooks, sheetbot/safety/signing.py), through the same outbound rules (no redirect
followed, no link-local or cloud-metadata address; private addresses only with ``allow_private_callbacks``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

from sheetbot.config.models import Config
from sheetbot.config.names import did_you_mean
from sheetbot.errors import ConfigError, IntakeError
from sheetbot.morning.appending import append_missing
from sheetbot.morning.on_approve import sync_sleep
from sheetbot.morning.signed_post import signed_post
from sheetbot.night.context import NightContext
from sheetbot.night.identify import new_id
from sheetbot.night.prompts import template_names
from sheetbot.safety.signing import signing_key
from sheetbot.safety.urls import private_problem, url_problem
from sheetbot.state.intake import IntakeTask
from sheetbot.status import Status

log = logging.getLogger(__name__)

PRIORITIES = ("P0", "P1", "P2", "P3")
#: How long a POST waits for a phase of `serve` to let go of the board before it leaves its row to the next
#: harvest (the record is in the state already: the row is not lost, only later).
APPEND_WAIT_S = 2.0
#: Statuses whose decision a callback reports.
DECIDED = (Status.APPROVED, Status.EDITED, Status.PUBLISHED)


@dataclass(frozen=True)
class Submission:
    """What a caller asked for: already parsed (pydantic, in the HTTP layer), judged here against the YAML."""

    type: str
    input: str
    priority: str | None = None
    fields: Mapping[str, str] = field(default_factory=dict)
    callback_url: str | None = None

    def digest(self) -> str:
        """The request's fingerprint: the same Idempotency-Key with another body is refused, not merged."""
        body = {"type": self.type, "input": self.input, "priority": self.priority, "fields": dict(self.fields)}
        body["callback_url"] = self.callback_url
        return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def extra_columns(config: Config) -> list[str]:
    """The columns a caller may fill besides type, input and priority: those the workflows' templates read
    (what `init` adds to a new board, sheetbot/night/context.py's schema_for), never one sheetbot writes."""
    col = config.columns.logical()
    names = [n for wf in config.workflows.values() for n in template_names(wf) if not n.startswith("steps.")]
    return sorted({n for n in names if n not in col and n not in col.values()})


def judge(config: Config, sub: Submission) -> None:
    """Raise IntakeError(422) naming the field to fix; the API's pydantic models bound the sizes first."""
    assert config.api is not None
    if sub.type not in config.workflows:
        known = sorted(config.workflows)
        raise IntakeError(
            422,
            f"type {sub.type!r} is not a workflow of this board.{did_you_mean(sub.type, known)} "
            f"Known: {', '.join(known) or 'none'}",
        )
    if not sub.input.strip():
        raise IntakeError(422, "input is empty: send the text the workflow works on")
    if len(sub.input) > config.api.max_input_chars:
        raise IntakeError(422, f"input has {len(sub.input)} characters: at most {config.api.max_input_chars}")
    if sub.priority is not None and sub.priority not in PRIORITIES:
        raise IntakeError(422, f"priority {sub.priority!r} is not one of {', '.join(PRIORITIES)}")
    allowed = extra_columns(config)
    for name in sub.fields:
        if name not in allowed:
            raise IntakeError(
                422,
                f"field {name!r} is not a column the workflows read.{did_you_mean(name, allowed)} "
                f"Allowed besides type, input, priority, callback_url: {', '.join(allowed) or 'none'}",
            )
    if sub.callback_url is not None:
        if config.api.callback_secret_env is None:
            raise IntakeError(422, "callback_url: this board signs no callbacks (api.callback_secret_env is unset)")
        problem = url_problem(sub.callback_url)
        if problem is None and not config.api.allow_private_callbacks:
            problem = private_problem(sub.callback_url)
        if problem is not None:
            raise IntakeError(422, f"callback_url {problem}")


def _row(ctx: NightContext, task_id: str, sub: Submission) -> dict[str, str]:
    col = ctx.col
    row = {col["id"]: task_id, col["type"]: sub.type, col["input"]: sub.input, col["status"]: str(Status.QUEUED)}
    if sub.priority:
        row[col["priority"]] = sub.priority
    row.update(sub.fields)
    return row


def _fresh_id(ctx: NightContext) -> str:
    """An id no row, task, chained row or earlier request has: sheetbot's own shape (t + 7 letters)."""
    taken = ctx.state.intake_ids() | ctx.state.chain_child_ids()
    while True:
        candidate = new_id(set(taken))
        if not ctx.state.tasks([candidate]):
            return candidate
        taken.add(candidate)


def submit(
    ctx: NightContext,
    sub: Submission,
    *,
    key: str | None = None,
    guard: threading.RLock | None = None,
    wait_s: float = APPEND_WAIT_S,
) -> IntakeTask:
    """Record the task, then append its row (step 1 to 3 above); returns the record (the same one for a retry
    under the same ``key``). ``guard`` is held by `serve` while a phase has the board: the append waits at most
    ``wait_s`` for it, else the row is left to the next harvest."""
    judge(ctx.config, sub)
    key_sha = hashlib.sha256(key.encode()).hexdigest() if key is not None else None
    task_id = _fresh_id(ctx)
    fresh = IntakeTask(
        task_id=task_id,
        key_sha256=key_sha,
        body_sha256=sub.digest(),
        row=_row(ctx, task_id, sub),
        callback_url=sub.callback_url,
        state="pending",
        created_at=ctx.now().isoformat(),
    )
    record = ctx.state.add_intake(fresh, now=ctx.now())
    if record.body_sha256 != fresh.body_sha256:
        raise IntakeError(409, "this Idempotency-Key was used for another request: send a new key for a new task")
    if record.state == "pending":
        if guard is not None and not guard.acquire(timeout=wait_s):
            log.info("intake: task %s recorded; its row waits for the board (the next harvest adds it)", record.task_id)
            return record
        try:
            current = ctx.state.intake(record.task_id)  # another request may have appended it meanwhile
            if current is not None and current.state == "pending":
                _, problem = append_pending(ctx, [current], look=record is not fresh)
                if problem:
                    log.warning("intake: %s", problem)
        finally:
            if guard is not None:
                guard.release()
    return record


def append_pending(
    ctx: NightContext, pending: list[IntakeTask] | None = None, *, look: bool = True
) -> tuple[list[str], str | None]:
    """Append every pending task's row the board does not have yet, in one call, then mark them done.
    ``look=False`` skips reading the board: only for a record made a moment ago, whose id is new.
    Returns (the ids now on the board, why some are not: None if all are)."""
    if ctx.config.api is None and pending is None:
        return [], None
    pending = ctx.state.intake_pending() if pending is None else pending
    if not pending:
        return [], None
    problem = append_missing(ctx, {t.task_id: dict(t.row) for t in pending}, what="intake rows", look=look)
    if problem is not None:
        return [], problem
    now = ctx.now()
    with ctx.state.transaction():
        ctx.state.intake_done([t.task_id for t in pending], now=now)
        for task in pending:
            ctx.state.audit("intake_added", now=now, task_id=task.task_id, detail={"workflow": _type(ctx, task)})
    return [t.task_id for t in pending], None


def _type(ctx: NightContext, task: IntakeTask) -> str:
    return task.row.get(ctx.col["type"], "")


def task_view(ctx: NightContext, task_id: str) -> dict[str, Any] | None:
    """What `GET /tasks/{id}` answers for a task this API created; None for any other id.

    The state first: it knows a row from the first repair or lock after its append (the board's own edits to a
    row not locked yet reach the state at serve's next repair). Before that the record says `queued`."""
    record = ctx.state.intake(task_id)
    if record is None:
        return None
    task = ctx.state.task(task_id)
    view: dict[str, Any] = {
        "id": task_id,
        "type": _type(ctx, record),
        "status": str(Status.QUEUED),
        "attempt": None,
        "output": None,
        "decision": None,
        "decided_at": None,
        "error": None,
        "cost_usd": 0.0,
        "on_board": record.state == "done",
    }
    if task is None:
        return view
    view.update(status=str(task.status), attempt=task.attempt, cost_usd=round(ctx.state.task_cost(task_id), 6))
    view["error"] = task.error or None
    stored = ctx.state.final_output(task_id, task.attempt)
    if stored is not None and task.status not in (Status.QUEUED, Status.LOCKED, Status.RUNNING):
        view["output"] = stored.output
    decided = ctx.state.last_decision(task_id)
    if decided is not None and decided[2] == task.attempt:
        view["decision"], view["decided_at"] = decided[0], decided[1]
        if decided[0] == "edit":
            view["output"] = ctx.state.edited_text(task_id, task.attempt)
    return view


def deliver_callbacks(
    ctx: NightContext, *, session: requests.Session | None = None, sleep: Callable[[float], None] | None = None
) -> list[str]:
    """POST each decided task's decision to its callback_url, once per attempt; returns the problems (each
    task stays due and is tried again at the next harvest)."""
    api = ctx.config.api
    if api is None:
        return []
    due = ctx.state.intake_callbacks_due()
    if not due:
        return []
    secret = (ctx.env.get(api.callback_secret_env or "") or "").strip()
    try:
        signing_key(secret, name=api.callback_secret_env or "api.callback_secret_env")
    except ConfigError as exc:
        return [f"callbacks wait: {exc.problems[0].message}"]
    http = session or requests.Session()
    wait = sleep or sync_sleep(ctx)
    problems = []
    for record, attempt in due:
        problem = _send(ctx, http, record, attempt, secret, wait)
        ctx.state.intake_callback_result(record.task_id, attempt, now=ctx.now(), error=problem)
        if problem is not None:
            problems.append(f"{record.task_id}: callback not delivered yet: {problem}")
            log.warning("intake callback for task %s: %s", record.task_id, problem)
        else:
            ctx.state.audit("intake_callback", now=ctx.now(), task_id=record.task_id, detail={"attempt": attempt})
    return problems


def _send(
    ctx: NightContext,
    http: requests.Session,
    record: IntakeTask,
    attempt: int,
    secret: str,
    sleep: Callable[[float], None],
) -> str | None:
    api = ctx.config.api
    assert api is not None and record.callback_url is not None
    view = task_view(ctx, record.task_id) or {}
    key = f"{record.task_id}:{attempt}"
    payload = {
        "type": "task.decided",
        "idempotency_key": key,
        "task_id": record.task_id,
        "attempt": attempt,
        "workflow": view.get("type"),
        "status": view.get("status"),
        "decision": view.get("decision"),
        "text": view.get("output"),
    }
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return signed_post(
        http,
        record.callback_url,
        body,
        key=key,
        secret=secret,
        now=ctx.now,
        timeout_s=api.callback_timeout_s,
        tries=api.callback_tries,
        sleep=sleep,
    )
