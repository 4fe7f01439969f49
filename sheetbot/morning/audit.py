"""The audit trail's masked export behind `sheetbot audit`.

Every lock, model call, board write and review decision is appended to the state's `audit`
table (the database refuses UPDATE and DELETE on it); what a model call's entry holds, hashes and not
text, is sheetbot/state/audit.py's. The export masks e-mail addresses and phone numbers, and no cell
of it may run as a formula.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sheetbot.errors import SheetbotError
from sheetbot.safety.csvsafe import SafeWriter
from sheetbot.safety.masking import mask, mask_text
from sheetbot.safety.private import open_private
from sheetbot.safety.secrets import scrub, scrub_any
from sheetbot.state import State

_SINCE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([mhdw])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, *, now: datetime) -> datetime:
    """`7d`, `12h`, `30m`, `2w`, or an ISO date/time, as the moment the export starts from."""
    found = _SINCE.match(text)
    if found:
        return now - timedelta(**{_UNITS[found.group(2)]: float(found.group(1))})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise SheetbotError(f"--since {text!r} is not a duration or a date: use e.g. 7d, 12h or 2026-11-01") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=now.tzinfo)


def audit_rows(state: State, *, since: datetime) -> list[dict[str, Any]]:
    """Audit entries at or after ``since``, oldest first, with e-mail addresses and phone numbers masked."""
    out = []
    for r in state.audit_entries():
        if datetime.fromisoformat(r.at) < since:  # parsed: the log may mix timezone offsets
            continue
        try:
            detail = json.loads(r.detail)
        except ValueError:
            detail = r.detail
        out.append(
            {
                "id": r.id,
                "at": r.at,
                "event": r.event,
                "task_id": mask_text(scrub(r.task_id or "")),
                "detail": mask(scrub_any(detail)),
            }
        )
    return out


def export(rows: list[dict[str, Any]], out: Path) -> None:
    """Write ``.csv`` (detail as a JSON column) or ``.jsonl`` (one entry a line)."""
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".jsonl"):
        raise SheetbotError(f"--out {out} must end in .csv or .jsonl")
    out.parent.mkdir(parents=True, exist_ok=True)
    with open_private(out, "w", encoding="utf-8", newline="") as handle:  # customer data: owner only
        if suffix == ".jsonl":
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            return
        writer = SafeWriter(handle)  # ids and texts were typed by people: no cell may run as a formula
        writer.writerow(["id", "at", "event", "task_id", "detail"])
        for row in rows:
            writer.writerow(
                [row["id"], row["at"], row["event"], row["task_id"], json.dumps(row["detail"], ensure_ascii=False)]
            )
