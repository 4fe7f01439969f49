"""The Dashboard on the board: the nightly metrics table and a trend of approval rate by night.

The lifecycle stays vendor-free: :func:`refresh_dashboard` computes plain rows and a
:class:`ChartSpec`, and hands them to the board's optional ``write_dashboard(rows, chart)``
capability (sheetbot/boards/capabilities.py: a workbook sheet with an openpyxl chart, a Sheets tab
with an API chart, an Airtable `Metrics` table). A board without it simply has no dashboard. The
dashboard is a convenience: a failure to draw it is logged, audited and reported, and never breaks
the harvest that called it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict

from sheetbot.boards.capabilities import DrawsDashboard, RemembersDashboard, StagesDashboard
from sheetbot.boards.dashboard_cells import HEADERS, Cell, ChartSpec
from sheetbot.morning.metrics import NightMetrics, night_metrics
from sheetbot.night.context import NightContext
from sheetbot.night.morning_reports import DashboardReport as DashboardReport

log = logging.getLogger(__name__)

#: How many recent nights the dashboard shows.
DASHBOARD_NIGHTS = 30

#: The table's columns, in order: (header, NightMetrics attribute). The headers are the boards' own
#: (sheetbot/boards/dashboard_cells.py): they draw and format the table by these names.
COLUMNS: tuple[tuple[str, str], ...] = tuple(
    zip(
        HEADERS,
        (
            "night",
            "workflow",
            "locked",
            "done",
            "approved",
            "edited",
            "rework",
            "approval_rate",
            "completion_rate",
            "cost_per_output_usd",
        ),
        strict=True,
    )
)


def dashboard_rows(metrics: Sequence[NightMetrics]) -> list[dict[str, Cell]]:
    """Newest night first, workflows alphabetical: the order `sheetbot report` uses."""
    return [{header: getattr(m, attr) for header, attr in COLUMNS} for m in metrics]


def approval_chart(metrics: Sequence[NightMetrics]) -> ChartSpec:
    nights = tuple(sorted({m.night for m in metrics}))
    workflows = sorted({m.workflow for m in metrics})
    rate = {(m.night, m.workflow): m.approval_rate for m in metrics}
    series = {wf: tuple(rate.get((night, wf)) for night in nights) for wf in workflows}
    return ChartSpec(title="Approval rate by night", nights=nights, series=series)


def refresh_dashboard(
    ctx: NightContext, *, nights: int = DASHBOARD_NIGHTS, force: bool = False, stage: bool = False
) -> DashboardReport:
    """Redraw the board's Dashboard from the state. Never raises: problems come back in the report.

    A harvest runs every half hour through the morning; when the metrics are what the dashboard
    already shows, nothing is sent (Google allows a service account 60 writes a minute). ``force``
    redraws anyway (`sheetbot init`, or a person deleted the tab).
    """
    write = _drawer(ctx, stage=stage)
    if write is None or getattr(ctx, "trial", False):  # a trial's sheet has no dashboard of its own
        return DashboardReport(skipped=True, problem=None)
    try:
        metrics = night_metrics(ctx.state, nights=nights)
        rows = dashboard_rows(metrics)
        chart = approval_chart(metrics)
        key = f"dashboard:{ctx.board.describe()}"
        digest = hashlib.sha256(json.dumps([rows, asdict(chart)], default=str).encode()).hexdigest()
        if not force and ctx.state.meta_value(key) == digest:
            return DashboardReport(skipped=True, rows=len(rows))
        notes = write(rows, chart) or []
        ctx.state.set_meta_value(key, digest)
    except Exception as exc:  # a drawing problem must never cost the morning's decisions
        return _failed(ctx, f"{type(exc).__name__}: {exc}")
    return DashboardReport(written=True, rows=len(rows), notes=list(notes))


def _drawer(ctx: NightContext, *, stage: bool) -> Callable[[list[dict[str, Cell]], ChartSpec], list[str]] | None:
    """How this board draws its dashboard; None: it has none."""
    board = ctx.board
    if stage and isinstance(board, StagesDashboard):  # it carries the dashboard in the phase's own write
        return board.stage_dashboard  # (the workbook: one save)
    if isinstance(board, RemembersDashboard):  # the layout it drew last time spares it a look-up
        key = f"dashboard-layout:{board.describe()}"

        def redraw(rows: list[dict[str, Cell]], chart: ChartSpec) -> list[str]:
            notes, layout = board.redraw_dashboard(rows, chart, ctx.state.meta_value(key))
            ctx.state.set_meta_value(key, layout)
            return notes

        return redraw
    return board.write_dashboard if isinstance(board, DrawsDashboard) else None


def staged_outcome(ctx: NightContext, report: DashboardReport) -> DashboardReport:
    """After the write that carried a staged dashboard: the report, or the drawing problem if it failed."""
    problem = ctx.board.take_dashboard_problem() if isinstance(ctx.board, StagesDashboard) else None
    if not problem:
        return report
    ctx.state.set_meta_value(f"dashboard:{ctx.board.describe()}", "")  # draw it again next time
    return _failed(ctx, problem)


def _failed(ctx: NightContext, error: str) -> DashboardReport:
    problem = f"the Dashboard on {ctx.board.describe()} was not updated: {error}"
    log.warning("%s", problem)
    try:
        ctx.state.audit("dashboard_failed", now=ctx.now(), detail={"error": problem})
    except Exception:  # pragma: no cover - the state is gone too; the log line is all we can do
        log.exception("could not audit the dashboard failure")
    return DashboardReport(problem=problem)


def describe_dashboard(report: DashboardReport | None) -> list[str]:
    """Lines for the harvest's summary: only what a person should act on."""
    if report is None:
        return []
    return [f"warning: {report.problem}"] if report.problem else list(report.notes)
