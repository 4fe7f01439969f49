"""Provenance for model calls: what the audit table keeps about each one, stored with the call itself.

Every lock, model call, board write and review decision is appended to the state's `audit` table (the
database refuses UPDATE and DELETE on it). A model call records hashes, not text: the prompt hash
(sha256 of system + prompt) and the input hash (sha256 of the row as locked) prove which input and
which instructions produced an output without copying customers' data into the log a second time.
Here, in the state, because the night (lock, live calls) and batch mode record them; the masked export
behind `sheetbot audit` is the morning's (sheetbot/morning/audit.py).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime

from sheetbot.config.models import WorkflowConfig
from sheetbot.state.records import Attempt
from sheetbot.state.store import State


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def prompt_hash(system: str, prompt: str) -> str:
    """The hash of what the model was told; a zero byte keeps `a`+`bc` apart from `ab`+`c`."""
    return sha256(f"{system}\0{prompt}")


def input_hash(snapshot: Mapping[str, str]) -> str:
    """The hash of the row as locked, independent of column order."""
    return sha256(json.dumps(dict(snapshot), sort_keys=True, ensure_ascii=False, default=str))


def model_call_detail(attempt: Attempt, snapshot: Mapping[str, str]) -> dict[str, object]:
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


def store_call(state: State, attempt: Attempt, snapshot: Mapping[str, str], *, now: datetime) -> None:
    """Store a model call's result and its audit entry together: every call, live or batch, good or not."""
    store_calls(state, [(attempt, snapshot, now)])


def store_calls(state: State, calls: Sequence[tuple[Attempt, Mapping[str, str], datetime]]) -> None:
    """``store_call`` for many calls (a preview group's), in their order, in one transaction: two
    statements for one call, two executemany for many."""
    if not calls:
        return
    with state.transaction():
        state.record_attempts([(attempt, now) for attempt, _, now in calls])
        state.audit_many(
            "model_call",
            [(now, attempt.task_id, model_call_detail(attempt, snapshot)) for attempt, snapshot, now in calls],
        )


def workflow_hashes(workflow: WorkflowConfig) -> dict[str, str]:
    """What a workflow tells the model, hashed in two parts: its instructions (system, prompt or steps) and
    its guidelines, so the weekly review can say which of the two someone edited."""
    steps = [(s.name, s.system or "", s.prompt) for s in workflow.steps]
    told = json.dumps([workflow.system, workflow.prompt, steps], ensure_ascii=False)
    return {"prompt_hash": sha256(told), "guidelines_hash": sha256(json.dumps(workflow.guidelines, ensure_ascii=False))}


def record_workflow_versions(state: State, workflows: Mapping[str, WorkflowConfig], *, now: datetime) -> list[str]:
    """Append a ``workflow_version`` entry for each workflow that is new or whose hashes changed since the
    last one recorded (called at each lock): the audit then shows when a prompt or guideline was edited."""
    latest: dict[str, dict[str, object]] = {}
    for entry in state.audit_entries("workflow_version"):
        detail = json.loads(entry.detail)
        latest[str(detail.get("workflow"))] = detail
    changed = []
    for name, workflow in sorted(workflows.items()):
        hashes = workflow_hashes(workflow)
        seen = latest.get(name)
        if seen is not None and all(seen.get(k) == v for k, v in hashes.items()):
            continue
        state.audit("workflow_version", now=now, detail={"workflow": name, "new": seen is None, **hashes})
        changed.append(name)
    return changed
