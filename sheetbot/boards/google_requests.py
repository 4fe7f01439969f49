"""Sheets API request bodies: ``values:batchUpdate`` bodies split by size, and the
``spreadsheets:batchUpdate`` requests `ensure_schema` sends (header, dropdown, colours, freeze)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from gspread.utils import rowcol_to_a1

from sheetbot.boards.base import CellValue
from sheetbot.boards.values import GOOGLE_CELL_UNITS, clean_text

# Vendor JSON: the bodies built here are the Sheets API's own JSON (values.batchUpdate, batchUpdate requests,
# grid data); their shape is Google's, documented there, so they stay loose dicts rather than TypedDicts.

WIDE_COLUMN_PIXELS = 360


def value_bodies(sheet: str, cells: Mapping[int, Mapping[int, Any]], limit: int) -> list[dict[str, Any]]:
    """``values:batchUpdate`` bodies (RAW) for ``cells`` (row number → column index → value).

    Consecutive rows share one ValueRange; cells a row does not set are sent as null, which Google
    skips. Bodies are split only to stay under ``limit`` bytes (as JSON).
    """
    blocks: list[list[tuple[int, Mapping[int, Any]]]] = []
    for row in sorted(cells):
        if blocks and blocks[-1][-1][0] == row - 1:
            blocks[-1].append((row, cells[row]))
        else:
            blocks.append([(row, cells[row])])
    empty = len(json.dumps(_body([])))
    bodies: list[dict[str, Any]] = []
    data: list[dict[str, Any]] = []
    size = empty
    for block in blocks:
        for piece in _fit(sheet, block, limit - empty):
            value_range = _value_range(sheet, piece)
            n = len(json.dumps(value_range)) + 2
            if data and size + n > limit:
                bodies.append(_body(data))
                data, size = [], empty
            data.append(value_range)
            size += n
    if data:
        bodies.append(_body(data))
    return bodies


def _body(data: list[dict[str, Any]]) -> dict[str, Any]:
    return {"valueInputOption": "RAW", "includeValuesInResponse": False, "data": data}


def _fit(sheet: str, block: list[tuple[int, Mapping[int, Any]]], limit: int) -> Iterator[list[tuple[int, Any]]]:
    if len(block) == 1 or len(json.dumps(_value_range(sheet, block))) <= limit:
        yield block
        return
    half = len(block) // 2
    yield from _fit(sheet, block[:half], limit)
    yield from _fit(sheet, block[half:], limit)


def _value_range(sheet: str, block: Sequence[tuple[int, Mapping[int, Any]]]) -> dict[str, Any]:
    first = min(c for _, row in block for c in row)
    last = max(c for _, row in block for c in row)
    values = [[row.get(c) for c in range(first, last + 1)] for _, row in block]
    span = f"{rowcol_to_a1(block[0][0], first + 1)}:{rowcol_to_a1(block[-1][0], last + 1)}"
    return {"range": f"{sheet}!{span}", "majorDimension": "ROWS", "values": values}


def _raw(value: CellValue, limit_units: int = GOOGLE_CELL_UNITS) -> str | int | float | bool:
    """A cell as sent with RAW: numbers stay numbers; None clears the cell ("" — null would leave it);
    text no longer than a cell holds, so one cell cannot make Google refuse the whole request."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value if math.isfinite(value) else str(value)
    return clean_text(str(value), limit_units)


def _grid_range(sheet_id: int, row0: int | None, row1: int | None, col0: int, col1: int) -> dict[str, int]:
    span = {"sheetId": sheet_id, "startColumnIndex": col0, "endColumnIndex": col1}
    if row0 is not None:
        span["startRowIndex"] = row0
    if row1 is not None:
        span["endRowIndex"] = row1
    return span


def _header_cells(sheet_id: int, start: int, names: Sequence[str], wide: Sequence[int]) -> list[dict[str, Any]]:
    """The new header cells (string values: never parsed), bold; wide columns wrapped and widened."""
    cells = [
        {"userEnteredValue": {"stringValue": name}, "userEnteredFormat": {"textFormat": {"bold": True}}}
        for name in names
    ]
    out: list[dict[str, Any]] = [
        {
            "updateCells": {
                "rows": [{"values": cells}],
                "fields": "userEnteredValue,userEnteredFormat.textFormat.bold",
                "start": {"sheetId": sheet_id, "rowIndex": 0, "columnIndex": start},
            }
        }
    ]
    for col in wide:
        out.append(
            {
                "updateDimensionProperties": {
                    "range": {"sheetId": sheet_id, "dimension": "COLUMNS", "startIndex": col, "endIndex": col + 1},
                    "properties": {"pixelSize": WIDE_COLUMN_PIXELS},
                    "fields": "pixelSize",
                }
            }
        )
        out.append(
            {
                "repeatCell": {
                    "range": _grid_range(sheet_id, 1, None, col, col + 1),
                    "cell": {"userEnteredFormat": {"wrapStrategy": "WRAP", "verticalAlignment": "TOP"}},
                    "fields": "userEnteredFormat(wrapStrategy,verticalAlignment)",
                }
            }
        )
    return out


def _freeze(sheet_id: int) -> dict[str, Any]:
    props = {"sheetId": sheet_id, "gridProperties": {"frozenRowCount": 1}}
    return {"updateSheetProperties": {"properties": props, "fields": "gridProperties.frozenRowCount"}}


def _dropdown(sheet_id: int, col: int, choices: Sequence[str], *, strict: bool = True) -> dict[str, Any]:
    """A dropdown under the header; a loose one (``strict=False``: the workflows in `type`) only marks a value
    not in the list, so a workflow added to the YAML since `init` can still be typed."""
    rule = {
        "condition": {"type": "ONE_OF_LIST", "values": [{"userEnteredValue": c} for c in choices]},
        "inputMessage": f"Pick one of: {', '.join(choices)}",
        "strict": strict,
        "showCustomUi": True,
    }
    return {"setDataValidation": {"range": _grid_range(sheet_id, 1, None, col, col + 1), "rule": rule}}


def _colour_rule(sheet_id: int, col: int, value: str, rgb: tuple[float, float, float]) -> dict[str, Any]:
    colour = dict(zip(("red", "green", "blue"), rgb, strict=True))
    rule = {
        "ranges": [_grid_range(sheet_id, 1, None, col, col + 1)],
        "booleanRule": {
            "condition": {"type": "TEXT_EQ", "values": [{"userEnteredValue": value}]},
            "format": {"backgroundColor": colour},
        },
    }
    return {"addConditionalFormatRule": {"rule": rule, "index": 0}}


def _has_validation(rows: Sequence[Mapping[str, Any]], col: int) -> bool:
    """Does the column already have a dropdown (ours from an earlier `init`, or a person's)?"""
    for row in rows[1:]:
        values = row.get("values", [])
        if col < len(values) and "dataValidation" in values[col]:
            return True
    return False


def _coloured_statuses(rules: Sequence[Mapping[str, Any]], col: int) -> set[str]:
    """Statuses that already have a "text is exactly" colour rule on the status column."""
    found: set[str] = set()
    for rule in rules:
        condition = rule.get("booleanRule", {}).get("condition", {})
        on_column = any(r.get("startColumnIndex", 0) == col for r in rule.get("ranges", []))
        if on_column and condition.get("type") == "TEXT_EQ":
            found.update(str(v.get("userEnteredValue", "")) for v in condition.get("values", []))
    return found
