"""Which row is which task: ids for new rows, and a fresh id for a row copied together with its id.

People sort, insert, delete and copy rows at any time, so a row is known only by
its `id` cell. A copy carries its original's id; the original keeps it (the row
whose type and input match what was locked, else the first), and the copy
becomes a new task with sheetbot's cells cleared.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sheetbot.boards.base import BoardRow, CellValue, Claim, RowUpdate, Sheet
from sheetbot.state import Task
from sheetbot.status import Status

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
    #: Rows with an id sheetbot does not know and a status it must not touch (approved, …).
    foreign: list[str] = field(default_factory=list)


def _is_blank(row: BoardRow, col: Mapping[str, str]) -> bool:
    return not row.get(col["type"]).strip() and not row.get(col["input"]).strip()


def identify(
    sheet: Sheet,
    tasks: Mapping[str, Task],
    col: Mapping[str, str],
    snapshot_of: Callable[[str], Mapping[str, str]] | None = None,
) -> Identified:
    """``snapshot_of`` loads a task's locked row; asked only for ids that stand on more than one row."""
    out = Identified()
    taken = set(tasks) | {r.get(col["id"]).strip() for r in sheet.rows}
    cleared: dict[str, CellValue] = {
        col[c]: None for c in ("status", "night", "output", "error", "cost", "review", "edited_output")
    }
    groups: dict[str, list[BoardRow]] = {}
    for row in sheet.rows:
        task_id = row.get(col["id"]).strip()
        if task_id:
            groups.setdefault(task_id, []).append(row)

    keepers = {}
    for task_id, rows in groups.items():
        snapshot = snapshot_of(task_id) if snapshot_of is not None and len(rows) > 1 and task_id in tasks else {}
        keepers[task_id] = _keeper(rows, snapshot, col)
    for row in sheet.rows:
        task_id = row.get(col["id"]).strip()
        if not task_id:
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
                status = row.get(col["status"]).strip().lower()
                if status in {Status.APPROVED, Status.EDITED, Status.PUBLISHED, Status.REVIEW}:
                    out.foreign.append(task_id)
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


def _keeper(rows: list[BoardRow], snapshot: Mapping[str, str], col: Mapping[str, str]) -> BoardRow:
    """Of the rows sharing an id, the one that keeps it: the one matching what was locked, else the first."""
    if snapshot and len(rows) > 1:
        for row in rows:
            if all(row.get(col[c]) == snapshot.get(col[c], "") for c in ("type", "input")):
                return row
    return rows[0]


def _cleared_view(row: BoardRow, cleared: Mapping[str, CellValue], id_column: str, fresh: str) -> BoardRow:
    values = {**row.values, **{k: "" for k in cleared}, id_column: fresh}
    return BoardRow(ref=row.ref, values=values)
