"""Whatever `check` accepts, the phases can run (issue 11 item 6), found by generating configs.

Each example is a sane config with a few fields swapped for a careless or hostile value (huge, negative,
NaN, inf, a time with an offset or seconds) and workflows of varied shapes. If validation refuses it, every
problem is one line; if it accepts it, lock, run (preview), harvest and serve's scheduling arithmetic
must finish, raising nothing but a SheetbotError.
"""

from __future__ import annotations

import contextlib
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from harness import Shop
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sheetbot.config.load import inspect
from sheetbot.errors import SheetbotError
from sheetbot.service.scheduler import Facts, day_at, describe_jobs, due, next_wake, summary_time

HOSTILE_NUMBERS = st.sampled_from(
    [-1, 0, 1e20, 10**20, 1e300, -1e300, float("inf"), float("-inf"), float("nan"), 2**63, 0.5]
)
HOSTILE_TIMES = st.sampled_from(
    ["17:00+05:00", "17:00Z", "17:00:30", "24:00", "7", "17:00:00.5", "", 1020, "12:00-00:30", "T17:00"]
)
TIMES = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.integers(0, 59))


def sane(upper: float, *, integer: bool = False, low: float = 0) -> st.SearchStrategy[Any]:
    """Values a little past the bound, the bound itself among them: edges are where later phases break."""
    if integer:
        return st.one_of(st.integers(int(low), int(upper * 1.2)), st.just(int(upper)))
    return st.one_of(st.floats(low, upper * 1.2, allow_nan=False), st.just(upper))


#: Every numeric key path the generator varies, with its sane range.
NUMBERS: dict[tuple[str, ...], st.SearchStrategy[Any]] = {
    ("schedule", "harvest_every_min"): sane(1440, integer=True),
    ("limits", "nightly_rows"): sane(1000, integer=True),
    ("limits", "nightly_usd"): sane(1000),
    ("limits", "state_wait_s"): sane(3600),
    ("trial", "max_hours"): sane(168),
    ("providers", "openai", "timeout_s"): sane(86400),
    ("providers", "openai", "batch_poll_s"): sane(86400),
    ("providers", "openai", "breaker_cooldown_s"): sane(86400),
    ("providers", "openai", "breaker_failures"): sane(100, integer=True, low=1),
    ("providers", "openai", "rpm"): sane(10_000, integer=True, low=1),
    ("prices", "gpt-4.1-mini", "input"): sane(100),
    ("alerts", "approval_nights"): sane(366, integer=True, low=1),
    ("escalation", "queue_depth", "for_min"): sane(10_000),
    ("escalation", "waiting", "factor"): sane(1000),
    ("escalation", "sla", "P0"): st.one_of(sane(9000), st.sampled_from(["4h", "1e300h", "nanh", "90m", "-2d"])),
}
WORKFLOW_NUMBERS: dict[str, st.SearchStrategy[Any]] = {
    "max_tokens": sane(200_000, integer=True, low=1),
    "nightly_rows": sane(1000, integer=True),
    "timeout_s": sane(86400),
    "task_timeout_s": sane(86400),
    "max_usd_per_task": sane(100),
    "nightly_usd": sane(100),
    "max_failed_calls": sane(20, integer=True, low=1),
    "temperature": sane(2),
}
TIME_KEYS = [
    ("schedule", "cutoff"),
    ("schedule", "summary"),
    ("schedule", "window", "start"),
    ("schedule", "window", "end"),
]


def put(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = data
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value


def hostile(draw: st.DrawFn) -> bool:
    """One value in five is hostile, so that most configs are accepted and reach the phases."""
    return draw(st.integers(0, 4)) == 0


@st.composite
def workflow(draw: st.DrawFn, name: str) -> dict[str, Any]:
    body: dict[str, Any] = {"provider": "openai", "model": "gpt-4.1-mini", "mode": "preview"}
    steps = draw(st.integers(0, 3))
    if steps:
        body["steps"] = [
            {"name": f"s{i}", "prompt": f"Step {i} on {{{{input}}}}" + (f" after {{{{steps.s{i - 1}}}}}" if i else "")}
            for i in range(steps)
        ]
    else:
        body["prompt"] = f"{name}: {{{{input}}}}"
    if draw(st.booleans()):
        body["outputs"] = [{"name": "title"}, {"name": "tone", "type": "choice", "choices": ["warm", "dry"]}]
    for key in draw(st.lists(st.sampled_from(sorted(WORKFLOW_NUMBERS)), max_size=3, unique=True)):
        body[key] = draw(HOSTILE_NUMBERS if hostile(draw) else WORKFLOW_NUMBERS[key])
    return body


@st.composite
def configs(draw: st.DrawFn) -> dict[str, Any]:
    data: dict[str, Any] = {
        "timezone": draw(st.sampled_from(["Europe/Berlin", "UTC", "Pacific/Kiritimati", "America/St_Johns"])),
        "board": {"kind": "local", "path": "queue.xlsx", "sheet": "Queue"},
        "state": "sheetbot.db",
        "providers": {"openai": {"api_key_env": "OPENAI_API_KEY", "base_url": "https://llm.test/v1"}},
        "prices": {"gpt-4.1-mini": {"input": 0.4, "output": 1.6}},
        "workflows": {},
    }
    for name in draw(st.lists(st.sampled_from(["blog", "listing"]), min_size=1, max_size=2, unique=True)):
        data["workflows"][name] = draw(workflow(name))
    for path in draw(st.lists(st.sampled_from(sorted(NUMBERS)), max_size=5, unique=True)):
        put(data, path, draw(HOSTILE_NUMBERS if hostile(draw) else NUMBERS[path]))
    for path in draw(st.lists(st.sampled_from(TIME_KEYS), max_size=4, unique=True)):
        put(data, path, draw(HOSTILE_TIMES if hostile(draw) else TIMES))
    return data


def serve_arithmetic(shop: Shop) -> None:
    """What `serve` computes from the schedule at every tick."""
    config = shop.config
    cfg, tz = config.schedule, config.tz
    now = shop.clock.now()
    for moment in (now, now + timedelta(hours=9), now + timedelta(hours=15)):
        day = day_at(moment, cfg, tz)
        facts = Facts(False, True, True, True, False, last_harvest=moment - timedelta(minutes=5))
        due(day, facts, cfg)
        next_wake(day, cfg, tz, last_harvest=None)
        summary_time(day.tonight, cfg, tz)
    describe_jobs(cfg, config.timezone)


@settings(
    max_examples=40,
    deadline=timedelta(seconds=20),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(configs())
def test_what_check_accepts_every_phase_can_run(data: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        shop = Shop(Path(folder))
        shop.config_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        found = inspect(shop.config_path)
        event("refused by check" if found.config is None else "accepted by check")
        if found.config is None:
            assert found.problems and all("\n" not in str(p) for p in found.problems)
            return
        shop.config = found.config
        for i, name in enumerate(found.config.workflows):
            shop.add(id=f"t{i}", type=name, priority="P1", input=f"row {i}", brand="Acme")
        for phase in (serve_arithmetic, Shop.lock, Shop.run, Shop.harvest):
            with contextlib.suppress(SheetbotError):  # a refusal with a message is fine; nothing else is
                phase(shop)
