"""FakeAirtable: Airtable's REST API in memory, at the HTTP level, for tests that go through pyairtable.

It answers with the shapes Airtable documents (records ``{"id", "createdTime", "fields"}`` with empty
fields left out, list pages of up to 100 with an ``offset``, ``{"error": {"type", "message"}}`` bodies,
the metadata API's bases, tables and fields), so everything above the HTTP transport runs for real::

    time = FakeTime()
    with FakeAirtable(time=time) as fake:
        rec = fake.add(type="listing", input="tent")            # a person types a record
        fake.fail_next(429)                                     # the next request is rate limited
        ...
        assert fake.count("update") == 3

It also behaves like Airtable's limits, counted strictly: more than 10 records in one write is a 422, and a
sixth request arriving within one second of the first of five (by the injected clock, the second's both ends
included, as a server counting arrivals does) earns a 429 and a 30-second penalty. Every request is
recorded with its kind, status and time, so tests count calls and measure pacing.
"""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import requests
import responses

ENDPOINT = "https://airtable.test"
TOKEN = "patFakeToken.0123456789"
BASE_ID = "appFAKEBASE000001"
ALL_SCOPES = frozenset({"data.records:read", "data.records:write", "schema.bases:read", "schema.bases:write"})
QUEUE_FIELDS = ("id", "type", "input", "priority", "brand")
#: Characters a long text holds; a longer value makes Airtable refuse the whole request (422).
CELL_LIMIT = 100_000
_TEXT = {"singleLineText", "multilineText", "richText", "email", "url", "phoneNumber"}
_NUMERIC = {"number", "currency", "percent", "duration", "rating"}
_COMPUTED = {"formula", "autoNumber", "createdTime", "lastModifiedTime", "rollup", "count", "multipleLookupValues"}
_COLORS = ("blueLight2", "greenLight2", "yellowLight2", "redLight2", "purpleLight2")


class FakeTime:
    """A monotonic clock that only moves when something sleeps: shared by the board and the fake."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(seconds, 0.0)


@dataclass(frozen=True)
class Call:
    method: str
    kind: str  # list, update, create, bases, tables, create_field, create_table, other
    path: str
    at: float
    status: int
    records: int = 0  # records sent in a write


@dataclass
class FakeTable:
    id: str
    name: str
    fields: list[dict[str, Any]]
    records: dict[str, dict[str, Any]] = field(default_factory=dict)

    def field(self, name: str) -> dict[str, Any] | None:
        return next((f for f in self.fields if f["name"] == name), None)


class FakeAirtable:
    def __init__(
        self,
        *,
        time: FakeTime | None = None,
        endpoint: str = ENDPOINT,
        token: str = TOKEN,
        scopes: Iterable[str] = ALL_SCOPES,
        base_id: str = BASE_ID,
        base_name: str = "Shop",
        table: str = "Queue",
        fields: Sequence[str] | None = QUEUE_FIELDS,
        enforce_rate_limit: bool = True,
    ) -> None:
        self.time = time or FakeTime()
        self.endpoint, self.token, self.scopes = endpoint.rstrip("/"), token, set(scopes)
        self.ids = (f"{n:014d}" for n in itertools.count(1))
        self.bases: dict[str, tuple[str, list[FakeTable]]] = {}
        self.base_id = base_id
        self.add_base(base_id, base_name)
        self.table_name = table
        if fields is not None:  # None: the base has no such table yet (`init` creates it)
            self.add_table(table, fields)
        self.enforce_rate_limit = enforce_rate_limit
        self.calls: list[Call] = []
        self.failures: list[tuple[int, str | None, dict[str, str]]] = []
        self.penalty_until = float("-inf")
        #: Called with each request's kind before it is answered: a test's "person acting mid-request".
        self.before: Callable[[str], None] | None = None
        self.prefix = urlsplit(self.endpoint).path + "/v0/"
        self.mock = responses.RequestsMock(assert_all_requests_are_fired=False)
        pattern = re.compile(re.escape(self.endpoint) + r"/v0/.*")
        for method in ("GET", "POST", "PATCH", "PUT", "DELETE"):
            self.mock.add_callback(method, pattern, callback=self._handle)

    # -- setting up ------------------------------------------------------------------
    def __enter__(self) -> FakeAirtable:
        self.mock.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.mock.stop()
        self.mock.reset()

    def new_id(self, prefix: str) -> str:
        return prefix + next(self.ids)[-14:]

    def add_base(self, base_id: str, name: str) -> None:
        self.bases[base_id] = (name, [])

    def add_table(self, name: str, fields: Sequence[str], *, base_id: str | None = None) -> FakeTable:
        table = FakeTable(self.new_id("tbl"), name, [])
        for field_name in fields:
            table.fields.append({"id": self.new_id("fld"), "name": field_name, "type": "singleLineText"})
        self.bases[base_id or self.base_id][1].append(table)
        return table

    @property
    def table(self) -> FakeTable:
        """The queue's table, as it is now (found by name, like the UI's tab)."""
        return next(t for t in self.bases[self.base_id][1] if t.name == self.table_name)

    def fail_next(
        self, status: int, *, times: int = 1, kind: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        """The next ``times`` requests (of ``kind``, if given) get ``status`` instead of an answer."""
        self.failures += [(status, kind, dict(headers or {}))] * times

    # -- what people do in the Airtable UI ----------------------------------------------
    def add(self, *, table: FakeTable | None = None, **values: Any) -> str:
        table = table or self.table
        for name in values:
            if table.field(name) is None:
                raise KeyError(f"{table.name} has no field {name!r}")
        record_id = self.new_id("rec")
        table.records[record_id] = {"id": record_id, "createdTime": "2026-11-23T16:00:00.000Z", "fields": {}}
        self.set(record_id, table=table, **values)
        return record_id

    def set(self, record_id: str, *, table: FakeTable | None = None, **values: Any) -> None:
        fields = (table or self.table).records[record_id]["fields"]
        for name, value in values.items():
            if value in (None, "", [], False):
                fields.pop(name, None)
            else:
                fields[name] = value

    def delete(self, record_id: str) -> None:
        del self.table.records[record_id]

    def duplicate(self, record_id: str) -> str:
        """ "Duplicate record": a new record id with every field copied, the id field included."""
        return self.add(**self.table.records[record_id]["fields"])

    def rows(self) -> list[dict[str, Any]]:
        """Every record's fields, with empty fields as "" and the record id under "rec"."""
        names = [f["name"] for f in self.table.fields]
        return [{"rec": r["id"], **{n: r["fields"].get(n, "") for n in names}} for r in self.table.records.values()]

    def row(self, **match: Any) -> dict[str, Any]:
        found = [r for r in self.rows() if all(r.get(k) == v for k, v in match.items())]
        assert len(found) == 1, f"{len(found)} records match {match}: {self.rows()}"
        return found[0]

    # -- what tests measure ------------------------------------------------------------------
    def count(self, kind: str | None = None) -> int:
        return sum(1 for c in self.calls if kind is None or c.kind == kind)

    def busiest_second(self) -> int:
        """The most requests arriving within any one second, both ends included (the limit is 5)."""
        busiest, first = 0, 0
        for last, call in enumerate(self.calls):
            while call.at - self.calls[first].at > 1.0 + 1e-9:
                first += 1
            busiest = max(busiest, last - first + 1)
        return busiest

    # -- the API -------------------------------------------------------------------------------
    def _handle(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        url = urlsplit(request.url or "")
        parts = [unquote(p) for p in url.path.removeprefix(self.prefix).split("/")]
        query = parse_qs(url.query)
        body = json.loads(request.body) if isinstance(request.body, str | bytes) and request.body else {}
        method = (request.method or "GET").upper()
        kind = _kind(method, parts)
        if self.before is not None:
            self.before(kind)
        status, payload, headers = self._answer(request, method, kind, parts, query, body)
        sent = len(body.get("records", [])) if isinstance(body, dict) and kind in ("update", "create") else 0
        self.calls.append(Call(method, kind, url.path, self.time.monotonic(), status, sent))
        return status, {"Content-Type": "application/json", **headers}, json.dumps(payload)

    def _answer(
        self,
        request: requests.PreparedRequest,
        method: str,
        kind: str,
        parts: list[str],
        query: dict[str, list[str]],
        body: Any,
    ) -> tuple[int, Any, dict[str, str]]:
        now = self.time.monotonic()
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return _error(401, "AUTHENTICATION_REQUIRED", "Authentication required")
        for index, (status, only, headers) in enumerate(self.failures):
            if only is None or only == kind:
                del self.failures[index]
                return (*_error(status, _ERROR_TYPES.get(status, "SERVER_ERROR"), "injected by the test")[:2], headers)
        recent = sum(1 for _ in itertools.takewhile(lambda c: c.at >= now - 1.0 - 1e-9, reversed(self.calls)))
        if self.enforce_rate_limit and (now < self.penalty_until or recent >= 5):
            if now >= self.penalty_until:
                self.penalty_until = now + 30.0
            return 429, {"errors": [{"error": "RATE_LIMIT_REACHED", "message": "Rate limit exceeded"}]}, {}
        needs = _SCOPE_OF.get(kind)
        if needs and needs not in self.scopes:
            return _forbidden()
        if kind == "bases":
            bases = [{"id": b, "name": name, "permissionLevel": "create"} for b, (name, _) in self.bases.items()]
            return 200, {"bases": bases}, {}
        if kind == "other":
            return _error(404, "NOT_FOUND", "Could not find what you are looking for")
        if parts[0] == "meta":
            parts = parts[2:]  # meta/bases/{base}/tables[/{table}/fields] -> {base}/tables[/{table}/fields]
        if parts[0] not in self.bases:
            return _forbidden()
        if kind == "tables":
            return 200, {"tables": [_table_schema(t) for t in self.bases[parts[0]][1]]}, {}
        if kind == "create_table":
            return self._create_table(parts[0], body)
        name = parts[2] if kind == "create_field" else parts[1]
        table = next((t for t in self.bases[parts[0]][1] if name in (t.id, t.name)), None)
        if table is None:
            return _error(404, "TABLE_NOT_FOUND", f"Could not find table {name} in application {parts[0]}")
        if kind == "create_field":
            return self._create_field(table, body)
        if kind == "list":
            params = {k.removesuffix("[]"): v if k.endswith("[]") else v[0] for k, v in query.items()}
            return self._list(table, body if method == "POST" else params)
        return self._write(table, kind, body)

    def _list(self, table: FakeTable, options: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        size = int(options.get("pageSize", 100))
        if not 1 <= size <= 100:
            return _error(422, "INVALID_PAGE_SIZE", f"Invalid page size: {size}")
        wanted = options.get("fields")
        records = list(table.records.values())
        start = int(str(options.get("offset", "itr0/0")).split("/")[-1])
        page = records[start : start + size]
        out = [{**r, "fields": {k: v for k, v in r["fields"].items() if wanted is None or k in wanted}} for r in page]
        answer: dict[str, Any] = {"records": out}
        if start + size < len(records):
            answer["offset"] = f"itrFAKE/{start + size}"
        return 200, answer, {}

    def _write(self, table: FakeTable, kind: str, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        records = body.get("records", [])
        if not records or len(records) > 10:
            return _error(422, "INVALID_RECORDS", f"You may send 1 to 10 records a request, not {len(records)}")
        typecast = bool(body.get("typecast"))
        for record in records:
            if kind == "update" and record.get("id") not in table.records:
                return _error(422, "ROW_DOES_NOT_EXIST", f"Record ID {record.get('id')} does not exist in this table")
            for name, value in record.get("fields", {}).items():
                problem = _invalid(table.field(name), name, value, typecast)
                if problem:
                    return _error(422, *problem)
        written = []
        for record in records:
            record_id = record["id"] if kind == "update" else self.add(table=table)
            self.set(record_id, table=table, **record.get("fields", {}))
            written.append(table.records[record_id])
        return 200, {"records": written}, {}

    def _create_table(self, base_id: str, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        name, fields = str(body.get("name", "")).strip(), body.get("fields") or []
        if not name or not fields or any(t.name.casefold() == name.casefold() for t in self.bases[base_id][1]):
            return _error(422, "INVALID_TABLE_NAME_OR_FIELDS", f"Table name {name!r} is empty or used, or no fields")
        table = FakeTable(self.new_id("tbl"), name, [])
        for field_body in fields:  # the first field becomes the primary field
            status, created, _ = self._create_field(table, field_body)
            if status != 200:
                return status, created, {}
        self.bases[base_id][1].append(table)
        return 200, _table_schema(table), {}

    def _create_field(self, table: FakeTable, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        name, kind = str(body.get("name", "")).strip(), body.get("type")
        if not name or any(f["name"].casefold() == name.casefold() for f in table.fields):
            return _error(422, "DUPLICATE_OR_EMPTY_FIELD_NAME", f"Field name {name!r} is empty or already used")
        options = dict(body.get("options") or {})
        if kind == "number" and not isinstance(options.get("precision"), int):
            return _error(422, "INVALID_FIELD_TYPE_OPTIONS_FOR_CREATE", "number fields need options.precision")
        if kind == "singleSelect":
            choices = options.get("choices") or []
            options["choices"] = [
                {"id": self.new_id("sel"), "name": c["name"], "color": c.get("color", _COLORS[i % len(_COLORS)])}
                for i, c in enumerate(choices)
            ]
        created = {"id": self.new_id("fld"), "name": name, "type": kind, **({"options": options} if options else {})}
        if body.get("description"):
            created["description"] = body["description"]
        table.fields.append(created)
        return 200, created, {}


_SCOPE_OF = {
    "bases": "schema.bases:read",
    "tables": "schema.bases:read",
    "create_field": "schema.bases:write",
    "create_table": "schema.bases:write",
    "list": "data.records:read",
    "update": "data.records:write",
    "create": "data.records:write",
}
_ERROR_TYPES = {429: "RATE_LIMIT_REACHED", 500: "SERVER_ERROR", 502: "BAD_GATEWAY", 503: "SERVICE_UNAVAILABLE"}


def _kind(method: str, parts: list[str]) -> str:
    if parts[:2] == ["meta", "bases"]:
        if len(parts) == 2:
            return "bases"
        if len(parts) == 4 and parts[3] == "tables":
            return {"GET": "tables", "POST": "create_table"}.get(method, "other")
        if len(parts) == 6 and parts[5] == "fields" and method == "POST":
            return "create_field"
        return "other"
    if len(parts) == 2:
        return {"GET": "list", "PATCH": "update", "PUT": "update", "POST": "create"}.get(method, "other")
    if len(parts) == 3 and parts[2] == "listRecords" and method == "POST":
        return "list"
    return "other"


def _invalid(spec: dict[str, Any] | None, name: str, value: Any, typecast: bool) -> tuple[str, str] | None:
    """Why Airtable would refuse this value for this field (typecast off), or None."""
    if spec is None:
        return "UNKNOWN_FIELD_NAME", f'Unknown field name: "{name}"'
    kind = spec["type"]
    if kind in _COMPUTED:
        return "INVALID_VALUE_FOR_COLUMN", f'Field "{name}" cannot accept a value because the field is computed'
    if value is None:
        return None
    cannot = "INVALID_VALUE_FOR_COLUMN", f'Field "{name}" cannot accept the provided value'
    if kind in _TEXT and not isinstance(value, str):
        return None if typecast else cannot
    if kind in _TEXT and len(value.encode("utf-16-le")) // 2 > CELL_LIMIT:  # counted as JavaScript counts
        return "INVALID_VALUE_FOR_COLUMN", f'Field "{name}" cannot accept a value longer than {CELL_LIMIT} characters'
    if kind in _NUMERIC and (isinstance(value, bool) or not isinstance(value, int | float)):
        return None if typecast else cannot
    if kind == "singleSelect":
        if not isinstance(value, str):
            return cannot
        choices = [c["name"] for c in spec.get("options", {}).get("choices", [])]
        if value not in choices and not typecast:
            return (
                "INVALID_MULTIPLE_CHOICE_OPTIONS",
                f'Insufficient permissions to create new select option ""{value}""',
            )
    return None


def _table_schema(table: FakeTable) -> dict[str, Any]:
    return {
        "id": table.id,
        "name": table.name,
        "primaryFieldId": table.fields[0]["id"] if table.fields else None,
        "fields": [dict(f) for f in table.fields],
        "views": [{"id": "viwFAKEGRIDVIEW01", "name": "Grid view", "type": "grid"}],
    }


def _error(status: int, kind: str, message: str) -> tuple[int, Any, dict[str, str]]:
    if status == 429:
        return 429, {"errors": [{"error": kind, "message": "Rate limit exceeded. Please try again later"}]}, {}
    return status, {"error": {"type": kind, "message": message}}, {}


def _forbidden() -> tuple[int, Any, dict[str, str]]:
    return _error(
        403,
        "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND",
        "Invalid permissions, or the requested model was not found. Check that both your user and your token "
        "have the required permissions, and that the model names and/or ids are correct.",
    )


class AirtablePerson:
    """Someone using the table in Airtable's UI (for the board contract suite); values are text, found by id.

    Airtable has no row positions: sorting changes a view, never the records, so ``sort_by`` does nothing and
    ``insert_at_top`` adds a record like any other. A person adds a field before typing into it.
    """

    def __init__(self, fake: FakeAirtable) -> None:
        self.fake = fake
        self._index: dict[str, list[str]] = {}  # id → records, rebuilt when found stale
        self._size = -1

    def _record(self, task_id: str) -> str:
        records = self.fake.table.records
        cached = self._index.get(task_id, [])
        stale = len(records) != self._size or any(
            records.get(r, {}).get("fields", {}).get("id") != task_id for r in cached
        )
        if not cached or stale:  # records added or deleted, or ids changed, since the index was built
            self._index, self._size = {}, len(records)
            for record in records.values():
                self._index.setdefault(str(record["fields"].get("id", "")), []).append(record["id"])
            cached = self._index.get(task_id, [])
        if len(cached) != 1:
            raise KeyError(f"{len(cached)} records with id {task_id!r}")
        return cached[0]

    def _typed(self, values: dict[str, object]) -> dict[str, Any]:
        for name in values:
            if self.fake.table.field(name) is None:
                self.fake.table.fields.append({"id": self.fake.new_id("fld"), "name": name, "type": "singleLineText"})
        return {k: "" if v is None else str(v) for k, v in values.items()}

    def add(self, **values: object) -> None:
        self.fake.add(**self._typed(values))

    def rows(self) -> list[dict[str, str]]:
        from sheetbot.boards.airtable import cell_text

        names = [f["name"] for f in self.fake.table.fields]
        records = [r for r in self.fake.table.records.values() if r["fields"]]
        return [{n: cell_text(r["fields"].get(n)) for n in names} for r in records]

    def set(self, task_id: str, **values: object) -> None:
        self.fake.set(self._record(task_id), **self._typed(values))

    def sort_by(self, column: str, *, reverse: bool = False) -> None:
        return None

    def insert_at_top(self, **values: object) -> None:
        self.add(**values)

    def delete(self, task_id: str) -> None:
        self.fake.delete(self._record(task_id))

    def copy(self, task_id: str) -> None:
        self.fake.duplicate(self._record(task_id))

    def is_formula(self, task_id: str, column: str) -> bool:
        spec = self.fake.table.field(column)
        return spec is not None and spec["type"] == "formula"

    def api_calls(self) -> Counter[str]:
        return Counter(c.kind for c in self.fake.calls)
