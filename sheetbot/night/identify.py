"""Which row is which task: ids for new rows, and a fresh id for a row copied together with its id.

People sort, insert, delete and copy rows at any time, so a row is known only by
its `id` cell. A copy carries its original's id; the original keeps it (the row
that matches what was locked best, else the first), and the copy becomes a new
task with sheetbot's cells cleared. A row with an id the state does not know, in
a status only sheetbot writes, is set apart: the state file was emptied or
replaced, and a person has to decide (sheetbot/night/repair.py). An id a person typed that a
spreadsheet would read as a formula (``=HYPERLINK(...)``, ``+1``) is replaced by a new one with a note in
the error cell: ids travel into CSV exports and other people's spreadsheets (sheetbot.safety.csvsafe).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

from sheetbot.boards.base import BoardRow, CellValue, Claim, RowUpdate, Sheet
from sheetbot.safety.csvsafe import looks_like_formula
from sheetbot.state import Task
from sheetbot.status import Status, parse_status

_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: ids get read aloud and typed


def new_id(taken: set[str]) -> str:
    while True:
        candidate = "t" + "".join(secrets.choice(_ALPHABET) for _ in range(7))
        if candidate not in taken:
            taken.add(candidate)
            return candidate


@dataclass
class Identified:
    #: task id → its row, in sheet order.
    rows: dict[str, BoardRow] = field(default_factory=dict)
    #: Updates that give rows their ids (new rows and copies), to send with the phase's write.
    claims: list[RowUpdate] = field(default_factory=list)
    #: Task ids sheetbot has not seen before (new rows, copies, rows whose id a person typed).
    new: list[str] = field(default_factory=list)
    #: Rows with an id the state does not know in a status only sheetbot writes (locked, review, approved, …):
    #: the state file was emptied or replaced. Not in ``rows``; a phase refuses or adopts them.
    unknown: dict[str, BoardRow] = field(default_factory=dict)
    #: Rows of tasks the state knows but is behind on (an older copy of the state file put back): the board
    #: shows an answer the state never stored (sheetbot/night/repair.py). Not in ``rows``; refused or adopted.
    behind: dict[str, BoardRow] = field(default_factory=dict)
    #: New task id → the note for its error cell (a typed id that looked like a formula was replaced).
    notes: dict[str, str] = field(default_factory=dict)
    #: Rows whose sheetbot cells disagreed with the state and are rewritten by this phase's write.
    repaired: int = 0


#: Statuses a person may type on a row of their own: anything else on a row the state does not know was
#: written by a sheetbot whose state file is not this one.
_PEOPLE_TYPE = frozenset({Status.QUEUED})


def _is_blank(row: BoardRow, col: Mapping[str, str]) -> bool:
    return not row.get(col["type"]).strip() and not row.get(col["input"]).strip()


def identify(
    sheet: Sheet,
    tasks: Mapping[str, Task],
    col: Mapping[str, str],
    snapshot_of: Callable[[str], Mapping[str, str]] | None = None,
    owned: Collection[str] = (),
    pending: Collection[str] = (),
) -> Identified:
    """``snapshot_of`` loads a task's locked row; asked only for ids that stand on more than one row.
    ``owned`` names the columns sheetbot writes (they say nothing about which copy is the original).
    ``pending`` holds ids this sheetbot gave out in a phase that may not have committed (a kill between the
    board's save and the state's, sheetbot.state.claims): such a row is a new row of ours, not an unknown one."""
    out = Identified()
    taken = set(tasks) | {r.get(col["id"]).strip() for r in sheet.rows}
    cleared: dict[str, CellValue] = {
        col[c]: None for c in ("status", "night", "output", "error", "cost", "review", "edited_output")
    }
    model = col.get("model")
    if model and model in sheet.columns:  # a board with a `model` column (a workflow has a fallback: issue 14)
        cleared[model] = None
    groups: dict[str, list[BoardRow]] = {}
    for row in sheet.rows:
        task_id = row.get(col["id"]).strip()
        if task_id:
            groups.setdefault(task_id, []).append(row)

    keepers = {}
    for task_id, rows in groups.items():
        snapshot = snapshot_of(task_id) if snapshot_of is not None and len(rows) > 1 and task_id in tasks else {}
        keepers[task_id] = _keeper(rows, snapshot, col, owned)
    for row in sheet.rows:
        task_id = row.get(col["id"]).strip()
        typed = row.get(col["id"])
        if task_id not in tasks and looks_like_formula(typed.lstrip(" ") or task_id):
            fresh = new_id(taken)
            note = f"the id {typed!r} looked like a spreadsheet formula: sheetbot gave the row the id {fresh}"
            out.claims.append(
                RowUpdate(
                    task_id=fresh,
                    values={col["id"]: fresh, col["error"]: note},
                    claim=Claim(ref=row.ref, old_id=task_id, fingerprint=dict(row.values)),
                )
            )
            out.rows[fresh] = _cleared_view(row, {}, col["id"], fresh)
            out.new.append(fresh)
            out.notes[fresh] = note
        elif not task_id:
            if _is_blank(row, col):
                continue
            fresh = new_id(taken)
            out.claims.append(
                RowUpdate(
                    task_id=fresh,
                    values={col["id"]: fresh},
                    claim=Claim(ref=row.ref, old_id="", fingerprint=dict(row.values)),
                )
            )
            out.rows[fresh] = row
            out.new.append(fresh)
        elif keepers[task_id] is row:
            if task_id not in tasks:
                status = parse_status(row.get(col["status"]))
                if status is not None and status not in _PEOPLE_TYPE and task_id not in pending:
                    out.unknown[task_id] = row
                    continue
                out.new.append(task_id)
            out.rows[task_id] = row
        else:
            fresh = new_id(taken)
            out.claims.append(
                RowUpdate(
                    task_id=fresh,
                    values={col["id"]: fresh, **cleared},
                    claim=Claim(ref=row.ref, old_id=task_id, fingerprint=dict(row.values)),
                )
            )
            out.rows[fresh] = _cleared_view(row, cleared, col["id"], fresh)
            out.new.append(fresh)
    return out


def _keeper(
    rows: list[BoardRow], snapshot: Mapping[str, str], col: Mapping[str, str], owned: Collection[str]
) -> BoardRow:
    """Of the rows sharing an id, the one that keeps it: the one most like what was locked (type and input
    first, then every other column people own), the first of equals; without a snapshot, the first."""
    if not snapshot or len(rows) == 1:
        return rows[0]
    key = (col["type"], col["input"])
    others = [c for c in snapshot if c not in owned and c not in key and c != col["id"]]

    def likeness(row: BoardRow) -> tuple[int, int]:
        return (
            sum(row.get(c) == snapshot.get(c, "") for c in key),
            sum(row.get(c) == snapshot.get(c, "") for c in others),
        )

    return max(rows, key=likeness)  # max keeps the first of equals: sheet order breaks ties


def _cleared_view(row: BoardRow, cleared: Mapping[str, CellValue], id_column: str, fresh: str) -> BoardRow:
    values = {**row.values, **{k: "" for k in cleared}, id_column: fresh}
    return BoardRow(ref=row.ref, values=values)
