"""A worksheet's cells as sheetbot reads and writes them, and the shape `init` gives it (openpyxl).

The workbook board (local.py) decides when to load and save the file; this module knows the cells:
the header, the rows below it (formulas read as the values Excel saved), plain values written so
that nothing becomes a formula, and the columns, bold header and frozen row `init` adds (its dropdowns,
colours, filter and widths: local_look.py).
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from copy import copy

from openpyxl import Workbook, load_workbook
from openpyxl.cell.cell import Cell
from openpyxl.styles import Font
from openpyxl.utils.cell import coordinate_to_tuple
from openpyxl.worksheet.worksheet import Worksheet

from sheetbot.boards.base import CellValue, SchemaSpec
from sheetbot.boards.local_file import one_line
from sheetbot.boards.local_look import colour_statuses, filter_header, list_dropdown, size_columns
from sheetbot.boards.values import as_text, clean_text, looks_like_formula
from sheetbot.errors import BoardError


def read_header(ws: Worksheet) -> dict[str, int]:
    """Column name → column number. Blank header cells are skipped; a repeated name keeps its first."""
    header: dict[str, int] = {}
    for col, value in enumerate(next(ws.iter_rows(max_row=1, values_only=True), ()), start=1):
        name = as_text(value).strip()
        if name and name not in header:
            header[name] = col
    return header


#: Why a formula cell is blank to sheetbot: the file holds no computed value for it.
NO_SAVED_VALUE = (
    "cell {column} of row {row} holds a formula with no saved value: open and save the workbook in Excel, "
    "or type the value"
)


def data_rows(
    ws: Worksheet, header: dict[str, int], saved: Mapping[tuple[int, int], object]
) -> list[tuple[str, dict[str, str], dict[str, str]]]:
    """Every row below the header with something in a named column, as (row number, texts, problems).

    A formula cell reads as the value Excel stored for it (``saved``), as Google Sheets answers; one with
    no stored value reads blank, with the reason under its column in ``problems``. Never the formula's text.

    Reads the cells the sheet holds (``ws._cells``) instead of ``iter_rows``: on a normal worksheet
    ``iter_rows`` creates a cell object for every blank position, which on a sparse 10,000-row queue
    triples the cells in memory and slows every later save.
    """
    by_row: dict[int, dict[int, object]] = {}
    unsaved: dict[int, set[int]] = {}
    for (row, column), cell in ws._cells.items():
        if row < 2 or cell.value is None:
            continue
        value = cell.value
        if cell.data_type == "f":
            value = saved.get((row, column))
            if value is None:
                unsaved.setdefault(row, set()).add(column)
                continue
        by_row.setdefault(row, {})[column] = value
    rows = []
    for number in sorted(by_row.keys() | unsaved.keys()):
        cells = by_row.get(number, {})
        values = {name: as_text(cells.get(column)) for name, column in header.items()}
        blank = unsaved.get(number, set())
        problems = {
            name: NO_SAVED_VALUE.format(column=name, row=number) for name, column in header.items() if column in blank
        }
        if problems or any(text.strip() for text in values.values()):
            rows.append((str(number), values, problems))
    return rows


def saved_values(data: bytes, workbook: Workbook, sheet: str) -> dict[tuple[int, int], object]:
    """The values Excel stored with the sheet's formula cells, by (row, column); absent when none was stored.

    openpyxl reads either formulas or stored values, not both: sheetbot keeps the formulas (a save must not
    turn a person's formula into a constant) and reads the values a second time, streaming, only when the
    sheet holds a formula, so a plain queue still costs one load.
    """
    ws = workbook[sheet] if sheet in workbook.sheetnames else None
    if not isinstance(ws, Worksheet):
        return {}
    formulas = {position for position, cell in ws._cells.items() if cell.data_type == "f" and position[0] >= 2}
    if not formulas:
        return {}
    first, last = min(row for row, _ in formulas), max(row for row, _ in formulas)
    values = load_workbook(io.BytesIO(data), data_only=True, read_only=True)
    try:
        stored = values[sheet]
        saved: dict[tuple[int, int], object] = {}
        for number, line in enumerate(stored.iter_rows(min_row=first, max_row=last, values_only=True), start=first):
            for column, value in enumerate(line, start=1):
                if value is not None and (number, column) in formulas:
                    saved[number, column] = value
        return saved
    finally:
        values.close()


def add_column(ws: Worksheet, header: dict[str, int], name: str) -> int:
    """Name the column after the last one holding anything (never over data under a blank header)."""
    col = 0
    for cells in ws.iter_rows(values_only=True):
        col = next((i for i in range(len(cells), col, -1) if cells[i - 1] not in (None, "")), col)
    header[name] = col + 1
    put_value(ws.cell(row=1, column=col + 1), name)
    ws.cell(row=1, column=col + 1).font = Font(bold=True)
    return col + 1


def put_value(cell: Cell, value: CellValue) -> bool:
    """Write a plain value: numbers stay numbers, and text stays text even when it starts with ``=``.

    A cell that already holds exactly that is left alone (False): a night's write-back repeats half of a
    row's cells (its night, its empty notes), and openpyxl's checks on each assignment cost seconds on
    10,000 rows."""
    current = cell.value
    if value is None or (isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)):
        if current is value or (type(current) is type(value) and current == value):
            return False
        cell.value = value
        return True
    text = clean_text(str(value))
    formula_like = looks_like_formula(text)
    if (current == text and cell.data_type == "s" and (not formula_like or cell.quotePrefix)) or (
        current is None and text == ""
    ):
        return False
    cell.value = text
    cell.data_type = "s"  # openpyxl makes "=…" a formula and "#N/A" an error; this undoes both
    if formula_like and not cell.quotePrefix:
        cell.quotePrefix = True  # so Excel keeps it text even when a person re-enters the cell
    return True


def shape_sheet(workbook: Workbook, sheet: str, spec: SchemaSpec, *, id_column: str = "id") -> tuple[list[str], bool]:
    """Add what `init` promises; returns the columns added and whether anything changed."""
    changed = sheet not in workbook.sheetnames
    if changed:
        try:
            workbook.create_sheet(sheet)
        except ValueError as err:
            raise BoardError(f"{sheet!r} cannot be a sheet name ({one_line(err)}): fix board.sheet") from None
    ws = workbook[sheet]
    if not isinstance(ws, Worksheet):
        raise BoardError(f"{sheet!r} is a chart sheet, not a worksheet: fix board.sheet")
    header = read_header(ws)
    added = [name for name in dict.fromkeys(spec.columns) if name not in header]
    for name in added:
        add_column(ws, header, name)
    changed = changed or bool(added)
    for col in header.values():
        cell = ws.cell(row=1, column=col)
        if not cell.font.b:
            font = copy(cell.font)
            font.b = True
            cell.font = font
            changed = True
    if ws.freeze_panes is None or coordinate_to_tuple(ws.freeze_panes)[0] < 2:
        ws.freeze_panes = "B2" if header.get(id_column) == 1 else "A2"  # the header, and the id beside each row
        changed = True
    review = header.get(spec.review_column)
    if review is not None:
        changed |= list_dropdown(ws, review, spec.review_choices, title=spec.review_column, strict=True)
    kind = header.get(spec.type_column)
    if kind is not None:
        changed |= list_dropdown(ws, kind, spec.type_choices, title=spec.type_column, strict=False)
    status = header.get(spec.status_column)
    if status is not None:
        changed |= colour_statuses(ws, status, spec.status_choices)
    changed |= filter_header(ws, max(header.values(), default=0))
    changed |= size_columns(ws, header, spec.widths, spec.wide_columns, fresh=added)
    return added, changed
