"""FakeGoogleSheets: the Sheets API v4 faked at the HTTP level with `responses`, for tests that go through
google-auth and gspread for real.

Everything above HTTP is real: google-auth signs a JWT with a throwaway RSA key and trades it at the token
endpoint (the fake checks the signature), gspread builds the requests, the board parses the answers. The
fake holds one spreadsheet in memory and answers with the shapes the API documents (gspread's recorded
cassettes were the reference). It counts requests by kind, records their bodies, fails the next requests
on demand (429, 5xx, …), and lets a test act as a person (sort, insert, delete, copy rows). Any URL it does
not know fails: `responses` raises ConnectionError, and unimplemented Sheets endpoints raise loudly::

    with FakeGoogleSheets(tmp_path, {"Queue": [["id", "type", "input"]]}) as google:
        board = google.board("Queue")
        google.fail_next(429)                   # the next request is over quota
        board.read()
        assert google.counts["values.get"] == 2
        google.person("Queue").sort_by("input")
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import jwt

from sheetbot.boards.google_sheets import GoogleSheetsBoard

API = "https://sheets.googleapis.com/v4/spreadsheets"
TOKEN_URI = "https://oauth2.googleapis.com/token"
KEY = "1FakeSheetbotSpreadsheetKey_0123456789abcdefgh"
ACCOUNT = "sheetbot-night@sheetbot-test.iam.gserviceaccount.com"
#: Characters a cell holds; one cell over it makes Google refuse the whole request (HTTP 400).
CELL_LIMIT = 50_000
_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
           429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}  # fmt: skip
_MESSAGES = {403: "The caller does not have permission", 404: "Requested entity was not found.",
             500: "Internal error encountered.", 503: "The service is currently unavailable."}  # fmt: skip


@functools.cache
def _rsa_key() -> tuple[str, str]:
    """A throwaway RSA key pair (private PKCS#8 PEM, public PEM), made once per test session."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private.decode(), public.decode()


class Formula(str):
    """A cell a person typed as a formula (the fake does not evaluate it)."""


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass
class Grid:
    """One worksheet: ``cells`` is ragged (missing cells are empty); values are str, float, bool or Formula."""

    sheet_id: int
    title: str
    cells: list[list[Any]] = field(default_factory=list)
    row_count: int = 1000
    column_count: int = 26
    frozen_rows: int = 0
    validations: list[dict[str, Any]] = field(default_factory=list)
    conditional_formats: list[dict[str, Any]] = field(default_factory=list)
    protected: list[dict[str, Any]] = field(default_factory=list)
    formats: list[dict[str, Any]] = field(default_factory=list)
    charts: list[dict[str, Any]] = field(default_factory=list)  # {"chartId", "spec", "position"}

    def get(self, row: int, col: int) -> Any:
        return self.cells[row][col] if row < len(self.cells) and col < len(self.cells[row]) else None

    def put(self, row: int, col: int, value: Any) -> None:
        while len(self.cells) <= row:
            self.cells.append([])
        line = self.cells[row]
        while len(line) <= col:
            line.append(None)
        line[col] = value

    def used(self) -> int:
        """Rows up to the last one holding anything."""
        for i in range(len(self.cells) - 1, -1, -1):
            if any(v not in (None, "") for v in self.cells[i]):
                return i + 1
        return 0

    def validation_at(self, row: int, col: int) -> dict[str, Any] | None:
        for entry in reversed(self.validations):
            if _inside(entry["range"], row, col):
                rule: dict[str, Any] = entry["rule"]
                return rule
        return None


@dataclass
class Recorded:
    kind: str
    method: str
    url: str
    params: dict[str, list[str]]
    body: Any
    size: int


def formatted(value: Any) -> str:
    """A cell as FORMATTED_VALUE shows it (numbers in the default "automatic" format)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return str(int(value)) if float(value).is_integer() else f"{value:.10g}"
    return str(value)


def quote_title(title: str) -> str:
    return title if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", title) else "'" + title.replace("'", "''") + "'"


def letters(col: int) -> str:
    out = ""
    col += 1
    while col:
        col, rest = divmod(col - 1, 26)
        out = chr(65 + rest) + out
    return out


class FakeGoogleSheets:
    """One spreadsheet behind the Sheets API v4 and Google's token endpoint."""

    def __init__(self, folder: Path, sheets: dict[str, list[list[Any]]] | None = None, *, key: str = KEY) -> None:
        self.key = key
        self.title = "sheetbot queue"
        self.grids: list[Grid] = []
        for title, rows in (sheets or {}).items():
            self.add_sheet(title, rows)
        self.shared = True
        self.requests: list[Recorded] = []
        self.counts: Counter[str] = Counter()
        self.sleeps: list[float] = []
        #: The boards' monotonic clock: it stands still unless a test moves it (a slow step, a person's pause).
        self.seconds = 0.0
        self._failures: list[dict[str, Any]] = []
        self._tokens: set[str] = set()
        self._next_protected_id = 1000
        private, self._public = _rsa_key()
        self.credentials = folder / "service-account.json"
        self.credentials.write_text(
            json.dumps(
                {
                    "type": "service_account",
                    "project_id": "sheetbot-test",
                    "private_key_id": "fake-key-1",
                    "private_key": private,
                    "client_email": ACCOUNT,
                    "client_id": "100000000000000000001",
                    "token_uri": TOKEN_URI,
                }
            ),
            encoding="utf-8",
        )
        self.mock = responses.RequestsMock(assert_all_requests_are_fired=False)
        self.mock.add_callback(responses.POST, TOKEN_URI, callback=self._token)
        for method in (responses.GET, responses.POST, responses.PUT, responses.DELETE):
            self.mock.add_callback(method, re.compile(re.escape(API) + r"/.*"), callback=self._api)

    def __enter__(self) -> FakeGoogleSheets:
        self.mock.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.mock.stop()
        self.mock.reset()

    # -- set-up and scripting ---------------------------------------------------------------
    def add_sheet(self, title: str, rows: list[list[Any]] = (), **grid: Any) -> Grid:  # type: ignore[assignment]
        sheet = Grid(sheet_id=len(self.grids) and max(g.sheet_id for g in self.grids) + 1, title=title, **grid)
        for r, line in enumerate(rows):
            for c, value in enumerate(line):
                if value not in (None, ""):
                    sheet.put(r, c, value)
        sheet.row_count = max(sheet.row_count, len(rows) + 1)
        self.grids.append(sheet)
        return sheet

    def grid(self, title: str) -> Grid:
        return next(g for g in self.grids if g.title == title)

    def board(self, sheet: str, *, spreadsheet: str | None = None, **options: Any) -> GoogleSheetsBoard:
        """A board the way the factory builds it: service-account key file → google-auth → gspread."""
        options.setdefault("sleep", self.sleeps.append)
        options.setdefault("monotonic", lambda: self.seconds)
        return GoogleSheetsBoard.connect(spreadsheet or self.key, sheet, credentials=self.credentials, **options)

    def person(self, sheet: str) -> GooglePerson:
        return GooglePerson(self.grid(sheet))

    def fail_next(
        self,
        status: int,
        *,
        times: int = 1,
        kind: str | None = None,
        skip: int = 0,
        message: str = "",
        then: Callable[[], None] | None = None,
    ) -> None:
        """The next ``times`` requests (of ``kind``, after ``skip`` that pass) get HTTP ``status``; ``then`` runs
        after each failure (a person editing the sheet while sheetbot backs off)."""
        rule = {"status": status, "times": times, "kind": kind, "skip": skip, "message": message, "then": then}
        self._failures.append(rule)

    def api_calls(self) -> Counter[str]:
        """Requests to the Sheets API by kind (token requests are not API calls)."""
        return Counter({k: n for k, n in self.counts.items() if k != "token"})

    # -- the token endpoint ---------------------------------------------------------------------
    def _token(self, request: Any) -> tuple[int, dict[str, str], str]:
        self.counts["token"] += 1
        form = parse_qs(request.body if isinstance(request.body, str) else request.body.decode())
        assertion = form.get("assertion", [""])[0]
        try:
            # google-auth leaves jwt.decode unannotated.
            claims = jwt.decode(assertion, certs=self._public, audience=TOKEN_URI)  # type: ignore[no-untyped-call]
        except ValueError as err:
            return 400, {}, json.dumps({"error": "invalid_grant", "error_description": f"Invalid JWT Signature. {err}"})
        if claims.get("iss") != ACCOUNT or "spreadsheets" not in claims.get("scope", ""):
            return 400, {}, json.dumps({"error": "invalid_scope", "error_description": "Invalid OAuth scope."})
        token = f"ya29.fake-{len(self._tokens) + 1}"
        self._tokens.add(token)
        return 200, {}, json.dumps({"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    # -- the Sheets API -------------------------------------------------------------------------
    def _api(self, request: Any) -> tuple[int, dict[str, str], str]:
        url = urlsplit(request.url)
        params = parse_qs(url.query, keep_blank_values=True)
        raw = request.body or b""
        body = json.loads(raw) if raw else None
        match = re.fullmatch(r"/v4/spreadsheets/([^/:]+)(.*)", url.path)
        rest = match.group(2) if match else ""
        kind, handler = self._route(request.method, rest)
        self.counts[kind] += 1
        self.requests.append(Recorded(kind, request.method, request.url, params, body, len(raw)))
        if self._tokens and request.headers.get("Authorization", "").removeprefix("Bearer ") not in self._tokens:
            return self._error(401, "Request had invalid authentication credentials.")
        if not self._tokens:
            return self._error(401, "Request is missing required authentication credential.")
        failure = self._scripted(kind, request.method)
        if failure is not None:
            return failure
        if match is None or match.group(1) != self.key:
            return self._error(404, _MESSAGES[404])
        if not self.shared:
            return self._error(403, _MESSAGES[403])
        try:
            return 200, {}, json.dumps(handler(rest, params, body))
        except ApiError as err:
            return self._error(err.status, err.message)

    def _route(self, method: str, rest: str) -> tuple[str, Any]:
        if method == "GET" and rest.startswith("/values/"):
            return "values.get", self._values_get
        if method == "GET" and rest == "/values:batchGet":
            return "values.batchGet", self._values_batch_get
        if method == "POST" and rest == "/values:batchUpdate":
            return "values.batchUpdate", self._values_batch_update
        if method == "POST" and rest == ":batchUpdate":
            return "spreadsheets.batchUpdate", self._batch_update
        if method == "GET" and rest == "":
            return "spreadsheets.get", self._spreadsheets_get
        raise NotImplementedError(f"FakeGoogleSheets does not implement {method} {rest or '/'}")

    def _scripted(self, kind: str, method: str) -> tuple[int, dict[str, str], str] | None:
        for rule in self._failures:
            if rule["kind"] not in (None, kind):
                continue
            if rule["skip"]:
                rule["skip"] -= 1
                return None
            rule["times"] -= 1
            if rule["times"] <= 0:
                self._failures.remove(rule)
            if rule["then"] is not None:
                rule["then"]()
            status = rule["status"]
            what = "Read" if method == "GET" else "Write"
            default = (
                f"Quota exceeded for quota metric '{what} requests' and limit '{what} requests per minute per user' "
                "of service 'sheets.googleapis.com' for consumer 'project_number:123456789012'."
            )
            return self._error(status, rule["message"] or _MESSAGES.get(status, default))
        return None

    @staticmethod
    def _error(status: int, message: str) -> tuple[int, dict[str, str], str]:
        payload = {"error": {"code": status, "message": message, "status": _STATUS.get(status, "UNKNOWN")}}
        return status, {}, json.dumps(payload)

    # values
    def _values_get(self, rest: str, params: dict[str, list[str]], body: Any) -> dict[str, Any]:
        return self._read(unquote(rest.removeprefix("/values/")), params)

    def _values_batch_get(self, rest: str, params: dict[str, list[str]], body: Any) -> dict[str, Any]:
        return {"spreadsheetId": self.key, "valueRanges": [self._read(r, params) for r in params.get("ranges", [])]}

    def _read(self, text: str, params: dict[str, list[str]]) -> dict[str, Any]:
        grid, r0, c0, r1, c1 = self._parse(text)
        unformatted = params.get("valueRenderOption", ["FORMATTED_VALUE"])[0] == "UNFORMATTED_VALUE"
        rows = []
        for r in range(r0, min(r1, len(grid.cells))):
            line = [grid.get(r, c) for c in range(c0, c1)]
            cells = [v if unformatted and isinstance(v, int | float) else formatted(v) for v in line]
            while cells and cells[-1] == "":
                cells.pop()
            rows.append(cells)
        while rows and not rows[-1]:
            rows.pop()
        if params.get("majorDimension", ["ROWS"])[0] == "COLUMNS":
            width = max((len(r) for r in rows), default=0)
            rows = [[r[c] if c < len(r) else "" for r in rows] for c in range(width)]
        answer: dict[str, Any] = {
            "range": f"{quote_title(grid.title)}!{letters(c0)}{r0 + 1}:{letters(c1 - 1)}{r1}",
            "majorDimension": "ROWS",
        }
        if rows:
            answer["values"] = rows
        return answer

    def _values_batch_update(self, rest: str, params: dict[str, list[str]], body: Any) -> dict[str, Any]:
        option = (body or {}).get("valueInputOption")
        if option not in ("RAW", "USER_ENTERED"):
            raise ApiError(400, "'valueInputOption' is required but not specified")
        writes = []
        for entry in body.get("data", []):
            grid, r0, c0, r1, c1 = self._parse(entry["range"], writing=True)
            values = entry.get("values", [])
            for dr, line in enumerate(values):
                for dc, value in enumerate(line):
                    r, c = r0 + dr, c0 + dc
                    if r >= r1 or c >= c1:
                        raise ApiError(
                            400,
                            f"Requested writing within range [{entry['range']}], but tried writing to row [{r + 1}]",
                        )
                    # Google's limit, counted as UTF-16 units as Google's Java does (an emoji is two).
                    if isinstance(value, str) and len(value.encode("utf-16-le")) // 2 > CELL_LIMIT:
                        raise ApiError(
                            400, "Your input contains more than the maximum of 50000 characters in a single cell."
                        )
                    if value is not None:  # null leaves the cell as it is
                        writes.append((grid, r, c, _entered(value) if option == "USER_ENTERED" else value))
        for grid, r, c, value in writes:  # all or nothing: every range was checked first
            grid.put(r, c, value)
        per_range = [
            {"spreadsheetId": self.key, "updatedRange": d["range"], "updatedRows": len(d.get("values", [])),
             "updatedCells": sum(len(x) for x in d.get("values", []))}
            for d in body.get("data", [])
        ]  # fmt: skip
        return {
            "spreadsheetId": self.key,
            "totalUpdatedRows": sum(p["updatedRows"] for p in per_range),
            "totalUpdatedCells": sum(p["updatedCells"] for p in per_range),
            "totalUpdatedSheets": 1 if writes else 0,
            "responses": per_range,
        }

    def _parse(self, text: str, *, writing: bool = False) -> tuple[Grid, int, int, int, int]:
        """A1 range → (grid, first row, first column, end row, end column), 0-based, ends exclusive."""
        title, cells = text, ""
        if text.startswith("'"):
            end = re.match(r"'((?:[^']|'')*)'", text)
            if end is None:
                raise ApiError(400, f"Unable to parse range: {text}")
            title, cells = end.group(1).replace("''", "'"), text[end.end() :].removeprefix("!")
        elif "!" in text:
            title, cells = text.split("!", 1)
        grid = next((g for g in self.grids if g.title == title), None)
        if grid is None:
            raise ApiError(400, f"Unable to parse range: {text}")
        if not cells:
            return grid, 0, 0, grid.row_count, grid.column_count
        m = re.fullmatch(r"([A-Z]*)(\d*)(?::([A-Z]*)(\d*))?", cells)
        if m is None or not cells.strip(":"):
            raise ApiError(400, f"Unable to parse range: {text}")
        col0, row0, col1, row1 = m.groups()
        if m.group(0).count(":") == 0:
            col1, row1 = col0, row0
        c0 = _col(col0) if col0 else 0
        r0 = int(row0) - 1 if row0 else 0
        c1 = _col(col1) + 1 if col1 else grid.column_count
        r1 = int(row1) if row1 else grid.row_count
        if r1 > grid.row_count or c1 > grid.column_count:
            raise ApiError(
                400,
                f"Range ({quote_title(grid.title)}!{letters(c1 - 1)}{r1}) exceeds grid limits. "
                f"Max rows: {grid.row_count}, max columns: {grid.column_count}",
            )
        return grid, r0, c0, r1, c1

    # spreadsheets
    def _spreadsheets_get(self, rest: str, params: dict[str, list[str]], body: Any) -> dict[str, Any]:
        ranges = params.get("ranges", [])
        fields = params.get("fields", [""])[0]
        with_data = params.get("includeGridData", ["false"])[0] == "true" or "data" in fields
        picked: dict[str, list[tuple[int, int, int, int]]] = {}
        for text in ranges:
            grid, r0, c0, r1, c1 = self._parse(text)
            picked.setdefault(grid.title, []).append((r0, c0, r1, c1))
        sheets = []
        for index, grid in enumerate(self.grids):
            if ranges and grid.title not in picked:
                continue  # only the parts of the spreadsheet that intersect the ranges
            spans = picked.get(grid.title, [(0, 0, grid.row_count, grid.column_count)])
            sheets.append(_sheet_json(grid, index, spans if with_data else []))
        answer = {
            "spreadsheetId": self.key,
            "properties": {"title": self.title, "locale": "en_US", "timeZone": "Etc/GMT"},
            "sheets": sheets,
            "spreadsheetUrl": f"https://docs.google.com/spreadsheets/d/{self.key}/edit",
        }
        return _mask(answer, parse_fields(fields)) if fields else answer

    def _batch_update(self, rest: str, params: dict[str, list[str]], body: Any) -> dict[str, Any]:
        saved = copy.deepcopy(self.grids), self._next_protected_id
        try:
            replies = [self._apply(i, request) for i, request in enumerate((body or {}).get("requests", []))]
        except ApiError:
            self.grids, self._next_protected_id = saved  # a batch is atomic
            raise
        return {"spreadsheetId": self.key, "replies": replies}

    @staticmethod
    def _put_cell(grid: Grid, r: int, c: int, cell: dict[str, Any], clears: bool) -> None:
        if cell.get("userEnteredValue") is not None:
            grid.put(r, c, _cell_value(cell))
        elif clears and r < len(grid.cells) and c < len(grid.cells[r]):
            grid.put(r, c, None)

    def _apply(self, index: int, request: dict[str, Any]) -> dict[str, Any]:
        ((kind, spec),) = request.items()

        def bad(why: str) -> ApiError:
            return ApiError(400, f"Invalid requests[{index}].{kind}: {why}")

        def grid_of(sheet_id: Any) -> Grid:
            found = next((g for g in self.grids if g.sheet_id == sheet_id), None)
            if found is None:
                raise bad(f"No grid with id: {sheet_id}")
            return found

        if kind == "addSheet":
            props = spec.get("properties", {})
            if any(g.title == props.get("title") for g in self.grids):
                raise bad(f'A sheet with the name "{props.get("title")}" already exists. Please enter another name.')
            if "sheetId" in props and any(g.sheet_id == props["sheetId"] for g in self.grids):
                raise bad(f"A sheet with id {props['sheetId']} already exists.")
            gp = props.get("gridProperties", {})
            grid = Grid(
                sheet_id=props.get("sheetId", 1 + max((g.sheet_id for g in self.grids), default=0)),
                title=props["title"],
                row_count=gp.get("rowCount", 1000),
                column_count=gp.get("columnCount", 26),
                frozen_rows=gp.get("frozenRowCount", 0),
            )
            self.grids.append(grid)
            props = {"sheetId": grid.sheet_id, "title": grid.title, "index": len(self.grids) - 1, "sheetType": "GRID"}
            return {"addSheet": {"properties": {**props, "gridProperties": gp}}}
        if kind == "appendDimension":
            grid = grid_of(spec.get("sheetId"))
            if spec["dimension"] == "COLUMNS":
                grid.column_count += spec["length"]
            else:
                grid.row_count += spec["length"]
            return {}
        if kind == "updateSheetProperties":
            props = spec["properties"]
            grid = grid_of(props.get("sheetId"))
            if "gridProperties.frozenRowCount" in spec.get("fields", ""):
                grid.frozen_rows = props.get("gridProperties", {}).get("frozenRowCount", 0)
            return {}
        if kind == "updateCells":
            # Field-mask semantics: a value named in ``fields`` but absent from a cell is cleared, and so is
            # every cell of ``range`` that ``rows`` does not reach.
            if not spec.get("fields"):
                raise bad("At least one field must be specified.")
            clears = spec["fields"] == "*" or "userEnteredValue" in spec["fields"].split(",")
            if "range" in spec:
                span = spec["range"]
                grid = grid_of(span.get("sheetId"))
                r0, c0 = span.get("startRowIndex", 0), span.get("startColumnIndex", 0)
                r1, c1 = span.get("endRowIndex", grid.row_count), span.get("endColumnIndex", grid.column_count)
                if r1 > grid.row_count or c1 > grid.column_count:
                    raise bad(
                        f"Range ('{grid.title}'!R{r0 + 1}C{c0 + 1}:R{r1}C{c1}) exceeds grid limits. "
                        f"Max rows: {grid.row_count}, max columns: {grid.column_count}"
                    )
                lines = spec.get("rows", [])
                if len(lines) > r1 - r0 or any(len(line.get("values", [])) > c1 - c0 for line in lines):
                    raise bad("The rows given do not fit the range given.")
                for r in range(r0, r1):
                    values = lines[r - r0].get("values", []) if r - r0 < len(lines) else []
                    for c in range(c0, c1):
                        self._put_cell(grid, r, c, values[c - c0] if c - c0 < len(values) else {}, clears)
                return {}
            start = spec["start"]
            grid = grid_of(start.get("sheetId"))
            for dr, row in enumerate(spec.get("rows", [])):
                for dc, cell in enumerate(row.get("values", [])):
                    r, c = start.get("rowIndex", 0) + dr, start.get("columnIndex", 0) + dc
                    if r >= grid.row_count or c >= grid.column_count:
                        last = grid.column_count - 1
                        raise bad(f"Attempting to write column: {c}, beyond the last requested column of: {last}")
                    self._put_cell(grid, r, c, cell, clears)
            return {}
        if kind in ("repeatCell", "updateDimensionProperties"):
            grid_of(spec["range"].get("sheetId")).formats.append(request)
            return {}
        if kind == "setDataValidation":
            grid = grid_of(spec["range"].get("sheetId"))
            grid.validations = [v for v in grid.validations if v["range"] != spec["range"]]
            if spec.get("rule"):
                grid.validations.append({"range": spec["range"], "rule": spec["rule"]})
            return {}
        if kind == "addConditionalFormatRule":
            rule = spec["rule"]
            grid = grid_of(rule["ranges"][0].get("sheetId"))
            grid.conditional_formats.insert(spec.get("index", len(grid.conditional_formats)), rule)
            return {}
        if kind == "addProtectedRange":
            protected = dict(spec["protectedRange"])
            grid = grid_of(protected["range"].get("sheetId"))
            protected["protectedRangeId"] = self._next_protected_id
            protected["requestingUserCanEdit"] = True
            self._next_protected_id += 1
            grid.protected.append(protected)
            return {"addProtectedRange": {"protectedRange": protected}}
        if kind == "addChart":
            chart = dict(spec["chart"])
            anchor = chart.get("position", {}).get("overlayPosition", {}).get("anchorCell", {})
            grid = grid_of(anchor.get("sheetId"))
            chart["chartId"] = 1000 + sum(len(g.charts) for g in self.grids)
            grid.charts.append(chart)
            return {"addChart": {"chart": chart}}
        if kind == "updateChartSpec":
            found = [c for g in self.grids for c in g.charts if c["chartId"] == spec["chartId"]]
            if not found:
                raise bad(f"No chart with id: {spec['chartId']}")
            found[0]["spec"] = spec["spec"]
            return {}
        if kind == "deleteProtectedRange":
            wanted = spec["protectedRangeId"]
            for grid in self.grids:
                before = len(grid.protected)
                grid.protected = [p for p in grid.protected if p["protectedRangeId"] != wanted]
                if len(grid.protected) != before:
                    return {}
            raise bad(f"No protected range with id: {wanted}")
        raise ApiError(
            400, f"Invalid JSON payload received. Unknown name \"{kind}\" at 'requests[{index}]': Cannot find field."
        )


def _cell_value(cell: dict[str, Any]) -> Any:
    ((vtype, value),) = cell["userEnteredValue"].items()
    return Formula(value) if vtype == "formulaValue" else value


class GooglePerson:
    """Someone with the sheet open in a browser: what they type is text (no formulas, as pasted plain text)."""

    def __init__(self, grid: Grid) -> None:
        self.grid = grid

    def header(self) -> list[str]:
        return [formatted(v) for v in (self.grid.cells[0] if self.grid.cells else [])]

    def _column(self, name: str) -> int:
        header = self.header()
        if name in header:
            return header.index(name)
        col = len([h for h in header if h]) if all(header) else header.index("")
        self.grid.put(0, col, name)
        return col

    def _row_of(self, task_id: str) -> int:
        col = self.header().index("id")
        found = [r for r, line in enumerate(self.grid.cells) if r and col < len(line) and line[col] == task_id]
        if len(found) != 1:
            raise KeyError(f"{len(found)} rows with id {task_id!r}")
        return found[0]

    def _fill(self, row: int, values: dict[str, object]) -> None:
        for name, value in values.items():
            self.grid.put(row, self._column(name), "" if value is None else str(value))

    def add(self, **values: object) -> None:
        row = max(self.grid.used(), 1)
        self.grid.row_count = max(self.grid.row_count, row + 1)
        self._fill(row, values)

    def rows(self) -> list[dict[str, str]]:
        header = self.header()
        out = []
        for line in self.grid.cells[1:]:
            values = {h: formatted(line[i]) if i < len(line) else "" for i, h in enumerate(header) if h}
            if any(v.strip() for v in values.values()):
                out.append(values)
        return out

    def set(self, task_id: str, **values: object) -> None:
        self._fill(self._row_of(task_id), values)

    def sort_by(self, column: str, *, reverse: bool = False) -> None:
        """Data → Sort sheet (the header row is frozen, so it stays on top)."""
        col = self.header().index(column)
        body = self.grid.cells[1 : self.grid.used()]
        body.sort(key=lambda line: formatted(line[col]) if col < len(line) else "", reverse=reverse)
        self.grid.cells[1 : self.grid.used()] = body

    def insert_at_top(self, **values: object) -> None:
        """Right-click row 2 → Insert 1 row above."""
        self.grid.cells.insert(1, [])
        self.grid.row_count += 1
        self._fill(1, values)

    def delete(self, task_id: str) -> None:
        del self.grid.cells[self._row_of(task_id)]
        self.grid.row_count -= 1

    def copy(self, task_id: str) -> None:
        """Copy the whole row, id included, and paste it below the last row."""
        line = list(self.grid.cells[self._row_of(task_id)])
        row = self.grid.used()
        self.grid.row_count = max(self.grid.row_count, row + 1)
        for col, value in enumerate(line):
            self.grid.put(row, col, value)

    def is_formula(self, task_id: str, column: str) -> bool:
        return isinstance(self.grid.get(self._row_of(task_id), self.header().index(column)), Formula)

    def cell(self, task_id: str, column: str) -> Any:
        return self.grid.get(self._row_of(task_id), self.header().index(column))


# -- helpers ------------------------------------------------------------------------------------
def _col(text: str) -> int:
    n = 0
    for ch in text:
        n = n * 26 + ord(ch) - 64
    return n - 1


def _inside(span: dict[str, Any], row: int, col: int) -> bool:
    return bool(span.get("startRowIndex", 0) <= row < span.get("endRowIndex", 10**9)
            and span.get("startColumnIndex", 0) <= col < span.get("endColumnIndex", 10**9))  # fmt: skip


def _entered(value: Any) -> Any:
    """USER_ENTERED: what the UI would make of typed text (formulas, numbers, booleans)."""
    if not isinstance(value, str):
        return value
    if value.startswith("'"):
        return value[1:]
    if value.startswith("="):
        return Formula(value)
    if value.upper() in ("TRUE", "FALSE"):
        return value.upper() == "TRUE"
    try:
        return float(value)
    except ValueError:
        return value


def _cell_json(grid: Grid, row: int, col: int) -> dict[str, Any]:
    value = grid.get(row, col)
    out: dict[str, Any] = {}
    if value not in (None, ""):
        if isinstance(value, Formula):
            out["userEnteredValue"] = {"formulaValue": str(value)}
        elif isinstance(value, bool):
            out["userEnteredValue"] = {"boolValue": value}
        elif isinstance(value, int | float):
            out["userEnteredValue"] = {"numberValue": value}
        else:
            out["userEnteredValue"] = {"stringValue": value}
        out["formattedValue"] = formatted(value)
    rule = grid.validation_at(row, col)
    if rule is not None:
        out["dataValidation"] = rule
    return out


def _sheet_json(grid: Grid, index: int, spans: list[tuple[int, int, int, int]]) -> dict[str, Any]:
    gp: dict[str, Any] = {"rowCount": grid.row_count, "columnCount": grid.column_count}
    if grid.frozen_rows:
        gp["frozenRowCount"] = grid.frozen_rows
    out: dict[str, Any] = {"properties": {"sheetId": grid.sheet_id, "title": grid.title, "index": index,
                                          "sheetType": "GRID", "gridProperties": gp}}  # fmt: skip
    if grid.conditional_formats:
        out["conditionalFormats"] = copy.deepcopy(grid.conditional_formats)
    if grid.protected:
        out["protectedRanges"] = copy.deepcopy(grid.protected)
    if grid.charts:
        out["charts"] = copy.deepcopy(grid.charts)
    if spans:
        out["data"] = []
        for r0, c0, r1, c1 in spans:
            validated = [_row_end(v["range"], r1) for v in grid.validations]
            last = min(r1, max([grid.used(), *validated]))
            rows = []
            for r in range(r0, last):
                values = [_cell_json(grid, r, c) for c in range(c0, c1)]
                while values and not values[-1]:
                    values.pop()
                rows.append({"values": values} if values else {})
            data: dict[str, Any] = {"rowData": rows}
            if r0:
                data["startRow"] = r0
            if c0:
                data["startColumn"] = c0
            out["data"].append(data)
    return out


def _row_end(span: dict[str, Any], limit: int) -> int:
    end: int = span.get("endRowIndex", limit)
    return min(end, limit)


def parse_fields(mask: str) -> dict[str, Any]:
    """A field mask ("a,b(c,d.e)") as a tree; an empty subtree means the whole field."""
    tree: dict[str, Any] = {}

    def parse(i: int, node: dict[str, Any]) -> int:
        name = ""
        while i < len(mask):
            ch = mask[i]
            if ch in ",)":
                if name:
                    _insert(node, name)
                name = ""
                if ch == ")":
                    return i + 1
                i += 1
            elif ch == "(":
                child = _insert(node, name)
                i = parse(i + 1, child)
                name = ""
            else:
                name += ch
                i += 1
        if name:
            _insert(node, name)
        return i

    parse(0, tree)
    return tree


def _insert(node: dict[str, Any], dotted: str) -> dict[str, Any]:
    for part in dotted.strip().split("."):
        node = node.setdefault(part, {})
    return node


def _mask(value: Any, tree: dict[str, Any]) -> Any:
    if not tree:
        return value
    if isinstance(value, list):
        return [_mask(v, tree) for v in value]
    if isinstance(value, dict):
        return {k: _mask(value[k], sub) for k, sub in tree.items() if k in value}
    return value
