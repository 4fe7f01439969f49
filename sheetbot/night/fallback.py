"""Graceful degradation (issue 14): a row runs on the workflow's `fallback:` when the primary cannot serve.

The primary cannot serve when its circuit breaker is open (CircuitOpenError: no request is sent), its
provider refuses the credentials (AccountProviderError: 401/402/403, no quota, or no key to send), or the
budget left tonight cannot hold the primary's worst case but can hold the fallback's. Nothing else
switches: a refusal of the request's shape (400/422 on a parameter) or a bad answer would be refused
alike by any model, so the row fails as it always did. The decision is made per step and per call, by
what just happened, never remembered across nights: each night makes its providers afresh, so the first
row of a night where the primary is healthy runs on it again.

What the fallback made is said on the row (``note``: the `error` cell, beside the `model` column filled
from the stored call), and every call records its own provider and model, so `report` and /metrics count
each model's calls and dollars apart. A step stored on one model is never asked again of the other
(TaskRunner resumes after stored steps whatever made them).
"""

from __future__ import annotations

from sheetbot.config.models import Config, WorkflowConfig

#: Why a row ran on the fallback, as its `error` cell says it.
CIRCUIT_OPEN = "primary circuit open"
REFUSED = "primary refused credentials"
UNAVAILABLE = "primary unavailable"
BUDGET = "budget left fits only the fallback"


def fallback_of(wf: WorkflowConfig) -> WorkflowConfig | None:
    """The workflow as its fallback runs it (live; its provider and model), or None when it has none.
    Preview never calls a model, so it never needs one."""
    fb = wf.fallback
    if fb is None or wf.mode == "preview":
        return None
    return wf.model_copy(
        update={"provider": fb.provider or wf.provider, "model": fb.model, "mode": "live", "fallback": None}
    )


def shows_model(config: Config) -> bool:
    """The board has a `model` column when a workflow may run on a fallback (as `checklist` when one has a
    checklist): boards of configs without one are left as they were, and `check` asks nothing new of them."""
    return any(wf.fallback is not None for wf in config.workflows.values())


def made_by(model: str, reason: str, *, step: str | None = None) -> str:
    """The row's note: ``made by claude-haiku-4-5 (fallback: primary circuit open)``; a step of several names
    itself (``step outline made by …``), since the reviewer judges the whole output."""
    said = f"made by {model} (fallback: {reason})"
    return said if step is None else f"step {step} {said}"
