"""Bring the board up to date with the state: every dirty task, one write."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from sheetbot.boards.base import CellValue, RowUpdate, Sheet, WriteResult
from sheetbot.boards.capabilities import read_then_write
from sheetbot.boards.values import cut_marker, fit_cell
from sheetbot.config.outputs import cells, readable
from sheetbot.errors import BoardError
from sheetbot.night.context import NightContext
from sheetbot.night.fallback import shows_model
from sheetbot.night.identify import Identified
from sheetbot.safety.secrets import scrub
from sheetbot.state import BoardProjection
from sheetbot.status import Status

#: Opens each line of the `checklist` cell: an item still to tick.
CHECKBOX = "\u2610"
#: Statuses whose row shows the task's output.
WITH_OUTPUT = frozenset({Status.REVIEW, Status.APPROVED, Status.EDITED, Status.PUBLISHED, Status.REWORK})


@dataclass
class WriteBack:
    written: int = 0
    #: Task ids whose row is gone from the board; their outputs stay in the state.
    missing: list[str] = field(default_factory=list)
    #: Task id → why the board refused the row's cells; the other rows were written.
    refused: dict[str, str] = field(default_factory=dict)


def projection_cells(ctx: NightContext, p: BoardProjection) -> dict[str, CellValue]:
    col = ctx.col
    cells: dict[str, CellValue] = {
        col["status"]: str(p.status),
        col["night"]: p.night or "",
        col["error"]: scrub(p.error) if p.error else p.error,
        # 0 is a cost (a local model's): blank only for a row that has no answer and cost nothing.
        col["cost"]: round(p.cost_usd, 6) if p.cost_usd or p.status in WITH_OUTPUT else None,
    }
    if p.status in WITH_OUTPUT and shows_model(ctx.config):  # which model made the output (issue 14)
        cells[col["model"]] = p.model
    if p.output is not None:
        cells.update(_output_cells(ctx, p.workflow, p.output))
        cells.update(checklist_cells(ctx, p.workflow))
        cells.update(checks_cells(ctx, p))
    if p.clear_review:
        # A new output is up for review: yesterday's decision must not be read as today's.
        cells[col["review"]] = None
        cells[col["edited_output"]] = None
        if ctx.config.board.reviewer_column:  # and yesterday's name must not sign today's decision
            cells[col["reviewer"]] = None
    return fit_cells(cells, ctx.board.max_cell_units, task_id=p.task_id, error_column=col["error"])


def checklist_cells(ctx: NightContext, workflow: str | None) -> dict[str, CellValue]:
    """The workflow's approval criteria beside its output, one "☐ item" a line, so the reviewer decides
    against them (issue 13). Written with every new output; blank for a workflow without a checklist.
    Nothing when no workflow has a checklist: the board then has no such column."""
    if not any(wf.checklist for wf in ctx.config.workflows.values()):
        return {}
    wf = ctx.config.workflows.get(workflow or "")
    items = [item.strip() for item in (wf.checklist if wf is not None else []) if item.strip()]
    return {ctx.col["checklist"]: "\n".join(f"{CHECKBOX} {item}" for item in items) or None}


def checks_cells(ctx: NightContext, p: BoardProjection) -> dict[str, CellValue]:
    """The self-check's verdict for this output (sheetbot/night/self_check.py), blank when it has none yet.
    Nothing when no workflow has a self-check: the board then has no such column."""
    if not any(wf.self_check for wf in ctx.config.workflows.values()):
        return {}
    return {ctx.col["checks"]: p.checks}


def fit_cells(
    values: Mapping[str, CellValue], limit_units: int, *, task_id: str, error_column: str
) -> dict[str, CellValue]:
    """Every text cut to what the board's cell holds, in the unit the board counts.

    A cut cell ends with a marker naming `sheetbot show ID` (the state keeps the whole text), and the
    row's error says which columns were cut, so a reviewer never approves half an answer unawares.
    """
    fitted: dict[str, CellValue] = dict(values)
    notes = []
    for column, value in values.items():
        if column == error_column or not isinstance(value, str):
            continue
        text, omitted = fit_cell(value, limit_units, lambda n: cut_marker(n, task_id))
        if omitted:
            fitted[column] = text
            notes.append(f"{column} cut to fit the board's cell ({omitted:,} characters left out)")
    if notes:
        note = f"{'; '.join(notes)}: `sheetbot show {task_id}` prints the whole text"
        error = fitted.get(error_column)
        fitted[error_column] = f"{error}; {note}" if isinstance(error, str) and error else note
    error = fitted.get(error_column)
    if isinstance(error, str):
        fitted[error_column] = fit_cell(error, limit_units, lambda n: cut_marker(n, task_id))[0]
    return fitted


def shown_output(ctx: NightContext, task_id: str, workflow: str | None, output: str) -> str:
    """The text sheetbot writes into the `output` cell for this answer: readable for a structured one, cut
    to the board's cell (what a phase compares the board against, sheetbot/night/repair.py)."""
    column = ctx.col["output"]
    cells = fit_cells(_output_cells(ctx, workflow, output), ctx.board.max_cell_units, task_id=task_id, error_column="")
    value = cells.get(column)
    return value if isinstance(value, str) else ""


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
    projections, updates = _planned(ctx, extra)
    if not updates:
        return WriteBack()
    return _written(ctx, projections, ctx.board.write(updates))


def _planned(ctx: NightContext, extra: Sequence[RowUpdate]) -> tuple[list[BoardProjection], list[RowUpdate]]:
    """The dirty tasks, and the updates that bring their rows up to date (``extra`` merged in)."""
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
    return projections, updates


def _written(ctx: NightContext, projections: Sequence[BoardProjection], result: WriteResult) -> WriteBack:
    """After the board took the write: what it refused, clean marks, the audit."""
    missing = set(result.missing)
    refused = dict(result.refused)
    if refused:
        _say_refused(ctx, projections, refused)
    ctx.state.mark_synced(p.task_id for p in projections if p.task_id not in missing and p.task_id not in refused)
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
    for task_id, reason in sorted(refused.items()):
        detail = {"board": ctx.board.describe(), "reason": reason}
        ctx.state.audit("write_refused", now=now, task_id=task_id, detail=detail)
    return WriteBack(written=result.written, missing=sorted(missing), refused=refused)


def _say_refused(ctx: NightContext, projections: Sequence[BoardProjection], refused: Mapping[str, str]) -> None:
    """Rows the board would not take get their status and the reason, without the cells it refused.

    One try, no more: the rows stay dirty, so the next phase sends everything again (a refusal may pass).
    """
    col = ctx.col
    updates = []
    for p in projections:
        if p.task_id in refused:
            error = (
                f"the board refused this row's cells ({refused[p.task_id]}): the output is kept; "
                f"`sheetbot show {p.task_id}` prints it"
            )
            values: dict[str, CellValue] = {col["status"]: str(p.status), col["night"]: p.night or ""}
            values[col["error"]] = scrub(error)
            fitted = fit_cells(values, ctx.board.max_cell_units, task_id=p.task_id, error_column=col["error"])
            updates.append(RowUpdate(p.task_id, fitted))
    if updates:
        with contextlib.suppress(BoardError):  # the rows written in the main write stay written
            ctx.board.write(updates)


def write_with_ids(ctx: NightContext, claims: Sequence[RowUpdate], new: Sequence[str]) -> WriteBack:
    """write_back with id claims; a new task whose row changed before it got its id is forgotten (the
    row gets an id next phase). ``missing`` holds the ids of known tasks whose rows are gone."""
    # A kill after the board's save and before the caller's commit must not leave ids nobody knows.
    ctx.state.note_claims(c.task_id for c in claims)
    return _new_ones_kept(ctx, new, write_back(ctx, extra=claims))


def reconcile(ctx: NightContext, plan: Callable[[Sheet], Identified]) -> tuple[Identified, WriteBack]:
    """Read the board, ``plan`` from what it shows (identify its rows, change the state), then write_with_ids:
    on a board whose write reads the rows again anyway (ReadsThenWrites: Google Sheets, Airtable), the read is
    the write's own, one read of the whole board fewer. A read that fails raises before ``plan`` is called.

    One transaction from ``plan`` to the write's bookkeeping, begun once the board is read: a slow read (100
    requests for 10,000 Airtable rows) holds no lock on the state, as a read before the transaction did."""
    held: list[tuple[Identified, list[BoardProjection], list[RowUpdate]]] = []
    with contextlib.ExitStack() as stack:

        def updates(sheet: Sheet) -> list[RowUpdate]:
            stack.enter_context(ctx.state.transaction())  # rolled back if anything up to the write's end fails
            ident = plan(sheet)
            ctx.state.note_claims(c.task_id for c in ident.claims)  # as write_with_ids, before the board is touched
            projections, planned = _planned(ctx, ident.claims)
            held.append((ident, projections, planned))
            return planned

        _, result = read_then_write(ctx.board, updates)
        ident, projections, sent = held[0]
        if not sent:
            return ident, WriteBack()  # nothing was sent (write_back's empty write)
        return ident, _new_ones_kept(ctx, ident.new, _written(ctx, projections, result))


def _new_ones_kept(ctx: NightContext, new: Sequence[str], result: WriteBack) -> WriteBack:
    """A new task whose row changed before it got its id is forgotten (the row gets an id next phase)."""
    lost = set(result.missing) & set(new)
    for task_id in lost:
        ctx.state.forget(task_id)
    return WriteBack(written=result.written, missing=sorted(set(result.missing) - lost))
