"""Every batch call has a bounded time, and the night's deadline (``--until``, the window end) wins.

The SDKs alone would wait 600 s a try and retry on their own, so a poll that never answers held the
night past its end. Here each call (upload, create, list, poll, results, cancel) gets the client's
``time_limit_s`` (its timeout times its tries), cut at the deadline. Work that starts after the deadline
is the window end's own: cancelling what still runs and reading what finished; it gets
``CLOSING_GRACE_S`` past the deadline, no more. A call cut short is a RetryableProviderError like any
other timeout: a poll is tried at the next one, a create is looked up before anything is sent again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from typing import TypeVar, cast

from sheetbot.errors import RetryableProviderError

T = TypeVar("T")

#: After the deadline, the window end's cancel and the reading of finished results may take this long.
CLOSING_GRACE_S = 30.0


class Bounds:
    """Time left for one batch call, from the night's clock and deadline."""

    def __init__(self, now: Callable[[], datetime], deadline: datetime | None) -> None:
        self.now = now
        self.deadline = deadline

    def seconds_for(self, limit_s: float) -> float:
        if self.deadline is None:
            return limit_s
        now = self.now()
        end = self.deadline if now < self.deadline else self.deadline + timedelta(seconds=CLOSING_GRACE_S)
        return min(limit_s, (end - now).total_seconds())

    async def call(self, make: Callable[[], Awaitable[T]], *, limit_s: float, label: str, what: str) -> T:
        """``make()``'s result, or RetryableProviderError once its time is up (the call is then abandoned)."""
        seconds = self.seconds_for(limit_s)
        if seconds <= 0:
            raise RetryableProviderError(f"{label}: no time left in the night to {what}; the next run does it")
        try:
            return await asyncio.wait_for(make(), seconds)
        except TimeoutError:
            raise RetryableProviderError(
                f"{label} did not answer within {seconds:g}s when sheetbot tried to {what}: retry later, "
                f"and raise providers.{label}.timeout_s if it keeps happening"
            ) from None

    async def each(self, items: AsyncIterator[T], *, limit_s: float, label: str, what: str) -> AsyncIterator[T]:
        """The items of a stream, each within its time (a stream that stalls ends in RetryableProviderError)."""
        iterator = aiter(items)
        end = object()

        async def step() -> object:
            return await anext(iterator, end)

        while True:
            item = await self.call(step, limit_s=limit_s, label=label, what=what)
            if item is end:
                return
            yield cast(T, item)
