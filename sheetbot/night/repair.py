"""The board and the state agree, or a person is told why not.

The state is the truth about sheetbot's own cells. Every phase reads the board anyway, so every phase
compares what each row shows (status, night, output, error, cost, the structured outputs' columns) with what
the state holds and rewrites the rows that disagree, in the phase's one write: an old copy of the workbook
saved over the board at 9am, or cells a person typed over, are put back without paying for anything again.

The one disagreement the state cannot settle is a row it has never heard of in a status only sheetbot writes
(locked, review, approved, …): the state file was emptied or replaced. (A kill between a phase's board save and
its commit leaves ids the state does not know too; those are in the claims file, sheetbot.state.claims.)
Guessing would drop a reviewer's decision or pay for a row twice, so every phase refuses,
names the rows and stops, until the admin either puts the right state file back or adopts the rows
(``--adopt-unknown``): each is taken over as the board shows it — its output and decision kept, a row that was
locked or running sent back to the queue (its output, if it was ever paid for, went with the old state).

Its sibling is a state file put back from an older copy of itself (a backup restored, a sync tool rolling it
back): the state knows the rows but is *behind* the board. Left alone, every phase would "repair" a row showing
`review` back to `locked`, `run` would pay for it again and the reviewer's `approve` would be cleared. Such rows
are treated exactly like unknown rows (refused and named, or taken over with ``--adopt-unknown``, the row's
status, output and cost kept as the board shows them). The rule, for a row whose id the state knows:

* the board shows a status with an output (review, approved, edited, published, rework) and a non-empty output;
* the state's status has no output to show (queued, locked, running, deferred, failed); and
* the board's output is not what sheetbot would have written for *any* answer the state holds for that task
  (every ok final output of every attempt, rendered as the output cell is written: readable for a structured
  answer, cut to the board's cell with its marker; a cut by an older rule counts if the text before the marker
  begins the answer), nor the text the row showed when it was last locked (its snapshot).

Why these three, and why not less: the state being *ahead* is normal life and must stay silent. A stale copy of
the workbook saved over the board shows older statuses and outputs, which the state has (a board behind the
state is repaired). Reviewers write ahead of the state all day, but in the review column, on rows the state
already has in `review`. A rework locked again the same evening leaves the state at `locked` (attempt 2) while
an old copy of the board may still show `review` with attempt 1's output: the state stored that output, so it
matches, whichever attempt it was. A person who typed over the output cell of a row waiting for its rework:
the lock's snapshot saw that text. A failed row a person set to `queued` shows no output status. What remains is
an answer on the board the state never stored, for a row the state believes has none: only a newer state file
can have written it. Comparing against every stored answer, not the latest, is what keeps the rework case quiet;
the cost is one query per 500 candidate rows, and candidates (an output status on the board, none in the state)
are rare outside a rollback.

The one misfire left: text a person typed over the output cell of a row in `review`, kept only in an old copy of
the workbook saved over the board after the row was locked again (every phase had put sheetbot's output back,
so no stored answer and no snapshot holds it). That row is refused like a rollback; clearing the typed text or
``--adopt-unknown`` settles it. Left alone: a state behind in status only (it says `review`, the board shows
`approved`): a person may type a status, and harvest reads the decision from the review column again, so nothing
is paid twice or lost.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from sheetbot.boards.base import BoardRow, CellValue, Sheet
from sheetbot.boards.values import cut_marker, plain_text
from sheetbot.errors import UnknownRowsError
from sheetbot.night.context import NightContext
from sheetbot.night.identify import Identified, identify
from sheetbot.night.writeback import WITH_OUTPUT, projection_cells, reconcile, shown_output
from sheetbot.state import BoardProjection, Task
from sheetbot.state.records import AdoptFields, TakeOverFields
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
    state.settle_claims(tasks)  # the phase that gave these ids out committed: they are ordinary tasks now
    ident = identify(
        sheet,
        tasks,
        ctx.col,
        snapshot_of=lambda task_id: state.tasks([task_id])[task_id].snapshot,
        owned=owned_columns(ctx),
        pending=state.pending_claims(),
    )
    behind = behind_rows(ctx, ident.rows, tasks)
    if (ident.unknown or behind) and not ctx.adopt_unknown and refuse:
        raise unknown_rows_error(ctx, {**ident.unknown, **behind})
    now = ctx.now()
    with state.transaction():
        if ctx.adopt_unknown:
            for task_id, row in ident.unknown.items():
                tasks[task_id] = _adopt(ctx, task_id, row)
                ident.rows[task_id] = row
            ident.unknown = {}
            for task_id, row in behind.items():
                tasks[task_id] = _take_over(ctx, tasks[task_id], row)
        else:
            for task_id in behind:  # neither repaired nor run: they wait for the admin
                del ident.rows[task_id]
            ident.behind = behind
        for task_id in ident.new:
            tasks[task_id] = state.add_task(task_id, now=now)
            if task_id in ident.notes:  # the claim writes the note; the state keeps it until the row is locked
                state.move(task_id, Status.QUEUED, now=now, error=ident.notes[task_id], board=False)
        ident.repaired = mark_stale(ctx, ident.rows, tasks)
    return ident, tasks


def refuse_unknown(ctx: NightContext, sheet: Sheet) -> None:
    """The check alone, for a phase that must not start (a run, before any call) while rows are unknown."""
    if ctx.adopt_unknown:
        return
    tasks = ctx.state.tasks()
    ident = identify(sheet, tasks, ctx.col, pending=ctx.state.pending_claims())
    behind = behind_rows(ctx, ident.rows, tasks)
    if ident.unknown or behind:
        raise unknown_rows_error(ctx, {**ident.unknown, **behind})


def unknown_rows_error(ctx: NightContext, unknown: Mapping[str, BoardRow]) -> UnknownRowsError:
    """Rows the state does not know, or is behind on (it knows them: then what it says is named too)."""
    status = ctx.col["status"]
    shown = list(unknown.items())[:SHOWN_IDS]
    known = ctx.state.tasks([task_id for task_id, _ in shown])
    named = [
        f"{task_id} {row.get(status).strip().lower()}"
        + (f", the state says {known[task_id].status}" if task_id in known else "")
        for task_id, row in shown
    ]
    more = f" and {len(unknown) - SHOWN_IDS} more" if len(unknown) > SHOWN_IDS else ""
    return UnknownRowsError(
        f"{ctx.board.describe()} shows {len(unknown)} row(s) in sheetbot statuses that the state file "
        f"{ctx.state.path} does not know or is behind on ({'; '.join(named)}{more}): if the state file was "
        "emptied, replaced or put back from an older copy (a backup, a sync tool), put the newest one back; to "
        "take the rows over as the board shows them, run any phase with --adopt-unknown (e.g. `sheetbot harvest "
        "--adopt-unknown`: outputs and decisions are kept, locked rows go back to the queue), or clear their "
        "status cells to start them as new rows",
        task_ids=list(unknown),
    )


#: A task in these statuses has no output on the board: a row showing one is showing an older attempt's.
_NO_OUTPUT = frozenset({Status.QUEUED, Status.LOCKED, Status.RUNNING, Status.DEFERRED, Status.FAILED})
#: How every cut cell's marker begins, whatever the task and the count (sheetbot.boards.values.cut_marker).
_CUT = cut_marker(0).split("0", 1)[0]


def behind_rows(ctx: NightContext, rows: Mapping[str, BoardRow], tasks: Mapping[str, Task]) -> dict[str, BoardRow]:
    """The rows whose board shows an answer a newer state file wrote: the rule and its reasons are in this
    module's docstring. ``tasks`` may be light (no snapshots); stored answers and snapshots are loaded only
    for the candidates, in one query per 500."""
    col = ctx.col
    candidates: dict[str, BoardRow] = {}
    for task_id, row in rows.items():
        task = tasks.get(task_id)
        if task is None or task.status not in _NO_OUTPUT:
            continue
        if parse_status(row.get(col["status"])) in WITH_OUTPUT and row.get(col["output"]).strip():
            candidates[task_id] = row
    if not candidates:
        return {}
    stored = ctx.state.final_outputs(candidates)
    behind = {}
    for task_id, row in candidates.items():
        text = row.get(col["output"])
        workflows = {tasks[task_id].workflow or ""}
        answers = stored.get(task_id, [])
        if not any(_shows(ctx, task_id, text, wf, out) for out_wf, out in answers for wf in workflows | {out_wf}):
            behind[task_id] = row
    if behind:  # a person's own text in the output cell, seen by the last lock
        full = ctx.state.tasks(behind)
        for task_id in [t for t in behind if _same(behind[t].get(col["output"]), full[t].snapshot.get(col["output"]))]:
            del behind[task_id]
    return behind


def _shows(ctx: NightContext, task_id: str, text: str, workflow: str, output: str) -> bool:
    """Does the output cell show this stored answer, as sheetbot writes it (or cut by an older rule)?"""
    written = shown_output(ctx, task_id, workflow, output)
    if _same(text, written):
        return True
    head = _norm(text).rpartition(_CUT)[0]
    return bool(head) and (_norm(written).startswith(head) or _norm(output).startswith(head))


def _take_over(ctx: NightContext, task: Task, row: BoardRow) -> Task:
    """A known task the state is behind on, taken over as the board shows it: its status, its output (kept
    as an adopted answer, so a decision waiting in the review column is harvested) and the cost the state
    lacks (the cost cell sums every attempt's)."""
    col, state, now = ctx.col, ctx.state, ctx.now()
    shown = parse_status(row.get(col["status"]))
    assert shown is not None
    output = row.get(col["output"])
    fields: TakeOverFields = {"night": row.get(col["night"]).strip() or task.night, "error": row.get(col["error"])}
    if shown == Status.REWORK:
        fields |= {
            "attempt": task.attempt + 1,
            "rework_notes": row.get(col["notes"]).strip(),
            "previous_output": output,
        }
    cost = max(0.0, _number(row.get(col["cost"])) - state.spent_usd(task_id=task.task_id))
    state.take_over_task(
        task.task_id, shown, now=now, output=output, output_attempt=task.attempt, cost_usd=cost, **fields
    )
    detail = {"shown": str(shown), "state": str(task.status), "behind": True}
    state.audit("adopt", now=now, task_id=task.task_id, detail=detail)
    taken = state.task(task.task_id)
    assert taken is not None
    return taken


def _adopt(ctx: NightContext, task_id: str, row: BoardRow) -> Task:
    col, state, now = ctx.col, ctx.state, ctx.now()
    shown = parse_status(row.get(col["status"])) or Status.QUEUED
    status = _ADOPTED_AS.get(shown, shown)
    kind = row.get(col["type"]).strip()
    output = row.get(col["output"]) or None
    fields: AdoptFields = {
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
    # New tasks are kept only if their ids reached the board: one transaction from take_stock to the write.
    return reconcile(ctx, lambda sheet: take_stock(ctx, sheet)[0])[0]
