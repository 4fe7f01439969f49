"""Batch time bounds and the live price beside the batch bill, pinned where mutation testing found no test to notice.

A batch call gets its own time limit cut at the night's deadline, and the window end's cancel a short grace
past it; a bound off (the grace forgotten, the minimum taken the wrong way) holds the night past its end or
abandons the cancel that stops the spend. `report` shows what batch mode saved, from the stored attempts.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sheetbot.batch.timing import CLOSING_GRACE_S, Bounds
from sheetbot.config.models import PriceConfig
from sheetbot.errors import RetryableProviderError
from sheetbot.morning.metrics import live_usd_of_night as live_usd
from sheetbot.state import Attempt, State

DEADLINE = datetime(2026, 11, 23, 5, 0, tzinfo=UTC)


def bounds_at(now: datetime, deadline: datetime | None = DEADLINE) -> Bounds:
    return Bounds(lambda: now, deadline)


def test_a_call_gets_its_limit_or_what_is_left_of_the_night() -> None:
    assert bounds_at(DEADLINE - timedelta(hours=1), None).seconds_for(90.0) == 90.0
    assert bounds_at(DEADLINE - timedelta(hours=1)).seconds_for(90.0) == 90.0
    assert bounds_at(DEADLINE - timedelta(seconds=20)).seconds_for(90.0) == 20.0


def test_after_the_deadline_only_the_closing_grace_is_left() -> None:
    assert CLOSING_GRACE_S == 30.0
    assert bounds_at(DEADLINE).seconds_for(90.0) == 30.0
    assert bounds_at(DEADLINE + timedelta(seconds=10)).seconds_for(90.0) == 20.0
    assert bounds_at(DEADLINE + timedelta(seconds=10)).seconds_for(5.0) == 5.0
    assert bounds_at(DEADLINE + timedelta(seconds=45)).seconds_for(90.0) == -15.0


def test_a_call_with_no_time_left_is_not_made() -> None:
    made: list[str] = []

    async def create() -> str:
        made.append("create")
        return "batch_1"

    with pytest.raises(RetryableProviderError, match="openai: no time left in the night to create a batch"):
        asyncio.run(
            bounds_at(DEADLINE + timedelta(seconds=30)).call(create, limit_s=60, label="openai", what="create a batch")
        )
    with pytest.raises(RetryableProviderError, match="no time left in the night to create a batch"):
        asyncio.run(
            bounds_at(DEADLINE + timedelta(seconds=31)).call(create, limit_s=60, label="openai", what="create a batch")
        )
    assert made == []
    answer = asyncio.run(bounds_at(DEADLINE).call(create, limit_s=60, label="openai", what="create a batch"))
    assert answer == "batch_1" and made == ["create"]


def test_a_call_that_does_not_answer_in_time_is_abandoned_with_a_retryable_error() -> None:
    async def never() -> str:
        await asyncio.sleep(2)  # a mutant that drops the bound fails the test in 2 s, not an hour
        return "late"

    # 0.05 s left of the night: the bound, not the call's own 60 s, ends the wait
    bounds = bounds_at(DEADLINE - timedelta(seconds=0.05))
    with pytest.raises(
        RetryableProviderError, match=r"anthropic did not answer within 0.05s when sheetbot tried to poll"
    ):
        asyncio.run(bounds.call(never, limit_s=60, label="anthropic", what="poll"))


def test_a_stream_yields_every_item_each_within_its_time() -> None:
    async def items() -> AsyncIterator[int]:
        for n in range(3):
            yield n

    async def stalls() -> AsyncIterator[int]:
        yield 1
        await asyncio.sleep(2)  # a mutant that drops the bound fails the test in 2 s, not an hour
        yield 2

    async def read(stream: AsyncIterator[int], bounds: Bounds) -> list[int]:
        return [n async for n in bounds.each(stream, limit_s=0.05, label="openai", what="read results")]

    assert asyncio.run(read(items(), bounds_at(DEADLINE - timedelta(hours=1)))) == [0, 1, 2]
    got: list[int] = []

    async def partial() -> None:
        async for n in bounds_at(DEADLINE - timedelta(hours=1)).each(
            stalls(), limit_s=0.05, label="openai", what="read results"
        ):
            got.append(n)

    with pytest.raises(
        RetryableProviderError, match=r"openai did not answer within 0\.05s when sheetbot tried to read"
    ):
        asyncio.run(partial())
    assert got == [1]


# -- what the night would have cost live -------------------------------------------------------------------
def attempt(task_id: str, mode: str, cost_usd: float, **kw: object) -> Attempt:
    values: dict[str, Any] = {"night": "2026-11-22", "workflow": "blog", "model": "claude-sonnet-4-6"} | kw
    return Attempt(
        task_id=task_id,
        attempt=1,
        step="final",
        provider="anthropic",
        mode=mode,
        system="",
        prompt="",
        ok=True,
        output="x",
        cost_usd=cost_usd,
        **values,
    )


def test_live_cost_undoes_the_batch_discount_or_prices_the_tokens(tmp_path: Path) -> None:
    now = datetime(2026, 11, 23, 1, tzinfo=UTC)
    tokens = {"input_tokens": 1_000_000, "output_tokens": 100_000, "cache_write_tokens": 0, "cache_read_tokens": 0}
    with State(tmp_path / "s.db") as state:
        state.record_attempt(attempt("a", "batch", 1.0, **tokens), now=now)
        state.record_attempt(attempt("b", "live", 0.25), now=now)
        state.record_attempt(attempt("c", "preview", 0.0), now=now)
        state.record_attempt(attempt("d", "batch", 5.0, workflow="listing"), now=now)
        state.record_attempt(attempt("e", "batch", 7.0, night="2026-11-21"), now=now)
        assert live_usd(state, "2026-11-22", "blog") == pytest.approx(2.0 + 0.25)
        priced = {"claude-sonnet-4-6": PriceConfig(input=3.0, output=15.0)}
        assert live_usd(state, "2026-11-22", "blog", priced) == pytest.approx(3.0 + 1.5 + 0.25)
        other = {"another-model": PriceConfig(input=3.0, output=15.0)}
        assert live_usd(state, "2026-11-22", "blog", other) == pytest.approx(2.0 + 0.25)
        assert live_usd(state, "2026-11-22", "listing") == pytest.approx(10.0)
        assert live_usd(state, "2026-11-20", "blog") == 0.0
