"""A board held in memory: the honest stand-in the tests use.

It behaves like the workbook (rows by position, ids in a column, formulas never
written) and lets a test act as the people using the sheet: sort, insert, delete
and copy rows between phases. It records every call so tests can count them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from sheetbot.boards.base import BoardRow, CellValue, RowUpdate, SchemaSpec, Sheet, WriteResult
from sheetbot.boards.locate import resolve
from sheetbot.boards.values import EXCEL_CELL_UNITS, plain_text
from sheetbot.errors import BoardNotFound, BoardWriteError


class MemoryBoard:
    #: It stands in for the workbook, so it holds what an Excel cell holds.
    max_cell_units = EXCEL_CELL_UNITS

    def __init__(
        self,
        columns: Sequence[str] | None = None,
        rows: Sequence[Mapping[str, object]] = (),
        *,
        id_column: str = "id",
    ) -> None:
        self.exists = columns is not None
        self.columns: list[str] = list(columns or [])
        self.rows: list[dict[str, str]] = [{k: _text(v) for k, v in row.items()} for row in rows]
        self.id_column = id_column
        self.calls: list[str] = []
        self.review_choices: list[str] = []
        #: Called inside write() before rows are resolved: a test's "person editing mid-write".
        self.before_write: Callable[[MemoryBoard], None] | None = None
        self.fail_writes = False

    def describe(self) -> str:
        return "memory board"

    def read(self) -> Sheet:
        self.calls.append("read")
        if not self.exists:
            raise BoardNotFound("the memory board has not been created: run `sheetbot init`")
        rows = tuple(
            BoardRow(ref=str(i), values={c: row.get(c, "") for c in self.columns}) for i, row in enumerate(self.rows)
        )
        return Sheet(columns=tuple(self.columns), rows=rows)

    def write(self, updates: Sequence[RowUpdate]) -> WriteResult:
        self.calls.append("write")
        if self.fail_writes:
            raise BoardWriteError("memory board: writes are switched off by the test")
        if self.before_write is not None:
            hook, self.before_write = self.before_write, None
            hook(self)
        placement = resolve(updates, self.rows, id_column=self.id_column, refs=[str(i) for i in range(len(self.rows))])
        result = WriteResult(missing=list(placement.missing))
        for u_index, targets in placement.targets.items():
            for target in targets:
                for column, value in updates[u_index].values.items():
                    if column not in self.columns:
                        self.columns.append(column)
                    self.rows[target][column] = plain_text(value, self.max_cell_units)
            result.written += 1
        return result

    def ensure_schema(self, spec: SchemaSpec) -> list[str]:
        self.calls.append("ensure_schema")
        self.exists = True
        added = [c for c in spec.columns if c not in self.columns]
        self.columns.extend(added)
        self.review_choices = list(spec.review_choices)
        return added

    def append_rows(self, rows: Sequence[Mapping[str, CellValue]]) -> int:
        """Add rows below the last one, adding the columns they name, in one call (AppendsRows)."""
        self.calls.append("append_rows")
        if self.fail_writes:
            raise BoardWriteError("memory board: writes are switched off by the test")
        for values in rows:
            for column in values:
                if column not in self.columns:
                    self.columns.append(column)
            self.rows.append({column: plain_text(value, self.max_cell_units) for column, value in values.items()})
        return len(rows)

    # -- what people do to a sheet -------------------------------------------------
    def add(self, **values: object) -> dict[str, str]:
        row = {k: _text(v) for k, v in values.items()}
        self.rows.append(row)
        return row

    def find(self, task_id: str) -> dict[str, str]:
        matches = [r for r in self.rows if r.get(self.id_column) == task_id]
        if len(matches) != 1:
            raise KeyError(f"{len(matches)} rows with id {task_id!r}")
        return matches[0]

    def sort_by(self, column: str, *, reverse: bool = False) -> None:
        self.rows.sort(key=lambda r: r.get(column, ""), reverse=reverse)


def _text(value: object) -> str:
    return "" if value is None else str(value)


if TYPE_CHECKING:  # mypy holds MemoryBoard to the Board protocol (it offers AppendsRows only)
    from sheetbot.boards.base import Board

    def _offers(board: MemoryBoard) -> Board:
        return board
