"""The building blocks of the YAML's models: bounds on every number, strict models, times of day, URLs.

Both models.py (the board, the providers, the workflows) and watching.py (notify, alerts, escalation) build
on these; they sit apart so neither of those imports the other.
"""

from __future__ import annotations

import re
from datetime import time
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, WithJsonSchema

#: Upper bounds for every duration and count (issue 11): far above any real setting, far below what makes a
#: later phase overflow a datetime, a sleep or a SQLite integer. A value `check` accepts must run.
HOUR = 3600.0
DAY = 24 * HOUR
MAX_NIGHTS = 366
MAX_ROWS = 1_000_000
MAX_USD = 1_000_000.0
#: Dollars per million tokens.
MAX_PRICE = 10_000.0
_HH_MM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def clock_time(value: object) -> object:
    """A time of day is "HH:MM" and nothing else: an offset ("17:00+05:00") or seconds would make an aware or
    odd time that the scheduler cannot compare with the naive times of `timezone:`, which alone sets the zone."""
    if isinstance(value, time) and value.tzinfo is None and not value.second and not value.microsecond:
        return value
    match = _HH_MM.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(
            f'{value!r} is not a time: write it as "HH:MM" in quotes, e.g. "17:00" '
            "(no seconds, no offset: `timezone:` sets the zone)"
        )
    return time(int(match.group(1)), int(match.group(2)))


#: A time of day in the YAML's `timezone`, written "HH:MM" (the JSON Schema says so: its "time" format
#: would ask for seconds and an offset, which `clock_time` refuses).
ClockTime = Annotated[
    time,
    BeforeValidator(clock_time),
    WithJsonSchema({"type": "string", "pattern": _HH_MM.pattern, "description": 'A time of day, "HH:MM".'}),
]


class Strict(BaseModel):
    """Unknown keys are errors: a typo must not silently turn a setting off."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def webhook_url(url: str) -> str:
    """https only (plain http to loopback), never link-local or cloud metadata: sheetbot/safety/outbound.py's rule."""
    from sheetbot.safety.urls import url_problem

    problem = url_problem(url)
    if problem is not None:
        raise ValueError(f"the webhook URL {problem}")
    return url
