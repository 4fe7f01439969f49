"""Why a night's rows were deferred, and the exit code that tells cron and supervisors.

A row deferred for a routine reason is a normal night: the window ended, or a budget or cap was full
(the lowest priorities wait by design). `run` exits 0. A row deferred because a provider failed (an
outage, its circuit breaker open, credentials refused, its API key missing, a batch it would not take)
needs a person: the summary names the provider, why and how many, and `run` exits
``EXIT_PROVIDER_FAILED`` (3), which cron mails and a supervisor logs. Rows that failed are not counted
here: each says why in its own ``error`` cell, and a failed row is the row's problem, not the account's.

Routine reasons are the known list below; every other deferral counts as a provider's failure, so a new
way for a provider to fail is reported, never taken for a normal night.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

from sheetbot.config.models import Config

#: `sheetbot run` exit code: rows were deferred because a provider failed (README, "Exit codes").
EXIT_PROVIDER_FAILED = 3

#: Deferrals that are part of a normal night: the window's end, a budget or cap, a batch row moved to live.
ROUTINE = ("window ended", "would be exceeded", "cap of", "is full", "running live")


def is_routine(reason: str) -> bool:
    return any(marker in reason for marker in ROUTINE)


def provider_of(config: Config, workflow: str) -> str:
    """The provider a workflow's rows wait on (``preview`` calls none)."""
    wf = config.workflows.get(workflow)
    if wf is None:
        return ""
    return "preview" if wf.mode == "preview" else wf.provider


@dataclass(frozen=True)
class ProviderFailure:
    provider: str
    rows: int
    #: The commonest reason first, without the "deferred: " prefix.
    reasons: tuple[str, ...]


def provider_failures(deferred: Counter[tuple[str, str]]) -> list[ProviderFailure]:
    """Deferrals by (provider, reason) → one entry per provider that failed, most rows first."""
    by_provider: dict[str, Counter[str]] = defaultdict(Counter)
    for (provider, reason), rows in deferred.items():
        if not is_routine(reason):
            by_provider[provider][reason.removeprefix("deferred: ").strip()] += rows
    found = [
        ProviderFailure(provider, reasons.total(), tuple(r for r, _ in reasons.most_common()))
        for provider, reasons in by_provider.items()
    ]
    return sorted(found, key=lambda f: (-f.rows, f.provider))


def describe_failures(deferred: Counter[tuple[str, str]]) -> list[str]:
    """One line per failed provider for the run's summary (empty on a normal night)."""
    lines = []
    for failure in provider_failures(deferred):
        more = len(failure.reasons) - 1
        also = f" (and {more} other reason{'s' if more > 1 else ''}: see the error column)" if more else ""
        lines.append(
            f"provider {failure.provider or '?'} failed: {failure.rows} row(s) deferred, back in the queue "
            f"for the next night: {failure.reasons[0]}{also}"
        )
    return lines


def exit_code(deferred: Counter[tuple[str, str]]) -> int:
    """0 for a normal night (caps, budgets and the window's end included), 3 when a provider failed."""
    return EXIT_PROVIDER_FAILED if provider_failures(deferred) else 0
