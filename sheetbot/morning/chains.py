"""Chained workflows (issue 14): an approved row's output becomes a new row for the next workflow.

```yaml
competitor_scan:
  on_approve: {queue: {workflow: ad_variants, input: "{{output}}", priority: P2}}
```

Exactly one child row per approval, even when sheetbot is killed between the decision and the board's write:

1. the harvest records the *intent* (sheetbot/state/chains.py) in the same transaction as the decision, with the
   child's input already rendered and its id fixed: ``<parent>.<workflow>`` (``<parent>.<workflow>.<n>`` when
   one fan-out names a workflow twice);
2. after the harvest's write, every pending intent whose id is neither on the board nor in the state is
   appended, all in one call (AppendsRows, sheetbot/boards/capabilities.py);
3. only then the intents are marked done.

A kill before 2 leaves the intent pending: the next harvest appends it. A kill between 2 and 3 leaves the row on
the board: the next harvest finds its id there and only marks the intent done. The child row is `queued` with a
`parent` cell naming the row it came from; the next lock takes it like any row a person typed.

The input template is rendered once, in one pass (sheetbot/night/templates.py): `{{output}}` (the reviewer's
text for an edit, else the approved answer; a structured answer as its readable lines), `{{input}}` and the
structured answer's fields. What it inserts is never scanned again, and the boards write every value as text,
so an output holding ``{{input}}`` or ``=HYPERLINK(…)`` reaches the child's cell exactly as written.
"""

from __future__ import annotations

import json
import logging

from sheetbot.boards.base import CellValue
from sheetbot.config.models import WorkflowConfig
from sheetbot.config.outputs import cells, readable
from sheetbot.morning.appending import append_missing
from sheetbot.night.context import NightContext
from sheetbot.night.templates import render
from sheetbot.state import Task
from sheetbot.state.chains import ChainIntent
from sheetbot.status import Status

log = logging.getLogger(__name__)


def child_ids(parent: str, workflow: WorkflowConfig) -> list[str]:
    """The ids of the rows an approval of ``parent`` adds, one per `queue:` entry, in order."""
    targets = [entry.workflow for entry in workflow.on_approve.queues] if workflow.on_approve else []
    return [
        f"{parent}.{target}" if targets.count(target) == 1 else f"{parent}.{target}.{index}"
        for index, target in enumerate(targets)
    ]


def queue_children(ctx: NightContext, task: Task) -> int:
    """Called by the harvest for an approve or edit, inside its transaction: record each chained row to add.
    Returns how many intents were recorded (0 for a workflow without `queue:`, or an approval seen before)."""
    wf = ctx.config.workflows.get(task.workflow or "")
    if wf is None or wf.on_approve is None or not wf.on_approve.queues:
        return 0
    full = ctx.state.tasks([task.task_id]).get(task.task_id)  # the phase's tasks carry no snapshot
    if full is None or full.status not in (Status.APPROVED, Status.EDITED):
        return 0
    values = _values(ctx, full, wf)
    added = 0
    for index, (entry, child) in enumerate(zip(wf.on_approve.queues, child_ids(task.task_id, wf), strict=True)):
        text = render(entry.input, lambda name: values.get(name, ""))
        intent = ChainIntent(task.task_id, index, child, entry.workflow, text, entry.priority)
        added += ctx.state.add_chain_intent(intent, attempt=full.attempt, now=ctx.now())
    return added


def _values(ctx: NightContext, task: Task, wf: WorkflowConfig) -> dict[str, str]:
    """What the input template may use: output, input and the structured answer's fields, as text."""
    stored = ctx.state.final_output(task.task_id, task.attempt)
    answer = (stored.output or "") if stored is not None else ""
    values: dict[str, str] = {"input": task.snapshot.get(ctx.col["input"], "")}
    if wf.outputs:
        try:
            parsed = json.loads(answer)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            for name, value in cells(wf.outputs, parsed).items():  # 7, not 7.0: as readable() shows it
                values[name] = str(int(value) if isinstance(value, float) and value.is_integer() else value)
            answer = readable(wf.outputs, parsed)
    edited = ctx.state.edited_text(task.task_id, task.attempt) if task.status == Status.EDITED else None
    values["output"] = edited if edited is not None else answer
    return values


def append_children(ctx: NightContext) -> tuple[list[str], str | None]:
    """Add every pending chained row the board does not have yet, in one call, then mark them done.
    Returns (the child ids now on the board, why some are not: None if all are)."""
    pending = ctx.state.chain_intents_pending()
    if not pending:
        return [], None
    problem = append_missing(ctx, {i.child_id: _row(ctx, i) for i in pending}, what="chained rows")
    if problem is not None:
        return [], problem
    now = ctx.now()
    with ctx.state.transaction():
        ctx.state.chain_intents_done([i.child_id for i in pending], now=now)
        for intent in pending:
            detail = {"parent": intent.parent, "workflow": intent.workflow}
            ctx.state.audit("chained", now=now, task_id=intent.child_id, detail=detail)
    return [i.child_id for i in pending], None


def _row(ctx: NightContext, intent: ChainIntent) -> dict[str, CellValue]:
    col = ctx.col
    row: dict[str, CellValue] = {
        col["id"]: intent.child_id,
        col["type"]: intent.workflow,
        col["input"]: intent.input,
        col["status"]: str(Status.QUEUED),
        col["parent"]: intent.parent,
    }
    if intent.priority:
        row[col["priority"]] = intent.priority
    return row
