"""When `serve` does what: the day's moments, and what is due now given what the state says was done.

Missed-run policy. The `schedule` library runs a job only when its slot comes round while the
process is up (`run_pending()` skips missed slots), keeps jobs in memory only, and reads the wall
clock itself. sheetbot therefore does not let a timer decide; each tick it asks the state what the
current night has done and does whatever is due, so a restart or a machine waking from sleep
catches up:

- a cutoff passed and tonight is not locked → lock now;
- inside the window with locked rows left → run until the window end (a restart at 02:30 finishes);
- a window ended with rows still locked or running → they are deferred and an alert goes out;
- the summary time passed and last night's summary was not sent → harvest and send it (once);
- during the day (window end → cutoff) → harvest every `schedule.harvest_every_min` minutes;
- outside the night window, when a workflow has an urgent lane → look for urgent rows and run them, every
  third of the shortest `urgent.within_min` (sheetbot/night/urgent.py).

Why the `schedule` package only describes the jobs. Letting it act (``run_pending()`` in the loop) would
lose a night after any restart or sleep that spans a slot, would read the wall clock instead of the
clock tests pass in, and would keep a second copy of what is due beside the state. So it does what it
is good at: turning the YAML's times into daily jobs in the YAML's timezone (``describe_jobs``,
printed when serve starts, so an admin sees the plan as the library reads it); the due computation
below is the one that acts, with the time passed in, so tests drive whole days on a fake clock.
A job ``.at()`` a timezone makes `schedule` import pytz, hence the dependency `schedule[timezone]`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import schedule

from sheetbot.config.models import ScheduleConfig
from sheetbot.night.windows import NightWindow, night_at, window_for_night


def summary_time(window: NightWindow, cfg: ScheduleConfig, tz: ZoneInfo) -> datetime:
    """The morning summary of a night: the first summary time at or after its window end."""
    moment = datetime.combine(window.end.astimezone(tz).date(), cfg.summary, tzinfo=tz)
    return moment if moment >= window.end else moment + timedelta(days=1)


@dataclass(frozen=True)
class Day:
    """The nights around ``now``: ``tonight`` has not ended; ``last`` is the one before it."""

    now: datetime
    tonight: NightWindow
    last: NightWindow
    last_summary: datetime

    def is_daytime(self) -> bool:
        return self.last.end <= self.now < self.tonight.cutoff


def day_at(now: datetime, cfg: ScheduleConfig, tz: ZoneInfo) -> Day:
    tonight = night_at(now, cfg, tz)
    last = window_for_night(date.fromisoformat(tonight.night) - timedelta(days=1), cfg, tz)
    return Day(now=now, tonight=tonight, last=last, last_summary=summary_time(last, cfg, tz))


@dataclass(frozen=True)
class Facts:
    """What the state says was done (read once per tick)."""

    tonight_locked: bool
    work_left_tonight: bool
    work_left_last: bool
    last_recorded: bool
    last_summary_sent: bool
    last_harvest: datetime | None = None
    #: This week's digest time has passed and its digest was not sent (issue 14 item 5; morning/weekly.py).
    weekly_due: bool = False
    #: How often the urgent lane looks for rows (None: no workflow has one), and when it last did.
    urgent_every: timedelta | None = None
    last_urgent: datetime | None = None


def due(day: Day, facts: Facts, cfg: ScheduleConfig) -> list[str]:
    """The phases to do now, in order: expire, lock, run, summary, harvest, weekly, urgent."""
    now, actions = day.now, []
    if facts.work_left_last:
        actions.append("expire")
    if now >= day.tonight.cutoff and not facts.tonight_locked:
        actions.append("lock")
    if day.tonight.contains(now) and (facts.work_left_tonight or "lock" in actions):
        actions.append("run")
    if now >= day.last_summary and facts.last_recorded and not facts.last_summary_sent:
        actions.append("summary")
    elif day.is_daytime() and cfg.harvest_every_min > 0:
        every = timedelta(minutes=cfg.harvest_every_min)
        if facts.last_harvest is None or now - facts.last_harvest >= every:
            actions.append("harvest")
    if facts.weekly_due:
        actions.append("weekly")
    urgent_every = facts.urgent_every  # the urgent lane looks outside the night window (sheetbot/night/urgent.py)
    if (
        urgent_every is not None
        and not day.tonight.contains(now)
        and (facts.last_urgent is None or now - facts.last_urgent >= urgent_every)
    ):
        actions.append("urgent")
    return actions


def next_wake(
    day: Day,
    cfg: ScheduleConfig,
    tz: ZoneInfo,
    *,
    last_harvest: datetime | None,
    weekly_at: datetime | None = None,
    urgent_every: timedelta | None = None,
    last_urgent: datetime | None = None,
) -> datetime:
    """The next moment something may become due (the loop also wakes at least every max_sleep_s)."""
    following = window_for_night(date.fromisoformat(day.tonight.night) + timedelta(days=1), cfg, tz)
    moments = [
        day.tonight.cutoff,
        day.tonight.start,
        day.tonight.end,
        day.last_summary,
        summary_time(day.tonight, cfg, tz),
        following.cutoff,
    ]
    if weekly_at is not None:  # this week's digest time, or next week's once it has passed
        moments += [weekly_at, weekly_at + timedelta(days=7)]
    if cfg.harvest_every_min > 0 and day.is_daytime():
        base = last_harvest or day.now
        moments.append(base + timedelta(minutes=cfg.harvest_every_min))
    if urgent_every is not None and not day.tonight.contains(day.now):
        moments.append((last_urgent or day.now) + urgent_every)
    return min(m for m in moments if m > day.now)


def describe_jobs(cfg: ScheduleConfig, timezone: str) -> list[str]:
    """The daily jobs as `schedule` sees them, in the YAML's timezone (for the start-up log)."""
    plan = schedule.Scheduler()
    jobs = {
        "lock": cfg.cutoff,
        "run": cfg.window.start,
        "stop": cfg.window.end,
        "summary": cfg.summary,
    }
    for name, moment in jobs.items():
        plan.every().day.at(moment.strftime("%H:%M"), timezone).do(lambda: None).tag(name)
    lines = [f"{next(iter(job.tags))} daily at {job.at_time} {timezone}" for job in plan.get_jobs()]
    if cfg.harvest_every_min:
        lines.append(f"harvest every {cfg.harvest_every_min} min during the day")
    return lines
