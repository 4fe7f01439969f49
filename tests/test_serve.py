"""`sheetbot serve` on a fake clock: whole days in milliseconds, and catch-up after a restart at each point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from harness import Shop, at
from stored import rows_in_state

from sheetbot.notify.base import MemoryNotifier
from sheetbot.service.serve import Server
from sheetbot.status import Status


def make_server(shop: Shop, notifier: MemoryNotifier | None = None) -> Server:
    """A serve process on the Shop: its clock, its fake model; sleeping moves the clock."""
    return Server(
        config=shop.config,
        open_context=shop.context,
        clock=shop.clock,
        sleep=lambda s: shop.clock.advance(seconds=s),
        notifier=notifier or MemoryNotifier(),
        max_sleep_s=86_400,
    )


def statuses(shop: Shop) -> dict[str, str]:
    with shop.state() as state:
        return {t.task_id: str(t.status) for t in state.tasks().values()}


@pytest.fixture
def shop(tmp_path: Path) -> Shop:
    shop = Shop(tmp_path / "shop")
    shop.clock.set(at("2026-11-23T09:30"))
    for n in range(3):
        shop.add(type="listing", input=f"Mug {n}", brand="Acme")
    shop.add(type="blog", input="Coffee at home")
    return shop


def test_a_whole_day_runs_on_schedule(shop: Shop) -> None:
    every_2h = shop.config.schedule.model_copy(update={"harvest_every_min": 120})
    shop.config = shop.config.model_copy(update={"schedule": every_2h})
    notes = MemoryNotifier()
    server = make_server(shop, notes)
    server.loop(until=at("2026-11-24T17:30"))
    when = {(a, t.astimezone(at("2026-11-23T00:00").tzinfo).strftime("%d %H:%M")) for a, t in server.done}
    assert ("lock", "23 17:00") in when
    assert ("run", "24 01:00") in when
    assert ("summary", "24 09:00") in when
    assert ("lock", "24 17:00") in when
    day_harvests = sorted(t for a, t in when if a == "harvest")
    assert day_harvests[:4] == ["23 09:30", "23 11:30", "23 13:30", "23 15:30"]
    assert "24 11:00" in day_harvests and not any("23 17:30" <= t < "24 05:00" for t in day_harvests)
    assert set(statuses(shop).values()) == {"review"}
    assert all(r["output"].startswith("OUTPUT for:") for r in shop.rows())
    summary = [m for m in notes.sent if m.kind == "morning_summary"]
    assert len(summary) == 1
    assert "listing: 3 new, 3 done, 0 exceptions, 0 deferred, 3 waiting for review" in summary[0].sections[0][1][1]
    assert "queue.xlsx" in summary[0].text
    assert notes.kinds() == ["morning_summary"]
    assert server.health.snapshot()[0] == 200


def test_reviews_during_the_day_are_harvested(shop: Shop) -> None:
    server = make_server(shop)
    server.loop(until=at("2026-11-24T09:10"))
    first = shop.rows()[0]["id"]
    shop.set(first, review="approve")
    server.loop(until=at("2026-11-24T09:45"))
    assert statuses(shop)[first] == "approved"


def test_restart_before_the_cutoff_does_not_lock(shop: Shop) -> None:
    shop.clock.set(at("2026-11-23T16:00"))
    assert make_server(shop).tick() == ["harvest"]
    assert set(statuses(shop).values()) <= {"queued"}


def test_restart_after_the_cutoff_locks_now(shop: Shop) -> None:
    shop.clock.set(at("2026-11-23T20:15"))
    assert make_server(shop).tick() == ["lock"]
    assert set(statuses(shop).values()) == {"locked"}


def test_restart_at_0230_finishes_the_night(shop: Shop) -> None:
    shop.clock.set(at("2026-11-23T17:00"))
    shop.lock()
    shop.clock.set(at("2026-11-24T02:30"))
    assert make_server(shop).tick() == ["run"]
    assert set(statuses(shop).values()) == {"review"}


def test_restart_mid_window_after_a_stopped_run_resumes_it(shop: Shop) -> None:
    shop.clock.set(at("2026-11-23T17:00"))
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))
    calls = iter([False, True, True, True, True, True, True])
    report = shop.run(stop=lambda: next(calls, True))
    assert report.stopped
    left = [s for s in statuses(shop).values() if s == "running"]
    assert left
    shop.clock.set(at("2026-11-24T02:30"))
    assert make_server(shop).tick() == ["run"]
    assert set(statuses(shop).values()) == {"review"}
    assert len(rows_in_state(shop, "SELECT 1 FROM attempts WHERE ok = 1")) == 4  # nothing paid twice


def test_restart_after_the_window_defers_and_alerts(shop: Shop) -> None:
    shop.clock.set(at("2026-11-23T17:00"))
    shop.lock()
    shop.clock.set(at("2026-11-24T06:00"))
    notes = MemoryNotifier()
    server = make_server(shop, notes)
    assert server.tick() == ["expire", "harvest"]
    assert set(statuses(shop).values()) == {"deferred"}
    sent = ["night_not_started", "completion_drift", "completion_drift"]  # then the harvest's drift checks
    assert notes.kinds() == sent
    assert server.health.snapshot()[0] == 503
    assert server.tick() == []  # once: no second alert
    assert notes.kinds() == sent
    deferred = shop.rows()[0]
    assert deferred["status"] == "deferred" and "window ended" in deferred["error"]


def test_restart_after_the_summary_sends_it_once(shop: Shop) -> None:
    shop.clock.set(at("2026-11-23T17:00"))
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))
    shop.run()
    shop.clock.set(at("2026-11-24T11:00"))
    notes = MemoryNotifier()
    server = make_server(shop, notes)
    assert server.tick() == ["summary"]
    assert make_server(shop, notes).tick() == ["harvest"]
    assert notes.kinds() == ["morning_summary"]


def test_a_failing_phase_is_retried_later_and_shown(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    shop.clock.set(at("2026-11-23T17:05"))
    server = make_server(shop)

    def broken(ctx: object, day: object) -> str:
        raise OSError("disk full")

    monkeypatch.setattr(server, "_do_lock", broken)
    assert server.tick() == []
    _code, body = server.health.snapshot()
    lock = body["lock"]
    assert isinstance(lock, dict) and lock["ok"] is False and "OSError" in lock["outcome"]
    assert "disk full" not in json.dumps(body)  # the exception text stays in the log
    monkeypatch.undo()
    assert server.tick() == []  # blocked for retry_after_s
    shop.clock.advance(minutes=6)
    assert server.tick() == ["lock"]


def test_undrained_night_alerts_at_once(tmp_path: Path) -> None:
    shop = Shop(tmp_path / "shop", limits={"nightly_usd": 0.0001})
    shop.clock.set(at("2026-11-23T16:59"))
    for n in range(3):
        shop.add(type="blog", input=f"Post {n} " * 50)
    notes = MemoryNotifier()
    server = make_server(shop, notes)
    server.loop(until=at("2026-11-24T02:00"))
    assert "night_not_drained" in notes.kinds()
    assert server.health.snapshot()[0] == 503
    assert Status.DEFERRED in {Status(s) for s in statuses(shop).values()}


def test_refused_credentials_and_unwritten_rows_alert_at_once(tmp_path: Path) -> None:
    shop = Shop(tmp_path / "shop", env={"ANTHROPIC_API_KEY": "sk-ant-test"})  # no OpenAI key
    shop.clock.set(at("2026-11-23T16:59"))
    shop.add(type="listing", input="Mug", brand="Acme")
    shop.add(type="blog", input="Coffee")
    notes = MemoryNotifier()
    server = make_server(shop, notes)
    server.loop(until=at("2026-11-24T00:59"))
    shop.delete(shop.row(type="blog")["id"])  # a person deletes a locked row: its output cannot be written
    server.loop(until=at("2026-11-24T02:00"))
    assert {"credentials_refused", "output_not_written"} <= set(notes.kinds())
    refused = next(m for m in notes.sent if m.kind == "credentials_refused")
    assert "OPENAI_API_KEY" in refused.text and refused.severity == "critical"


def test_waking_from_a_suspend_catches_up(shop: Shop, caplog: pytest.LogCaptureFixture) -> None:
    shop.clock.set(at("2026-11-23T16:00"))
    server = make_server(shop)
    naps: list[float] = []

    def laptop_lid(seconds: float) -> None:
        naps.append(seconds)
        shop.clock.set(at("2026-11-24T03:10") if len(naps) == 1 else shop.clock.now())
        if len(naps) > 1:
            server.stop.set()

    server.sleep = laptop_lid
    server.loop()
    assert [a for a, _ in server.done] == ["harvest", "lock", "run"]
    assert set(statuses(shop).values()) == {"review"}
    assert "the clock jumped" in caplog.text


def test_a_run_that_cannot_start_alerts_at_once(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    shop.clock.set(at("2026-11-23T17:00"))
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))
    notes = MemoryNotifier()
    server = make_server(shop, notes)

    def board_down(ctx: object, day: object) -> str:
        raise ConnectionError("board unreachable")

    monkeypatch.setattr(server, "_do_run", board_down)
    server.tick()
    assert notes.kinds() == ["night_not_started"]
    assert "board unreachable" in notes.sent[0].text
    monkeypatch.undo()
    shop.clock.advance(minutes=5)
    assert server.tick() == ["run"]  # retried; the night still runs
    assert set(statuses(shop).values()) == {"review"}


def test_a_night_stopped_mid_run_and_not_resumed_did_not_finish(shop: Shop) -> None:
    shop.clock.set(at("2026-11-23T17:00"))
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))
    calls = iter([False, False])
    assert shop.run(stop=lambda: next(calls, True)).stopped
    shop.clock.set(at("2026-11-24T07:00"))
    notes = MemoryNotifier()
    make_server(shop, notes).tick()
    # the catch-up's alert first; then serve's harvest runs the drift checks: completion under 100%, per workflow
    assert notes.kinds() == ["night_not_finished", "completion_drift", "completion_drift"]
    assert "deferred to a later night" in notes.sent[0].text
    assert {"review", "deferred"} == set(statuses(shop).values())


def test_a_lock_by_hand_before_the_cutoff_does_not_skip_the_cutoff(shop: Shop) -> None:
    shop.clock.set(at("2026-11-23T10:00"))
    shop.lock()
    shop.add(type="listing", input="Added at noon", brand="Acme")
    shop.clock.set(at("2026-11-23T17:00"))
    assert make_server(shop).tick() == ["lock"]
    assert set(statuses(shop).values()) == {"locked"}


def test_healthz_after_a_restart_remembers_last_night(shop: Shop) -> None:
    shop.clock.set(at("2026-11-23T17:00"))
    shop.lock()
    shop.clock.set(at("2026-11-24T06:00"))
    make_server(shop).tick()  # the night expired: not drained
    restarted = make_server(shop)
    restarted.loop(until=at("2026-11-24T06:01"))
    assert restarted.health.snapshot()[0] == 503
