"""CSV cells a spreadsheet cannot run: the OWASP "CSV injection" defence for every CSV sheetbot writes.

Ids and texts in an export were typed by people (or returned by a model); Excel, LibreOffice and Google
Sheets treat a cell starting with ``=``, ``+``, ``-`` or ``@`` (and a tab or carriage return in front of
one) as a formula, so ``=HYPERLINK(...)`` typed as an id would become a live link for whoever opens the
file. Such a cell is written with a single quote in front: the text stays readable, and nothing runs.
Numbers are left alone (a negative number is not a formula).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import IO

#: The first characters that make a spreadsheet read a cell as a formula (OWASP).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def looks_like_formula(text: str) -> bool:
    return text.startswith(FORMULA_STARTS)


def safe_cell(value: object) -> object:
    """``value`` as a cell no spreadsheet runs: text that would start a formula gets a leading quote."""
    if isinstance(value, str) and looks_like_formula(value):
        return "'" + value
    return value


class SafeWriter:
    """``csv.writer`` whose every cell goes through ``safe_cell``: use it for every CSV sheetbot writes."""

    def __init__(self, handle: IO[str]) -> None:
        self._writer = csv.writer(handle)

    def writerow(self, row: Iterable[object]) -> None:
        self._writer.writerow([safe_cell(value) for value in row])
