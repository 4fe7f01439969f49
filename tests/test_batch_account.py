"""Batch mode: a refused key on submission is the account's problem, as in live mode (issue 10, item 11)."""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest
from test_batch import BLOG, LISTING, BatchShop, night


@pytest.mark.parametrize(("workflow", "variable"), [("blog", "ANTHROPIC_API_KEY"), ("listing", "OPENAI_API_KEY")])
def test_a_refused_key_defers_the_batch_rows_without_blame(tmp_path: Path, workflow: str, variable: str) -> None:
    shop = BatchShop(tmp_path, workflows={"blog": BLOG, "listing": LISTING})
    refuse = {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}
    shop.batch.transport = httpx2.MockTransport(lambda request: httpx2.Response(401, json=refuse))
    night(shop, *({"type": workflow, "input": f"row {n}", "brand": "B"} for n in range(3)))
    report = shop.run()
    assert report.deferred.total() == 3 and report.failed.total() == 0
    assert all(r["status"] == "deferred" and variable in r["error"] for r in shop.rows())
