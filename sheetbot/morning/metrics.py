"""Nightly metrics per workflow, computed from the state: what `sheetbot report` shows.

Computed on demand from the SQLite tables (night_tasks, attempts, reviews), not stored as a copy:
reviews of a night keep arriving for days, and a stored row would go stale the moment a reviewer
catches up. The report, the alerts and the dashboard all read this one function.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from sheetbot.config.models import PriceConfig
from sheetbot.providers.base import Usage
from sheetbot.providers.pricing import PaidCall, live_usd
from sheetbot.state import State

if TYPE_CHECKING:
    from sheetbot.morning.urgent import UrgentFigures


@dataclass(frozen=True)
class NightMetrics:
    night: str
    workflow: str
    locked: int
    done: int
    failed: int
    deferred: int
    approved: int
    edited: int
    rework: int
    waiting: int
    cost_usd: float
    #: What preview rows would have cost live (max_tokens of output): for checking budgets before spending.
    estimated_usd: float
    approval_rate: float | None
    completion_rate: float | None
    cost_per_output_usd: float | None
    p95_latency_s: float | None
    #: Shares of the decided outputs: approval_rate (as-is) + edit_rate + rework_rate = 1.
    edit_rate: float | None = None
    rework_rate: float | None = None
    p50_latency_s: float | None = None
    #: What the same calls would have cost live (batch calls repriced at the live price; see sheetbot.batch).
    live_usd: float | None = None
    #: Who decided (issue 13): reviewer → decisions, for the reviewers the board named (`reviewer` column).
    reviewers: dict[str, int] = field(default_factory=dict)
    #: Per model (issue 14, a `fallback:` runs some rows on another): {"calls": n, "cost_usd": dollars}.
    by_model: dict[str, dict[str, float]] = field(default_factory=dict)
    #: Review gates between steps (issue 14), apart from the final output's figures above: gated step →
    #: approved, edited, rework, waiting (rounds this night opened) and approval_rate / rework_rate.
    gates: dict[str, dict[str, float | int | None]] = field(default_factory=dict)
    #: The urgent daytime lane's part of this night (issue 14): sheetbot/morning/urgent.py; None: it had none.
    urgent: UrgentFigures | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile: a value that was really observed, not an interpolation."""
    if not values:
        return None
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))
    return round(ordered[index], 3)


def _p95(values: list[float]) -> float | None:
    return _percentile(values, 0.95)


def night_metrics(
    state: State, *, nights: int = 7, prices: Mapping[str, PriceConfig] | None = None
) -> list[NightMetrics]:
    """One entry per (night, workflow) for the last ``nights`` nights, newest first."""
    recent = state.recorded_nights(nights)
    out: list[NightMetrics] = []
    for night in recent:
        counts = state.outcome_counts(night)
        decisions = state.decision_counts(night)
        reviewers = state.reviewer_counts(night)
        gated = state.gate_counts(night)
        for workflow in sorted(set(counts) | set(gated)):
            c = counts[workflow]
            d = decisions.get(workflow, {})
            done = c.get("done", 0)
            # A row that stopped at a gate is counted with its gate (gate_figures), not as a final output.
            locked = sum(n for k, n in c.items() if k not in ("over_cap", "gate"))
            money = state.spend_of_night(night, workflow)
            cost, estimated = money.cost_usd, money.estimated_usd
            latencies = state.call_latencies_s(night, workflow)
            approved, edited, rework = d.get("approve", 0), d.get("edit", 0), d.get("rework", 0)
            decided = approved + edited + rework
            out.append(
                NightMetrics(
                    night=night,
                    workflow=workflow,
                    locked=locked,
                    done=done,
                    failed=c.get("failed", 0),
                    deferred=c.get("deferred", 0) + c.get("over_cap", 0),
                    approved=approved,
                    edited=edited,
                    rework=rework,
                    waiting=max(done - decided, 0),
                    cost_usd=round(cost, 6),
                    estimated_usd=round(estimated, 6),
                    approval_rate=_ratio(approved, decided),
                    completion_rate=_ratio(done, locked),
                    cost_per_output_usd=round(cost / done, 6) if done else None,
                    p95_latency_s=_p95(latencies),
                    edit_rate=_ratio(edited, decided),
                    rework_rate=_ratio(rework, decided),
                    p50_latency_s=_percentile(latencies, 0.5),
                    live_usd=round(live_usd_of_night(state, night, workflow, prices), 6),
                    reviewers=reviewers.get(workflow, {}),
                    by_model=model_costs(state, night, workflow),
                    gates={step: gate_figures(d) for step, d in gated.get(workflow, {}).items()},
                )
            )
    return out


def model_costs(state: State, night: str, workflow: str) -> dict[str, dict[str, float]]:
    """Calls and dollars per model, the primary's and the fallback's apart (every call, answered or not)."""
    out: dict[str, dict[str, float]] = {}
    for call in state.calls_of_night(night, workflow):
        of = out.setdefault(call.model, {"calls": 0, "cost_usd": 0.0})
        of["calls"] += 1
        of["cost_usd"] = round(of["cost_usd"] + call.cost_usd, 6)
    return out


def gate_figures(decisions: Mapping[str, int]) -> dict[str, float | int | None]:
    """One gate's rounds of a night: each decision, those still waiting, and the shares of the decided."""
    approved, edited, rework = (decisions.get(d, 0) for d in ("approve", "edit", "rework"))
    decided = approved + edited + rework
    return {
        "approved": approved,
        "edited": edited,
        "rework": rework,
        "waiting": decisions.get("waiting", 0),
        "approval_rate": _ratio(approved, decided),
        "rework_rate": _ratio(rework, decided),
    }


def live_usd_of_night(
    state: State, night: str, workflow: str, prices: Mapping[str, PriceConfig] | None = None
) -> float:
    """The night's spend for ``workflow`` had every call run live (sheetbot/providers/pricing.py)."""
    calls = (
        PaidCall(
            c.model,
            c.mode,
            c.cost_usd,
            Usage(c.input_tokens, c.output_tokens, c.cache_write_tokens, c.cache_read_tokens),
        )
        for c in state.calls_of_night(night, workflow)
    )
    return live_usd(calls, prices)
