"""`sheetbot report`'s cost per model (issue 14): what the primary and the fallback each made and cost.

A table of its own under the nights' table, so the main one keeps its width and columns; shown when a
workflow has a `fallback:` or a night's calls went to more than one model (a step with its own model).
"""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.table import Table

from sheetbot.config.models import Config
from sheetbot.morning.metrics import NightMetrics


def shows_models(config: Config, metrics: Sequence[NightMetrics]) -> bool:
    """Worth a table: a fallback is configured, or some night's workflow used more than one model."""
    return any(wf.fallback is not None for wf in config.workflows.values()) or any(len(m.by_model) > 1 for m in metrics)


def model_table(metrics: Sequence[NightMetrics]) -> Table:
    """night · workflow · model · calls · cost · share of the workflow's night: the trade at a glance."""
    table = Table(title="cost per model", show_lines=False, box=box.SIMPLE, pad_edge=False)
    for header in ("night", "workflow", "model", "calls", "cost", "share"):
        table.add_column(header, justify="left" if header in ("night", "workflow", "model") else "right")
    for m in metrics:
        total = sum(of["cost_usd"] for of in m.by_model.values())
        for model, of in sorted(m.by_model.items(), key=lambda item: -item[1]["cost_usd"]):
            share = f"{of['cost_usd'] / total:.0%}" if total else "–"
            table.add_row(m.night, m.workflow, model, str(int(of["calls"])), f"${of['cost_usd']:.4f}", share)
    return table
