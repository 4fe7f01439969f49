"""`sheetbot report`'s table of review gates between steps (issue 14): each gate's decisions, apart from
the final outputs' in the nights table, so a gate reviewers keep sending back shows as that gate's rework."""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.table import Table

from sheetbot.morning.metrics import NightMetrics


def _pct(value: object) -> str:
    return f"{value:.0%}" if isinstance(value, float) else "–"


def gates_table(metrics: Sequence[NightMetrics]) -> Table | None:
    """One line per (night, workflow, gated step); None when no workflow has a gate in these nights."""
    lines = [(m.night, m.workflow, step, f) for m in metrics for step, f in sorted(m.gates.items())]
    if not lines:
        return None
    table = Table(title="review gates between steps", show_lines=False, box=box.SIMPLE, pad_edge=False)
    for header in ("night", "workflow", "step", "appr", "edit", "rwk", "wait", "appr%", "rwk%"):
        table.add_column(header, justify="left" if header in ("night", "workflow", "step") else "right")
    for night, workflow, step, f in lines:
        table.add_row(
            night,
            workflow,
            step,
            *(str(f[k]) for k in ("approved", "edited", "rework", "waiting")),
            _pct(f["approval_rate"]),
            _pct(f["rework_rate"]),
        )
    return table


def describe_gate_decisions(decisions: dict[str, int]) -> str:
    """The harvest's line for gate decisions ("outline:approve" → 2), empty when there were none."""
    if not decisions:
        return ""
    parts = ", ".join(f"{key.replace(':', ' ')} {n}" for key, n in sorted(decisions.items()))
    return f"gates between steps: {parts}"
