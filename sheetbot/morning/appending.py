"""Rows sheetbot adds to the board itself (chained rows, the intake API's tasks), each exactly once.

Both record their rows in the state first, with a fixed id, then append. A crash between the append and the
record's `done` leaves the row on the board and the record pending: before appending again, the ids already on
the board (or known to the state from a lock) are left out, so a retry never adds a second row.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from sheetbot.boards.base import CellValue
from sheetbot.boards.capabilities import AppendsRows
from sheetbot.errors import SheetbotError
from sheetbot.night.context import NightContext

log = logging.getLogger(__name__)


def append_missing(
    ctx: NightContext, rows: Mapping[str, Mapping[str, CellValue]], *, what: str, look: bool = True
) -> str | None:
    """Append, in one call, those of ``rows`` (id → cells) the board and the state do not have yet. None when
    every row is now on the board; else why not, in one line (the records stay pending for the next try).
    ``look=False`` skips reading the board: only for ids made a moment ago, which cannot be there yet."""
    board = ctx.board
    if not isinstance(board, AppendsRows):
        return f"{board.describe()} cannot take new rows: the {what} wait in the state"
    try:
        missing = list(rows)
        if look:
            on_board = {row.get(ctx.col["id"]).strip() for row in board.read().rows}
            known = on_board | set(ctx.state.tasks(list(rows)))
            missing = [task_id for task_id in rows if task_id not in known]
        if missing:
            board.append_rows([rows[task_id] for task_id in missing])
    except SheetbotError as exc:
        log.warning("%s not added to the board yet: %s", what, exc)
        return f"{what} not added yet ({exc}); sheetbot tries again at the next harvest"
    return None
