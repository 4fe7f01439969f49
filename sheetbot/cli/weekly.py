"""`sheetbot report --week [YYYY-Www]`: the weekly review serve sends, printed (sheetbot/morning/weekly.py)."""

from __future__ import annotations

import json
from datetime import timedelta

from sheetbot.clock import Clock, SystemClock
from sheetbot.config.models import Config
from sheetbot.morning.weekly import Period, nights_ending, period_of_week, weekly_report, weekly_text
from sheetbot.state import State

#: `--week` alone: the last seven nights, as a digest sent now would cover them.
LAST = "last"


def week_lines(config: Config, week: str, *, as_json: bool, clock: Clock | None = None) -> str:
    """What `report --week` prints: the review as text (100 columns at most) or JSON."""
    now = (clock or SystemClock()).now()
    period: Period = (
        nights_ending(now.astimezone(config.tz).date() - timedelta(days=1)) if week == LAST else period_of_week(week)
    )
    if not config.state_exists:  # a fresh install: the review of nothing, not an error
        if as_json:
            return json.dumps({"week": period.label, "nights": list(period.nights), "levels": []}, indent=2)
        return f"sheetbot weekly review {period.label}: no nights recorded yet"
    with State(config.state_target) as state:
        report = weekly_report(state, config, period, now=now)
    return json.dumps(report.as_dict(), indent=2, ensure_ascii=False) if as_json else weekly_text(report)
