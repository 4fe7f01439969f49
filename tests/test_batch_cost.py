"""Batch money: what `report` shows beside the live price, and tonight's estimates in check and preview."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import WORKFLOWS, Shop, at
from test_batch import BLOG, BatchShop, night

from sheetbot.batch.estimate import estimate, tonight
from sheetbot.morning.metrics import night_metrics
from sheetbot.morning.summary import describe_run, morning_summary


def test_report_shows_the_batch_cost_beside_what_live_would_have_cost(tmp_path: Path) -> None:
    shop = BatchShop(tmp_path, workflows={"blog": {**BLOG, "system": "You write blog drafts."}})
    night(shop, *({"type": "blog", "input": f"post {i}"} for i in range(3)))
    shop.run()
    with shop.state() as state:
        [m] = night_metrics(state, prices=shop.config.prices)
        [fallback] = night_metrics(state)
    assert m.cost_usd > 0 and m.live_usd == pytest.approx(2 * m.cost_usd, rel=1e-3)
    assert fallback.live_usd == pytest.approx(m.live_usd, rel=1e-3)
    assert "the same night live would have cost" in morning_summary([m], board="queue.xlsx")


def test_a_live_night_costs_the_same_live(tmp_path: Path) -> None:
    shop = Shop(tmp_path, workflows={"listing": WORKFLOWS["listing"]})
    night(shop, {"type": "listing", "input": "x", "brand": "B"})
    shop.run()
    with shop.state() as state:
        [m] = night_metrics(state, prices=shop.config.prices)
    assert m.live_usd == pytest.approx(m.cost_usd)


def test_estimates_halve_in_batch_and_caching_needs_a_long_shared_system_prompt(tmp_path: Path) -> None:
    long_system = "Our style guide. " * 400  # ≈ 1,700 tokens: over Sonnet's 1,024-token minimum
    workflows = {"long": {**BLOG, "system": long_system}, "short": BLOG, "per_row": WORKFLOWS["listing"]}
    shop = Shop(tmp_path, workflows=workflows)
    rows = [{"input": f"row {i}", "brand": "B"} for i in range(10)]
    long, short, per_row = (estimate(shop.config, name, rows) for name in ("long", "short", "per_row"))
    for e in (long, short, per_row):
        assert e.rows == 10 and e.batch_usd == pytest.approx(e.live_usd / 2)
    assert long.cached_usd < long.batch_usd
    assert short.cached_usd == pytest.approx(short.batch_usd)  # under the minimum: nothing is cached
    assert per_row.cached_usd == pytest.approx(per_row.batch_usd)  # {{brand}}: not shared
    assert estimate(shop.config, "short", rows, min_cache_tokens=0).cached_usd < short.batch_usd


def test_check_and_preview_show_tonights_estimates(tmp_path: Path) -> None:
    shop = Shop(tmp_path, workflows={"blog": {**WORKFLOWS["blog"], "mode": "preview"}})
    night(shop, {"type": "blog", "input": "a"}, {"type": "blog", "input": "b"})
    [e] = tonight(shop.config)
    assert e.workflow == "blog" and e.rows == 2 and "batch with caching" in e.line()
    report = shop.run()
    assert any(n.startswith("preview blog: 2 row(s)") and "batch" in n for n in report.notes)
    assert "note: preview blog: 2 row(s)" in describe_run(report)


def test_a_stop_leaves_the_batch_open_for_the_restart(tmp_path: Path) -> None:
    shop = BatchShop(tmp_path, workflows={"blog": BLOG})
    night(shop, {"type": "blog", "input": "a"})
    stopped = {"now": False}

    async def sigterm(seconds: float) -> None:
        stopped["now"] = True

    shop.sleep = sigterm  # type: ignore[method-assign]
    with shop.context() as ctx:
        from sheetbot.night.run import run

        report = run(ctx, stop=lambda: stopped["now"])
    assert report.stopped and shop.batch.cancels == []
    with shop.state() as state:
        assert [b["status"] for b in state.batches()] == ["open"]
    del shop.sleep
    shop.clock.set(at("2026-11-24T01:30"))
    assert shop.run().done.total() == 1 and shop.batch.creates == ["msgbatch_1"]
