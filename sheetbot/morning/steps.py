"""The morning's steps of a harvest, as the night asks for them (sheetbot.night.context.MorningSteps).

The harvest (sheetbot/night/harvest.py) sits below the morning and may not import it; the composition
root (sheetbot/service/wiring.py) puts one :class:`Morning` in every NightContext instead. Each step is
the morning module's own function, called in the harvest's order: on_approve.py's docstring lists it.
"""

from __future__ import annotations

from sheetbot.morning import chains, dashboard, intake, on_approve
from sheetbot.night.context import NightContext
from sheetbot.night.morning_reports import ActionsReport, DashboardReport
from sheetbot.state import Task


class Morning:
    """Approval-gated actions (on_approve.py), chained rows (chains.py) and the Dashboard (dashboard.py)."""

    def queue_action(self, ctx: NightContext, task: Task) -> bool:
        chained = chains.queue_children(ctx, task) > 0
        return on_approve.queue_action(ctx, task) or chained

    def refresh_dashboard(self, ctx: NightContext, *, stage: bool) -> DashboardReport:
        return dashboard.refresh_dashboard(ctx, stage=stage)

    def staged_outcome(self, ctx: NightContext, report: DashboardReport) -> DashboardReport:
        return dashboard.staged_outcome(ctx, report)

    def deliver_actions(self, ctx: NightContext) -> ActionsReport:
        chained, problem = chains.append_children(ctx)  # first: a webhook's retries may wait a while
        report = on_approve.deliver_actions(ctx)
        report.chained, report.chain_problem = chained, problem
        # The intake API (issue 15): rows a crash left recorded but not appended, then decided tasks' callbacks
        # (each problem is logged there; the task stays due for the next harvest).
        intake.append_pending(ctx)
        intake.deliver_callbacks(ctx)
        return report
