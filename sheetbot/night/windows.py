"""Which night a moment belongs to, and when that night's window opens and closes.

A night is named by the evening it starts on: rows locked at 17:00 on 22 November
run in the window 01:00–05:00 on the 23rd, and their `night` is ``2026-11-22``.
The rule, for any time t: find the first window end after t; that window's night
is the evening before it (the window's own date when the window opens before
midnight, after the cutoff). So a lock by hand at 10:00 prepares the coming night,
and a restart at 02:30 finds the night that is running.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sheetbot.config.models import ScheduleConfig


@dataclass(frozen=True)
class NightWindow:
    night: str
    cutoff: datetime
    start: datetime
    end: datetime

    def contains(self, when: datetime) -> bool:
        return self.start <= when < self.end


def _at(day: date, moment: time, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, moment, tzinfo=tz)


def _window_starts_next_day(schedule: ScheduleConfig) -> bool:
    """True when the window opens after midnight following the cutoff (01:00 after a 17:00 cutoff)."""
    return schedule.window.start <= schedule.cutoff


def window_for_night(night: date, schedule: ScheduleConfig, tz: ZoneInfo) -> NightWindow:
    start_day = night + timedelta(days=1) if _window_starts_next_day(schedule) else night
    start = _at(start_day, schedule.window.start, tz)
    end_day = start_day if schedule.window.end > schedule.window.start else start_day + timedelta(days=1)
    end = _at(end_day, schedule.window.end, tz)
    return NightWindow(night=night.isoformat(), cutoff=_at(night, schedule.cutoff, tz), start=start, end=end)


def night_at(when: datetime, schedule: ScheduleConfig, tz: ZoneInfo) -> NightWindow:
    """The night that a lock or a run at ``when`` belongs to: the first whose window has not ended."""
    local = when.astimezone(tz)
    for offset in (-2, -1, 0, 1):
        window = window_for_night(local.date() + timedelta(days=offset), schedule, tz)
        if local < window.end:
            return window
    raise AssertionError("unreachable: a window ends within two days")  # pragma: no cover
