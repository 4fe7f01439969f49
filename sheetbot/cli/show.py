"""`sheetbot show ID`: a row's whole stored output, for the cell the board could not hold in full.

A board cuts long text to what its cells hold (sheetbot/night/writeback.py); the state keeps every word.
This reads the state only: no board, no provider, nothing written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from sheetbot.config.models import Config
from sheetbot.config.outputs import cells
from sheetbot.errors import SheetbotError
from sheetbot.state import Attempt, State


@dataclass
class Shown:
    task_id: str
    status: str
    workflow: str | None
    attempt: int | None
    night: str | None
    error: str
    #: The final answer as stored (JSON text for a structured workflow); None before any answer.
    output: str | None
    #: (step, text): each step's answer, or its error if the step has no answer.
    steps: list[tuple[str, str]] = field(default_factory=list)
    #: A structured answer's fields, as they go to their columns.
    fields: dict[str, str | int | float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.task_id,
            "status": self.status,
            "workflow": self.workflow,
            "attempt": self.attempt,
            "night": self.night,
            "error": self.error,
            "output": self.output,
            "steps": [{"step": step, "text": text} for step, text in self.steps],
            "fields": self.fields,
        }


def show(state: State, config: Config, task_id: str) -> Shown:
    """What the state holds for ``task_id``; a one-line error naming the id if it holds nothing."""
    task = state.task(task_id.strip())
    if task is None:
        raise SheetbotError(
            f"no row with id {task_id!r} in the state {config.state_path}: copy the id from the board's "
            f"`{config.columns.id}` column"
        )
    calls = state.latest_attempt(task.task_id)
    last: dict[str, Attempt] = {}
    for call in calls:  # per step, the answer if there is one, else the latest failure
        if call.ok or not (call.step in last and last[call.step].ok):
            last[call.step] = call
    final = next((c for c in reversed(calls) if c.ok and c.final), None)
    shown = Shown(
        task_id=task.task_id,
        status=str(task.status),
        workflow=task.workflow,
        attempt=calls[0].attempt if calls else None,
        night=calls[0].night if calls else task.night,
        error=task.error,
        output=final.output if final else None,
    )
    if len(last) > 1:
        shown.steps = [(step, (c.output or "") if c.ok else f"(failed: {c.error})") for step, c in last.items()]
    wf = config.workflows.get(task.workflow or "")
    if final is not None and wf is not None and wf.outputs:
        try:
            values = json.loads(final.output or "")
        except ValueError:
            values = None
        if isinstance(values, dict):
            shown.fields = cells(wf.outputs, values)
    return shown


def describe(shown: Shown) -> str:
    """The text `show` prints: a heading line, the error, then each step or field in full."""
    where = ", ".join(
        part
        for part in (
            shown.workflow,
            f"attempt {shown.attempt}" if shown.attempt else "",
            f"night {shown.night}" if shown.night else "",
        )
        if part
    )
    lines = [f"{shown.task_id}: {shown.status}" + (f" ({where})" if where else "")]
    if shown.error:
        lines.append(f"error: {shown.error}")
    for step, text in shown.steps:
        lines += [f"--- step {step} ---", text]
    if shown.fields:
        for name, value in shown.fields.items():
            lines += [f"--- {name} ---", str(value)]
    elif shown.output is not None and not shown.steps:
        lines += ["--- output ---", shown.output]
    elif shown.output is None:
        lines.append("(no output stored yet)")
    return "\n".join(lines)
