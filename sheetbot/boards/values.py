"""How values sheetbot writes are made safe for a spreadsheet cell."""

from __future__ import annotations

import re
from datetime import date, datetime, time

from sheetbot.boards.base import CellValue

#: Characters spreadsheets reject in cells (control characters but tab, newline and carriage return).
_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")

#: Excel's limit per cell; Google Sheets allows 50,000. The full text stays in the state.
MAX_CELL_CHARS = 32_767
_TRUNCATED = "\n[… truncated: the full output is in the sheetbot state]"


def clean_text(value: str) -> str:
    """Strip characters no spreadsheet accepts and cut text that no cell can hold."""
    text = _ILLEGAL.sub("", value)
    if len(text) > MAX_CELL_CHARS:
        text = text[: MAX_CELL_CHARS - len(_TRUNCATED)] + _TRUNCATED
    return text


def as_text(value: object) -> str:
    """A cell as the text a person sees, the same on every board: whole numbers without ``.0``,
    checkboxes TRUE/FALSE, dates as ISO text."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() else value.isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    return str(value)


def plain_text(value: CellValue) -> str:
    """The text a value reads as once written (the memory board stores everything as text)."""
    return clean_text(as_text(value))


def looks_like_formula(text: str) -> bool:
    """Would a spreadsheet take this for a formula if typed in? (``=``, ``+``, ``-``, ``@``)"""
    return text[:1] in {"=", "+", "-", "@"}
