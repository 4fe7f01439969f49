"""A Google Sheet as the board, through gspread 6 and a service account (google-auth).

Google allows one service account about 60 reads and 60 writes a minute, so every phase costs
the same few requests whatever the number of rows:

* ``read()``: one ``values.get`` of the whole worksheet.
* ``write()``: one ``values.get`` of the sheet as it is now, right before one ``values:batchUpdate``:
  rows people sorted, inserted, deleted or copied since the read are found by id (new rows by their
  values), and only cells that differ from what the sheet already says are sent, so a harvest does
  not upload every output again. The update is split only to keep each request under about 2 MB.
* ``read_then_write()``: the read and the write above with one ``values.get``, not two: the updates a
  phase plans from its read are placed by that read, when the plan answered within PLACE_BY_READ_S and
  names only columns the read had (otherwise the ids are read again first, as ``write()`` does).
* ``ensure_schema()``: one ``spreadsheets.get`` and at most one ``spreadsheets:batchUpdate``.
* ``redraw_dashboard()``: one ``spreadsheets:batchUpdate``, drawn onto the layout the last drawing
  returned or onto a new tab (sheetbot/boards/dashboard_google.py).

Values go in with ``valueInputOption=RAW``, which Google stores "as-is, not parsed": text that
starts with ``=``, ``+``, ``-`` or ``@`` stays text, never a formula. gspread's low-level HTTP
client is used directly (its Spreadsheet and Worksheet objects fetch metadata when built, a
request each), and retries are ours (safety/retry.py: tenacity, with an injectable sleep), not gspread's
``BackOffHTTPClient``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gspread
import requests
from gspread.exceptions import APIError
from gspread.utils import a1_range_to_grid_range, absolute_range_name

from sheetbot.boards import dashboard_google as dg
from sheetbot.boards.base import STATUS_COLOURS as STATUS_COLOURS
from sheetbot.boards.base import BoardRow, CellValue, RowUpdate, SchemaSpec, Sheet, WriteResult
from sheetbot.boards.dashboard_cells import Cell, ChartSpec
from sheetbot.boards.google_calls import SCOPES as SCOPES
from sheetbot.boards.google_calls import SheetsCalls, next_sheet_id
from sheetbot.boards.google_calls import load_credentials as load_credentials
from sheetbot.boards.google_calls import spreadsheet_key as spreadsheet_key
from sheetbot.boards.google_grid import _data_rows, _grid_data, _header, _runs, _trim
from sheetbot.boards.google_requests import WIDE_COLUMN_PIXELS as WIDE_COLUMN_PIXELS
from sheetbot.boards.google_requests import (
    _colour_rule,
    _coloured_statuses,
    _dropdown,
    _freeze,
    _grid_range,
    _has_validation,
    _header_cells,
    _raw,
)
from sheetbot.boards.google_requests import value_bodies as value_bodies
from sheetbot.boards.locate import resolve
from sheetbot.boards.values import GOOGLE_CELL_UNITS, clean_text
from sheetbot.errors import BoardError

log = logging.getLogger(__name__)

# Vendor JSON: request parameters and bodies are the Sheets API's own shape (Google's), kept as loose dicts.

#: Google's advice for one request's payload; a write is split to stay under it.
MAX_REQUEST_BYTES = 2_000_000
#: Extra requests a write may spend finding the rows Google refuses (400), so the others still get written.
SPLIT_REQUESTS = 24
#: Tries per request on 429/5xx/network errors: 1+2+4+…+64 s of backoff outlasts the one-minute quota window.
ATTEMPTS = 8
PROTECTION = "sheetbot: locked for tonight"
#: How old read_then_write's read may be when its updates are placed by it: about as long as write() itself
#: takes between reading the ids and sending on a big sheet. A slower plan reads the ids again (a person may
#: have sorted the sheet meanwhile), at the price of the request it would have saved.
PLACE_BY_READ_S = 1.0
_WARN_ONLY = {"description": PROTECTION, "warningOnly": True}
_SCHEMA_FIELDS = (
    "sheets(properties(sheetId,title,gridProperties(rowCount,columnCount,frozenRowCount)),"
    "conditionalFormats(ranges,booleanRule(condition)),data(rowData(values(formattedValue,dataValidation))))"
)


class GoogleSheetsBoard(SheetsCalls):
    """One worksheet of a spreadsheet: row 1 is the header, every other non-blank row a task."""

    def __init__(
        self,
        spreadsheet: str,
        sheet: str,
        *,
        client: gspread.Client,
        account_email: str = "the service account",
        id_column: str = "id",
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        attempts: int = ATTEMPTS,
        max_request_bytes: int = MAX_REQUEST_BYTES,
        max_cell_units: int = GOOGLE_CELL_UNITS,
    ) -> None:
        self.key = spreadsheet_key(spreadsheet)
        self.sheet = sheet
        self.account_email = account_email
        self.id_column = id_column
        self.attempts = attempts
        self.max_request_bytes = max_request_bytes
        #: Google's 50,000 characters a cell, counted as UTF-16 units (sheetbot/boards/values.py).
        self.max_cell_units = max_cell_units
        self._http = client.http_client
        self._sleep = sleep
        self._monotonic = monotonic

    @classmethod
    def connect(
        cls, spreadsheet: str, sheet: str, *, credentials: Path, session: requests.Session | None = None, **options: Any
    ) -> GoogleSheetsBoard:
        """The board through a service-account key file; ``session`` (already authorised) replaces the default one."""
        creds = load_credentials(credentials)
        client = gspread.Client(auth=creds) if session is None else gspread.Client(auth=None, session=session)  # type: ignore[arg-type]
        client.set_timeout((10, 190))  # Google gives up on a request after 180 s of processing
        return cls(spreadsheet, sheet, client=client, account_email=creds.service_account_email, **options)

    # -- the Board protocol ----------------------------------------------------------------
    def read(self) -> Sheet:
        return _sheet(self._call(lambda: self._values(self._range())))

    def write(self, updates: Sequence[RowUpdate]) -> WriteResult:
        if not updates:
            return WriteResult()
        # Retried as a whole: after a 429 the ids are read again, as people may have moved rows meanwhile.
        return self._call(lambda: self._write(updates), writing=True)

    def read_then_write(self, plan: Callable[[Sheet], Sequence[RowUpdate]]) -> tuple[Sheet, WriteResult]:
        grid = self._call(lambda: self._values(self._range()))
        sheet = _sheet(grid)
        read_at = self._monotonic()
        updates = plan(sheet)
        if not updates:
            return sheet, WriteResult()
        header = _header(grid)
        placeable = self._monotonic() - read_at <= PLACE_BY_READ_S and all(
            column in header for u in updates for column in u.values
        )
        seen = [grid] if placeable else []  # the first try only: a retry after a 429 reads the ids again
        return sheet, self._call(lambda: self._write(updates, seen.pop() if seen else None), writing=True)

    def ensure_schema(self, spec: SchemaSpec) -> list[str]:
        params: dict[str, Any] = {"ranges": self._range(), "fields": _SCHEMA_FIELDS}
        meta = self._call(lambda: self._http.fetch_sheet_metadata(self.key, params=params), missing_sheet_ok=True)
        found = [s for s in (meta or {}).get("sheets", []) if s["properties"]["title"] == self.sheet]
        requests_: list[dict[str, Any]] = []
        if found:
            sheet = found[0]
            props = sheet["properties"]
            sheet_id, grid_props = props["sheetId"], props.get("gridProperties", {})
            rows, grid = _grid_data(sheet)
        else:
            sheet, sheet_id, grid_props, rows, grid = {}, self._free_sheet_id(), {}, [], []
        header = _header(grid)
        added = [name for name in dict.fromkeys(spec.columns) if name not in header]
        width = max((len(_trim(r)) for r in grid), default=0)
        for offset, name in enumerate(added):
            header[name] = width + offset
        columns = max(header.values(), default=-1) + 1
        if not found:
            grid_props = {"rowCount": 1000, "columnCount": max(26, columns), "frozenRowCount": 1}
            if header.get(self.id_column) == 0:  # a new tab: the id column stays in view beside every row
                grid_props["frozenColumnCount"] = 1
            requests_.append(
                {"addSheet": {"properties": {"sheetId": sheet_id, "title": self.sheet, "gridProperties": grid_props}}}
            )
        elif columns > grid_props.get("columnCount", 26):
            grow = columns - grid_props.get("columnCount", 26)
            requests_.append({"appendDimension": {"sheetId": sheet_id, "dimension": "COLUMNS", "length": grow}})
        if added:
            requests_ += _header_cells(sheet_id, width, added, [header[c] for c in spec.wide_columns if c in added])
        if grid_props.get("frozenRowCount", 0) < 1:
            requests_.append(_freeze(sheet_id))
        review = header.get(spec.review_column)
        if review is not None and not _has_validation(rows, review):
            requests_.append(_dropdown(sheet_id, review, spec.review_choices))
        kind = header.get(spec.type_column)
        if kind is not None and spec.type_choices and not _has_validation(rows, kind):
            requests_.append(_dropdown(sheet_id, kind, spec.type_choices, strict=False))
        status = header.get(spec.status_column)
        if status is not None:
            coloured = _coloured_statuses(sheet.get("conditionalFormats", []), status)
            for value in spec.status_choices:
                if value in STATUS_COLOURS and value not in coloured:
                    requests_.append(_colour_rule(sheet_id, status, value, STATUS_COLOURS[value]))
        if requests_:
            self._call(lambda: self._http.batch_update(self.key, {"requests": requests_}))
        return added

    # -- optional capabilities (sheetbot/boards/capabilities.py) --------------------------------
    # Warning-only protection of locked rows (ProtectsInputs).
    def protect_inputs(self, task_ids: Sequence[str], columns: Sequence[str] = ()) -> int:
        """Make sheetbot's warning-only protected ranges cover exactly these tasks' rows (``columns``, default
        every column but the id), replacing the earlier ones. A person editing a locked input is warned that
        tonight runs what the row said at the cutoff. Returns the number of ranges now protected."""
        fields = "sheets(properties(sheetId,title),protectedRanges(protectedRangeId,description)"
        fields += ",data(rowData(values(formattedValue))))" if task_ids else ")"
        params: dict[str, Any] = {"ranges": self._range(), "fields": fields}
        meta = self._call(lambda: self._http.fetch_sheet_metadata(self.key, params=params))
        sheet = next(s for s in meta.get("sheets", []) if s["properties"]["title"] == self.sheet)
        sheet_id = sheet["properties"]["sheetId"]
        changes: list[dict[str, Any]] = [
            {"deleteProtectedRange": {"protectedRangeId": p["protectedRangeId"]}}
            for p in sheet.get("protectedRanges", [])
            if p.get("description") == PROTECTION
        ]
        wanted = set(task_ids)
        grid = _grid_data(sheet)[1]
        header = _header(grid)
        numbers = [n for n, values in _data_rows(grid, header) if values.get(self.id_column, "").strip() in wanted]
        cols = sorted(header[c] for c in (columns or [c for c in header if c != self.id_column]) if c in header)
        added = 0
        for first_row, last_row in _runs(numbers):
            for first_col, last_col in _runs(cols):
                span = _grid_range(sheet_id, first_row - 1, last_row, first_col, last_col + 1)
                changes.append({"addProtectedRange": {"protectedRange": {**_WARN_ONLY, "range": span}}})
                added += 1
        if changes:
            self._call(lambda: self._http.batch_update(self.key, {"requests": changes}))
        return added

    def unprotect_inputs(self) -> None:
        """Remove sheetbot's protected ranges (the night is over)."""
        self.protect_inputs([])

    def write_dashboard(self, rows: Sequence[Mapping[str, Cell]], chart: ChartSpec) -> list[str]:
        """The `Dashboard` tab, table and line chart (sheetbot/boards/dashboard_google.py)."""
        return self.redraw_dashboard(rows, chart, None)[0]

    def redraw_dashboard(
        self, rows: Sequence[Mapping[str, Cell]], chart: ChartSpec, layout: str | None
    ) -> tuple[list[str], str]:
        """One request: onto the layout the last drawing returned, or, without one, onto a new tab. Google
        refuses that request whole (HTTP 400) when the layout went stale or the tab is already there, and
        the tab is then looked up (``spreadsheets.get``) and drawn onto: two more."""
        if self.sheet == dg.DASHBOARD_SHEET:
            raise BoardError(f"board.sheet is {dg.DASHBOARD_SHEET!r}, the tab sheetbot keeps its dashboard on")
        known = dg.Layout.loads(layout)
        changes, after = dg.draw_requests(known, rows, chart, free_id=dg.NEW_SHEET_ID)
        reply = self._call(lambda: self._http.batch_update(self.key, {"requests": changes}), refused_ok=True)
        if reply is not None:
            return [], dg.after_reply(after, reply).dumps()
        if known is not None:
            log.info("Google refused the Dashboard's remembered layout on %s; looking the tab up", self.describe())
        params: dict[str, Any] = {"fields": dg.META_FIELDS}
        meta = self._call(lambda: self._http.fetch_sheet_metadata(self.key, params=params))
        changes, after = dg.draw_requests(dg.layout_of(meta), rows, chart, free_id=next_sheet_id(meta))
        reply = self._call(lambda: self._http.batch_update(self.key, {"requests": changes}))
        return [], dg.after_reply(after, reply).dumps()

    def append_rows(self, rows: Sequence[Mapping[str, CellValue]]) -> int:
        """Add rows below the last one (a trial's sample): one read and one values:batchUpdate."""
        if not rows:
            return 0

        def append() -> int:
            grid = self._values(self._range())
            header = _header(grid)
            width = max((len(_trim(r)) for r in grid), default=0)
            new_columns: dict[str, int] = {}
            cells: dict[int, dict[int, Any]] = {}
            for number, values in enumerate(rows, start=len(grid) + 1):
                for column, value in values.items():
                    col = header.get(column)
                    if col is None:
                        col = new_columns.setdefault(column, width + len(new_columns))
                    cells.setdefault(number, {})[col] = _raw(value, self.max_cell_units)
            if new_columns:
                cells.setdefault(1, {}).update({col: clean_text(name) for name, col in new_columns.items()})
                self._grow(width + len(new_columns))
            for body in value_bodies(absolute_range_name(self.sheet), cells, self.max_request_bytes):
                self._http.values_batch_update(self.key, body)
            return len(rows)

        return self._call(append, writing=True)

    # -- writing ------------------------------------------------------------------------------
    def _write(self, updates: Sequence[RowUpdate], grid: list[list[str]] | None = None) -> WriteResult:
        if grid is None:
            grid = self._values(self._range())  # the sheet as it is now, not as it was at the read
        header = _header(grid)
        found = _data_rows(grid, header)
        width = max((len(_trim(r)) for r in grid), default=0)
        placement = resolve(updates, [v for _, v in found], id_column=self.id_column, refs=[str(n) for n, _ in found])
        result = WriteResult(missing=list(placement.missing))
        cells: dict[int, dict[int, Any]] = {}
        owners: dict[int, str] = {}
        new_columns: dict[str, int] = {}
        for u_index, targets in placement.targets.items():
            for column, value in updates[u_index].values.items():
                col = header.get(column)
                if col is None:
                    col = new_columns.setdefault(column, width + len(new_columns))
                raw = _raw(value, self.max_cell_units)
                for target in targets:
                    number, current = found[target]
                    owners[number] = updates[u_index].task_id
                    if not (isinstance(raw, str) and column in current and current[column] == raw):
                        cells.setdefault(number, {})[col] = raw  # a cell that already says so is not sent again
            result.written += 1
        if new_columns:
            cells.setdefault(1, {}).update({col: clean_text(name) for name, col in new_columns.items()})
            self._grow(width + len(new_columns))
        refused: dict[int, str] = {}
        self._send(cells, refused, budget=[SPLIT_REQUESTS])
        result.refused = {owners[n]: why for n, why in refused.items()}
        result.written -= len(result.refused)
        return result

    def _send(self, cells: dict[int, dict[int, Any]], refused: dict[int, str], *, budget: list[int]) -> None:
        """Send ``cells`` in as few requests as fit. Google refuses a whole request for one bad cell (HTTP 400),
        so a refused request is halved, down to the row, until the rows at fault are found (``refused``:
        row number → Google's reason) and every other row is written: at most ``budget`` extra requests."""
        for body in value_bodies(absolute_range_name(self.sheet), cells, self.max_request_bytes):
            try:
                self._http.values_batch_update(self.key, body)
            except APIError as err:
                rows = sorted({n for vr in body["data"] for n in _rows_of(vr["range"]) if n in cells})
                if not _refused(err) or 1 in rows or budget[0] <= 0:
                    raise
                if len(rows) == 1:
                    refused[rows[0]] = str(err.error.get("message", "")).strip() or f"HTTP {err.code}"
                    continue
                half = len(rows) // 2
                for part in (rows[:half], rows[half:]):
                    budget[0] -= 1
                    self._send({n: cells[n] for n in part}, refused, budget=budget)

    def _grow(self, columns: int) -> None:
        """Widen the grid for columns the header lacks (rare: `init` makes them; two extra requests)."""
        meta = self._http.fetch_sheet_metadata(
            self.key, params={"fields": "sheets.properties(sheetId,title,gridProperties)"}
        )
        props = next(s["properties"] for s in meta["sheets"] if s["properties"]["title"] == self.sheet)
        have = props.get("gridProperties", {}).get("columnCount", 26)
        if columns > have:
            grow = {"sheetId": props["sheetId"], "dimension": "COLUMNS", "length": columns - have}
            self._http.batch_update(self.key, {"requests": [{"appendDimension": grow}]})


def _sheet(grid: Sequence[Sequence[str]]) -> Sheet:
    header = _header(grid)
    rows = tuple(BoardRow(ref=str(number), values=values) for number, values in _data_rows(grid, header))
    return Sheet(columns=tuple(header), rows=rows)


def _refused(err: APIError) -> bool:
    """Google refused the request's content (400), not the range: only some rows of it are at fault."""
    return err.response.status_code == 400 and "Unable to parse range" not in str(err.error.get("message", ""))


def _rows_of(a1: str) -> range:
    """The row numbers a ValueRange's A1 range covers (``'Queue'!A5:C9`` → 5…9)."""
    span = a1_range_to_grid_range(a1.rpartition("!")[2])
    return range(span.get("startRowIndex", 0) + 1, span.get("endRowIndex", 0) + 1)


if TYPE_CHECKING:  # mypy holds GoogleSheetsBoard to the Board protocol and to each capability it offers
    from sheetbot.boards.base import Board
    from sheetbot.boards.capabilities import (
        AppendsRows,
        DrawsDashboard,
        ProtectsInputs,
        ReadsThenWrites,
        RemembersDashboard,
    )

    def _offers(
        board: GoogleSheetsBoard,
    ) -> tuple[Board, DrawsDashboard, RemembersDashboard, ProtectsInputs, AppendsRows, ReadsThenWrites]:
        return board, board, board, board, board, board
