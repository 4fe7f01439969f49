"""Batch mode: a refused key on submission is the account's problem, as in live mode (issue 10, item 11)."""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest
from harness import at
from test_batch import BLOG, LISTING, BatchShop, night

from sheetbot.morning.summary import describe_run


@pytest.mark.parametrize(("workflow", "variable"), [("blog", "ANTHROPIC_API_KEY"), ("listing", "OPENAI_API_KEY")])
def test_a_refused_key_defers_the_batch_rows_without_blame(tmp_path: Path, workflow: str, variable: str) -> None:
    shop = BatchShop(tmp_path, workflows={"blog": BLOG, "listing": LISTING})
    refuse = {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}
    shop.batch.transport = httpx2.MockTransport(lambda request: httpx2.Response(401, json=refuse))
    night(shop, *({"type": workflow, "input": f"row {n}", "brand": "B"} for n in range(3)))
    report = shop.run()
    assert report.deferred.total() == 3 and report.failed.total() == 0
    assert all(r["status"] == "deferred" and variable in r["error"] for r in shop.rows())


@pytest.mark.parametrize("status", [401, 403])
@pytest.mark.parametrize(("workflow", "variable"), [("blog", "ANTHROPIC_API_KEY"), ("listing", "OPENAI_API_KEY")])
def test_a_key_refused_while_polling_stops_and_defers_with_the_reason(
    tmp_path: Path, workflow: str, variable: str, status: int
) -> None:
    shop = BatchShop(tmp_path, workflows={"blog": BLOG, "listing": LISTING})
    shop.batch.duration_s = 3600.0  # still running when the key stops working
    shop.batch.fault("poll", str(status), times=10_000)
    night(shop, *({"type": workflow, "input": f"row {n}", "brand": "B"} for n in range(3)))
    report = shop.run()

    assert shop.batch.calls.count("poll") == 1  # stopped at the first refusal, not polled until the window ended
    assert sum(shop.slept) < 60 and shop.batch.cancels == []  # no waiting; the paid batch is left to finish
    assert report.deferred.total() == 3 and report.failed.total() == 0
    assert all(r["status"] == "deferred" and variable in r["error"] for r in shop.rows())
    summary = describe_run(report)
    assert "failed: 3 row(s) deferred" in summary and variable in summary

    # The key is fixed: the next night collects the batch it already paid for, and sends nothing again.
    shop.batch.heal()
    shop.clock.set(at("2026-11-24T17:05"))
    shop.lock()
    shop.clock.set(at("2026-11-25T01:00"))  # a day later: the batch has ended
    again = shop.run()
    assert len(shop.batch.creates) == 1 and again.done.total() == 3


@pytest.mark.parametrize(("workflow", "variable"), [("blog", "ANTHROPIC_API_KEY"), ("listing", "OPENAI_API_KEY")])
def test_a_key_refused_while_reading_results_stops_and_defers_with_the_reason(
    tmp_path: Path, workflow: str, variable: str
) -> None:
    shop = BatchShop(tmp_path, workflows={"blog": BLOG, "listing": LISTING})
    shop.batch.fault("results", "401", times=10_000)
    night(shop, *({"type": workflow, "input": f"row {n}", "brand": "B"} for n in range(3)))
    report = shop.run()
    assert shop.batch.calls.count("results") == 1
    assert report.deferred.total() == 3 and all(variable in r["error"] for r in shop.rows())
