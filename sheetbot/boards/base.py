"""The board seam: what the night needs from a spreadsheet, and nothing vendor-specific.

A board is read whole (one call) and written once per phase (one call). Rows are
addressed by their `id` cell, never by position: between a read and a write people
sort, insert, delete and copy rows. Position (``ref``) is only a hint valid for the
read it came from; every backend re-resolves it at write time with
:func:`sheetbot.boards.locate.resolve`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

#: A cell value sheetbot writes: text or a number; None clears the cell.
CellValue = str | int | float | None


@dataclass(frozen=True)
class BoardRow:
    """One row as read. ``ref`` locates it in that read only (row number, record id)."""

    ref: str
    values: Mapping[str, str]
    #: Column → why its cell has no usable value (a formula never calculated): a row whose prompt needs
    #: that column fails with the reason instead of sending the model something else.
    problems: Mapping[str, str] = field(default_factory=dict)

    def get(self, column: str) -> str:
        return self.values.get(column, "")


@dataclass(frozen=True)
class Sheet:
    """A whole read of the board: its header (in board order) and its rows."""

    columns: tuple[str, ...]
    rows: tuple[BoardRow, ...]


@dataclass(frozen=True)
class RowUpdate:
    """Cells to set on the row holding ``task_id``.

    ``claim`` is set when the update gives a row its id (a new row, or the copy of
    another row): the row is then found by ``claim.ref`` and ``claim.fingerprint``
    (the row's values when read), because it has no id of its own yet.
    """

    task_id: str
    values: Mapping[str, CellValue]
    claim: Claim | None = None


@dataclass(frozen=True)
class Claim:
    ref: str
    old_id: str
    fingerprint: Mapping[str, str]


@dataclass
class WriteResult:
    """What a write did. ``missing`` holds task ids whose row was gone (deleted mid-night); ``refused``
    the rows the board would not take (the others are written all the same)."""

    written: int = 0
    missing: list[str] = field(default_factory=list)
    #: Task id → why the board refused that row's cells (the other rows were written).
    refused: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SchemaSpec:
    """What `init` makes sure the board has."""

    columns: Sequence[str]
    review_column: str
    review_choices: Sequence[str]
    status_column: str
    status_choices: Sequence[str]
    #: Long-text columns, which backends may widen or wrap.
    wide_columns: Sequence[str] = ()
    #: The column saying which workflow a row is for, and the workflows: a dropdown where the board has one.
    type_column: str = ""
    type_choices: Sequence[str] = ()
    #: Column → width in characters, for boards that size columns (only columns nobody has sized yet).
    widths: Mapping[str, int] = field(default_factory=dict)


#: Status → background colour (RGB 0–1) of the status cell, on every board that colours cells.
STATUS_COLOURS: dict[str, tuple[float, float, float]] = {
    "locked": (0.82, 0.89, 0.98),
    "running": (0.82, 0.89, 0.98),
    "review": (1.0, 0.95, 0.6),
    "approved": (0.72, 0.88, 0.72),
    "edited": (0.8, 0.93, 0.78),
    "rework": (1.0, 0.85, 0.7),
    "failed": (0.96, 0.7, 0.7),
    "deferred": (0.86, 0.86, 0.86),
}


class Board(Protocol):
    """One interface, one module per backend, and an in-memory one for tests.

    What some boards offer beyond it (a dashboard, protected rows, appended rows, a cheap fingerprint)
    is declared in sheetbot/boards/capabilities.py, one protocol each."""

    #: How much text one cell holds, in UTF-16 code units (sheetbot/boards/values.py): the night cuts
    #: longer outputs to this, with a marker and a note in the row's `error`.
    max_cell_units: int

    def describe(self) -> str:
        """A short human name for messages, e.g. ``queue.xlsx [Queue]``."""
        ...

    def read(self) -> Sheet:
        """The whole queue in one call. Raises BoardNotFound if it does not exist."""
        ...

    def write(self, updates: Sequence[RowUpdate]) -> WriteResult:
        """Apply every update in one call, rows found by id. Values are written as plain values, never
        formulas. Raises BoardWriteError if nothing could be written."""
        ...

    def ensure_schema(self, spec: SchemaSpec) -> list[str]:
        """Create the board if needed; add missing columns (at the end, never touching existing ones),
        the review dropdown and a frozen header. Returns the columns added."""
        ...
