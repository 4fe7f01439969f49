"""The embedded default board: an ``.xlsx`` workbook on disk, through openpyxl.

People keep this workbook open in Excel all day. So a write never overwrites what a person
saved since our read (a changed ``(st_mtime_ns, st_size)`` means: re-read, find the rows by
id again, re-apply), a write is all or nothing (temp file, fsync, ``os.replace``), and
values are written as text or numbers, never as formulas.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
import stat
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from copy import copy
from glob import escape as glob_escape
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from openpyxl import Workbook, load_workbook
from openpyxl.cell.cell import Cell
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter
from openpyxl.utils.cell import coordinate_to_tuple
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.worksheet import Worksheet

from sheetbot.boards.base import BoardRow, CellValue, RowUpdate, SchemaSpec, Sheet, WriteResult
from sheetbot.boards.locate import resolve
from sheetbot.boards.values import EXCEL_CELL_UNITS, as_text, clean_text, looks_like_formula
from sheetbot.boards.xlsx_parts import describe as describe_losses
from sheetbot.boards.xlsx_parts import losses
from sheetbot.errors import BoardError, BoardNotFound, BoardWriteError, WorkbookNotKept
from sheetbot.safety.private import open_private

if TYPE_CHECKING:
    from sheetbot.morning.dashboard import ChartSpec

#: (st_mtime_ns, st_size) of the file as we last read or wrote it: how we notice a person's save.
Signature = tuple[int, int]
T = TypeVar("T")

#: How often a write re-reads and re-applies when the file keeps changing under it.
SAVE_ATTEMPTS = 3
#: Excel's last row: the review dropdown covers the whole column below the header.
LAST_ROW = 1_048_576
WIDE_COLUMN_WIDTH = 60
#: Macro-enabled workbooks: openpyxl would save them without their macros and with the .xlsx content type.
MACRO_SUFFIXES = frozenset({".xlsm", ".xltm", ".xlam"})
#: A temp file of ours older than this was left by a killed save (a save takes seconds): it is removed.
STALE_TEMP_S = 15 * 60


class LocalBoard:
    """A worksheet in an ``.xlsx`` file: row 1 is the header, every other non-blank row a task."""

    #: Excel's limit: 32,767 UTF-16 code units a cell (a longer one makes Excel repair the file).
    max_cell_units = EXCEL_CELL_UNITS

    def __init__(self, path: Path, sheet: str, *, id_column: str = "id") -> None:
        self.path = Path(path)
        self.sheet = sheet
        self.id_column = id_column
        # The workbook as last read or saved, reused by write() while the file is unchanged:
        # loading a big workbook is the slowest part of a write.
        self._workbook: Workbook | None = None
        self._signature: Signature | None = None
        #: A dashboard to draw in the next save (see stage_dashboard), and why the last one failed to draw.
        self._staged: tuple[Sequence[Mapping[str, object]], ChartSpec] | None = None
        self.dashboard_problem: str | None = None
        #: The file version (signature) last found safe to save: a 10,000-row night inspects it once.
        self._kept: Signature | None = None
        #: (row, column) → the value Excel stored for a formula cell of the sheet, as of the loaded workbook.
        self._saved: dict[tuple[int, int], object] = {}

    def describe(self) -> str:
        return f"{self.path.name} [{self.sheet}]"

    def fingerprint(self) -> Signature | None:
        """The file's (mtime, size), for `serve` to notice a save without reading the workbook."""
        return _signature(self.path)

    def read(self) -> Sheet:
        workbook = self._workbook
        if workbook is None or _signature(self.path) != self._signature:  # nobody saved since our last load/save
            workbook = self._load()
        ws = self._worksheet(workbook)
        header = _header(ws)
        rows = tuple(
            BoardRow(ref=ref, values=values, problems=problems)
            for ref, values, problems in _data_rows(ws, header, self._saved)
        )
        return Sheet(columns=tuple(header), rows=rows)

    def write(self, updates: Sequence[RowUpdate]) -> WriteResult:
        if not updates:
            return WriteResult()
        return self._change(lambda workbook: self._apply(self._worksheet(workbook), updates))

    def ensure_schema(self, spec: SchemaSpec) -> list[str]:
        return self._change(lambda workbook: _shape(workbook, self.sheet, spec), create=True)

    # -- optional capabilities (sheetbot/morning/dashboard.py, sheetbot/cli/trial.py) ----------------
    def write_dashboard(self, rows: Sequence[Mapping[str, object]], chart: ChartSpec) -> list[str]:
        """Rebuild the `Dashboard` worksheet (table and line chart) in one atomic save."""
        self.stage_dashboard(rows, chart)
        self.flush()
        return []

    def stage_dashboard(self, rows: Sequence[Mapping[str, object]], chart: ChartSpec) -> list[str]:
        """Keep the dashboard for the next save, so a harvest saves the workbook once, not twice."""
        from sheetbot.boards.dashboard_local import DASHBOARD_SHEET

        if self.sheet == DASHBOARD_SHEET:
            raise BoardError(f"board.sheet is {DASHBOARD_SHEET!r}, the sheet sheetbot keeps its dashboard on")
        self._staged = (rows, chart)
        return []

    def flush(self) -> None:
        """Save what is staged, if the phase's own write did not already carry it."""
        if self._staged is not None:
            self._change(lambda workbook: (None, False))

    @staticmethod
    def _draw(workbook: Workbook, rows: Sequence[Mapping[str, object]], chart: ChartSpec) -> None:
        from sheetbot.boards.dashboard_local import DASHBOARD_SHEET, draw

        draw(workbook, rows, chart, sheet=DASHBOARD_SHEET)  # type: ignore[arg-type]

    def append_rows(self, rows: Sequence[Mapping[str, CellValue]]) -> int:
        """Add rows below the last one, adding columns they name (a trial's sample); one atomic save."""

        def add(workbook: Workbook) -> tuple[int, bool]:
            ws = self._worksheet(workbook)
            header = _header(ws)
            for values in rows:
                for column in values:
                    if column not in header:
                        _add_column(ws, header, column)
            last = max([1, *(int(ref) for ref, _, _ in _data_rows(ws, header, self._saved))])
            for offset, values in enumerate(rows, start=1):
                for column, value in values.items():
                    _put(ws.cell(row=last + offset, column=header[column]), value)
            return len(rows), bool(rows)

        return self._change(add)

    # -- loading and saving ------------------------------------------------------------
    def _change(self, edit: Callable[[Workbook], tuple[T, bool]], *, create: bool = False) -> T:
        """Edit the workbook as it is on disk now and save it once (edit returns: result, changed?).

        A person who saved the file since our read wins: their copy is loaded and edited instead.
        """
        for _ in range(SAVE_ATTEMPTS):
            workbook = self._workbook
            if workbook is None or _signature(self.path) != self._signature:
                workbook = self._load(create=create)
            self._workbook = None  # the copy in memory runs ahead of the file until it is saved
            result, changed = edit(workbook)
            if self._staged is not None:  # a dashboard waiting for this save: one save carries both
                try:
                    self._draw(workbook, *self._staged)
                    changed = True
                except Exception as exc:  # a drawing problem must never cost the decisions in this save
                    self.dashboard_problem = f"{type(exc).__name__}: {exc}"
                    self._staged = None
            if not changed:
                self._workbook = workbook
                return result
            if self._save(workbook):
                self._staged = None
                return result
        raise BoardWriteError(
            f"{self.path} kept changing while sheetbot was saving it ({SAVE_ATTEMPTS} tries): "
            "outputs are kept and will be written on the next run"
        )

    def _load(self, *, create: bool = False) -> Workbook:
        """Read the file once (bytes and stat from the same handle, so they belong together)."""
        try:
            with open(self.path, "rb") as handle:
                stat = os.fstat(handle.fileno())
                data = handle.read()
        except FileNotFoundError:
            if not create:
                raise BoardNotFound(f"{self.path} not found: run `sheetbot init` to create it") from None
            workbook, self._signature = Workbook(), None
            workbook.remove(workbook.worksheets[0])  # _shape adds the sheet under its own name
            return workbook
        except OSError as err:
            raise BoardError(f"cannot read {self.path}: {err.strerror or err}") from None
        signature = (stat.st_mtime_ns, stat.st_size)
        if signature != self._kept:
            self._refuse_what_openpyxl_drops(data)
            self._kept = signature
        try:
            workbook = load_workbook(io.BytesIO(data))
        except Exception as err:  # openpyxl raises zip, XML, key and value errors alike
            reason = "the file is empty" if not data else _one_line(err)
            raise BoardError(
                f"{self.path} is not a valid .xlsx workbook ({reason}): save it from Excel as .xlsx, "
                "or move it away and run `sheetbot init`"
            ) from None
        self._workbook, self._signature = workbook, signature
        self._saved = _saved_values(data, workbook, self.sheet)
        return workbook

    def _refuse_what_openpyxl_drops(self, data: bytes) -> None:
        """Before anything is read or saved: a workbook whose save would lose a person's objects is refused.

        openpyxl rewrites the whole file from what it understands (sheetbot/boards/xlsx_parts.py); a
        text box, a picture, a pivot table or macros elsewhere in the workbook would silently go.
        """
        from sheetbot.boards.dashboard_local import DASHBOARD_SHEET

        lost = losses(data, own_sheets={DASHBOARD_SHEET})
        macro_name = self.path.suffix.lower() in MACRO_SUFFIXES
        if not lost and not macro_name:
            return
        what = describe_losses(lost) if lost else f"a macro-enabled workbook ({self.path.suffix})"
        raise WorkbookNotKept(
            f"{self.path} holds {what}, which would be lost when sheetbot saves the workbook (openpyxl "
            "keeps only cells, formats, notes and its own charts): keep the queue in a workbook of its own "
            "(point board.path at a new .xlsx and run `sheetbot init`); nothing was changed"
        )

    def _worksheet(self, workbook: Workbook) -> Worksheet:
        ws = workbook[self.sheet] if self.sheet in workbook.sheetnames else None
        if not isinstance(ws, Worksheet):  # missing, or a chart sheet
            names = ", ".join(repr(name) for name in workbook.sheetnames)
            raise BoardNotFound(
                f"{self.path} has no worksheet {self.sheet!r} (it has {names}): "
                "run `sheetbot init` to create it, or fix board.sheet in the YAML"
            )
        return ws

    def _save(self, workbook: Workbook) -> bool:
        """Atomically replace the file. False, and nothing written, if a person saved it meanwhile."""
        expected, target = self._signature, self.path.resolve()  # a symlink stays a link to the file
        _refuse_read_only(self.path, target)
        _sweep_temp_files(target)
        temp, replaced = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp"), False
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open_private(temp, "xb") as handle:  # a new file, owner only: the queue holds customer data
                workbook.save(handle)
                handle.flush()
                os.fsync(handle.fileno())
            if _signature(self.path) != expected:
                return False
            if expected is not None:
                os.chmod(temp, target.stat().st_mode)  # a temp file's mode is not the user's
            saved = _signature(temp)  # a rename keeps mtime and size
            os.replace(temp, target)
            replaced = True
        except Exception as err:  # PermissionError (open in Excel on Windows), disk full, openpyxl
            reason = (err.strerror or str(err)) if isinstance(err, OSError) else _one_line(err)
            raise BoardWriteError(
                f"could not save {self.path} ({reason}): close the workbook if it is open in Excel; "
                "outputs are kept and will be written on the next run"
            ) from None
        finally:
            if not replaced:
                with contextlib.suppress(OSError):
                    temp.unlink(missing_ok=True)
        self._workbook, self._signature, self._kept = workbook, saved, saved  # ours: nothing new to inspect
        return True

    # -- applying updates ----------------------------------------------------------------
    def _apply(self, ws: Worksheet, updates: Sequence[RowUpdate]) -> tuple[WriteResult, bool]:
        header = _header(ws)
        found = _data_rows(ws, header, self._saved)  # the values read() showed: claims match them
        refs = [ref for ref, _, _ in found]
        placement = resolve(updates, [values for _, values, _ in found], id_column=self.id_column, refs=refs)
        result = WriteResult(missing=list(placement.missing))
        aligned: dict[int, Alignment | None] = {}
        for u_index, targets in placement.targets.items():
            for column, value in updates[u_index].values.items():
                col = header.get(column) or _add_column(ws, header, column)
                if col not in aligned:  # the wrap `init` gives wide columns: Excel applies it, openpyxl not
                    dimension = ws.column_dimensions.get(get_column_letter(col))
                    aligned[col] = copy(dimension.alignment) if dimension is not None and dimension.has_style else None
                for target in targets:
                    cell = ws.cell(row=int(refs[target]), column=col)
                    if aligned[col] is not None and not cell.has_style:
                        cell.alignment = aligned[col]  # as Excel does when a person types in the cell
                    _put(cell, value)
            result.written += 1
        return result, bool(placement.targets)


def _header(ws: Worksheet) -> dict[str, int]:
    """Column name → column number. Blank header cells are skipped; a repeated name keeps its first."""
    header: dict[str, int] = {}
    for col, value in enumerate(next(ws.iter_rows(max_row=1, values_only=True), ()), start=1):
        name = _text(value).strip()
        if name and name not in header:
            header[name] = col
    return header


#: Why a formula cell is blank to sheetbot: the file holds no computed value for it.
NO_SAVED_VALUE = (
    "cell {column} of row {row} holds a formula with no saved value: open and save the workbook in Excel, "
    "or type the value"
)


def _data_rows(
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
        values = {name: _text(cells.get(column)) for name, column in header.items()}
        blank = unsaved.get(number, set())
        problems = {
            name: NO_SAVED_VALUE.format(column=name, row=number) for name, column in header.items() if column in blank
        }
        if problems or any(text.strip() for text in values.values()):
            rows.append((str(number), values, problems))
    return rows


def _saved_values(data: bytes, workbook: Workbook, sheet: str) -> dict[tuple[int, int], object]:
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


def _add_column(ws: Worksheet, header: dict[str, int], name: str) -> int:
    """Name the column after the last one holding anything (never over data under a blank header)."""
    col = 0
    for cells in ws.iter_rows(values_only=True):
        col = next((i for i in range(len(cells), col, -1) if cells[i - 1] not in (None, "")), col)
    header[name] = col + 1
    _put(ws.cell(row=1, column=col + 1), name)
    ws.cell(row=1, column=col + 1).font = Font(bold=True)
    return col + 1


_text = as_text


def _put(cell: Cell, value: CellValue) -> None:
    """Write a plain value: numbers stay numbers, and text stays text even when it starts with ``=``."""
    if value is None or (isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)):
        cell.value = value
        return
    text = clean_text(str(value))
    cell.value = text
    cell.data_type = "s"  # openpyxl makes "=…" a formula and "#N/A" an error; this undoes both
    if looks_like_formula(text) and not cell.quotePrefix:
        cell.quotePrefix = True  # so Excel keeps it text even when a person re-enters the cell


def _shape(workbook: Workbook, sheet: str, spec: SchemaSpec) -> tuple[list[str], bool]:
    """Add what `init` promises; returns the columns added and whether anything changed."""
    changed = sheet not in workbook.sheetnames
    if changed:
        try:
            workbook.create_sheet(sheet)
        except ValueError as err:
            raise BoardError(f"{sheet!r} cannot be a sheet name ({_one_line(err)}): fix board.sheet") from None
    ws = workbook[sheet]
    if not isinstance(ws, Worksheet):
        raise BoardError(f"{sheet!r} is a chart sheet, not a worksheet: fix board.sheet")
    header = _header(ws)
    added = [name for name in dict.fromkeys(spec.columns) if name not in header]
    for name in added:
        _add_column(ws, header, name)
    changed = changed or bool(added)
    for col in header.values():
        cell = ws.cell(row=1, column=col)
        if not cell.font.b:
            font = copy(cell.font)
            font.b = True
            cell.font = font
            changed = True
    if ws.freeze_panes is None or coordinate_to_tuple(ws.freeze_panes)[0] < 2:
        ws.freeze_panes = "A2"
        changed = True
    review = get_column_letter(header[spec.review_column]) if spec.review_column in header else None
    # A dropdown already on the column stays (re-running init must not stack them, nor undo a person's).
    if review and not any(f"{review}2" in dv.sqref for dv in ws.data_validations.dataValidation):
        choices = ",".join(spec.review_choices)
        dropdown = DataValidation("list", formula1=f'"{choices}"', allow_blank=True, showErrorMessage=True)
        dropdown.errorTitle, dropdown.error = spec.review_column, f"Pick one of: {choices.replace(',', ', ')}"
        dropdown.add(f"{review}2:{review}{LAST_ROW}")
        ws.add_data_validation(dropdown)
        changed = True
    sized = {col for d in ws.column_dimensions.values() if d.min and d.max for col in range(d.min, d.max + 1)}
    for name in spec.wide_columns:
        wide = header.get(name)
        if wide is not None and wide not in sized:
            dimension = ws.column_dimensions[get_column_letter(wide)]
            dimension.width = WIDE_COLUMN_WIDTH  # only where nobody has sized the column yet
            dimension.alignment = Alignment(wrap_text=True, vertical="top")
            changed = True
    return added, changed


def _writable(path: Path) -> bool:
    """Write permission that is meant, not just possible: root may write anything, but a file or folder
    with no write bit at all was made read-only on purpose."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return True  # not there yet: creating it will say what is wrong
    return os.access(path, os.W_OK) and bool(mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _refuse_read_only(path: Path, target: Path) -> None:
    """Replacing a file works even when the file itself is read-only (a rename only needs the folder):
    a person who made the workbook read-only asked sheetbot not to change it."""
    keep = "outputs are kept in the state and written once it is writable"
    if target.exists() and not _writable(target):
        raise BoardWriteError(
            f"{path} is read-only, so sheetbot leaves it alone: make it writable "
            f"(chmod u+w {path}) or point board.path at a writable copy; {keep}"
        )
    if not _writable(target.parent):
        raise BoardWriteError(
            f"the folder of {path} is read-only, and sheetbot saves through a temp file beside the workbook: "
            f"make {target.parent} writable or move the workbook; {keep}"
        )


def _sweep_temp_files(target: Path, *, now_s: float | None = None) -> None:
    """Remove temp files a killed save of this workbook left behind: only ours (``.NAME.<8 hex>.tmp``),
    and only old ones, so another save in progress keeps its file."""
    pattern = re.compile(rf"\.{re.escape(target.name)}\.[0-9a-f]{{8}}\.tmp")
    cutoff = (time.time() if now_s is None else now_s) - STALE_TEMP_S
    with contextlib.suppress(OSError):
        for leftover in target.parent.glob(f".{glob_escape(target.name)}.*.tmp"):
            with contextlib.suppress(OSError):
                if pattern.fullmatch(leftover.name) and leftover.stat().st_mtime < cutoff:
                    leftover.unlink()


def _signature(path: Path) -> Signature | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size)


def _one_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__
