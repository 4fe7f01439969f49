"""The audit trail: provenance for model calls, and the masked export behind `sheetbot audit`.

Every lock, model call, board write and review decision is appended to the state's `audit`
table (the database refuses UPDATE and DELETE on it). A model call records hashes, not text:
the prompt hash (sha256 of system + prompt) and the input hash (sha256 of the row as locked)
prove which input and which instructions produced an output without copying customers' data
into the log a second time.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sheetbot.errors import SheetbotError
from sheetbot.safety.csvsafe import SafeWriter
from sheetbot.safety.masking import mask, mask_text
from sheetbot.safety.private import open_private
from sheetbot.safety.secrets import scrub, scrub_any
from sheetbot.state import Attempt, State

_SINCE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([mhdw])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def prompt_hash(system: str, prompt: str) -> str:
    """The hash of what the model was told; a zero byte keeps `a`+`bc` apart from `ab`+`c`."""
    return sha256(f"{system}\0{prompt}")


def input_hash(snapshot: Mapping[str, object]) -> str:
    """The hash of the row as locked, independent of column order."""
    return sha256(json.dumps(dict(snapshot), sort_keys=True, ensure_ascii=False, default=str))


def model_call_detail(attempt: Attempt, snapshot: Mapping[str, object]) -> dict[str, object]:
    """What the audit keeps about one model call."""
    return {
        "night": attempt.night,
        "attempt": attempt.attempt,
        "step": attempt.step,
        "workflow": attempt.workflow,
        "provider": attempt.provider,
        "model": attempt.model,
        "mode": attempt.mode,
        "ok": attempt.ok,
        "error": attempt.error,
        "prompt_hash": prompt_hash(attempt.system, attempt.prompt),
        "input_hash": input_hash(snapshot),
        "output_hash": sha256(attempt.output) if attempt.output is not None else None,
        "input_tokens": attempt.input_tokens,
        "output_tokens": attempt.output_tokens,
        "cost_usd": round(attempt.cost_usd, 6),
        "latency_s": round(attempt.latency_s, 3),
    }


def record_model_call(state: State, attempt: Attempt, snapshot: Mapping[str, object], *, now: datetime) -> None:
    state.audit("model_call", now=now, task_id=attempt.task_id, detail=model_call_detail(attempt, snapshot))


def store_call(state: State, attempt: Attempt, snapshot: Mapping[str, object], *, now: datetime) -> None:
    """Store a model call's result and its audit entry together: every call, live or batch, good or not."""
    with state.transaction():
        state.record_attempt(attempt, now=now)
        record_model_call(state, attempt, snapshot, now=now)


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
    for r in state.query("SELECT id, at, event, task_id, detail FROM audit ORDER BY id"):
        if datetime.fromisoformat(r["at"]) < since:  # parsed: the log may mix timezone offsets
            continue
        try:
            detail = json.loads(r["detail"])
        except ValueError:
            detail = r["detail"]
        out.append(
            {
                "id": r["id"],
                "at": r["at"],
                "event": r["event"],
                "task_id": mask_text(scrub(r["task_id"] or "")),
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
