"""What a board may offer beyond the :class:`~sheetbot.boards.base.Board` protocol, declared.

Every board reads, writes and shapes its sheet (base.py). Some can do more, and the callers use it when
it is there and carry on without it when it is not. Each such capability is a small runtime-checkable
protocol here, so a reader and mypy see every operation a board may offer (as huey's ``BaseStorage``
declares every operation of a storage), and a caller asks ``isinstance(board, Capability)`` instead of
probing attribute names.

==================  ===========================================  ======================================
capability          used by                                      offered by
==================  ===========================================  ======================================
DrawsDashboard      the morning's dashboard refresh              local, google_sheets, airtable
RemembersDashboard  the morning's dashboard refresh: one request google_sheets
StagesDashboard     the harvest: the dashboard rides its write   local
Flushes             the harvest: save what is held back          local
ProtectsInputs      lock (warn on locked rows), harvest (lift)   google_sheets
AppendsRows         `trial`, the demo, chained rows (harvest)    local, memory, google_sheets, airtable
Fingerprinted       `serve`: notice a person's save cheaply      local
ReadsThenWrites     run, harvest, repair: one read for both      google_sheets, airtable
==================  ===========================================  ======================================

tests/test_board_capabilities.py holds every board to exactly its row of this table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, runtime_checkable

from sheetbot.boards.base import Board, CellValue, RowUpdate, Sheet, WriteResult
from sheetbot.boards.dashboard_cells import Cell, ChartSpec


@runtime_checkable
class DrawsDashboard(Protocol):
    """A board with a Dashboard of its own: a workbook sheet or a Sheets tab with a chart, an Airtable table.

    Without it a board simply has no dashboard (sheetbot/morning/dashboard.py skips it)."""

    def write_dashboard(self, rows: Sequence[Mapping[str, Cell]], chart: ChartSpec) -> list[str]:
        """Redraw the dashboard now from ``rows`` (newest night first) and ``chart``; returns notes for a
        person (e.g. why part of it was skipped). Raises on failure; the caller logs and carries on."""
        ...


@runtime_checkable
class RemembersDashboard(Protocol):
    """A board whose dashboard redraw is cheaper when told where the last one was drawn (a Sheets tab's and
    chart's ids and size: one request instead of a ``spreadsheets.get`` first). The caller keeps the
    layout between runs (sheetbot/morning/dashboard.py: the state's meta table)."""

    def redraw_dashboard(
        self, rows: Sequence[Mapping[str, Cell]], chart: ChartSpec, layout: str | None
    ) -> tuple[list[str], str]:
        """What ``write_dashboard`` does, from ``layout`` (what the last call returned; None, or stale because
        a person changed the tab: looked up again); returns the notes and the layout to keep."""
        ...


@runtime_checkable
class Flushes(Protocol):
    """A board that may hold something back for its next save (a staged dashboard)."""

    def flush(self) -> None:
        """Save what is held back, if the phase's own write did not already carry it."""
        ...


@runtime_checkable
class StagesDashboard(Flushes, Protocol):
    """A board that can carry the dashboard in the phase's own write (the workbook: one save, not two).

    A drawing problem must not cost the decisions saved with it, so the save goes ahead without the
    dashboard and the problem is kept for :meth:`take_dashboard_problem`."""

    def stage_dashboard(self, rows: Sequence[Mapping[str, Cell]], chart: ChartSpec) -> list[str]:
        """Keep the dashboard for the next save (a write, or :meth:`flush`); returns notes as above."""
        ...

    def take_dashboard_problem(self) -> str | None:
        """Why the last staged dashboard could not be drawn, once (None: it was drawn, or none was staged)."""
        ...


@runtime_checkable
class ProtectsInputs(Protocol):
    """A board that can warn a person who edits a locked row's input (Google Sheets' warning-only ranges)."""

    def protect_inputs(self, task_ids: Sequence[str], columns: Sequence[str] = ()) -> int:
        """Make the warnings cover exactly these tasks' rows, in ``columns`` (default: every column but the
        id), replacing earlier ones; returns how many ranges are protected now."""
        ...

    def unprotect_inputs(self) -> None:
        """Lift every warning sheetbot set (nothing is locked or running any more)."""
        ...


@runtime_checkable
class AppendsRows(Protocol):
    """A board that can take new rows: a trial's sample copied to its own sheet (sheetbot/cli/trial.py), the
    rows a chained workflow adds after an approval (sheetbot/morning/chains.py)."""

    def append_rows(self, rows: Sequence[Mapping[str, CellValue]]) -> int:
        """Add the rows below the last one in one call; returns how many were added."""
        ...


@runtime_checkable
class Fingerprinted(Protocol):
    """A board that can tell cheaply whether someone saved it (a workbook's mtime and size): `serve` then
    repairs it every tick instead of reading a remote board every 15 minutes."""

    def fingerprint(self) -> object | None:
        """A value that changes whenever the board is saved; None when it cannot be told (no file yet)."""
        ...


@runtime_checkable
class ReadsThenWrites(Protocol):
    """A board whose write reads the rows again before it places anything (an API board: Google Sheets reads the
    sheet's ids, Airtable lists its records). When a phase reads the board only to decide what to write, that
    read can be the write's own: one read of the whole board fewer (100 list requests for 10,000 Airtable rows).

    The workbook needs no such thing: its write reuses the workbook its read loaded, unless a person saved."""

    def read_then_write(self, plan: Callable[[Sheet], Sequence[RowUpdate]]) -> tuple[Sheet, WriteResult]:
        """read(), ``plan`` on what it read, then write() of the updates ``plan`` returns, rows found by id
        as write() finds them. Whatever ``plan`` raises propagates and nothing is written."""
        ...


def read_then_write(board: Board, plan: Callable[[Sheet], Sequence[RowUpdate]]) -> tuple[Sheet, WriteResult]:
    """The board's read_then_write, or read(), ``plan`` and write() on a board that does not offer it."""
    if isinstance(board, ReadsThenWrites):
        return board.read_then_write(plan)
    sheet = board.read()
    updates = plan(sheet)
    return sheet, board.write(updates) if updates else WriteResult()


#: Every capability, for tests and for a reader who wants the list.
CAPABILITIES: tuple[type, ...] = (
    DrawsDashboard,
    RemembersDashboard,
    StagesDashboard,
    Flushes,
    ProtectsInputs,
    AppendsRows,
    Fingerprinted,
    ReadsThenWrites,
)
