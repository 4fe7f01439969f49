"""Reading a worksheet's grid: the header, the rows below it with something in them, and runs of rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# Vendor JSON: a spreadsheet's grid data is the Sheets API's own JSON (Google's shape), read as loose mappings.


def _grid_data(sheet: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[list[str]]]:
    """A spreadsheets.get sheet's first GridData: its rows as sent, and their formatted values."""
    rows = sheet.get("data", [{}])[0].get("rowData", [])
    return rows, [[cell.get("formattedValue", "") for cell in row.get("values", [])] for row in rows]


def _header(grid: Sequence[Sequence[str]]) -> dict[str, int]:
    """Column name → 0-based index. Blank header cells are skipped; a repeated name keeps its first."""
    header: dict[str, int] = {}
    for index, value in enumerate(grid[0] if grid else ()):
        name = str(value).strip()
        if name and name not in header:
            header[name] = index
    return header


def _data_rows(grid: Sequence[Sequence[str]], header: Mapping[str, int]) -> list[tuple[int, dict[str, str]]]:
    """Every row below the header with something in a named column, as (row number, texts)."""
    rows = []
    for number, cells in enumerate(grid[1:], start=2):
        values = {name: str(cells[i]) if i < len(cells) else "" for name, i in header.items()}
        if any(text.strip() for text in values.values()):
            rows.append((number, values))
    return rows


def _trim(row: Sequence[Any]) -> Sequence[Any]:
    end = len(row)
    while end and row[end - 1] in ("", None):
        end -= 1
    return row[:end]


def _runs(numbers: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted numbers as (first, last) runs of consecutive ones."""
    runs: list[tuple[int, int]] = []
    for n in sorted(set(numbers)):
        if runs and runs[-1][1] == n - 1:
            runs[-1] = (runs[-1][0], n)
        else:
            runs.append((n, n))
    return runs
