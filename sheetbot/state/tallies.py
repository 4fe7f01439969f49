"""Tallies over the whole state: what `serve`'s /metrics endpoint exposes to Prometheus at each scrape.

A mixin of ``State``. Every figure is counted from what the state already keeps (tasks, attempts, batches,
the audit log), never from a counter in the process's memory: a restart of `serve` then neither resets nor
doubles a ``_total``, and `report`, the alerts and /metrics agree because they read the same rows. Each
tally hands back names and numbers only (workflow, provider, model, status, mode), never a row id or a
text, so nothing a customer wrote can reach a scrape.

Each question is one grouped query; the attempts and audit tables are read whole at each scrape (an index
would buy little for a scrape every few seconds at most and a table of some hundred thousand rows).
"""

from __future__ import annotations

from dataclasses import dataclass

from sheetbot.state.faults import Db

#: The provider events the audit keeps (sheetbot/night/provider_pool.py) that /metrics counts or reads.
PROVIDER_EVENTS = ("rate_limited", "circuit_open", "circuit_half_open", "circuit_closed")


@dataclass(frozen=True)
class CallTally:
    """Model calls that share workflow, provider, model, mode and outcome, and what they cost together.

    ``outcome``: ``ok`` (an answer that was stored), ``invalid`` (an answer came back, and was paid for, but
    it was cut off or did not validate), ``error`` (no answer: the provider refused or failed, or the call
    was held back by the circuit breaker)."""

    workflow: str
    provider: str
    model: str
    mode: str
    outcome: str
    calls: int
    cost_usd: float


class TalliesMixin:
    """Counts by status, by call outcome, by provider event and of open batches: /metrics' questions."""

    _db: Db

    def status_counts(self) -> dict[tuple[str | None, str], int]:
        """(workflow, status) → tasks in that status now; workflow None for a row that never had one."""
        rows = self._db.execute("SELECT workflow, status, COUNT(*) AS n FROM tasks GROUP BY workflow, status")
        return {(r["workflow"], r["status"]): int(r["n"]) for r in rows.fetchall()}

    def call_tallies(self) -> list[CallTally]:
        """Every model call ever stored, grouped (see CallTally); each call counts once, at every scrape."""
        rows = self._db.execute(
            "SELECT workflow, provider, model, mode, "
            "CASE WHEN ok = 1 THEN 'ok' WHEN output_tokens > 0 THEN 'invalid' ELSE 'error' END AS outcome, "
            "COUNT(*) AS n, COALESCE(SUM(cost_usd), 0) AS cost "
            "FROM attempts GROUP BY workflow, provider, model, mode, outcome"
        ).fetchall()
        return [
            CallTally(r["workflow"], r["provider"], r["model"], r["mode"], r["outcome"], int(r["n"]), float(r["cost"]))
            for r in rows
        ]

    def provider_event_counts(self) -> dict[tuple[str, str], int]:
        """(event, provider) → how often the audit recorded it, for the events in ``PROVIDER_EVENTS``."""
        marks = ",".join("?" * len(PROVIDER_EVENTS))
        rows = self._db.execute(
            "SELECT event, json_extract(detail, '$.provider') AS provider, COUNT(*) AS n FROM audit "
            f"WHERE event IN ({marks}) GROUP BY event, provider",
            PROVIDER_EVENTS,
        ).fetchall()
        return {(r["event"], str(r["provider"])): int(r["n"]) for r in rows if r["provider"] is not None}

    def last_circuit_events(self) -> dict[str, str]:
        """Provider → its breaker's latest recorded change (circuit_open, circuit_half_open, circuit_closed)."""
        rows = self._db.execute(
            "SELECT provider, event FROM (SELECT json_extract(detail, '$.provider') AS provider, event, "
            "ROW_NUMBER() OVER (PARTITION BY json_extract(detail, '$.provider') ORDER BY id DESC) AS newest "
            "FROM audit WHERE event LIKE 'circuit\\_%' ESCAPE '\\') AS latest WHERE newest = 1"
        ).fetchall()
        return {str(r["provider"]): r["event"] for r in rows if r["provider"] is not None}

    def open_batch_counts(self) -> dict[str, int]:
        """Provider → its batches whose results are not all stored yet (what ``open_batches`` lists)."""
        rows = self._db.execute(
            "SELECT provider, COUNT(*) AS n FROM batches WHERE status IN ('open', 'ended') GROUP BY provider"
        )
        return {r["provider"]: int(r["n"]) for r in rows.fetchall()}
