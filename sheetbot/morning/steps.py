"""The morning's steps of a harvest, as the night asks for them (sheetbot.night.context.MorningSteps).

The harvest (sheetbot/night/harvest.py) sits below the morning and may not import it; the composition
root (sheetbot/service/wiring.py) puts one :class:`Morning` in every NightContext instead. Each step is
the morning module's own function, called in the harvest's order: on_approve.py's docstring lists it.
"""

from __future__ import annotations

from sheetbot.morning import dashboard, on_approve
from sheetbot.night.context import NightContext
from sheetbot.night.morning_reports import ActionsReport, DashboardReport
from sheetbot.state import Task


class Morning:
    """Approval-gated actions (on_approve.py) and the Dashboard (dashboard.py)."""

    def queue_action(self, ctx: NightContext, task: Task) -> bool:
        return on_approve.queue_action(ctx, task)

    def refresh_dashboard(self, ctx: NightContext, *, stage: bool) -> DashboardReport:
        return dashboard.refresh_dashboard(ctx, stage=stage)

    def staged_outcome(self, ctx: NightContext, report: DashboardReport) -> DashboardReport:
        return dashboard.staged_outcome(ctx, report)

    def deliver_actions(self, ctx: NightContext) -> ActionsReport:
        return on_approve.deliver_actions(ctx)
