"""The urgent daytime lane in the morning metrics (sheetbot/night/urgent.py): its rows kept apart.

The night's figures (`report`, NightMetrics) count every row of a night's label, the day's urgent rows among
them, as the budget does; the ``urgent`` key says which of them the daytime lane ran, how fast (from the row
appearing, when sheetbot gave it an id, to its stored output, against ``urgent.within_min``) and at what cost.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from rich import box
from rich.table import Table

from sheetbot.config.models import Config
from sheetbot.morning.metrics import NightMetrics, _percentile
from sheetbot.state import State


@dataclass(frozen=True)
class UrgentFigures:
    #: Rows the daytime lane ran; of them with an output; rows it deferred to the night (cap or money).
    rows: int
    done: int
    deferred: int
    #: The promise (urgent.within_min, as the YAML says now) and the rows whose output came within it.
    within_min: int | None
    on_time: int
    p95_latency_min: float | None
    max_latency_min: float | None
    cost_usd: float


def urgent_figures(state: State, config: Config, night: str) -> dict[str, UrgentFigures]:
    """Workflow → the daytime lane's figures for ``night`` (only workflows it looked at)."""
    out: dict[str, UrgentFigures] = {}
    rows = state.urgent_rows(night)
    for workflow in sorted({r.workflow for r in rows}):
        mine = [r for r in rows if r.workflow == workflow]
        ran = [r for r in mine if r.ran]
        latencies = [(r.output_at - r.first_seen).total_seconds() / 60 for r in ran if r.output_at is not None]
        wf = config.workflows.get(workflow)
        within = wf.urgent.within_min if wf is not None and wf.urgent is not None else None
        out[workflow] = UrgentFigures(
            rows=len(ran),
            done=len(latencies),
            deferred=len(mine) - len(ran),
            within_min=within,
            on_time=sum(1 for m in latencies if within is not None and m <= within),
            p95_latency_min=_percentile(latencies, 0.95),
            max_latency_min=round(max(latencies), 3) if latencies else None,
            cost_usd=round(sum(r.cost_usd for r in ran), 6),
        )
    return out


def with_urgent(metrics: Sequence[NightMetrics], state: State, config: Config) -> list[NightMetrics]:
    """The metrics with their ``urgent`` key filled where the daytime lane ran or deferred rows."""
    by_night = {night: urgent_figures(state, config, night) for night in {m.night for m in metrics}}
    return [dataclasses.replace(m, urgent=by_night[m.night].get(m.workflow)) for m in metrics]


def urgent_table(metrics: Sequence[NightMetrics]) -> Table | None:
    """`report`'s table of the daytime lane (under 100 columns); None when no night had urgent rows."""
    rows = [m for m in metrics if m.urgent is not None]
    if not rows:
        return None
    table = Table(title="urgent lane (daytime)", box=box.SIMPLE, pad_edge=False)
    for header in ("night", "workflow", "rows", "done", "defer", "on time", "p95 min", "max min", "cost"):
        table.add_column(header, justify="left" if header in ("night", "workflow") else "right")
    for m in rows:
        u = m.urgent
        assert u is not None
        promise = f"{u.on_time}/{u.done} ≤{u.within_min}m" if u.within_min is not None else "–"
        table.add_row(
            m.night,
            m.workflow,
            str(u.rows),
            str(u.done),
            str(u.deferred),
            promise,
            "–" if u.p95_latency_min is None else f"{u.p95_latency_min:.1f}",
            "–" if u.max_latency_min is None else f"{u.max_latency_min:.1f}",
            f"${u.cost_usd:.4f}",
        )
    return table
