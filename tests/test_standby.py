"""A standby that takes over (issue 15): two real `serve` processes on one board in PostgreSQL, the leader
killed with SIGKILL mid-night; the standby leads within 30 s and finishes the night, paying only for the calls
that were in flight. The scenario is tests/standby_night.py (bench/standby.py prints its timeline)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from standby_night import CONCURRENCY, ROWS, TAKEOVER_LIMIT_S, StandbyNight
from state_backends import HOW, postgres_url


def _night(folder: Path, mode: str) -> Iterator[StandbyNight]:
    url, why = postgres_url()
    if url is None:
        pytest.skip(HOW.format(why=why))
    scenario = StandbyNight(folder, url, mode=mode)
    try:
        yield scenario
    finally:
        scenario.close()


@pytest.fixture
def night(tmp_path: Path) -> Iterator[StandbyNight]:
    yield from _night(tmp_path / "shop", "live")


@pytest.fixture
def batch_night(tmp_path: Path) -> Iterator[StandbyNight]:
    yield from _night(tmp_path / "shop", "batch")


def test_kill_9_the_leader_mid_night_and_the_standby_finishes_it(night: StandbyNight) -> None:
    outcome = night.play()
    timeline = outcome.timeline
    print("\n".join(["", "takeover timeline:", *timeline.lines()]))  # quoted in the closing note (pytest -s)
    assert timeline.took_over - timeline.killed < TAKEOVER_LIMIT_S, outcome.logs
    assert outcome.standby_exit == 0, outcome.logs["b"]
    assert len(outcome.statuses) == ROWS and set(outcome.statuses.values()) == {"review"}
    assert outcome.board == {f"item-{n}": "review" for n in range(ROWS)}
    # Paid once: one request per row, except the rows whose calls were in flight at the kill (at most two).
    assert set(outcome.requests) == {f"item-{n}" for n in range(ROWS)}
    in_flight = set(timeline.in_flight_at_kill)
    assert 0 < len(in_flight) <= CONCURRENCY
    assert all(count == 1 for row, count in outcome.requests.items() if row not in in_flight), outcome.requests
    assert all(outcome.requests[row] <= 2 for row in in_flight), outcome.requests
    standby, leader = outcome.logs["b"].find("standby: another"), outcome.logs["b"].find("leader: this")
    assert 0 <= standby < leader, outcome.logs["b"]  # the log says which it was, and when it took over
    assert "(serve pid" in outcome.logs["b"]  # and names the leader it waited for


def test_kill_9_the_leader_while_its_batch_runs_and_the_standby_polls_it_never_resubmitting(
    batch_night: StandbyNight,
) -> None:
    outcome = batch_night.play()
    timeline = outcome.timeline
    print("\n".join(["", "takeover timeline (batch mode):", *timeline.lines()]))
    assert timeline.took_over - timeline.killed < TAKEOVER_LIMIT_S, outcome.logs
    assert len(outcome.batches) == 1, outcome.logs  # created once, by the leader; the standby polled it
    assert outcome.requests == {}  # and no row went live instead
    assert len(outcome.statuses) == ROWS and set(outcome.statuses.values()) == {"review"}
    assert outcome.board == {f"item-{n}": "review" for n in range(ROWS)}
    assert outcome.standby_exit == 0, outcome.logs["b"]
