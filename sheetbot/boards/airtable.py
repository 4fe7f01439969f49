"""The Airtable board: one table in a base, through pyairtable 3 and Airtable's REST API.

Why it is built this way:

* **Identity is the record id** (``rec…``): it is each row's ``ref`` and never changes, whatever
  people do to views. The ``id`` field still holds the task id, because the lifecycle finds rows
  by it; a record duplicated in the UI carries its original's ``id`` and gets its own through a
  claim on its record id.
* **Columns come from the metadata API** (scope ``schema.bases:read``): Airtable leaves empty
  fields out of records, so the records alone cannot say which fields exist.
* **Quotas**: 10 records a request, 5 requests a second per base, and a 30-second penalty after a
  429. Every HTTP request passes one transport adapter that paces (5 in any 1.25 s: see PACING_MARGIN_S) and
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

import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import requests
from pyairtable import Api
from pyairtable.api.table import Table

from sheetbot.boards.airtable_fields import cell_text as cell_text
from sheetbot.boards.airtable_fields import field_label as field_label
from sheetbot.boards.airtable_fields import field_value as field_value
from sheetbot.boards.airtable_http import RATE_LIMIT_WAIT_S as RATE_LIMIT_WAIT_S
from sheetbot.boards.airtable_http import Clock as Clock
from sheetbot.boards.airtable_http import Pacer as Pacer
from sheetbot.boards.airtable_http import Sleep as Sleep
from sheetbot.boards.airtable_http import _error_of, _Transport
from sheetbot.boards.airtable_meta import FIELDS_TTL_S as FIELDS_TTL_S
from sheetbot.boards.airtable_meta import SCOPES as SCOPES
from sheetbot.boards.airtable_meta import AirtableConnection
from sheetbot.boards.base import BoardRow, CellValue, RowUpdate, SchemaSpec, Sheet, WriteResult
from sheetbot.boards.dashboard_airtable import write_metrics
from sheetbot.boards.dashboard_cells import Cell, ChartSpec
from sheetbot.boards.values import AIRTABLE_CELL_UNITS
from sheetbot.config.models import BoardConfig
from sheetbot.errors import BoardError, BoardNotFound, BoardSchemaError, BoardWriteError

# Vendor JSON: table metadata, field definitions and record bodies are Airtable's own shape, kept as
# loose dicts.

DEFAULT_ENDPOINT = "https://api.airtable.com"
PAGE_SIZE = 100  # records a list request returns at most
BATCH_SIZE = Api.MAX_RECORDS_PER_REQUEST  # records a write request takes at most (10)
ATTEMPTS = 5  # tries per request: four 429s in a row is two minutes of waiting
COST_PRECISION = 6
_KEPT = "outputs are kept in the state and written on the next run"


class AirtableBoard(AirtableConnection):
    """A table in an Airtable base. The token is read from ``env[token_env]`` at the first request."""

    #: Airtable's long text holds 100,000 characters; counted as UTF-16 units, as its JavaScript does.
    max_cell_units = AIRTABLE_CELL_UNITS

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
        """The board the YAML names (loading the config has checked that ``board.base`` is set)."""
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

    # -- the Board protocol ----------------------------------------------------------
    def read(self) -> Sheet:
        return self._read()[0]

    def write(self, updates: Sequence[RowUpdate]) -> WriteResult:
        return self._write_kept(updates, None)

    def read_then_write(self, plan: Callable[[Sheet], Sequence[RowUpdate]]) -> tuple[Sheet, WriteResult]:
        """The records' ids as the read listed them place the updates: a record id never moves, so a sort or
        a new record meanwhile changes nothing, and a record deleted since is listed again (``_patch``)."""
        sheet, ids = self._read()
        return sheet, self._write_kept(plan(sheet), ids)

    def _read(self) -> tuple[Sheet, dict[str, str]]:
        """The sheet, and record id → the task id in its id field (what ``_ids`` lists), from one listing."""
        meta = self._table_meta(fresh=True)
        columns = tuple(str(f["name"]) for f in meta.get("fields", []))
        with self._calling("read the records", "data.records:read"):
            records = self._records(meta).all(page_size=PAGE_SIZE)
        rows = tuple(
            BoardRow(ref=r["id"], values={c: cell_text(r["fields"].get(c)) for c in columns})
            for r in records
            if r.get("fields")  # a new table comes with blank records; they are nobody's task
        )
        ids = {r["id"]: cell_text(r.get("fields", {}).get(self.id_column)).strip() for r in records}
        return Sheet(columns=columns, rows=rows), ids

    def _write_kept(self, updates: Sequence[RowUpdate], ids: Mapping[str, str] | None) -> WriteResult:
        if not updates:
            return WriteResult()
        try:
            return self._write(updates, ids)
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

    # -- optional capabilities (sheetbot/boards/capabilities.py) --------------------------
    def write_dashboard(self, rows: Sequence[Mapping[str, Cell]], chart: ChartSpec) -> list[str]:
        """Upsert the metrics into the base's `Metrics` table (sheetbot/boards/dashboard_airtable.py)."""
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
    def _write(self, updates: Sequence[RowUpdate], ids: Mapping[str, str] | None = None) -> WriteResult:
        """``ids``: record id → task id as a listing just now found them; None lists them first."""
        meta = self._table_meta(fresh=False)
        types = {str(f["name"]): str(f.get("type", "")) for f in meta.get("fields", [])}
        unknown = sorted({c for u in updates for c in u.values} - types.keys())
        if unknown:
            names = ", ".join(unknown)
            raise BoardWriteError(f"{self.describe()} has no field {names}: run `sheetbot init` (or add it); {_KEPT}")
        table = self._records(meta)
        targets, missing = place(updates, self._ids(table) if ids is None else ids)
        cells: dict[str, dict[str, Any]] = {}
        owners: dict[str, list[int]] = defaultdict(list)
        for index, records in targets.items():
            for record in records:
                values = updates[index].values.items()
                cells.setdefault(record, {}).update({k: field_value(v, types[k]) for k, v in values})
                owners[record].append(index)
        refused: dict[str, str] = {}
        written = self._patch(table, cells, refused)
        done = {index for record in written for index in owners[record]}
        turned_down = {updates[i].task_id: why for record, why in refused.items() for i in owners[record]}
        missing += [updates[i].task_id for i in targets if i not in done and updates[i].task_id not in turned_down]
        return WriteResult(written=len(done), missing=missing, refused=turned_down)

    def _patch(self, table: Table, cells: dict[str, dict[str, Any]], refused: dict[str, str]) -> set[str]:
        """PATCH 10 records a request. A record deleted since the listing fails its whole batch
        (422 ROW_DOES_NOT_EXIST): list the ids again, drop the gone ones, and carry on. A value Airtable
        refuses (any other 422) fails its whole batch too: that batch goes again one record a request, and
        the records refused alone land in ``refused`` (record id → Airtable's reason), the rest written."""
        records = [{"id": record, "fields": fields} for record, fields in cells.items()]
        chunks = _chunks(records)
        written: set[str] = set()
        at, relists = 0, 0
        while at < len(chunks):
            chunk = chunks[at]
            doing = f"write records ({len(written)} of {len(records)} written)"
            try:
                table.batch_update(chunk, typecast=False)  # type: ignore[arg-type]
            except requests.RequestException as exc:
                kind, message = _error_of(exc.response) if isinstance(exc, requests.HTTPError) else ("", "")
                if kind == "ROW_DOES_NOT_EXIST" and relists < 3:
                    relists += 1
                    alive = self._ids(table)
                    chunks = chunks[:at] + _chunks([r for c in chunks[at:] for r in c if r["id"] in alive])
                    continue
                refusal = isinstance(exc, requests.HTTPError) and exc.response is not None
                if refusal and exc.response.status_code == 422 and kind != "ROW_DOES_NOT_EXIST":  # type: ignore[union-attr]
                    if len(chunk) > 1:  # one record a request, to write all but the ones at fault
                        chunks = [*chunks[:at], *([r] for r in chunk), *chunks[at + 1 :]]
                        continue
                    refused[str(chunk[0]["id"])] = f"{kind}: {message}" if message else kind
                    at += 1
                    continue
                raise BoardWriteError(f"{self._error(exc, doing, 'data.records:write')}; {_KEPT}") from None
            written.update(str(r["id"]) for r in chunk)
            at += 1
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


def _chunks(records: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    return [records[i : i + BATCH_SIZE] for i in range(0, len(records), BATCH_SIZE)]


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


if TYPE_CHECKING:  # mypy holds AirtableBoard to the Board protocol and to each capability it offers
    from sheetbot.boards.base import Board
    from sheetbot.boards.capabilities import AppendsRows, DrawsDashboard, ReadsThenWrites

    def _offers(board: AirtableBoard) -> tuple[Board, DrawsDashboard, AppendsRows, ReadsThenWrites]:
        return board, board, board, board
