"""Airtable's dashboard: a `Metrics` table, one record per night and workflow, upserted at each refresh.

Airtable's API cannot draw charts, so the table is the dashboard: a person adds a chart to it in
an Interface or with the Chart extension, once. Records are matched by their primary field
``key`` ("<night> <workflow>"), so a refresh updates what it wrote before instead of adding rows.
A base without the table gets it created (needs the token's schema.bases:write scope); when that
is refused, the dashboard is skipped with a warning and the harvest carries on.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import requests

from sheetbot.boards.airtable_meta import AirtableConnection
from sheetbot.boards.dashboard_cells import HEADERS, Cell

# Vendor JSON: field definitions and record bodies are Airtable's own JSON (its shape), kept as loose dicts.

log = logging.getLogger(__name__)

METRICS_TABLE = "Metrics"
KEY_FIELD = "key"
_TEXT = {"night", "workflow"}
_PRECISION = {"approval rate": 4, "completion": 4, "cost per output": 6}


def metrics_fields() -> list[dict[str, Any]]:
    """The table's fields, the primary field first."""
    fields: list[dict[str, Any]] = [{"name": KEY_FIELD, "type": "singleLineText"}]
    for name in HEADERS:
        if name in _TEXT:
            fields.append({"name": name, "type": "singleLineText"})
        else:
            fields.append({"name": name, "type": "number", "options": {"precision": _PRECISION.get(name, 0)}})
    return fields


def record_fields(row: Mapping[str, Cell]) -> dict[str, Any]:
    return {KEY_FIELD: f"{row.get('night')} {row.get('workflow')}", **{h: row.get(h) for h in HEADERS}}


def write_metrics(board: AirtableConnection, rows: Sequence[Mapping[str, Cell]]) -> list[str]:
    """Upsert the rows into the Metrics table; returns notes for the harvest (e.g. why it was skipped)."""
    api, base = board._client(), board._base()
    tables_url = api.build_url("meta/bases", base, "tables")
    with board._calling("read the base's tables", "schema.bases:read"):
        tables = api.request("GET", tables_url).get("tables", [])
    meta = next((t for t in tables if str(t.get("name", "")).casefold() == METRICS_TABLE.casefold()), None)
    if meta is None:
        try:
            meta = api.request("POST", tables_url, json={"name": METRICS_TABLE, "fields": metrics_fields()})
        except requests.RequestException as exc:
            status = exc.response.status_code if isinstance(exc, requests.HTTPError) and exc.response else None
            note = (
                f"no {METRICS_TABLE} table in Airtable base {board.base}, and it could not be created "
                f"(HTTP {status or type(exc).__name__}; needs the scope schema.bases:write): dashboard skipped; "
                f"create a table {METRICS_TABLE!r} with the fields {KEY_FIELD}, {', '.join(HEADERS)}"
            )
            log.warning("%s", note)
            return [note]
    have = {str(f.get("name")) for f in meta.get("fields", [])}
    table = api.table(base, str(meta["id"]))
    with board._calling(f"list the {METRICS_TABLE} records", "data.records:read"):
        existing = {str(r["fields"].get(KEY_FIELD, "")): r["id"] for r in table.all(fields=[KEY_FIELD], page_size=100)}
    updates, creates = [], []
    for row in rows:
        fields = {k: v for k, v in record_fields(row).items() if k in have}
        record = existing.get(str(fields.get(KEY_FIELD)))
        if record is None:
            creates.append(fields)
        else:
            updates.append({"id": record, "fields": fields})
    with board._calling(f"write the {METRICS_TABLE} records", "data.records:write"):
        if updates:
            table.batch_update(updates)  # type: ignore[arg-type]
        if creates:
            table.batch_create(creates)
    missing = [f["name"] for f in metrics_fields() if f["name"] not in have]
    return (
        [f"the {METRICS_TABLE} table lacks the fields {', '.join(missing)}: add them to see those"] if missing else []
    )
