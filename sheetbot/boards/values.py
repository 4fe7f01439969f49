"""How values sheetbot writes are made safe for a spreadsheet cell.

Cell limits are counted in the unit each board counts: Excel stores text as UTF-16 and allows 32,767 code
units a cell; Google Sheets allows 50,000 characters and Airtable's long text 100,000, and as neither says
how an emoji counts we count UTF-16 code units there too (an emoji is two, never less). Python's ``len``
counts code points: 40,000 emoji pass a ``len`` check of 50,000 and are 80,000 units on the wire.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from datetime import date, datetime, time

from sheetbot.boards.base import CellValue

#: Characters spreadsheets reject in cells (control characters but tab, newline and carriage return).
_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")

#: UTF-16 code units a cell holds, per board. The full text always stays in the state.
EXCEL_CELL_UNITS = 32_767
GOOGLE_CELL_UNITS = 50_000
AIRTABLE_CELL_UNITS = 100_000

#: Code points that belong to the character before them: cutting in front of one splits a grapheme.
_JOINS_PREVIOUS = re.compile(
    "[\u200c\u200d\ufe00-\ufe0f\U0001f3fb-\U0001f3ff\U000e0020-\U000e007f\U000e0100-\U000e01ef]"
)
_ZWJ = "\u200d"


def utf16_units(text: str) -> int:
    """The length Excel (and, conservatively, Google and Airtable) counts: UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def cut_marker(omitted: int, task_id: str | None = None) -> str:
    """What ends a cut cell, so a reader sees the text goes on (and where to read the rest)."""
    where = f"full text: sheetbot show {task_id}" if task_id else "the full text is in the sheetbot state"
    return f"… [cut: {omitted:,} more characters; {where}]"


def fit_cell(text: str, limit_units: int, marker: Callable[[int], str] = cut_marker) -> tuple[str, int]:
    """``text`` cut to at most ``limit_units`` UTF-16 units, marker included; and how many characters
    (code points) were left out (0: it fitted). The cut never splits a surrogate pair (Python strings
    hold code points) nor a grapheme: combining marks, variation selectors, skin tones, ZWJ sequences
    and flag pairs stay with their base or go with it."""
    if len(text) * 2 <= limit_units or utf16_units(text) <= limit_units:  # a code point is 1 or 2 units
        return text, 0
    room = max(0, limit_units - utf16_units(marker(len(text))))
    lo, hi = 0, min(len(text), room)  # the longest prefix of at most `room` units: binary search
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if utf16_units(text[:mid]) <= room:
            lo = mid
        else:
            hi = mid - 1
    keep = _grapheme_start(text, lo)
    omitted = len(text) - keep
    return text[:keep] + marker(omitted), omitted


def _grapheme_start(text: str, index: int) -> int:
    """The nearest cut at or before ``index`` that does not split a user-perceived character."""
    while 0 < index < len(text):
        nxt, prev = text[index], text[index - 1]
        # A mark, selector, modifier or joiner belongs to the character before it; and the character after
        # a joiner (👩‍👩) to the sequence.
        if _JOINS_PREVIOUS.match(nxt) or unicodedata.category(nxt) in ("Mn", "Me", "Mc") or prev == _ZWJ:
            index -= 1
        elif _regional(nxt) and _regional(prev) and _run_of_regional(text, index) % 2:
            index -= 1  # 🇩🇪: an odd run of regional indicators before the cut means a flag is split
        else:
            break
    return index


def _regional(char: str) -> bool:
    return "\U0001f1e6" <= char <= "\U0001f1ff"


def _run_of_regional(text: str, index: int) -> int:
    count = 0
    while index - count - 1 >= 0 and _regional(text[index - count - 1]):
        count += 1
    return count


def clean_text(value: str, limit_units: int = EXCEL_CELL_UNITS) -> str:
    """Strip characters no spreadsheet accepts and cut text that the board's cell cannot hold.

    The last guard for every text a board writes; the night cuts outputs itself first, with the row's id
    in the marker and a note in its `error` (sheetbot/night/writeback.py)."""
    return fit_cell(_ILLEGAL.sub("", value), limit_units)[0]


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


def plain_text(value: CellValue, limit_units: int = EXCEL_CELL_UNITS) -> str:
    """The text a value reads as once written (the memory board stores everything as text)."""
    return clean_text(as_text(value), limit_units)


def looks_like_formula(text: str) -> bool:
    """Would a spreadsheet take this for a formula if typed in? (``=``, ``+``, ``-``, ``@``)"""
    return text[:1] in {"=", "+", "-", "@"}
