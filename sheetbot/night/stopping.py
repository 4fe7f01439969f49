"""A model call that a stop (SIGTERM) can end: the answer gets a short grace to arrive, then is cancelled.

Platforms give a stopping worker about 30 s before SIGKILL; sheetbot aims for 10. A call already
in flight is most likely paid for, so it may finish within ``grace_s`` and its output is stored;
after that it is cancelled and the row stays locked for the next run in the window.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

#: Seconds a call in flight may still take once a stop was asked for (serve and tests pass their own).
GRACE_S = 5.0


async def call_until_stopped(
    call: Awaitable[T], stop: Callable[[], bool], *, grace_s: float = GRACE_S, poll_s: float = 0.05
) -> T:
    """Await ``call``; once ``stop()`` is true, wait at most ``grace_s`` more, then raise TimeoutError."""
    task = asyncio.ensure_future(call)
    loop = asyncio.get_running_loop()
    give_up: float | None = None
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=poll_s)
            if done:
                return task.result()
            if stop():
                give_up = give_up if give_up is not None else loop.time() + grace_s
                if loop.time() >= give_up:
                    raise TimeoutError("stopped")
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
