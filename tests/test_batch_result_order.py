"""Batch results are matched to their rows by custom_id, never by position.

Neither vendor promises an order: Anthropic's results file and OpenAI's output file may list the answers
in any order. The fake server returns them in an order other than the one they were submitted in, and
every row must get its own answer, its own tokens and its own cost.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fakebatch import FakeBatch
from fakellm import split_prompt
from harness import WORKFLOWS, Shop, at

from sheetbot.batch.factory import make_batch_provider
from sheetbot.night.context import NightContext

ROWS = 5


class BatchShop(Shop):
    def __init__(self, folder: Path, **kwargs: Any) -> None:
        super().__init__(folder, **kwargs)
        self.batch = FakeBatch(lambda: self.clock.now().timestamp())

    @contextmanager
    def context(self) -> Iterator[NightContext]:
        with super().context() as ctx:
            ctx.batch_providers = lambda name: make_batch_provider(
                name, self.config.providers[name], env=self.env, http_client=self.batch.async_client()
            )
            yield ctx


def answer(item: str) -> str:
    """Each row's own answer, of its own length (so its tokens and cost are its own too)."""
    n = int(item.rsplit("-", 1)[1])
    return f"answer for {item}" + "!" * (40 * n)


ORDERS: dict[str, Callable[[list[Any]], list[Any]]] = {
    "reversed": lambda items: items[::-1],
    "rotated": lambda items: items[2:] + items[:2],
    "odd first": lambda items: items[1::2] + items[::2],
}


@pytest.mark.parametrize("order", list(ORDERS))
@pytest.mark.parametrize("workflow", ["blog", "listing"])  # anthropic, openai
def test_each_row_gets_its_own_result_whatever_order_they_come_back_in(
    tmp_path: Path, workflow: str, order: str
) -> None:
    shop = BatchShop(tmp_path, workflows={workflow: {**WORKFLOWS[workflow], "mode": "batch"}})
    shop.batch.result_order = ORDERS[order]
    shop.batch.llm.reply_with(lambda body: answer(split_prompt(body)[1].split()[-1]))
    for n in range(ROWS):
        shop.add(type=workflow, input=f"item-{n}", brand="Acme")
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))
    report = shop.run()
    assert report.done.total() == ROWS and len(shop.batch.creates) == 1
    submitted = [line["custom_id"] for line in shop.batch.lines]
    assert ORDERS[order](submitted) != submitted  # the server really answered in another order
    db = sqlite3.connect(shop.config.state_path)  # the state file as another process reads it
    try:
        paid = {r[0]: r[1:] for r in db.execute("SELECT task_id, output_tokens, cost_usd FROM attempts WHERE ok = 1")}
    finally:
        db.close()
    rows = shop.rows()
    assert len(paid) == len(rows) == ROWS
    for row in rows:
        assert row["status"] == "review"
        assert row["output"] == answer(row["input"])
        tokens, cost = paid[row["id"]]
        assert tokens == math.ceil(len(answer(row["input"])) / 4)
        assert row["cost"] == round(cost, 6) > 0
