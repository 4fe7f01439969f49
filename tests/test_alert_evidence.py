"""Alerts need evidence (issue 13, item 9): a drift rate waits for `alerts.min_decided` decisions, and an SLA
alert names the rows it is about."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import Shop
from nightly import night

from sheetbot.config.load import inspect_config, load_config
from sheetbot.morning.alerts import send_alerts
from sheetbot.morning.escalation import escalate
from sheetbot.notify.base import MemoryNotifier


def configure(shop: Shop, **alerts: Any) -> None:
    data = yaml.safe_load(shop.config_path.read_text(encoding="utf-8"))
    data["alerts"] = alerts
    shop.config_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    shop.config = load_config(shop.config_path)


def alerts(shop: Shop, memory: MemoryNotifier | None = None) -> list[str]:
    with shop.state() as state:
        return [m.kind for m in send_alerts(state, shop.config, memory or MemoryNotifier(), now=shop.clock.now())]


@pytest.fixture
def shop(tmp_path: Path) -> Shop:
    return Shop(tmp_path)


def test_one_rework_out_of_two_rows_is_not_drift(shop: Shop) -> None:
    assert shop.config.alerts.min_decided == 10
    night(shop, "2026-11-23", ["approve", "rework"])
    assert alerts(shop) == []  # 50% sent to rework, of two decisions: noise


def test_a_night_with_enough_decisions_fires_and_says_how_many(shop: Shop) -> None:
    memory = MemoryNotifier()
    night(shop, "2026-11-23", ["approve"] * 6 + ["rework"] * 4)
    assert alerts(shop, memory) == ["rework_drift"]
    assert "40% of night 2026-11-23's outputs sent to rework" in memory.sent[0].title
    assert "40% of 10 decided outputs" in memory.sent[0].text


def test_the_minimum_comes_from_the_yaml(shop: Shop) -> None:
    configure(shop, min_decided=2)
    night(shop, "2026-11-23", ["approve", "rework"])
    assert alerts(shop) == ["rework_drift"]


def test_approval_drift_counts_the_decisions_of_the_nights_it_spans(shop: Shop) -> None:
    configure(shop, min_decided=6, rework_max=1.0)
    night(shop, "2026-11-23", ["approve", "rework"])
    night(shop, "2026-11-24", ["approve", "rework"], new=1)  # the new row and the one sent back
    assert alerts(shop) == []  # 4 decisions over the two nights, under 6
    night(shop, "2026-11-25", ["approve", "rework", "rework", "rework"], new=3)
    assert alerts(shop) == ["approval_drift"]  # the last two nights: 6 decisions, 50% and 25% approved


def test_min_decided_must_be_at_least_one(tmp_path: Path) -> None:
    shop = Shop(tmp_path)
    data = yaml.safe_load(shop.config_path.read_text(encoding="utf-8"))
    data["alerts"] = {"min_decided": 0}
    shop.config_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    _, problems = inspect_config(shop.config_path)
    assert [p.where for p in problems] == ["alerts.min_decided"]


def test_an_sla_alert_names_the_rows_and_their_count(shop: Shop) -> None:
    for n in range(7):
        shop.add(type="listing", input=f"Urgent {n}", brand="Kestrel", priority="P0")
    shop.lock()
    ids = [shop.row(input=f"Urgent {n}")["id"] for n in range(7)]
    shop.clock.advance(hours=7)  # over 1.5 × the P0 SLA of 4 h
    memory = MemoryNotifier()
    with shop.state() as state:
        assert [m.kind for m in escalate(state, shop.config, memory, now=shop.clock.now())] == ["sla_breach"]
    title = memory.sent[0].title
    assert title.startswith("7 item(s) waiting over 1.5 × their SLA: ")
    named = title.split(": ", 1)[1]
    assert named.endswith(" and 2 more")
    assert len([i for i in ids if i in named]) == 5


def test_an_sla_alert_for_one_row_names_it(shop: Shop) -> None:
    shop.add(type="listing", input="Urgent", brand="Kestrel", priority="P0")
    shop.lock()
    shop.clock.advance(hours=7)
    memory = MemoryNotifier()
    with shop.state() as state:
        escalate(state, shop.config, memory, now=shop.clock.now())
    assert memory.sent[0].title == f"1 item(s) waiting over 1.5 × their SLA: {shop.row(input='Urgent')['id']}"
