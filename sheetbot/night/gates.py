"""Review gates between steps (issue 14): a step with `review: true` stops its row in `review`.

The row's `output` shows the step's answer under a marker line (``marker``) and its `error` cell says what
each choice does. The morning (``pass_gate``, called by the harvest) reads the choice:

- approve: the row goes back to `queued` and runs the next step at the next night's lock (with the step's
  `resume: same_window`, a decision harvested while tonight's window is open locks it into tonight);
- edit: the same, with the reviewer's text as ``{{steps.<name>}}`` (a pasted marker line is dropped);
- rework: the row goes to `rework` and the next night redoes that step with the notes (a new round).

Each round is kept in the state (sheetbot.state.gates) with every answer up to the gate, so the night
(``resume``) starts after the last passed gate and never calls an approved step again: not after a
restart, not when the final output is sent back for rework. The final output then goes to review as
usual; gate decisions are counted apart from it (`report`, the `gates` key of `report --json`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sheetbot.boards.base import BoardRow
from sheetbot.config.models import Config, StepConfig
from sheetbot.state import Task
from sheetbot.state.gates import GateRecord
from sheetbot.status import Decision, Status

if TYPE_CHECKING:  # the context imports the task runner, which imports this module
    from sheetbot.night.context import NightContext


def marker(step: str, index: int, total: int) -> str:
    """The line above a gated step's answer in `output`: what it is and what the reviewer is asked."""
    return f"[step {index + 1}/{total} {step} – approve to continue, edit or rework this step]"


def waiting_note(step: str, next_step: str) -> str:
    """The `error` cell of a row waiting at a gate: what each choice does."""
    return (
        f"waiting at step {step!r}: approve runs step {next_step!r} the next night; edit runs it on your text "
        f"in `edited_output`; rework redoes {step!r} with your notes"
    )


def round_key(step: str, round_: int) -> str:
    """The step name a gate round's call is stored under: a rework's answer never replaces the first."""
    return step if round_ <= 1 else f"{step}~{round_}"


@dataclass(frozen=True)
class Resume:
    """Where a task's steps go on from, given its gates: ``start`` is the first step to run or find stored."""

    start: int = 0
    done: dict[str, str] = field(default_factory=dict)
    #: The gated step being redone (rework), its round, the answer sent back and the reviewer's notes.
    redo: str = ""
    round: int = 1
    previous: str = ""
    notes: str = ""


def resume(gate: GateRecord | None, steps: Sequence[StepConfig]) -> Resume:
    """The task's latest gate round decides: passed → after it; reworked → that step again, next round."""
    names = [s.name for s in steps]
    if gate is None or gate.step not in names:
        return Resume()
    index = names.index(gate.step)
    before = {k: v for k, v in gate.outputs.items() if k != gate.step}
    if gate.decision in (Decision.APPROVE, Decision.EDIT):
        return Resume(start=index + 1, done={**before, gate.step: gate.text or ""})
    if gate.decision == Decision.REWORK:
        return Resume(
            start=index, done=before, redo=gate.step, round=gate.round + 1, previous=gate.output, notes=gate.notes or ""
        )
    return Resume(start=index, done=before, round=gate.round)  # still waiting: found stored, stops there again


def pass_gate(
    ctx: NightContext,
    task: Task,
    gate: GateRecord,
    choice: Decision,
    row: BoardRow,
    *,
    notes: str,
    reviewer: str | None,
) -> str | None:
    """Apply a reviewer's choice on a row waiting at a gate; the problem to show instead, if it cannot be."""
    col, state, now = ctx.col, ctx.state, ctx.now()
    if choice == Decision.REWORK:
        if not notes:
            return (
                f"you chose rework, but `{col['notes']}` is empty: say what to change in step {gate.step!r} "
                "there, or choose approve or edit"
            )
        state.decide_gate(gate.id, Decision.REWORK, text=None, notes=notes, reviewer=reviewer, now=now)
        note = f"step {gate.step!r} goes back for rework with your notes the next night"
        state.move(task.task_id, Status.REWORK, now=now, error=note, clear_review=1)
        return None
    text = gate.output
    if choice == Decision.EDIT:
        text = without_marker(row.get(col["edited_output"]))
        if not text.strip():
            return (
                f"you chose edit, but `{col['edited_output']}` is empty: paste your version of step "
                f"{gate.step!r} there, or choose approve"
            )
    state.decide_gate(gate.id, choice, text=text, notes=notes, reviewer=reviewer, now=now)
    after = next_step(ctx.config, task.workflow or "", gate.step)
    passed = "approved" if choice == Decision.APPROVE else "edited"
    window = ctx.night()
    if _resume_of(ctx.config, task.workflow or "", gate.step) == "same_window" and window.contains(now):
        # Locked into tonight as it stands (its snapshot kept): `run`, or serve's next tick, takes it now.
        note = f"step {gate.step!r} {passed}: {after!r} runs in tonight's window"
        state.move(task.task_id, Status.LOCKED, now=now, error=note, clear_review=1, night=window.night)
        workflow = task.workflow or ""
        state.night_task(window.night, task.task_id, workflow=workflow, attempt=task.attempt, outcome="locked")
        state.audit("lock_task", now=now, task_id=task.task_id, detail={"night": window.night, "gate": gate.step})
        return None
    note = f"step {gate.step!r} {passed}: {after!r} runs next night"
    state.move(task.task_id, Status.QUEUED, now=now, error=note, clear_review=1)
    return None


def _resume_of(config: Config, workflow: str, step: str) -> str:
    wf = config.workflows.get(workflow)
    found = [s for s in wf.steps if s.name == step] if wf is not None else []
    return found[0].resume if found else "next_night"


def without_marker(text: str) -> str:
    """A reviewer's edit with the marker line dropped, if they copied the whole `output` cell."""
    first, _, rest = text.partition("\n")
    if first.startswith("[step ") and first.rstrip().endswith("this step]"):
        return rest.lstrip("\n")
    return text


def gate_note(config: Config, workflow: str, step: str) -> str:
    """The `error` note of a row that stopped at ``step``'s gate tonight."""
    return waiting_note(step, next_step(config, workflow, step))


def next_step(config: Config, workflow: str, step: str) -> str:
    wf = config.workflows.get(workflow)
    names = [s.name for s in wf.steps] if wf is not None else []
    return names[names.index(step) + 1] if step in names[:-1] else "the next step"
