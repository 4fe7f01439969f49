"""Retries, rate limits and a circuit breaker around any Provider, so a night survives a real vendor.

* **Retries** (sheetbot.safety.retry's policy) live here, not in the SDK (built with ``max_retries=0``): the
  SDK's waits ignore our limiter, its tries are invisible to the breaker, and it sleeps while holding its slot.
  Backoff is exponential with full jitter (base 1 s, cap 60 s), never shorter than the server's ``retry-after``.
* **A slot is held for one HTTP try only**: between tries the call gives its slot back and queues again,
  or a burst of 429s would park the whole pool in backoff while the limit sits idle. Every try is charged
  to the rpm bucket, because the server counts it too.
* **429s** are each told to ``on_event`` as ``rate_limited`` (the pool audits them; /metrics counts them).
* **Circuit breaker**: consecutive failed tries (retryable errors but rate limits) open it for
  ``breaker_cooldown_s``. While open, calls and pending retries raise :class:`CircuitOpenError` without a
  request; after the cool-down one trial call goes through (half-open) while the other calls wait for its
  outcome: success closes it and they go on, failure re-opens it and they get CircuitOpenError again.
  A refused account (:class:`AccountProviderError`: 401, 402, 403, out of quota) opens it at the first
  refusal, and calls get that same error without a request: every row would hit it alike. A 400/404/422,
  and a refusal of the request's shape (:class:`RequestShapeError`, whatever its status), are about the
  request, not the provider's health: they neither count nor reset. Any success closes it.

Time (``monotonic``, ``sleep``) and randomness (``rng``) are injected, so tests never really sleep.

The breaker's state is a :class:`Breaker` behind a thread lock: each provider entry has its own, and boards
served by one process that use the same account share one (sheetbot/providers/shared.py): a bad key or an
outage seen by one board holds every board's calls, and one board's success closes it for all. The wait for a
half-open trial stays per board (an asyncio event lives on one loop); another board's call meanwhile is refused.
"""

from __future__ import annotations

import asyncio
import math
import random
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Unpack

from sheetbot.config.models import ProviderConfig
from sheetbot.errors import (
    AccountProviderError,
    CircuitOpenError,
    ProviderError,
    RetryableProviderError,
)
from sheetbot.providers.base import Completion, CompletionRequest, EventHook, Provider, ProviderEvent
from sheetbot.providers.errors_map import shorten
from sheetbot.providers.ratelimit import RateLimiter
from sheetbot.providers.tokens import estimate_tokens as default_estimate
from sheetbot.safety.retry import RetryCallState, async_retrying

BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 60.0
#: The longest one retry-after pauses the whole provider; the retrying call itself honours all of it.
PAUSE_CAP_S = 60.0


@dataclass
class Breaker:
    """A circuit breaker's state: consecutive failures, open until when, why, and whether a trial is out."""

    failures: int = 0
    open_until: float | None = None
    trial: bool = False
    #: The refusal that opened the circuit when it was the account's (bad key, no money).
    account: AccountProviderError | None = None
    last_error: str = ""
    guard: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)


class _OnBreaker:
    """An attribute of the provider that is its Breaker's (so old and shared breakers read alike)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, provider: ResilientProvider, owner: object = None) -> object:
        return getattr(provider.breaker, self.name)

    def __set__(self, provider: ResilientProvider, value: object) -> None:
        setattr(provider.breaker, self.name, value)


class ResilientProvider:
    """A Provider that rate-limits, retries and breaks the circuit around ``inner``."""

    def __init__(
        self,
        inner: Provider,
        *,
        name: str,
        config: ProviderConfig,
        limiter: RateLimiter,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_event: EventHook | None = None,
        estimate_tokens: Callable[[str], int] = default_estimate,
        refund_tokens: bool = True,
        rng: random.Random | None = None,
        breaker: Breaker | None = None,
    ) -> None:
        self.inner = inner
        self.name = self.label = name
        self.config = config
        self.limiter = limiter
        self._monotonic = monotonic
        self._sleep = sleep
        self._on_event = on_event
        self._estimate = estimate_tokens
        #: False for vendors that count max_tokens against tpm whatever the answer used (OpenAI).
        self._refund = refund_tokens
        self._rng = rng or random.Random()
        self.breaker = breaker or Breaker()
        #: Set while a trial call is under way; the calls that arrive meanwhile wait for its outcome.
        self._trial_done: asyncio.Event | None = None
        #: (name, details) of every retry and breaker change, for the night's report and the alerts.
        self.events: list[tuple[str, ProviderEvent]] = []

    #: Consecutive failed tries; what opens the circuit at ``config.breaker_failures``.
    failures: int = _OnBreaker("failures")  # type: ignore[assignment]
    _open_until: float | None = _OnBreaker("open_until")  # type: ignore[assignment]
    _trial: bool = _OnBreaker("trial")  # type: ignore[assignment]
    _account: AccountProviderError | None = _OnBreaker("account")  # type: ignore[assignment]
    _last_error: str = _OnBreaker("last_error")  # type: ignore[assignment]

    @property
    def breaker_open(self) -> bool:
        """True while a call would be refused: the cool-down runs, or its trial call is under way."""
        return self._open_until is not None and (self._monotonic() < self._open_until or self._trial)

    async def complete(self, request: CompletionRequest) -> Completion:
        while self._trial_done is not None:  # half-open: the trial call decides for everyone
            await self._trial_done.wait()
        self._claim(dry_run=True)  # refuse at once, before queueing for a slot
        retrying = async_retrying(
            tries=self.config.max_retries + 1,
            wait=self._wait_s,
            sleep=self._sleep,
            retry_on=RetryableProviderError,
            before_sleep=self._before_sleep,
        )
        try:
            return await retrying(self._try, request)
        except RetryableProviderError as exc:
            tries = retrying.statistics.get("attempt_number", 1)
            if tries <= 1:
                raise
            raise RetryableProviderError(
                f"{exc} (tried {tries} times)", status_code=exc.status_code, retry_after_s=exc.retry_after_s
            ) from None

    async def aclose(self) -> None:
        await self.inner.aclose()

    # -- one try ---------------------------------------------------------------------
    async def _try(self, request: CompletionRequest) -> Completion:
        trial = self._claim()
        try:
            reserve = self._estimate(request.system + request.prompt) + request.max_tokens
            async with self.limiter.slot(tokens=reserve) as slot:
                if not trial and self._open_until is not None:
                    trial = self._claim()  # it opened while we queued: refuse, or be its trial call
                completion = await self.inner.complete(request)
                used = completion.usage
                actual = used.input_tokens + used.output_tokens + used.cache_write_tokens + used.cache_read_tokens
                slot.settle(actual, refund=self._refund)
        except RetryableProviderError as exc:
            if exc.retry_after_s:
                self.limiter.pause(min(exc.retry_after_s, PAUSE_CAP_S))
            if exc.status_code == 429:  # each one, the last try's too (no retry event follows it): for /metrics
                self._event("rate_limited", status_code=429, wait_s=exc.retry_after_s or 0.0)
            else:  # "slow down" is not "down": backoff handles it, the breaker does not
                self._failed(exc, trial=trial)
            raise
        except AccountProviderError as exc:
            self._failed(exc, trial=trial, at_once=True)
            raise
        finally:
            if trial:
                self._trial = False
                if self._trial_done is not None:
                    self._trial_done.set()
                    self._trial_done = None
        self._succeeded()
        return completion

    def _wait_s(self, state: RetryCallState) -> float:
        """Full-jitter exponential backoff, but never less than the server's retry-after."""
        ceiling = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (state.attempt_number - 1))
        backoff = self._rng.uniform(0, ceiling)
        error = state.outcome.exception() if state.outcome else None
        retry_after = getattr(error, "retry_after_s", None) or 0.0
        return max(retry_after, backoff)

    def _before_sleep(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        custom_id = getattr(state.args[0] if state.args else None, "custom_id", None)
        wait_s = state.next_action.sleep if state.next_action else 0.0
        self._event(
            "retry",
            custom_id=custom_id,
            attempt=state.attempt_number,
            wait_s=wait_s,
            status_code=getattr(error, "status_code", None),
            error=str(error),
        )

    # -- the breaker -----------------------------------------------------------------
    def _claim(self, *, dry_run: bool = False) -> bool:
        """Raise CircuitOpenError if calls are held; True if this call is the half-open trial."""
        with self.breaker.guard:
            if self._open_until is None:
                return False
            remaining = self._open_until - self._monotonic()
            if remaining > 0 or self._trial:
                if self._account is not None:
                    raise AccountProviderError(str(self._account), status_code=self._account.status_code)
                raise self._open_error(remaining)
            if not dry_run:
                self._trial = True
                self._trial_done = asyncio.Event()
                self._event("circuit_half_open")
            return not dry_run

    def _failed(self, error: ProviderError, *, trial: bool, at_once: bool = False) -> None:
        with self.breaker.guard:
            self.failures += 1
            self._last_error = str(error)
            self._account = error if isinstance(error, AccountProviderError) else None
            reopen = trial and self._open_until is not None
            enough = at_once or self.failures >= self.config.breaker_failures
            if reopen or (self._open_until is None and enough):
                cooldown_s = self.config.breaker_cooldown_s
                self._open_until = self._monotonic() + cooldown_s
                self._event("circuit_open", failures=self.failures, cooldown_s=cooldown_s, error=self._last_error)

    def _succeeded(self) -> None:
        with self.breaker.guard:
            self.failures = 0
            self._account = None
            if self._open_until is not None:
                self._open_until = None
                self._event("circuit_closed")

    def _open_error(self, remaining_s: float) -> CircuitOpenError:
        trial = "while a trial call finds out if it works again"
        held = f"for another {_duration(remaining_s)}" if remaining_s > 0 else trial
        return CircuitOpenError(
            f"{self.name} failed {self.failures} calls in a row; the circuit breaker holds further calls "
            f"{held} (cool-down {self.config.breaker_cooldown_s:g} s). Last error: {shorten(self._last_error, 300)}",
            retry_after_s=max(remaining_s, 0.0),
        )

    def _event(self, name: str, **details: Unpack[ProviderEvent]) -> None:
        event: ProviderEvent = {"provider": self.name, **details}
        self.events.append((name, event))
        if self._on_event is not None:
            self._on_event(name, event)


def _duration(seconds: float) -> str:
    """``14 min`` or ``40 s``: rounded up, so "another 0 s" never appears."""
    return f"{math.ceil(seconds / 60)} min" if seconds >= 60 else f"{math.ceil(seconds)} s"
