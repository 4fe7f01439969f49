"""Keep one provider's calls under its concurrency, requests-per-minute and tokens-per-minute limits.

Vendors enforce rpm and tpm over a trailing minute, and quantise them too (OpenAI: "60,000 requests/minute
may be enforced as 1,000 requests/second"; Anthropic likewise), so a burst that fits the minute can still
draw 429s. Hence two token buckets that refill continuously at ``limit / 60`` per second, with small
capacities:

* **rpm: capacity 1 request.** A bucket of capacity C admits at most C + rate·T in any T seconds, so a larger
  capacity lets a minute see ``rpm + C`` requests. With C = 1 the sends are evenly spaced: any trailing 60 s
  window (half-open, as servers count) holds at most ``rpm``, any second about ``rpm / 60``, and a busy queue
  still runs at the full limit. What it gives up is catching up after a stall (a gap of idle seconds is not
  made good), which is exactly the burst that would overrun some 60 s window.
* **tpm: capacity one second's worth** (``tpm / 60``). Token counts are estimates (prompt + max_tokens),
  corrected afterwards by :meth:`RateLimiter.settle`; the capacity must hold a typical refund, or refunds
  are lost and the limit under-used. The cost is an excess of at most 1/60 of the limit in a minute, well
  inside the estimate's own error. A request larger than the whole bucket is let through when the bucket
  is full and leaves it in debt, so it never deadlocks and the average rate still holds.

Waiters are served strictly in arrival order (rows are started highest priority first): one waiter at a
time is "at the head", takes a concurrency slot, then waits for both buckets. Taking the slot first makes
the moment the buckets are charged the moment the request is sent. Time (``monotonic``, ``sleep``) is
injected, so tests drive a night of pacing in milliseconds.

The buckets themselves live in :class:`AccountLimits`, behind a thread lock: one provider entry has its own,
and boards served by one process that use the same account share one (sheetbot/providers/shared.py), though
each board runs its night on its own thread and event loop. Checking the buckets and charging them is one
step under that lock, so two boards can never both take the last request of a second.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

#: Float slack when comparing a refilled level with what is needed (a sleep of exactly the computed time).
_EPSILON = 1e-9


class _Bucket:
    """A token bucket that may go into debt; ``level`` is refilled lazily from the injected clock."""

    def __init__(self, *, per_minute: float, capacity: float, now: float) -> None:
        self.rate = per_minute / 60
        self.capacity = capacity
        self.level = capacity
        self.stamp = now

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_s(self, amount: float, now: float) -> float:
        """Seconds until ``amount`` may be taken (0 if now); more than the whole bucket needs a full bucket."""
        self.refill(now)
        need = min(amount, self.capacity)
        return 0.0 if self.level + _EPSILON >= need else (need - self.level) / self.rate

    def give(self, amount: float) -> None:
        self.level = min(self.capacity, self.level + amount)


class AccountLimits:
    """The rpm and tpm buckets and the retry-after pause of one account, safe to share between threads."""

    def __init__(self, *, rpm: int | None, tpm: int | None, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._guard = threading.Lock()
        self.monotonic = monotonic
        now = monotonic()
        self.rpm = _Bucket(per_minute=rpm, capacity=1, now=now) if rpm else None
        self.tpm = _Bucket(per_minute=tpm, capacity=max(tpm / 60, 1), now=now) if tpm else None
        self.paused_until = now

    def take(self, tokens: int) -> float:
        """Charge one request and ``tokens`` now and return 0.0, or return the seconds to wait (nothing charged)."""
        with self._guard:
            now = self.monotonic()
            wait = self.paused_until - now
            if self.rpm is not None:
                wait = max(wait, self.rpm.wait_s(1, now))
            if self.tpm is not None and tokens > 0:
                wait = max(wait, self.tpm.wait_s(tokens, now))
            if wait > 0:
                return wait
            if self.rpm is not None:
                self.rpm.level -= 1
            if self.tpm is not None:
                self.tpm.level -= tokens
            return 0.0

    def settle(self, reserved: int, actual: int) -> bool:
        """Give back (or charge) what a call used beyond its reservation; True if tokens were given back."""
        with self._guard:
            if self.tpm is None or actual == reserved:
                return False
            self.tpm.refill(self.monotonic())
            self.tpm.give(reserved - actual)
            return actual < reserved

    def retune(self, *, rpm: int | None, tpm: int | None) -> None:
        """New limits from now on (a shared account tightened by another board's entry); None keeps one."""
        with self._guard:
            now = self.monotonic()
            if rpm is not None:
                self.rpm = _Bucket(per_minute=rpm, capacity=1, now=now)
            if tpm is not None:
                self.tpm = _Bucket(per_minute=tpm, capacity=max(tpm / 60, 1), now=now)

    def pause(self, seconds: float) -> None:
        with self._guard:
            self.paused_until = max(self.paused_until, self.monotonic() + seconds)


class Slot:
    """One admitted call: it holds a concurrency slot and ``tokens`` reserved from the tpm bucket."""

    def __init__(self, limiter: RateLimiter, tokens: int) -> None:
        self._limiter = limiter
        self.tokens = tokens
        self._settled = False

    def settle(self, actual: int, *, refund: bool = True) -> None:
        """Correct the tpm bucket with what the call really used (once; later calls are ignored).

        ``refund=False`` only charges more, never gives back: for vendors that count ``max_tokens`` against
        the limit when the request arrives (OpenAI), whatever the answer then used.
        """
        if self._settled:
            return
        self._settled = True
        self._limiter.settle(self.tokens, actual if refund else max(actual, self.tokens))


class RateLimiter:
    """Concurrency cap plus rpm and tpm token buckets, FIFO-fair, on an injected clock."""

    def __init__(
        self,
        *,
        concurrency: int,
        rpm: int | None,
        tpm: int | None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        limits: AccountLimits | None = None,
    ) -> None:
        """``limits``: the account's buckets when they are shared (then ``rpm``/``tpm`` are theirs, not these)."""
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.concurrency = concurrency
        self._sleep = sleep
        self.limits = limits or AccountLimits(rpm=rpm, tpm=tpm, monotonic=monotonic)
        self._slots = asyncio.Semaphore(concurrency)
        self._head = asyncio.Lock()  # FIFO in CPython: whoever waited longest is at the head next
        self._wake: asyncio.Future[None] | None = None
        #: Calls holding a slot right now.
        self.in_flight = 0

    @asynccontextmanager
    async def slot(self, *, tokens: int = 0) -> AsyncIterator[Slot]:
        """Wait for a concurrency slot, one request and ``tokens``; hold the slot for the body."""
        await self._admit(tokens)
        self.in_flight += 1
        try:
            yield Slot(self, tokens)
        finally:
            self.in_flight -= 1
            self._slots.release()

    def settle(self, reserved: int, actual: int) -> None:
        """Give back (or charge) the difference between the tokens reserved for a call and those used."""
        if self.limits.settle(reserved, actual) and self._wake is not None and not self._wake.done():
            self._wake.set_result(None)  # the head may be waiting for exactly these tokens

    def pause(self, seconds: float) -> None:
        """Admit nobody for ``seconds``: the server said when to come back (retry-after), for everyone."""
        self.limits.pause(seconds)

    async def _admit(self, tokens: int) -> None:
        async with self._head:
            await self._slots.acquire()
            try:
                while (wait := self.limits.take(tokens)) > 0:
                    await self._nap(wait)
            except BaseException:
                self._slots.release()
                raise

    async def _nap(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if a refund arrives first (then the head looks again)."""
        self._wake = asyncio.get_running_loop().create_future()
        sleeper = asyncio.ensure_future(self._sleep(seconds))
        try:
            await asyncio.wait({sleeper, self._wake}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            self._wake = None
