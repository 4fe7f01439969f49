"""A Google Sheet as the board, through gspread 6 and a service account (google-auth).

Google allows one service account about 60 reads and 60 writes a minute, so every phase costs
the same few requests whatever the number of rows:

* ``read()``: one ``values.get`` of the whole worksheet.
* ``write()``: one ``values.get`` of the sheet as it is now, right before one ``values:batchUpdate``:
  rows people sorted, inserted, deleted or copied since the read are found by id (new rows by their
  values), and only cells that differ from what the sheet already says are sent, so a harvest does
  not upload every output again. The update is split only to keep each request under about 2 MB.
* ``ensure_schema()``: one ``spreadsheets.get`` and at most one ``spreadsheets:batchUpdate``.

Values go in with ``valueInputOption=RAW``, which Google stores "as-is, not parsed": text that
starts with ``=``, ``+``, ``-`` or ``@`` stays text, never a formula. gspread's low-level HTTP
client is used directly (its Spreadsheet and Worksheet objects fetch metadata when built, a
request each), and retries are ours (tenacity, with an injectable sleep), not gspread's
``BackOffHTTPClient``.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import gspread
import requests
from google.auth.exceptions import RefreshError, TransportError
from google.oauth2 import service_account
from gspread.exceptions import APIError, NoValidUrlKeyFound
from gspread.utils import absolute_range_name, extract_id_from_url, rowcol_to_a1
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from sheetbot.boards.base import BoardRow, CellValue, RowUpdate, SchemaSpec, Sheet, WriteResult
from sheetbot.boards.locate import resolve
from sheetbot.boards.values import clean_text
from sheetbot.errors import BoardError, BoardNotFound, BoardWriteError

if TYPE_CHECKING:
    from sheetbot.dashboard import ChartSpec

T = TypeVar("T")
SCOPES = ("https://www.googleapis.com/auth/spreadsheets",)
#: Google's advice for one request's payload; a write is split to stay under it.
MAX_REQUEST_BYTES = 2_000_000
#: Tries per request on 429/5xx/network errors: 1+2+4+…+64 s of backoff outlasts the one-minute quota window.
ATTEMPTS = 8
PROTECTION = "sheetbot: locked for tonight"
_WARN_ONLY = {"description": PROTECTION, "warningOnly": True}
_RETRY_LATER = "; outputs are kept and will be written on the next run"
#: Status → background colour (RGB 0–1) of the status cell.
STATUS_COLOURS: dict[str, tuple[float, float, float]] = {
    "locked": (0.82, 0.89, 0.98),
    "running": (0.82, 0.89, 0.98),
    "review": (1.0, 0.95, 0.6),
    "approved": (0.72, 0.88, 0.72),
    "edited": (0.8, 0.93, 0.78),
    "rework": (1.0, 0.85, 0.7),
    "failed": (0.96, 0.7, 0.7),
    "deferred": (0.86, 0.86, 0.86),
}
WIDE_COLUMN_PIXELS = 360
_SCHEMA_FIELDS = (
    "sheets(properties(sheetId,title,gridProperties(rowCount,columnCount,frozenRowCount)),"
    "conditionalFormats(ranges,booleanRule(condition)),data(rowData(values(formattedValue,dataValidation))))"
)


def spreadsheet_key(spreadsheet: str) -> str:
    """The key from a spreadsheet's URL, or the key itself."""
    text = spreadsheet.strip()
    if "/" not in text:
        return text
    try:
        return extract_id_from_url(text)
    except NoValidUrlKeyFound:
        raise BoardError(
            f"board.spreadsheet {text!r} is not a Google Sheets URL: use the URL from the browser "
            "(https://docs.google.com/spreadsheets/d/<key>/edit) or just the key"
        ) from None


def load_credentials(path: Path) -> service_account.Credentials:
    """Service-account credentials from their JSON key file (no network: the token comes at the first call)."""
    try:
        return service_account.Credentials.from_service_account_file(str(path), scopes=SCOPES)  # type: ignore[no-untyped-call]
    except FileNotFoundError:
        raise BoardError(
            f"service-account file {path} not found: fix board.credentials in the YAML (relative to the YAML "
            "file), or set the environment variable GOOGLE_APPLICATION_CREDENTIALS to the key file's path"
        ) from None
    except (ValueError, KeyError, OSError) as err:
        raise BoardError(
            f"{path} is not a service-account key ({_one_line(err)}): download a JSON key for the service "
            "account from the Google Cloud console (IAM → Service accounts → Keys)"
        ) from None


class GoogleSheetsBoard:
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
        attempts: int = ATTEMPTS,
        max_request_bytes: int = MAX_REQUEST_BYTES,
    ) -> None:
        self.key = spreadsheet_key(spreadsheet)
        self.sheet = sheet
        self.account_email = account_email
        self.id_column = id_column
        self.attempts = attempts
        self.max_request_bytes = max_request_bytes
        self._http = client.http_client
        self._sleep = sleep

    @classmethod
    def connect(
        cls, spreadsheet: str, sheet: str, *, credentials: Path, session: requests.Session | None = None, **options: Any
    ) -> GoogleSheetsBoard:
        """The board through a service-account key file; ``session`` (already authorised) replaces the default one."""
        creds = load_credentials(credentials)
        client = gspread.Client(auth=creds) if session is None else gspread.Client(auth=None, session=session)  # type: ignore[arg-type]
        client.set_timeout((10, 190))  # Google gives up on a request after 180 s of processing
        return cls(spreadsheet, sheet, client=client, account_email=creds.service_account_email, **options)

    def describe(self) -> str:
        return f"Google Sheet {self.key} [{self.sheet}]"

    # -- the Board protocol ----------------------------------------------------------------
    def read(self) -> Sheet:
        grid = self._call(lambda: self._values(self._range()))
        header = _header(grid)
        rows = tuple(BoardRow(ref=str(number), values=values) for number, values in _data_rows(grid, header))
        return Sheet(columns=tuple(header), rows=rows)

    def write(self, updates: Sequence[RowUpdate]) -> WriteResult:
        if not updates:
            return WriteResult()
        # Retried as a whole: after a 429 the ids are read again, as people may have moved rows meanwhile.
        return self._call(lambda: self._write(updates), writing=True)

    def ensure_schema(self, spec: SchemaSpec) -> list[str]:
        params = {"ranges": self._range(), "fields": _SCHEMA_FIELDS}
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
        status = header.get(spec.status_column)
        if status is not None:
            coloured = _coloured_statuses(sheet.get("conditionalFormats", []), status)
            for value in spec.status_choices:
                if value in STATUS_COLOURS and value not in coloured:
                    requests_.append(_colour_rule(sheet_id, status, value, STATUS_COLOURS[value]))
        if requests_:
            self._call(lambda: self._http.batch_update(self.key, {"requests": requests_}))
        return added

    # -- optional: warning-only protection of locked rows ------------------------------------
    def protect_inputs(self, task_ids: Sequence[str], columns: Sequence[str] = ()) -> int:
        """Make sheetbot's warning-only protected ranges cover exactly these tasks' rows (``columns``, default
        every column but the id), replacing the earlier ones. A person editing a locked input is warned that
        tonight runs what the row said at the cutoff. Returns the number of ranges now protected."""
        fields = "sheets(properties(sheetId,title),protectedRanges(protectedRangeId,description)"
        fields += ",data(rowData(values(formattedValue))))" if task_ids else ")"
        params = {"ranges": self._range(), "fields": fields}
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

    def write_dashboard(self, rows: Sequence[Mapping[str, Any]], chart: ChartSpec) -> list[str]:
        """The `Dashboard` tab, table and line chart, in three requests (sheetbot/boards/dashboard_google.py)."""
        from sheetbot.boards import dashboard_google as dg

        if self.sheet == dg.DASHBOARD_SHEET:
            raise BoardError(f"board.sheet is {dg.DASHBOARD_SHEET!r}, the tab sheetbot keeps its dashboard on")
        params: dict[str, Any] = {"fields": dg.META_FIELDS}
        meta = self._call(lambda: self._http.fetch_sheet_metadata(self.key, params=params))
        free = max((s["properties"]["sheetId"] for s in meta.get("sheets", [])), default=0) + 1
        height, width = dg.needed(rows, chart)
        _, changes, (height, width) = dg.structure_requests(meta, chart, free_id=free, height=height, width=width)
        if changes:
            self._call(lambda: self._http.batch_update(self.key, {"requests": changes}))
        body = dg.values_body(dg.tab_values(rows, chart, height=height, width=width))
        self._call(lambda: self._http.values_batch_update(self.key, body))
        return []

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
                    cells.setdefault(number, {})[col] = _raw(value)
            if new_columns:
                cells.setdefault(1, {}).update({col: clean_text(name) for name, col in new_columns.items()})
                self._grow(width + len(new_columns))
            for body in value_bodies(absolute_range_name(self.sheet), cells, self.max_request_bytes):
                self._http.values_batch_update(self.key, body)
            return len(rows)

        return self._call(append, writing=True)

    # -- writing ------------------------------------------------------------------------------
    def _write(self, updates: Sequence[RowUpdate]) -> WriteResult:
        grid = self._values(self._range())  # the sheet as it is now, not as it was at the read
        header = _header(grid)
        found = _data_rows(grid, header)
        width = max((len(_trim(r)) for r in grid), default=0)
        placement = resolve(updates, [v for _, v in found], id_column=self.id_column, refs=[str(n) for n, _ in found])
        result = WriteResult(missing=list(placement.missing))
        cells: dict[int, dict[int, Any]] = {}
        new_columns: dict[str, int] = {}
        for u_index, targets in placement.targets.items():
            for column, value in updates[u_index].values.items():
                col = header.get(column)
                if col is None:
                    col = new_columns.setdefault(column, width + len(new_columns))
                raw = _raw(value)
                for target in targets:
                    number, current = found[target]
                    if not (isinstance(raw, str) and column in current and current[column] == raw):
                        cells.setdefault(number, {})[col] = raw  # a cell that already says so is not sent again
            result.written += 1
        if new_columns:
            cells.setdefault(1, {}).update({col: clean_text(name) for name, col in new_columns.items()})
            self._grow(width + len(new_columns))
        for body in value_bodies(absolute_range_name(self.sheet), cells, self.max_request_bytes):
            self._http.values_batch_update(self.key, body)
        return result

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

    # -- requests, retries and errors --------------------------------------------------------
    def _range(self, cells: str | None = None) -> str:
        return absolute_range_name(self.sheet, cells)

    def _values(self, cells: str) -> list[list[str]]:
        answer = self._http.values_get(self.key, cells, params={"valueRenderOption": "FORMATTED_VALUE"})
        return [[str(v) for v in row] for row in answer.get("values", [])]

    def _free_sheet_id(self) -> int:
        meta = self._call(
            lambda: self._http.fetch_sheet_metadata(self.key, params={"fields": "sheets.properties.sheetId"})
        )
        return max((s["properties"]["sheetId"] for s in meta.get("sheets", [])), default=0) + 1

    def _call(self, fn: Callable[[], T], *, writing: bool = False, missing_sheet_ok: bool = False) -> T:
        """Run ``fn`` (its requests) with backoff on 429, 5xx and network errors; map what is left to our errors."""
        retrying = Retrying(
            retry=retry_if_exception(_transient),
            wait=_backoff,
            stop=stop_after_attempt(self.attempts),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            return retrying(fn)
        except APIError as err:
            if missing_sheet_ok and _bad_range(err):
                return None  # type: ignore[return-value]
            error = self._failure(err)
        except RefreshError as err:
            error = BoardError(
                f"Google refused the service account {self.account_email} ({_one_line(err)}): "
                "check that its key is current, or create a new key in the Google Cloud console"
            )
        except (requests.RequestException, TransportError) as err:
            error = BoardError(
                f"could not reach Google Sheets for {self.describe()} after {self.attempts} tries "
                f"({_one_line(err)}): check the network"
            )
        if writing and not isinstance(error, BoardWriteError):  # whatever stopped a write, the outputs wait
            error = BoardWriteError(f"{error}{_RETRY_LATER}")
        raise error from None

    def _failure(self, err: APIError) -> BoardError:
        status = err.response.status_code
        message = str(err.error.get("message", "")).strip()
        if status == 403 and ("has not been used" in message or "is disabled" in message):
            return BoardError(
                "the Google Sheets API is not enabled for the service account's project: enable it in the Google "
                "Cloud console (APIs & Services → Library → Google Sheets API), then retry"
            )
        if status == 403:
            return BoardNotFound(
                f"spreadsheet {self.key} is not shared with the service account {self.account_email}: open it in "
                f"Google Sheets, click Share and add {self.account_email} as an Editor"
            )
        if status == 404:
            return BoardNotFound(
                f"spreadsheet {self.key} was not found: check board.spreadsheet (the key or the URL), and that it "
                f"is shared with {self.account_email}"
            )
        if _bad_range(err):
            return self._missing_sheet()
        if status == 429:
            return BoardError(
                f"Google Sheets kept refusing {self.describe()} with HTTP 429 (quota: 60 requests a minute per "
                f"service account) after {self.attempts} tries: let other tools using this account slow down"
            )
        return BoardError(f"Google Sheets answered HTTP {status} for {self.describe()}: {message or 'no reason given'}")

    def _missing_sheet(self) -> BoardNotFound:
        meta = self._call(
            lambda: self._http.fetch_sheet_metadata(self.key, params={"fields": "sheets.properties.title"})
        )
        names = ", ".join(repr(s["properties"]["title"]) for s in meta.get("sheets", []))
        return BoardNotFound(
            f"spreadsheet {self.key} has no worksheet {self.sheet!r} (it has {names}): run `sheetbot init` to "
            "create it, or fix board.sheet in the YAML"
        )


# -- building requests ----------------------------------------------------------------------------
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
    bodies, data, size = [], [], empty
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


def _raw(value: CellValue) -> str | int | float | bool:
    """A cell as sent with RAW: numbers stay numbers; None clears the cell ("" — null would leave it)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value if math.isfinite(value) else str(value)
    return clean_text(str(value))


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


def _dropdown(sheet_id: int, col: int, choices: Sequence[str]) -> dict[str, Any]:
    rule = {
        "condition": {"type": "ONE_OF_LIST", "values": [{"userEnteredValue": c} for c in choices]},
        "inputMessage": f"Pick one of: {', '.join(choices)}",
        "strict": True,
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
    """Does the review column already have a dropdown (ours from an earlier `init`, or a person's)?"""
    for row in rows[1:]:
        values = row.get("values", [])
        if col < len(values) and "dataValidation" in values[col]:
            return True
    return False


def _coloured_statuses(rules: Sequence[Mapping[str, Any]], col: int) -> set[str]:
    """Statuses that already have a "text is exactly" colour rule on the status column."""
    found = set()
    for rule in rules:
        condition = rule.get("booleanRule", {}).get("condition", {})
        on_column = any(r.get("startColumnIndex", 0) == col for r in rule.get("ranges", []))
        if on_column and condition.get("type") == "TEXT_EQ":
            found.update(str(v.get("userEnteredValue", "")) for v in condition.get("values", []))
    return found


# -- reading ------------------------------------------------------------------------------------
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


# -- errors -------------------------------------------------------------------------------------
def _transient(err: BaseException) -> bool:
    if isinstance(err, APIError):
        return err.response.status_code == 429 or err.response.status_code >= 500
    return isinstance(err, requests.ConnectionError | requests.Timeout | TransportError)


_exponential = wait_exponential_jitter(initial=1, max=64, jitter=1)


def _backoff(state: RetryCallState) -> float:
    """Truncated exponential backoff with jitter, as Google advises for 429; longer if the answer says so."""
    wait = float(_exponential(state))
    err = state.outcome.exception() if state.outcome else None
    if isinstance(err, APIError):
        with contextlib.suppress(ValueError):  # Retry-After may also be an HTTP date: then ours stands
            wait = max(wait, float(err.response.headers.get("Retry-After", 0)))
    return wait


def _bad_range(err: APIError) -> bool:
    return err.response.status_code == 400 and "Unable to parse range" in str(err.error.get("message", ""))


def _one_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__
