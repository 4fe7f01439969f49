"""The weekly review's YAML (issue 14 item 5): when the digest goes out and the service levels it judges.

Apart from models.py so the parallel features of issue 14 merge cleanly; ``Config.weekly`` points here.
Every target is optional: a target left out is shown without ✔/✘ and never alerts.
"""

from __future__ import annotations

from datetime import time
from typing import Annotated, Literal

from pydantic import Field

from sheetbot.config.fields import DAY, MAX_USD, ClockTime, Strict

WeekDay = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
WEEK_DAYS: tuple[WeekDay, ...] = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
TargetPriority = Literal["P0", "P1", "P2", "P3"]
Seconds = Annotated[float, Field(gt=0, le=DAY)]


class WeeklyTargets(Strict):
    #: Share of the week's rows that ended done (of done + failed + deferred), 0..1: e.g. 0.98.
    success_rate: float | None = Field(default=None, gt=0, le=1)
    #: Seconds: the 95th percentile of a row's model time, per priority.
    p95_latency_s: dict[TargetPriority, Seconds] = Field(default_factory=dict)
    #: Hours from a failure alert to the next successful night of that workflow.
    recover_h: float | None = Field(default=None, gt=0, le=7 * 24)
    #: Dollars per output produced.
    cost_per_task_usd: float | None = Field(default=None, gt=0, le=MAX_USD)


class WeeklyConfig(Strict):
    day: WeekDay = "monday"
    at: ClockTime = time(9, 30)
    targets: WeeklyTargets = WeeklyTargets()
    #: Where the target-missed alerts go (a notify channel's route); None: every channel.
    route: str | None = None
