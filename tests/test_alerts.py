"""Drift alerts, review capacity and the escalation policy, on whole nights; alerts land in MemoryNotifier."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import Shop, at
from nightly import night

from sheetbot.cli.main import main
from sheetbot.config.load import load_config
from sheetbot.errors import SheetbotError
from sheetbot.morning.alerts import backlog_by_night, evaluate, send_alerts
from sheetbot.morning.escalation import after_harvest, escalate
from sheetbot.notify.base import Fanout, MemoryNotifier


def configure(shop: Shop, **sections: Any) -> None:
    data = yaml.safe_load(shop.config_path.read_text(encoding="utf-8"))
    for key, value in sections.items():  # a section merges into what the YAML has (e.g. alerts.min_decided)
        data[key] = {**data[key], **value} if isinstance(value, dict) and isinstance(data.get(key), dict) else value
    shop.config_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    shop.config = load_config(shop.config_path)


def alerts(shop: Shop, notifier: MemoryNotifier | None = None) -> list[str]:
    notifier = notifier or MemoryNotifier()
    with shop.state() as state:
        return [m.kind for m in send_alerts(state, shop.config, notifier, now=shop.clock.now())]


def escalations(shop: Shop, notifier: MemoryNotifier) -> list[str]:
    with shop.state() as state:
        return [m.kind for m in escalate(state, shop.config, notifier, now=shop.clock.now())]


@pytest.fixture
def shop(tmp_path: Path) -> Shop:
    shop = Shop(tmp_path)
    # These tests drive a few rows a night: every decision counts as evidence (tests/test_alert_evidence.py
    # covers the minimum itself).
    configure(shop, alerts={"min_decided": 1})
    return shop


# -- drift -------------------------------------------------------------------------------------------
def test_approval_under_70_percent_two_nights_running(shop: Shop) -> None:
    memory = MemoryNotifier()
    night(shop, "2026-11-23", ["approve", "rework", "rework"], notes="Shorter")
    assert alerts(shop, memory) == ["rework_drift"]  # one bad night is not yet drift in approval
    night(shop, "2026-11-24", ["approve", "edit", "rework"], new=1)  # the new row and the two reworks
    assert sorted(alerts(shop, memory)) == ["approval_drift", "edit_drift", "rework_drift"]
    drift = next(m for m in memory.sent if m.kind == "approval_drift")
    assert drift.severity == "warning" and drift.facts["workflow"] == "listing"
    assert "2026-11-23 33%" in drift.text and "2026-11-24 33%" in drift.text
    assert "sheetbot feedback listing" in drift.text
    assert alerts(shop, memory) == []  # harvesting again sends nothing twice
    assert len(memory.sent) == 4


def test_a_night_still_under_review_is_not_judged(shop: Shop) -> None:
    reviewed = night(shop, "2026-11-23", ["rework", ""], notes="Shorter")
    assert reviewed and alerts(shop) == []  # one rework of one decision is not a verdict yet
    waiting = next(r for r in shop.rows() if r["status"] == "review")
    shop.set(waiting["id"], review="approve")
    shop.harvest()
    assert alerts(shop) == ["rework_drift"]


def test_thresholds_come_from_the_yaml(shop: Shop) -> None:
    configure(shop, alerts={"rework_max": 0.5, "approval_nights": 1, "approval_min": 0.4})
    night(shop, "2026-11-23", ["approve", "approve", "rework"], notes="Shorter")
    assert alerts(shop) == []  # 33% rework is under 50%; 67% approval is over 40%
    configure(shop, alerts={"enabled": False})
    night(shop, "2026-11-24", ["rework"], new=0)
    assert alerts(shop) == []


def test_completion_under_100_percent_after_the_run_only(shop: Shop) -> None:
    shop.add(type="listing", input="Tent", brand="Kestrel")
    shop.add(type="listing", input="Jacket", brand="Kestrel")
    shop.lock()
    assert alerts(shop) == []  # locked, not run yet: nothing to judge
    shop.fake.fail_next(400)
    shop.clock.set(at("2026-11-24T01:00"))
    shop.run()
    memory = MemoryNotifier()
    assert alerts(shop, memory) == ["completion_drift"]
    assert "1 of 2 locked rows done; 1 failed" in memory.sent[0].text


def test_cost_per_output_rising_three_nights_running(shop: Shop) -> None:
    for day, length in (("2026-11-23", 30), ("2026-11-24", 300), ("2026-11-25", 600)):
        night(shop, day, ["approve"], input_len=length)
        assert alerts(shop) == []  # two rises are not yet three
    night(shop, "2026-11-26", ["approve"], input_len=1200)
    memory = MemoryNotifier()
    assert alerts(shop, memory) == ["cost_drift"]
    assert memory.sent[0].text.count("→") == 3


def test_an_alert_no_channel_took_is_sent_at_the_next_harvest(shop: Shop) -> None:
    night(shop, "2026-11-23", ["rework"], notes="Shorter")
    assert alerts(shop, MemoryNotifier(fail=True)) == []
    assert alerts(shop) == ["rework_drift"]


def test_alerts_are_routed(shop: Shop) -> None:
    configure(shop, alerts={"route": "quality"})
    night(shop, "2026-11-23", ["rework"], notes="Shorter")
    on_call, quality, everything = MemoryNotifier("on_call"), MemoryNotifier("quality"), MemoryNotifier("all")
    fanout = Fanout([(on_call, ["on_call"]), (quality, ["quality"]), (everything, None)])
    with shop.state() as state:
        sent = send_alerts(state, shop.config, fanout, now=shop.clock.now())
    assert [m.route for m in sent] == ["quality"]
    assert (on_call.kinds(), quality.kinds(), everything.kinds()) == ([], ["rework_drift"], ["rework_drift"])


def test_harvest_from_the_cli_sends_and_prints_alerts(shop: Shop, capsys: pytest.CaptureFixture[str]) -> None:
    night(shop, "2026-11-23", ["rework"], notes="Shorter")
    capsys.readouterr()
    assert main(["harvest", "--config", str(shop.config_path)]) == 0
    assert "alert (warning): listing: 100% of night 2026-11-23's outputs sent to rework" in capsys.readouterr().out
    assert main(["harvest", "--config", str(shop.config_path)]) == 0
    assert "alert" not in capsys.readouterr().out


# -- review capacity ---------------------------------------------------------------------------------
def test_a_backlog_growing_three_nights_running_warns(shop: Shop) -> None:
    memory = MemoryNotifier()
    days = ("2026-11-23", "2026-11-24", "2026-11-25", "2026-11-26")
    for index, day in enumerate(days):
        night(shop, day, ["approve", "", ""])  # three new outputs a night, one reviewed
        if index < 3:
            assert alerts(shop, memory) == []
    assert alerts(shop, memory) == ["review_backlog"]
    with shop.state() as state:
        series = backlog_by_night(state)
    assert [b for _, b, _, _ in series] == [3, 5, 7, 9]
    assert [p for _, _, p, _ in series] == [3, 3, 3, 3]
    assert "3.0 outputs a night; reviewers clear 1.0" in memory.sent[0].text


def test_reviewers_who_keep_up_get_no_capacity_warning(shop: Shop) -> None:
    for day in ("2026-11-23", "2026-11-24", "2026-11-25", "2026-11-26"):
        night(shop, day, ["approve", "approve"])
    with shop.state() as state:
        assert evaluate(state, shop.config) == []
        assert [b for _, b, _, _ in backlog_by_night(state)] == [2, 2, 2, 2]


# -- escalation --------------------------------------------------------------------------------------
def test_queue_deeper_than_n_for_m_minutes_pages_on_call(tmp_path: Path) -> None:
    shop = Shop(tmp_path, limits={"nightly_rows": 1})
    configure(shop, escalation={"queue_depth": {"over": 2, "for_min": 60}})
    for n in range(5):
        shop.add(type="listing", input=f"Tent {n}", brand="Kestrel")
    shop.lock()  # one locked, four deferred over the cap: the queue is four deep
    memory = MemoryNotifier()
    assert escalations(shop, memory) == []
    shop.clock.advance(minutes=30)
    assert escalations(shop, memory) == []
    shop.clock.advance(minutes=31)
    assert escalations(shop, memory) == ["queue_depth"]
    assert memory.sent[0].route == "on_call" and memory.sent[0].severity == "critical"
    shop.clock.advance(minutes=30)
    assert escalations(shop, memory) == []  # the same episode is paged once


def test_an_item_waiting_over_one_and_a_half_times_its_sla(shop: Shop) -> None:
    shop.add(type="listing", input="Urgent tent", brand="Kestrel", priority="P0")
    shop.add(type="listing", input="Ordinary tent", brand="Kestrel")
    shop.lock()
    urgent = shop.row(input="Urgent tent")["id"]
    memory = MemoryNotifier()
    shop.clock.advance(hours=5)
    assert escalations(shop, memory) == []  # 5 h < 1.5 × 4 h
    shop.clock.advance(hours=2)
    assert escalations(shop, memory) == ["sla_breach"]
    assert memory.sent[0].facts["task_ids"] == [urgent] and "P0" in memory.sent[0].text
    assert escalations(shop, memory) == []


def test_cost_per_task_over_the_line_pauses_non_critical_workflows(
    shop: Shop, capsys: pytest.CaptureFixture[str]
) -> None:
    configure(shop, escalation={"cost_per_task": {"over_usd": 0.000001, "route": "pager"}, "critical": ["blog"]})
    night(shop, "2026-11-23", ["approve"])
    memory = MemoryNotifier()
    with shop.state() as state:
        sent = after_harvest(state, shop.config, memory, now=shop.clock.now())
        assert state.paused().keys() == {"listing"}
    [message] = [m for m in sent if m.kind == "cost_escalation"]
    assert message.route == "pager" and message.facts["paused"] == ["listing"]

    shop.add(type="listing", input="Another tent", brand="Kestrel")
    shop.add(type="blog", input="Rain and tents")
    shop.clock.set(at("2026-11-24T17:00"))
    report = shop.lock()
    assert dict(report.locked) == {"blog": 1} and dict(report.paused) == {"listing": 1}
    row = shop.row(input="Another tent")
    assert row["status"] == "deferred" and "listing is paused" in row["error"] and "sheetbot resume" in row["error"]

    capsys.readouterr()
    assert main(["resume", "listing", "--config", str(shop.config_path)]) == 0
    assert "listing resumed" in capsys.readouterr().out
    assert escalations(shop, memory) == []  # the same night's cost does not pause it again
    shop.clock.set(at("2026-11-24T18:00"))
    assert dict(shop.lock().locked) == {"listing": 1}


def test_escalation_settings_in_the_yaml(shop: Shop) -> None:
    configure(shop, escalation={"sla": {"P0": "2h", "P3": "14d"}, "critical": ["blog"]})
    sla = shop.config.escalation.sla
    assert (sla["P0"], sla["P1"], sla["P3"]) == (7200.0, 86400.0, 14 * 86400.0)  # P1 keeps its default
    assert shop.config.alerts.approval_min == 0.70 and shop.config.alerts.cost_rising_nights == 3
    with pytest.raises(SheetbotError, match="not a duration"):
        configure(shop, escalation={"sla": {"P0": "soon"}})
    with pytest.raises(SheetbotError, match="approval_mn"):
        configure(shop, escalation={}, alerts={"approval_mn": 0.5})
