"""The embedded default board: an ``.xlsx`` workbook on disk, through openpyxl.

People keep this workbook open in Excel all day. So a write never overwrites what a person
saved since our read (a changed ``(st_mtime_ns, st_size)`` means: re-read, find the rows by
id again, re-apply), a write is all or nothing (temp file, fsync, ``os.replace``), and
values are written as text or numbers, never as formulas.

This module decides when the file is loaded and saved; local_sheet.py knows the worksheet's cells
and the shape `init` gives it, local_file.py the file-level rules (signature, read-only, temp files).
"""

from __future__ import annotations

import contextlib
import io
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from copy import copy
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from openpyxl import Workbook, load_workbook
from openpyxl.cell.cell import Cell as XlCell
from openpyxl.styles import Alignment
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from sheetbot.boards import dashboard_local
from sheetbot.boards.base import BoardRow, CellValue, RowUpdate, SchemaSpec, Sheet, WriteResult
from sheetbot.boards.dashboard_cells import Cell, ChartSpec
from sheetbot.boards.dashboard_local import DASHBOARD_SHEET
from sheetbot.boards.local_file import Signature, file_signature, one_line, refuse_read_only, sweep_temp_files
from sheetbot.boards.local_look import fit_rows, stretch_filter
from sheetbot.boards.local_sheet import add_column, data_rows, put_value, read_header, saved_values, shape_sheet
from sheetbot.boards.locate import resolve
from sheetbot.boards.values import EXCEL_CELL_UNITS
from sheetbot.boards.xlsx_parts import describe as describe_losses
from sheetbot.boards.xlsx_parts import losses
from sheetbot.errors import BoardError, BoardNotFound, BoardWriteError, WorkbookNotKept
from sheetbot.safety.private import open_private

T = TypeVar("T")

#: How often a write re-reads and re-applies when the file keeps changing under it.
SAVE_ATTEMPTS = 3
#: Macro-enabled workbooks: openpyxl would save them without their macros and with the .xlsx content type.
MACRO_SUFFIXES = frozenset({".xlsm", ".xltm", ".xlam"})


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
        self._staged: tuple[Sequence[Mapping[str, Cell]], ChartSpec] | None = None
        self._dashboard_problem: str | None = None
        #: The file version (signature) last found safe to save: a 10,000-row night inspects it once.
        self._kept: Signature | None = None
        #: (row, column) → the value Excel stored for a formula cell of the sheet, as of the loaded workbook.
        self._saved: dict[tuple[int, int], object] = {}
        #: The rows read() found, with the workbook and header they came from: the write that follows a read
        #: places its updates on the same rows without walking every cell again (dropped at any edit or load).
        self._rows: tuple[Workbook, dict[str, int], list[tuple[str, dict[str, str], dict[str, str]]]] | None = None

    def describe(self) -> str:
        return f"{self.path.name} [{self.sheet}]"

    def fingerprint(self) -> Signature | None:
        """The file's (mtime, size), for `serve` to notice a save without reading the workbook."""
        return file_signature(self.path)

    def read(self) -> Sheet:
        workbook = self._workbook
        if workbook is None or file_signature(self.path) != self._signature:  # nobody saved since our last load/save
            workbook = self._load()
        ws = self._worksheet(workbook)
        header = read_header(ws)
        rows = tuple(
            BoardRow(ref=ref, values=values, problems=problems)
            for ref, values, problems in self._data_rows(workbook, ws, header)
        )
        return Sheet(columns=tuple(header), rows=rows)

    def _data_rows(
        self, workbook: Workbook, ws: Worksheet, header: dict[str, int]
    ) -> list[tuple[str, dict[str, str], dict[str, str]]]:
        """data_rows(), once per workbook version: a phase's read and its write see the same unedited cells."""
        cached = self._rows
        if cached is not None and cached[0] is workbook and cached[1] == header:
            return cached[2]
        rows = data_rows(ws, header, self._saved)
        self._rows = (workbook, dict(header), rows)
        return rows

    def write(self, updates: Sequence[RowUpdate]) -> WriteResult:
        if not updates:
            return WriteResult()
        return self._change(lambda workbook: self._apply(self._worksheet(workbook), updates))

    def ensure_schema(self, spec: SchemaSpec) -> list[str]:
        return self._change(
            lambda workbook: shape_sheet(workbook, self.sheet, spec, id_column=self.id_column), create=True
        )

    # -- optional capabilities (sheetbot/boards/capabilities.py) ------------------------------------
    def write_dashboard(self, rows: Sequence[Mapping[str, Cell]], chart: ChartSpec) -> list[str]:
        """Rebuild the `Dashboard` worksheet (table and line chart) in one atomic save."""
        self.stage_dashboard(rows, chart)
        self.flush()
        return []

    def stage_dashboard(self, rows: Sequence[Mapping[str, Cell]], chart: ChartSpec) -> list[str]:
        """Keep the dashboard for the next save, so a harvest saves the workbook once, not twice."""
        if self.sheet == DASHBOARD_SHEET:
            raise BoardError(f"board.sheet is {DASHBOARD_SHEET!r}, the sheet sheetbot keeps its dashboard on")
        self._staged = (rows, chart)
        return []

    def flush(self) -> None:
        """Save what is staged, if the phase's own write did not already carry it."""
        if self._staged is not None:
            self._change(lambda workbook: (None, False))

    def take_dashboard_problem(self) -> str | None:
        """Why the last staged dashboard failed to draw (its save went ahead without it), told once."""
        problem, self._dashboard_problem = self._dashboard_problem, None
        return problem

    def append_rows(self, rows: Sequence[Mapping[str, CellValue]]) -> int:
        """Add rows below the last one, adding columns they name (a trial's sample); one atomic save."""

        def add(workbook: Workbook) -> tuple[int, bool]:
            ws = self._worksheet(workbook)
            header = read_header(ws)
            for values in rows:
                for column in values:
                    if column not in header:
                        add_column(ws, header, column)
            last = max([1, *(int(ref) for ref, _, _ in data_rows(ws, header, self._saved))])
            aligned: dict[int, Alignment | None] = {}
            for offset, values in enumerate(rows, start=1):
                for column, value in values.items():
                    put_value(_aligned(ws, ws.cell(row=last + offset, column=header[column]), aligned), value)
            fit_rows(ws, range(last + 1, last + 1 + len(rows)))
            stretch_filter(ws, max(header.values(), default=0))
            return len(rows), bool(rows)

        return self._change(add)

    # -- loading and saving ------------------------------------------------------------
    def _change(self, edit: Callable[[Workbook], tuple[T, bool]], *, create: bool = False) -> T:
        """Edit the workbook as it is on disk now and save it once (edit returns: result, changed?).

        A person who saved the file since our read wins: their copy is loaded and edited instead.
        """
        for _ in range(SAVE_ATTEMPTS):
            workbook = self._workbook
            if workbook is None or file_signature(self.path) != self._signature:
                workbook = self._load(create=create)
            self._workbook = None  # the copy in memory runs ahead of the file until it is saved
            try:
                result, changed = edit(workbook)
            finally:
                self._rows = None  # the edit changed the cells the rows were read from
            if self._staged is not None:  # a dashboard waiting for this save: one save carries both
                try:
                    dashboard_local.draw(workbook, *self._staged, sheet=DASHBOARD_SHEET)
                    changed = True
                except Exception as exc:  # a drawing problem must never cost the decisions in this save
                    self._dashboard_problem = f"{type(exc).__name__}: {exc}"
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
        self._rows = None  # rows of the workbook this load replaces
        try:
            with open(self.path, "rb") as handle:
                stat = os.fstat(handle.fileno())
                data = handle.read()
        except FileNotFoundError:
            if not create:
                raise BoardNotFound(f"{self.path} not found: run `sheetbot init` to create it") from None
            workbook, self._signature = Workbook(), None
            workbook.remove(workbook.worksheets[0])  # shape_sheet adds the sheet under its own name
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
            reason = "the file is empty" if not data else one_line(err)
            raise BoardError(
                f"{self.path} is not a valid .xlsx workbook ({reason}): save it from Excel as .xlsx, "
                "or move it away and run `sheetbot init`"
            ) from None
        self._workbook, self._signature = workbook, signature
        self._saved = saved_values(data, workbook, self.sheet)
        return workbook

    def _refuse_what_openpyxl_drops(self, data: bytes) -> None:
        """Before anything is read or saved: a workbook whose save would lose a person's objects is refused.

        openpyxl rewrites the whole file from what it understands (sheetbot/boards/xlsx_parts.py); a
        text box, a picture, a pivot table or macros elsewhere in the workbook would silently go.
        """
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
        refuse_read_only(self.path, target)
        sweep_temp_files(target)
        temp, replaced = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp"), False
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open_private(temp, "xb") as handle:  # a new file, owner only: the queue holds customer data
                workbook.save(handle)
                handle.flush()
                os.fsync(handle.fileno())
            if file_signature(self.path) != expected:
                return False
            if expected is not None:
                os.chmod(temp, target.stat().st_mode)  # a temp file's mode is not the user's
            saved = file_signature(temp)  # a rename keeps mtime and size
            os.replace(temp, target)
            replaced = True
        except Exception as err:  # PermissionError (open in Excel on Windows), disk full, openpyxl
            reason = (err.strerror or str(err)) if isinstance(err, OSError) else one_line(err)
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
        header = read_header(ws)
        found = self._data_rows(ws.parent, ws, header)  # the values read() showed: claims match them
        refs = [ref for ref, _, _ in found]
        placement = resolve(updates, [values for _, values, _ in found], id_column=self.id_column, refs=refs)
        result = WriteResult(missing=list(placement.missing))
        aligned: dict[int, Alignment | None] = {}
        for u_index, targets in placement.targets.items():
            for column, value in updates[u_index].values.items():
                col = header.get(column) or add_column(ws, header, column)
                for target in targets:
                    cell = ws.cell(row=int(refs[target]), column=col)
                    if put_value(cell, value):
                        _aligned(ws, cell, aligned)
            result.written += 1
        if placement.targets:
            fit_rows(ws, {int(refs[t]) for targets in placement.targets.values() for t in targets})
            stretch_filter(ws, max(header.values(), default=0))
        return result, bool(placement.targets)


def _aligned(ws: Worksheet, cell: XlCell, cache: dict[int, Alignment | None]) -> XlCell:
    """The cell with its column's alignment (the wrap `init` gives wide columns), as Excel does when a person
    types in the cell; openpyxl does not. ``cache``: column → alignment, looked up once a write."""
    col = cell.column
    if col not in cache:
        dimension = ws.column_dimensions.get(get_column_letter(col))
        cache[col] = copy(dimension.alignment) if dimension is not None and dimension.has_style else None
    alignment = cache[col]
    if alignment is not None and not cell.has_style:
        cell.alignment = alignment
    return cell


if TYPE_CHECKING:  # mypy holds LocalBoard to the Board protocol and to each capability it offers
    from sheetbot.boards.base import Board
    from sheetbot.boards.capabilities import AppendsRows, DrawsDashboard, Fingerprinted, StagesDashboard

    def _offers(board: LocalBoard) -> tuple[Board, DrawsDashboard, StagesDashboard, AppendsRows, Fingerprinted]:
        return board, board, board, board, board
