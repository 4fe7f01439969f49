"""Bring the board up to date with the state: every dirty task, one write."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from sheetbot.boards.base import CellValue, RowUpdate
from sheetbot.night.context import NightContext
from sheetbot.state import BoardProjection
from sheetbot.status import Status
from sheetbot.structured import cells, readable

#: Statuses whose row shows the task's output.
WITH_OUTPUT = frozenset({Status.REVIEW, Status.APPROVED, Status.EDITED, Status.PUBLISHED, Status.REWORK})


@dataclass
class WriteBack:
    written: int = 0
    #: Task ids whose row is gone from the board; their outputs stay in the state.
    missing: list[str] = field(default_factory=list)


def projection_cells(ctx: NightContext, p: BoardProjection) -> dict[str, CellValue]:
    col = ctx.col
    cells: dict[str, CellValue] = {
        col["status"]: str(p.status),
        col["night"]: p.night or "",
        col["error"]: p.error,
        col["cost"]: round(p.cost_usd, 6) if p.cost_usd else None,
    }
    if p.output is not None:
        cells.update(_output_cells(ctx, p.workflow, p.output))
    if p.clear_review:
        # A new output is up for review: yesterday's decision must not be read as today's.
        cells[col["review"]] = None
        cells[col["edited_output"]] = None
    return cells


def _output_cells(ctx: NightContext, workflow: str | None, output: str) -> dict[str, CellValue]:
    """A structured answer (stored as JSON) goes to its fields' columns and, readable, to `output`."""
    wf = ctx.config.workflows.get(workflow or "")
    if wf is not None and wf.outputs:
        try:
            values = json.loads(output)
        except ValueError:
            values = None
        if isinstance(values, dict):
            return {ctx.col["output"]: readable(wf.outputs, values), **cells(wf.outputs, values)}
    return {ctx.col["output"]: output}


def write_back(ctx: NightContext, extra: Sequence[RowUpdate] = ()) -> WriteBack:
    """Write ``extra`` (ids for new rows) and every dirty task in one board call, then mark them clean.

    If the write raises, nothing is marked clean: the next phase writes the same values again.
    """
    projections = ctx.state.dirty()
    updates = list(extra)
    extra_ids = {u.task_id for u in extra}
    merged: dict[str, int] = {u.task_id: i for i, u in enumerate(updates)}
    for p in projections:
        cells = projection_cells(ctx, p)
        if p.task_id in extra_ids:
            index = merged[p.task_id]
            prior = updates[index]
            updates[index] = RowUpdate(task_id=prior.task_id, values={**prior.values, **cells}, claim=prior.claim)
        else:
            updates.append(RowUpdate(task_id=p.task_id, values=cells))
    if not updates:
        return WriteBack()
    result = ctx.board.write(updates)
    missing = set(result.missing)
    ctx.state.mark_synced(p.task_id for p in projections if p.task_id not in missing)
    now = ctx.now()
    ctx.state.audit(
        "write",
        now=now,
        detail={
            "board": ctx.board.describe(),
            "rows": result.written,
            "statuses": {p.task_id: str(p.status) for p in projections if p.task_id not in missing},
        },
    )
    for task_id in sorted(missing):
        ctx.state.audit("row_missing", now=now, task_id=task_id, detail={"board": ctx.board.describe()})
    return WriteBack(written=result.written, missing=sorted(missing))


def write_with_ids(ctx: NightContext, claims: Sequence[RowUpdate], new: Sequence[str]) -> WriteBack:
    """write_back with id claims; a new task whose row changed before it got its id is forgotten (the
    row gets an id next phase). ``missing`` holds the ids of known tasks whose rows are gone."""
    result = write_back(ctx, extra=claims)
    lost = set(result.missing) & set(new)
    for task_id in lost:
        ctx.state.forget(task_id)
    return WriteBack(written=result.written, missing=sorted(set(result.missing) - lost))
