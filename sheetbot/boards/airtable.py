"""The Airtable board: one table in a base, through pyairtable 3 and Airtable's REST API.

Why it is built this way:

* **Identity is the record id** (``rec…``): it is each row's ``ref`` and never changes, whatever
  people do to views. The ``id`` field still holds the task id, because the lifecycle finds rows
  by it; a record duplicated in the UI carries its original's ``id`` and gets its own through a
  claim on its record id.
* **Columns come from the metadata API** (scope ``schema.bases:read``): Airtable leaves empty
  fields out of records, so the records alone cannot say which fields exist.
* **Quotas**: 10 records a request, 5 requests a second per base, and a 30-second penalty after a
  429. Every HTTP request passes one transport adapter that paces (at most 5 in any second) and
  retries (429: wait 30 s; 5xx and dropped connections: exponential backoff). pyairtable's own
  retry is off: it gives up after about 3 s, long before Airtable's penalty ends.
* **Calls**, for n records of which c change: ``read`` = 1 (fields) + ⌈n/100⌉ (pages of 100, the
  API's maximum: unavoidable); ``write`` = 1 (fields, reused for a minute) + ⌈n/100⌉ (the id field
  only, listed right before writing so records deleted meanwhile are reported missing instead of
  failing a batch) + ⌈c/10⌉ PATCHes.
* **Fields `init` creates** (the table too, if there is none): ``review`` a single select (approve,
  edit, rework); ``cost`` a number with 6 decimals (a cheap row costs fractions of a cent); the
  long-text columns long text; every other one, ``status`` included, single line text: a person
  types ``queued`` to requeue, and a single select would fail a whole write over a status it lacks
  (typecast stays off, so Airtable never converts or evaluates what sheetbot writes: ``=1+1`` stays
  text).
"""

from __future__ import annotations

import math
import re
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import requests
import tenacity
from pyairtable import Api
from pyairtable.api.table import Table
from requests.adapters import HTTPAdapter

from sheetbot.boards.base import BoardRow, CellValue, RowUpdate, SchemaSpec, Sheet, WriteResult
from sheetbot.boards.values import as_text, clean_text, plain_text
from sheetbot.config import BoardConfig
from sheetbot.errors import BoardError, BoardNotFound, BoardSchemaError, BoardWriteError

if TYPE_CHECKING:
    from sheetbot.dashboard import ChartSpec

DEFAULT_ENDPOINT = "https://api.airtable.com"
PAGE_SIZE = 100  # records a list request returns at most
BATCH_SIZE = Api.MAX_RECORDS_PER_REQUEST  # records a write request takes at most (10)
RATE_LIMIT_WAIT_S = 30.0  # Airtable: "wait 30 seconds before subsequent requests will succeed"
ATTEMPTS = 5  # tries per request: four 429s in a row is two minutes of waiting
FIELDS_TTL_S = 60.0  # how long write() trusts the field list it fetched last
COST_PRECISION = 6
SCOPES = "data.records:read, data.records:write and schema.bases:read (schema.bases:write for `sheetbot init`)"
_BASE_ID = re.compile(r"app[A-Za-z0-9]{14}")
_NUMERIC = frozenset({"number", "currency", "percent", "duration", "rating"})
_KEPT = "outputs are kept in the state and written on the next run"
_LABELS = {"singleLineText": "Single line text", "multilineText": "Long text", "number": "Number"}

Clock = Callable[[], float]
Sleep = Callable[[float], None]


class Pacer:
    """At most ``⌊per_s⌋`` requests in any window of ``⌊per_s⌋/per_s`` seconds (5 a second by default).

    Time is passed in (a monotonic clock and a sleep), so tests measure pacing without waiting.
    """

    def __init__(self, per_s: float, *, monotonic: Clock, sleep: Sleep) -> None:
        self.burst = max(1, int(per_s))
        self.window_s = self.burst / per_s
        self.monotonic, self.sleep = monotonic, sleep
        self.sent: deque[float] = deque(maxlen=self.burst)

    def wait(self) -> None:
        now = self.monotonic()
        if len(self.sent) == self.burst and now < self.sent[0] + self.window_s:
            self.sleep(self.sent[0] + self.window_s - now)
            now = max(self.monotonic(), self.sent[0] + self.window_s)
        self.sent.append(now)


class _Transport(HTTPAdapter):
    """Every request this board sends passes here: paced, and retried the way Airtable asks."""

    def __init__(self, pacer: Pacer, *, sleep: Sleep, attempts: int) -> None:
        super().__init__()
        self.pacer, self.pause, self.attempts = pacer, sleep, attempts
        self.backoff = tenacity.wait_exponential_jitter(initial=1, max=RATE_LIMIT_WAIT_S, jitter=1)

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        method = (request.method or "GET").upper()
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.attempts),
            wait=self._wait,
            retry=tenacity.retry_if_result(
                lambda r: r.status_code == 429 or (r.status_code >= 500 and method != "POST")
            )
            | tenacity.retry_if_exception_type((requests.ConnectionError, requests.Timeout)),
            sleep=self.pause,
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        )
        return retrying(self._send_once, request, *args, **kwargs)

    def _send_once(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        self.pacer.wait()
        return super().send(request, *args, **kwargs)

    def _wait(self, state: tenacity.RetryCallState) -> float:
        outcome = state.outcome
        if outcome is not None and not outcome.failed and outcome.result().status_code == 429:
            retry_after = outcome.result().headers.get("Retry-After", "")
            return max(RATE_LIMIT_WAIT_S, float(retry_after) if retry_after.isdigit() else 0.0)
        return float(self.backoff(state))


class AirtableBoard:
    """A table in an Airtable base. The token is read from ``env[token_env]`` at the first request."""

    def __init__(
        self,
        *,
        base: str,
        table: str,
        env: Mapping[str, str],
        token_env: str = "AIRTABLE_TOKEN",
        endpoint_url: str | None = None,
        id_column: str = "id",
        cost_column: str = "cost",
        requests_per_s: float = 5.0,
        timeout_s: float = 60.0,
        attempts: int = ATTEMPTS,
        monotonic: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        self.base, self.table = base, table
        self.env, self.token_env = env, token_env
        self.endpoint_url = (endpoint_url or DEFAULT_ENDPOINT).rstrip("/")
        self.id_column, self.cost_column = id_column, cost_column
        self.timeout_s, self.attempts, self.monotonic = timeout_s, attempts, monotonic
        self.pacer = Pacer(requests_per_s, monotonic=monotonic, sleep=sleep)
        self._transport = _Transport(self.pacer, sleep=sleep, attempts=attempts)
        self._api: Api | None = None
        self._base_id: str | None = None
        self._fields: tuple[float, dict[str, Any]] | None = None  # (fetched at, the table's metadata)
        self._seen = ""  # the base's tables, for messages

    @classmethod
    def from_config(cls, board: BoardConfig, *, env: Mapping[str, str], **options: Any) -> AirtableBoard:
        """The board the YAML names (configfile has checked that ``board.base`` is set)."""
        return cls(
            base=board.base or "",
            table=board.sheet,
            env=env,
            token_env=board.token_env,
            endpoint_url=board.endpoint_url,
            requests_per_s=board.requests_per_s,
            timeout_s=board.timeout_s,
            **options,
        )

    def describe(self) -> str:
        return f"Airtable {self.base} [{self.table}]"

    # -- the Board protocol ----------------------------------------------------------
    def read(self) -> Sheet:
        meta = self._table_meta(fresh=True)
        columns = tuple(str(f["name"]) for f in meta.get("fields", []))
        with self._calling("read the records", "data.records:read"):
            records = self._records(meta).all(page_size=PAGE_SIZE)
        rows = tuple(
            BoardRow(ref=r["id"], values={c: cell_text(r["fields"].get(c)) for c in columns})
            for r in records
            if r.get("fields")  # a new table comes with blank records; they are nobody's task
        )
        return Sheet(columns=columns, rows=rows)

    def write(self, updates: Sequence[RowUpdate]) -> WriteResult:
        if not updates:
            return WriteResult()
        try:
            return self._write(updates)
        except (BoardWriteError, BoardNotFound):
            raise
        except BoardError as exc:
            raise BoardWriteError(f"{exc}; {_KEPT}") from None

    def ensure_schema(self, spec: SchemaSpec) -> list[str]:
        """Add the missing fields, or the table with all of them (both need the scope schema.bases:write)."""
        meta = self._find_table(fresh=True)
        api, base = self._client(), self._base()
        wanted = self._missing(meta or {}, spec)
        if meta is None:  # one request; the first field (the id, if asked for) becomes the primary field
            wanted.sort(key=lambda f: f["name"] != self.id_column)
            posts = [(api.build_url("meta/bases", base, "tables"), {"name": self.table, "fields": wanted}, wanted)]
        else:
            url = api.build_url("meta/bases", base, "tables", meta["id"], "fields")
            posts = [(url, field, [field]) for field in wanted]
        added: list[str] = []
        for url, body, fields in posts:
            try:
                api.request("POST", url, json=body)
            except requests.RequestException as exc:
                if isinstance(exc, requests.HTTPError) and exc.response is not None and exc.response.status_code == 403:
                    raise BoardSchemaError(self._by_hand(wanted[len(added) :], added, new_table=meta is None)) from None
                raise self._error(exc, f"add {', '.join(f['name'] for f in fields)}", "schema.bases:write") from None
            added += [str(f["name"]) for f in fields]
        self._fields = None
        return added

    def write_dashboard(self, rows: Sequence[Mapping[str, Any]], chart: ChartSpec) -> list[str]:
        """Upsert the metrics into the base's `Metrics` table (sheetbot/boards/dashboard_airtable.py)."""
        from sheetbot.boards.dashboard_airtable import write_metrics

        return write_metrics(self, rows)

    def append_rows(self, rows: Sequence[Mapping[str, CellValue]]) -> int:
        """Create records (a trial's sample), 10 a request; their fields must exist (`ensure_schema`)."""
        meta = self._table_meta(fresh=True)
        types = {str(f["name"]): str(f.get("type", "")) for f in meta.get("fields", [])}
        unknown = sorted({c for row in rows for c in row} - types.keys())
        if unknown:
            raise BoardWriteError(f"{self.describe()} has no field {', '.join(unknown)}: run `sheetbot init`")
        records = [{k: field_value(v, types[k]) for k, v in row.items()} for row in rows]
        with self._calling("create records", "data.records:write"):
            self._records(meta).batch_create(records, typecast=False)
        return len(records)

    # -- writing ------------------------------------------------------------------------
    def _write(self, updates: Sequence[RowUpdate]) -> WriteResult:
        meta = self._table_meta(fresh=False)
        types = {str(f["name"]): str(f.get("type", "")) for f in meta.get("fields", [])}
        unknown = sorted({c for u in updates for c in u.values} - types.keys())
        if unknown:
            names = ", ".join(unknown)
            raise BoardWriteError(f"{self.describe()} has no field {names}: run `sheetbot init` (or add it); {_KEPT}")
        table = self._records(meta)
        targets, missing = place(updates, self._ids(table))
        cells: dict[str, dict[str, Any]] = {}
        owners: dict[str, list[int]] = defaultdict(list)
        for index, records in targets.items():
            for record in records:
                values = updates[index].values.items()
                cells.setdefault(record, {}).update({k: field_value(v, types[k]) for k, v in values})
                owners[record].append(index)
        written = self._patch(table, cells)
        done = {index for record in written for index in owners[record]}
        missing += [updates[i].task_id for i in targets if i not in done]
        return WriteResult(written=len(done), missing=missing)

    def _patch(self, table: Table, cells: dict[str, dict[str, Any]]) -> set[str]:
        """PATCH 10 records a request. A record deleted since the listing fails its whole batch
        (422 ROW_DOES_NOT_EXIST): list the ids again, drop the gone ones, and carry on."""
        pending = [{"id": record, "fields": fields} for record, fields in cells.items()]
        written: set[str] = set()
        start, relists = 0, 0
        while start < len(pending):
            chunk = pending[start : start + BATCH_SIZE]
            doing = f"write records ({len(written)} of {len(pending)} written)"
            try:
                table.batch_update(chunk, typecast=False)  # type: ignore[arg-type]
            except requests.RequestException as exc:
                gone = isinstance(exc, requests.HTTPError) and _error_of(exc.response)[0] == "ROW_DOES_NOT_EXIST"
                if gone and relists < 3:
                    relists += 1
                    alive = self._ids(table)
                    pending = pending[:start] + [r for r in pending[start:] if r["id"] in alive]
                    continue
                raise BoardWriteError(f"{self._error(exc, doing, 'data.records:write')}; {_KEPT}") from None
            written.update(str(r["id"]) for r in chunk)
            start += BATCH_SIZE
        return written

    def _ids(self, table: Table) -> dict[str, str]:
        """record id → the task id in its id field, for every record, right now."""
        with self._calling("list the records' ids", "data.records:read"):
            records = table.all(fields=[self.id_column], page_size=PAGE_SIZE)
        return {r["id"]: cell_text(r["fields"].get(self.id_column)).strip() for r in records}

    # -- schema -------------------------------------------------------------------------
    def _missing(self, meta: Mapping[str, Any], spec: SchemaSpec) -> list[dict[str, Any]]:
        have = {str(f["name"]) for f in meta.get("fields", [])}
        return [self._field_for(name, spec) for name in dict.fromkeys(spec.columns) if name not in have]

    def _field_for(self, name: str, spec: SchemaSpec) -> dict[str, Any]:
        if name == spec.review_column:
            choices = [{"name": choice} for choice in spec.review_choices]
            return {"name": name, "type": "singleSelect", "options": {"choices": choices}}
        if name == self.cost_column:
            return {"name": name, "type": "number", "options": {"precision": COST_PRECISION}}
        return {"name": name, "type": "multilineText" if name in spec.wide_columns else "singleLineText"}

    def _by_hand(self, fields: Sequence[Mapping[str, Any]], added: Sequence[str], *, new_table: bool) -> str:
        todo = "; ".join(f"{f['name']} ({field_label(f)})" for f in fields)
        done = f"added {', '.join(added)}; " if added else ""
        how = f"create the table {self.table!r} with the fields" if new_table else "add by hand"
        return (
            f"the token in {self.token_env} may not change {self.describe()} (403: it lacks the scope "
            f"schema.bases:write): {done}add the scope and run `sheetbot init` again, or {how}: {todo}"
        )

    # -- connection, base, table ----------------------------------------------------------
    def _client(self) -> Api:
        if self._api is None:
            token = (self.env.get(self.token_env) or "").strip()
            if not token:
                raise BoardError(
                    f"{self.token_env} is not set: put an Airtable personal access token in it "
                    f"(airtable.com/create/tokens) with the scopes {SCOPES}"
                )
            timeout = (10, self.timeout_s)
            api = Api(token, timeout=timeout, retry_strategy=None, endpoint_url=self.endpoint_url)  # type: ignore[arg-type]
            api.session.mount("https://", self._transport)
            api.session.mount("http://", self._transport)
            self._api = api
        return self._api

    def _base(self) -> str:
        """The base id: given, or looked up by name once (needs schema.bases:read)."""
        if self._base_id is None:
            if _BASE_ID.fullmatch(self.base):
                self._base_id = self.base
            else:
                api = self._client()
                with self._calling("list the bases", "schema.bases:read"):
                    pages = list(api.iterate_requests("GET", api.build_url("meta/bases")))
                bases = [b for page in pages for b in page.get("bases", [])]
                named = [b for b in bases if b.get("name") == self.base] or [
                    b for b in bases if str(b.get("name", "")).casefold() == self.base.casefold()
                ]
                if not named:
                    seen = ", ".join(repr(b.get("name")) for b in bases) or "none"
                    raise BoardNotFound(
                        f"no Airtable base named {self.base!r} is shared with the token in {self.token_env} "
                        f"(it sees {seen}): fix board.base, or add the base to the token's access list"
                    )
                if len(named) > 1:
                    raise BoardError(
                        f"{len(named)} Airtable bases are named {self.base!r}: put the base id in board.base"
                    )
                self._base_id = str(named[0]["id"])
        return self._base_id

    def _table_meta(self, *, fresh: bool) -> dict[str, Any]:
        """The table's id, name and fields from the metadata API; write() reuses them for a minute."""
        found = self._find_table(fresh=fresh)
        if found is None:
            raise BoardNotFound(
                f"Airtable base {self.base} has no table {self.table!r} (it has {self._seen or 'none'}): "
                "run `sheetbot init` to create it, or fix board.sheet"
            )
        return found

    def _find_table(self, *, fresh: bool) -> dict[str, Any] | None:
        if not fresh and self._fields is not None and self.monotonic() - self._fields[0] < FIELDS_TTL_S:
            return self._fields[1]
        api, base = self._client(), self._base()
        with self._calling("read the table's fields", "schema.bases:read"):
            tables = api.request("GET", api.build_url("meta/bases", base, "tables")).get("tables", [])
        found = next((t for t in tables if self.table in (t.get("id"), t.get("name"))), None) or next(
            (t for t in tables if str(t.get("name", "")).casefold() == self.table.casefold()), None
        )
        self._fields = (self.monotonic(), found) if found is not None else None
        self._seen = ", ".join(repr(t.get("name")) for t in tables)
        return found

    def _records(self, meta: Mapping[str, Any]) -> Table:
        return self._client().table(self._base(), str(meta["id"]))  # by id: a renamed table keeps working

    # -- errors -----------------------------------------------------------------------------
    @contextmanager
    def _calling(self, doing: str, scope: str) -> Iterator[None]:
        try:
            yield
        except requests.RequestException as exc:
            raise self._error(exc, doing, scope) from None

    def _error(self, exc: requests.RequestException, doing: str, scope: str) -> BoardError:
        """One line that names the token's variable, the scope, the base or the table, and the fix."""
        response = exc.response if isinstance(exc, requests.HTTPError) else None
        if response is None:
            return BoardError(
                f"cannot reach Airtable at {self.endpoint_url} to {doing} ({type(exc).__name__}, "
                f"{self.attempts} tries): check the network and board.endpoint_url"
            )
        status, (kind, message) = response.status_code, _error_of(response)
        what, env = f"{status} {kind}".strip(), self.token_env
        if status == 404:
            return BoardNotFound(
                f"Airtable has no base {self.base!r} or no table {self.table!r} ({what}): fix the YAML"
            )
        fix = {
            401: f"Airtable rejected the token in {env} ({what}): put a valid personal access token in {env}",
            403: f"Airtable refused to {doing} in {self.describe()} ({what}): give the token in {env} the scope "
            f"{scope} and add the base to its access list (airtable.com/create/tokens)",
            429: f"Airtable kept answering {what} when sheetbot tried to {doing} ({self.attempts} tries): another "
            "app may be using the base's 5 requests a second, or the workspace's monthly API calls are spent",
        }
        if status >= 500:
            return BoardError(f"Airtable kept failing ({what}) when sheetbot tried to {doing} ({self.attempts} tries)")
        return BoardError(fix.get(status, f"Airtable refused to {doing} in {self.describe()} ({what}: {message})"))


def missing_fields(board: AirtableBoard, spec: SchemaSpec) -> list[tuple[str, str]]:
    """(name, type as Airtable's UI calls it) for each field the table lacks: what `sheetbot check` lists
    when the token may not add fields itself (needs schema.bases:read)."""
    return [(str(f["name"]), field_label(f)) for f in board._missing(board._find_table(fresh=True) or {}, spec)]


def place(updates: Sequence[RowUpdate], ids: Mapping[str, str]) -> tuple[dict[int, list[str]], list[str]]:
    """Records for each update (index → record ids), and the task ids with no record.

    The rules of :func:`sheetbot.boards.locate.resolve`, with a stable address: a claim goes to its
    record if that still holds the old id (else it is missing, never guessed); a plain update goes to
    every record holding its task id except records claimed in the same write (a copy being given its
    own id must not get its original's cells); a blank task id matches nothing.
    """
    by_id: dict[str, list[str]] = defaultdict(list)
    for record, task_id in ids.items():
        by_id[task_id].append(record)
    targets: dict[int, list[str]] = {}
    missing: list[str] = []
    claimed: set[str] = set()
    for index, update in enumerate(updates):
        claim = update.claim
        if claim is None:
            continue
        if claim.ref in ids and claim.ref not in claimed and ids[claim.ref] == claim.old_id.strip():
            claimed.add(claim.ref)
            targets[index] = [claim.ref]
        else:
            missing.append(update.task_id)
    for index, update in enumerate(updates):
        if update.claim is not None:
            continue
        task_id = update.task_id.strip()
        records = [r for r in by_id.get(task_id, []) if r not in claimed] if task_id else []
        if records:
            targets[index] = records
        else:
            missing.append(update.task_id)
    return targets, missing


def cell_text(value: object) -> str:
    """A field value as the text a person reads: numbers "0.25", checkboxes TRUE/FALSE, lists joined."""
    if isinstance(value, list):
        return ", ".join(text for text in (cell_text(item) for item in value) if text)
    if isinstance(value, dict):  # collaborators, attachments, buttons, barcodes, AI text, formula errors
        for key in ("name", "text", "value", "label", "filename", "email", "url", "specialValue", "error"):
            if value.get(key) not in (None, ""):
                return cell_text(value[key])
        return ""
    return as_text(value)


def field_value(value: CellValue, field_type: str) -> Any:
    """A plain value typed for its field: numbers into number fields, text into the rest, "" as empty."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            return None
        return value if field_type in _NUMERIC else plain_text(value)
    text = clean_text(str(value))
    if field_type in _NUMERIC:
        try:
            number = float(text)
        except ValueError:
            return text  # Airtable's 422 then names the field and the value
        return number if math.isfinite(number) else None
    return text


def field_label(field: Mapping[str, Any]) -> str:
    """A field type as Airtable's UI names it, with what a person must pick when adding it by hand."""
    kind = str(field.get("type", ""))
    options = field.get("options") or {}
    if kind == "singleSelect":
        return "Single select: " + ", ".join(str(c["name"]) for c in options.get("choices", []))
    if kind == "number":
        return f"Number, {options.get('precision', 0)} decimal places"
    return _LABELS.get(kind, kind)


def _error_of(response: requests.Response | None) -> tuple[str, str]:
    """(type, message) from Airtable's error bodies: {"error": {...}}, {"error": "NOT_FOUND"} or {"errors": [...]}."""
    try:
        body = response.json() if response is not None else {}
    except ValueError:
        return "", ""
    error = body.get("error") if isinstance(body, dict) else None
    if error is None and isinstance(body, dict) and body.get("errors"):
        first = body["errors"][0]
        return str(first.get("error", "")), str(first.get("message", ""))
    if isinstance(error, dict):
        return str(error.get("type", "")), str(error.get("message", ""))
    return (str(error), "") if error else ("", "")
