"""The board and the state agree, or a person is told why not.

The state is the truth about sheetbot's own cells. Every phase reads the board anyway, so every phase
compares what each row shows (status, night, output, error, cost, the structured outputs' columns) with what
the state holds and rewrites the rows that disagree, in the phase's one write: an old copy of the workbook
saved over the board at 9am, or cells a person typed over, are put back without paying for anything again.

The one disagreement the state cannot settle is a row it has never heard of in a status only sheetbot writes
(locked, review, approved, …): the state file was emptied or replaced (or a kill landed between the lock's save
and its commit). Guessing would drop a reviewer's decision or pay for a row twice, so every phase refuses,
names the rows and stops, until the admin either puts the right state file back or adopts the rows
(``--adopt-unknown``): each is taken over as the board shows it — its output and decision kept, a row that was
locked or running sent back to the queue (its output, if it was ever paid for, went with the old state).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from sheetbot.boards.base import BoardRow, CellValue, Sheet
from sheetbot.boards.values import plain_text
from sheetbot.errors import UnknownRowsError
from sheetbot.night.context import NightContext
from sheetbot.night.identify import Identified, identify
from sheetbot.night.writeback import WITH_OUTPUT, projection_cells, write_with_ids
from sheetbot.state import BoardProjection, Task
from sheetbot.status import Status, parse_status

#: How many ids an error names before "and N more".
SHOWN_IDS = 5

#: What an unknown row becomes when adopted, by the status it shows; the rest keep their status.
_ADOPTED_AS = {
    Status.LOCKED: Status.DEFERRED,  # never ran as far as this state knows: it runs at the next cutoff
    Status.RUNNING: Status.DEFERRED,
}
_ADOPTED_NOTE = "deferred: taken over by `--adopt-unknown` (the state file did not know this row); it runs later"


def owned_columns(ctx: NightContext) -> frozenset[str]:
    """The columns sheetbot writes: they tell nothing about which of two copies a person meant."""
    col = ctx.col
    people = {col["type"], col["input"], col["priority"]}
    outputs = {f.name for wf in ctx.config.workflows.values() for f in wf.outputs}
    return frozenset(set(col.values()) - people) | outputs


def take_stock(ctx: NightContext, sheet: Sheet, *, refuse: bool = True) -> tuple[Identified, dict[str, Task]]:
    """Identify the rows (ids for new rows and copies), settle unknown rows (refuse, or adopt with the admin's
    flag), add the new tasks and mark every row the board shows wrongly for this phase's write.

    Raises UnknownRowsError before anything changes when ``refuse`` and unknown rows are there."""
    state = ctx.state
    tasks = state.tasks()
    ident = identify(
        sheet,
        tasks,
        ctx.col,
        snapshot_of=lambda task_id: state.tasks([task_id])[task_id].snapshot,
        owned=owned_columns(ctx),
    )
    if ident.unknown and not ctx.adopt_unknown and refuse:
        raise unknown_rows_error(ctx, ident.unknown)
    now = ctx.now()
    with state.transaction():
        if ctx.adopt_unknown:
            for task_id, row in ident.unknown.items():
                tasks[task_id] = _adopt(ctx, task_id, row)
                ident.rows[task_id] = row
            ident.unknown = {}
        for task_id in ident.new:
            tasks[task_id] = state.add_task(task_id, now=now)
        ident.repaired = mark_stale(ctx, ident.rows, tasks)
    return ident, tasks


def refuse_unknown(ctx: NightContext, sheet: Sheet) -> None:
    """The check alone, for a phase that must not start (a run, before any call) while rows are unknown."""
    if ctx.adopt_unknown:
        return
    ident = identify(sheet, ctx.state.tasks(), ctx.col)
    if ident.unknown:
        raise unknown_rows_error(ctx, ident.unknown)


def unknown_rows_error(ctx: NightContext, unknown: Mapping[str, BoardRow]) -> UnknownRowsError:
    status = ctx.col["status"]
    named = [f"{task_id} {row.get(status).strip().lower()}" for task_id, row in list(unknown.items())[:SHOWN_IDS]]
    more = f" and {len(unknown) - SHOWN_IDS} more" if len(unknown) > SHOWN_IDS else ""
    return UnknownRowsError(
        f"{ctx.board.describe()} shows {len(unknown)} row(s) in sheetbot statuses that the state file "
        f"{ctx.state.path} does not know ({', '.join(named)}{more}): if the state file was emptied or replaced, "
        "put the right one back; to take the rows over as the board shows them, run any phase with "
        "--adopt-unknown (e.g. `sheetbot harvest --adopt-unknown`: decisions are kept, locked rows go back to "
        "the queue), or clear their status cells to start them as new rows",
        task_ids=list(unknown),
    )


def _adopt(ctx: NightContext, task_id: str, row: BoardRow) -> Task:
    col, state, now = ctx.col, ctx.state, ctx.now()
    shown = parse_status(row.get(col["status"])) or Status.QUEUED
    status = _ADOPTED_AS.get(shown, shown)
    kind = row.get(col["type"]).strip()
    output = row.get(col["output"]) or None
    fields: dict[str, object] = {
        "workflow": kind if kind in ctx.config.workflows else None,
        "night": row.get(col["night"]).strip() or None,
        "snapshot": dict(row.values),
        "error": _ADOPTED_NOTE if status != shown else row.get(col["error"]),
    }
    if status == Status.FAILED:
        fields["failure"] = "call"  # it may have been paid for: a person sets `queued` to try again
    if status == Status.REWORK:
        fields |= {"attempt": 2, "rework_notes": row.get(col["notes"]).strip(), "previous_output": output}
    with_output = status in WITH_OUTPUT and output is not None
    state.adopt_task(
        task_id,
        status,
        now=now,
        output=output if with_output else None,
        cost_usd=_number(row.get(col["cost"])) if with_output else 0.0,
        **fields,
    )
    state.audit("adopt", now=now, task_id=task_id, detail={"shown": str(shown), "status": str(status)})
    task = state.task(task_id)
    assert task is not None
    return task


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        return 0.0
    return value if math.isfinite(value) else 0.0


def mark_stale(ctx: NightContext, rows: Mapping[str, BoardRow], tasks: Mapping[str, Task]) -> int:
    """Mark dirty every task whose row shows anything of sheetbot's other than what the state holds.

    Someone may have saved an old copy over the board (Excel open all night on a laptop), or typed over
    sheetbot's cells: the state is the truth, and the phase's write puts the cells back. A person setting
    a failed row to `queued` is a request, not drift, and is left to the lifecycle. One query for the
    expected values of every task; rows already due a write are skipped.
    """
    col = ctx.col
    stale = []
    for p in ctx.state.projections(with_output=WITH_OUTPUT):
        row = rows.get(p.task_id)
        task = tasks.get(p.task_id)
        if row is None or task is None or task.dirty:
            continue
        shown = parse_status(row.get(col["status"]))
        if shown == Status.QUEUED and p.status == Status.FAILED:
            continue
        if _disagrees(ctx, row, p, shown):
            stale.append(p.task_id)
    if stale:
        ctx.state.mark_dirty(stale)
    return len(stale)


def _disagrees(ctx: NightContext, row: BoardRow, p: BoardProjection, shown: Status | None) -> bool:
    status = ctx.col["status"]
    for column, value in projection_cells(ctx, p).items():
        if column == status:
            # `running` lives in the state only: the board shows `locked` until the output arrives.
            if shown != p.status and not (p.status == Status.RUNNING and shown == Status.LOCKED):
                return True
        elif column in row.values and not _same(row.get(column), value):
            return True
    return False


def _same(shown: str, value: CellValue) -> bool:
    """Does the cell's text say what sheetbot would write? Numbers by value, text as the board keeps it."""
    if value is None or value == "":
        return not shown.strip()
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return math.isclose(float(shown), float(value), rel_tol=1e-9, abs_tol=1e-12)
        except ValueError:
            return False
    return _norm(shown) == _norm(plain_text(value))


def _norm(text: str) -> str:
    return text.replace("\r\n", "\n").strip()


def repair(ctx: NightContext) -> Identified:
    """Put back what the state holds (and ids on new rows and copies), nothing else: what `serve` does when
    the workbook changed under it. One read; one write, and only if something disagreed."""
    sheet = ctx.board.read()
    with ctx.state.transaction():  # new tasks are kept only if their ids reached the board
        ident, _ = take_stock(ctx, sheet)
        write_with_ids(ctx, ident.claims, ident.new)
    return ident
