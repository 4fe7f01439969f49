"""Tonight's time bounds and dollars, pinned where mutation testing found no test to notice a change.

Which night a moment belongs to decides which rows a lock takes and when a run must stop; the budget decides
which calls may start. A boundary off by one (``<`` for ``<=``) would run a row outside its window or
spend past a cap, so each boundary is tested on both sides.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from sheetbot.cli.demo import demo_config
from sheetbot.config.models import Config, ScheduleConfig
from sheetbot.night.budget import Budget
from sheetbot.night.windows import night_at, window_for_night
from sheetbot.state import Attempt, State

TZ = ZoneInfo("Europe/Berlin")


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=TZ)


def schedule(cutoff: str = "17:00", start: str = "01:00", end: str = "05:00") -> ScheduleConfig:
    return ScheduleConfig.model_validate({"cutoff": cutoff, "window": {"start": start, "end": end}})


# -- windows ---------------------------------------------------------------------------------------------
def test_a_window_after_midnight_belongs_to_the_evening_before() -> None:
    window = window_for_night(date(2026, 11, 22), schedule(), TZ)
    assert window.night == "2026-11-22"
    assert window.cutoff == local("2026-11-22T17:00")
    assert (window.start, window.end) == (local("2026-11-23T01:00"), local("2026-11-23T05:00"))


def test_a_window_that_opens_before_midnight_ends_the_next_morning() -> None:
    window = window_for_night(date(2026, 11, 22), schedule(start="22:00", end="04:00"), TZ)
    assert (window.start, window.end) == (local("2026-11-22T22:00"), local("2026-11-23T04:00"))
    same_evening = window_for_night(date(2026, 11, 22), schedule(cutoff="12:00", start="18:00", end="23:00"), TZ)
    assert (same_evening.start, same_evening.end) == (local("2026-11-22T18:00"), local("2026-11-22T23:00"))
    all_day = window_for_night(date(2026, 11, 22), schedule(start="01:00", end="01:00"), TZ)
    assert (all_day.start, all_day.end) == (local("2026-11-23T01:00"), local("2026-11-24T01:00"))  # 24 h, not none
    at_the_cutoff = window_for_night(date(2026, 11, 22), schedule(cutoff="17:00", start="17:00", end="20:00"), TZ)
    assert at_the_cutoff.start == local("2026-11-23T17:00")


def test_the_window_contains_its_start_but_not_its_end() -> None:
    window = window_for_night(date(2026, 11, 22), schedule(), TZ)
    assert window.contains(local("2026-11-23T01:00"))
    assert window.contains(local("2026-11-23T04:59:59"))
    assert not window.contains(local("2026-11-23T05:00"))
    assert not window.contains(local("2026-11-23T00:59:59"))


@pytest.mark.parametrize(
    ("when", "night"),
    [
        ("2026-11-22T10:00", "2026-11-22"),  # a lock by hand in the day prepares the coming night
        ("2026-11-22T17:00", "2026-11-22"),
        ("2026-11-23T00:30", "2026-11-22"),
        ("2026-11-23T02:30", "2026-11-22"),  # a restart inside the window finds the night that is running
        ("2026-11-23T04:59", "2026-11-22"),
        ("2026-11-23T05:00", "2026-11-23"),  # the window's end belongs to the next night
        ("2026-11-23T09:00", "2026-11-23"),
    ],
)
def test_the_night_of_a_moment_is_the_first_whose_window_has_not_ended(when: str, night: str) -> None:
    assert night_at(local(when), schedule(), TZ).night == night


def test_the_night_of_a_moment_is_found_in_the_boards_time_zone() -> None:
    # 04:30 UTC is 05:30 in Berlin: that night's window has ended there
    assert night_at(datetime(2026, 11, 23, 4, 30, tzinfo=UTC), schedule(), TZ).night == "2026-11-23"
    assert night_at(datetime(2026, 11, 23, 3, 30, tzinfo=UTC), schedule(), TZ).night == "2026-11-22"


# -- the budget ------------------------------------------------------------------------------------------
def config(nightly_usd: float, **workflow_caps: float) -> Config:
    raw: dict[str, Any] = demo_config()
    raw["limits"]["nightly_usd"] = nightly_usd
    for name, cap in workflow_caps.items():
        raw["workflows"][name]["nightly_usd"] = cap
    return Config.model_validate(raw)


def spend(state: State, task_id: str, workflow: str, usd: float, night: str = "2026-11-22") -> None:
    state.record_attempt(
        Attempt(task_id, night, 1, "final", workflow, "openai", "m", "live", "", "", True, "x", cost_usd=usd),
        now=datetime(2026, 11, 23, 1, tzinfo=UTC),
    )


def test_a_call_may_spend_up_to_the_cap_and_not_a_cent_more(tmp_path: Path) -> None:
    cfg = config(10.0)
    workflow = next(iter(cfg.workflows))
    with State(tmp_path / "s.db") as state:
        spend(state, "a", workflow, 4.0)
        spend(state, "old", workflow, 100.0, night="2026-11-21")  # another night's spend does not count
        budget = Budget(cfg, state, "2026-11-22")
    assert budget.spent == pytest.approx(4.0)
    assert budget.refuse(workflow, 6.0) is None
    refusal = budget.refuse(workflow, 6.01)
    assert refusal is not None and "$10.00 (limits.nightly_usd)" in refusal and "$4.0000 spent" in refusal
    assert refusal == (
        "deferred: tonight's budget of $10.00 (limits.nightly_usd) would be exceeded: $4.0000 spent, "
        "and this row could cost up to $6.0100; it runs on a later night"
    )
    budget.reserve(workflow, 0.5)
    small = budget.refuse(workflow, 6.0)
    assert small is not None and "$0.5000 held for calls in flight" in small
    budget.release(workflow, 0.5)
    budget.reserve(workflow, 2.0)
    budget.reserve(workflow, 3.0)  # two calls in flight hold the sum of both
    assert budget.refuse(workflow, 1.0) is None
    held = budget.refuse(workflow, 1.01)
    assert held is not None and "$5.0000 held for calls in flight" in held
    budget.release(workflow, 5.0)
    budget.spend(workflow, 2.0)
    assert budget.refuse(workflow, 4.0) is None and budget.refuse(workflow, 4.01) is not None
    assert not budget.exhausted()
    budget.spend(workflow, 4.0)
    assert budget.exhausted()


def test_a_workflows_own_cap_counts_only_its_own_spend(tmp_path: Path) -> None:
    names = list(demo_config()["workflows"])
    capped, other = names[0], names[1]
    cfg = config(100.0, **{capped: 3.0})
    with State(tmp_path / "s.db") as state:
        spend(state, "a", capped, 1.0)
        spend(state, "b", other, 50.0)
        spend(state, "c", capped, 9.0, night="2026-11-21")  # last night's spend is not tonight's
        budget = Budget(cfg, state, "2026-11-22")
    assert budget.spent_by_workflow[capped] == pytest.approx(1.0)
    assert budget.refuse(capped, 2.0) is None
    refusal = budget.refuse(capped, 2.5)
    assert refusal is not None and f"tonight's budget for {capped} of $3.00 (nightly_usd)" in refusal
    assert budget.refuse(other, 40.0) is None  # no cap of its own: only the night's
    budget.reserve(capped, 1.0)
    budget.reserve(capped, 0.5)
    assert budget.refuse(capped, 0.5) is None and budget.refuse(capped, 0.6) is not None
    budget.release(capped, 1.5)
    assert budget.refuse(capped, 2.0) is None
    budget.spend(capped, 1.0)
    assert budget.refuse(capped, 1.0) is None and budget.refuse(capped, 1.1) is not None
    assert budget.reserved == 0.0 and budget.reserved_by_workflow[capped] == 0.0


def test_a_zero_budget_refuses_every_call(tmp_path: Path) -> None:
    cfg = config(0.0)
    workflow = next(iter(cfg.workflows))
    with State(tmp_path / "s.db") as state:
        budget = Budget(cfg, state, "2026-11-22")
    assert budget.exhausted()
    assert budget.refuse(workflow, 0.0) is None  # a call that cannot cost anything (preview) still runs
    assert budget.refuse(workflow, 0.0001) is not None
