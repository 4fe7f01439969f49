"""Nightly metrics per workflow, and `sheetbot report`: a table per night, a trend, JSON."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from harness import Shop, at
from nightly import night

from sheetbot.cli.main import main
from sheetbot.morning.metrics import _percentile, night_metrics
from sheetbot.state import Attempt, State


@pytest.fixture
def shop(tmp_path: Path) -> Shop:
    return Shop(tmp_path)


def test_two_nights_of_metrics(shop: Shop) -> None:
    night(shop, "2026-11-23", ["approve", "edit", "rework", ""], notes="Shorter")
    night(shop, "2026-11-24", ["approve", "approve"], new=1)  # the new row and the reworked one
    with shop.state() as state:
        newest, oldest = night_metrics(state)
    assert (oldest.night, newest.night) == ("2026-11-23", "2026-11-24")
    assert (oldest.locked, oldest.done, oldest.failed, oldest.deferred) == (4, 4, 0, 0)
    assert (oldest.approved, oldest.edited, oldest.rework, oldest.waiting) == (1, 1, 1, 1)
    assert oldest.approval_rate == oldest.edit_rate == oldest.rework_rate == pytest.approx(1 / 3, abs=1e-4)
    assert oldest.completion_rate == 1.0
    assert oldest.cost_per_output_usd == pytest.approx(oldest.cost_usd / 4, abs=1e-6)
    assert oldest.p50_latency_s is not None and oldest.p95_latency_s is not None
    assert oldest.p50_latency_s <= oldest.p95_latency_s
    assert (newest.locked, newest.approved, newest.approval_rate, newest.rework_rate) == (2, 2, 1.0, 0.0)


def test_failed_and_deferred_rows_lower_the_completion_rate(tmp_path: Path) -> None:
    shop = Shop(tmp_path, limits={"nightly_rows": 2})
    for n in range(3):
        shop.add(type="listing", input=f"Tent number {n}", brand="Kestrel")
    shop.lock()
    shop.fake.fail_next(400)  # a permanent error: the first row fails
    shop.clock.set(at("2026-11-24T01:00"))
    shop.run()
    with shop.state() as state:
        [m] = night_metrics(state)
    assert (m.locked, m.done, m.failed, m.deferred) == (2, 1, 1, 1)
    assert m.completion_rate == 0.5
    assert m.approval_rate is None and m.edit_rate is None  # nothing decided yet: no rate, not 0%


def test_latency_percentiles_are_observed_values(tmp_path: Path) -> None:
    assert _percentile([], 0.5) is None
    values = [float(v) for v in range(1, 21)]
    assert (_percentile(values, 0.5), _percentile(values, 0.95)) == (10.0, 19.0)
    with State(tmp_path / "s.db") as state:
        now = datetime(2026, 11, 24, 1, tzinfo=at("2026-11-24T01:00").tzinfo)
        for i, latency in enumerate(values):
            state.add_task(f"t{i}", now=now)
            state.night_task("2026-11-23", f"t{i}", workflow="w", attempt=1, outcome="done")
            base: dict[str, Any] = dict(task_id=f"t{i}", night="2026-11-23", attempt=1, step="final", workflow="w")
            attempt = Attempt(**base, provider="p", model="m", mode="live", system="", prompt="", ok=True,
                              output="x", latency_s=latency)  # fmt: skip
            state.record_attempt(attempt, now=now)
        [m] = night_metrics(state)
    assert (m.p50_latency_s, m.p95_latency_s) == (10.0, 19.0)


def test_report_table_trend_and_json(shop: Shop, capsys: pytest.CaptureFixture[str]) -> None:
    night(shop, "2026-11-23", ["approve", "rework"], notes="Shorter")
    night(shop, "2026-11-24", ["approve", "approve"], new=1)
    night(shop, "2026-11-25", ["edit"])
    config = str(shop.config_path)
    capsys.readouterr()
    assert main(["report", "--config", config]) == 0
    out = capsys.readouterr().out
    assert "sheetbot nights" in out and "trend" in out
    assert "approved as-is" in out and "11-23" in out and "11-25" in out
    assert main(["report", "--config", config, "--json", "--nights", "2"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["night"] for r in rows] == ["2026-11-25", "2026-11-24"]
    assert {"edit_rate", "rework_rate", "p50_latency_s", "p95_latency_s", "approval_rate"} <= set(rows[0])
    assert rows[0]["edit_rate"] == 1.0
    assert main(["report", "--config", config, "--nights", "1"]) == 0
    assert "trend" not in capsys.readouterr().out  # one night has no trend to show
