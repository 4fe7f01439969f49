"""Rate limits, retries and the circuit breaker, through the real SDKs with FakeLLM at the HTTP transport.

Time is a FakeTime: ``sleep`` moves ``now`` forward at once and records what was asked, so a 15-minute
cool-down or two minutes of pacing take microseconds and nothing here sleeps for real.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import httpx2
import pytest
from fakellm import FakeLLM

from sheetbot.config.models import ProviderConfig
from sheetbot.errors import CircuitOpenError, PermanentProviderError, RetryableProviderError
from sheetbot.providers.base import Completion, CompletionRequest
from sheetbot.providers.factory import make_provider
from sheetbot.providers.openai_chat import OpenAIProvider
from sheetbot.providers.ratelimit import RateLimiter, Slot
from sheetbot.providers.resilient import ResilientProvider

ENV = {"OPENAI_API_KEY": "sk-test-openai", "ANTHROPIC_API_KEY": "sk-ant-test"}
KINDS = ["openai", "anthropic"]


class FakeTime:
    """A monotonic clock and a sleep that only move each other."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        """Let work that takes no time (the SDK building a request) run first, then move the clock."""
        self.slept.append(seconds)
        for _ in range(20):
            await asyncio.sleep(0)
        self.now += seconds


class Watch(httpx2.AsyncBaseTransport):
    """FakeLLM's transport, plus: when each request arrived (fake time) and how many were in flight."""

    def __init__(self, fake: FakeLLM, clock: FakeTime, *, hold: asyncio.Event | None = None) -> None:
        self.fake, self.clock, self.hold = fake, clock, hold
        self.stamps: list[float] = []
        self.in_flight = self.peak = 0

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self.stamps.append(self.clock.now)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            if self.hold is not None:
                await self.hold.wait()
            for _ in range(5):  # a little latency, so the others pile up behind the cap
                await asyncio.sleep(0)
            return await self.fake.transport.handle_async_request(request)
        finally:
            self.in_flight -= 1


class MaxJitter(random.Random):
    """Jitter that always picks the top of its range, so backoff is predictable."""

    def uniform(self, a: float, b: float) -> float:
        return b


def build(
    kind: str, fake: FakeLLM, clock: FakeTime, *, transport: httpx2.AsyncBaseTransport | None = None, **cfg: Any
) -> ResilientProvider:
    client = httpx2.AsyncClient(transport=transport or fake.transport)
    config = ProviderConfig(**cfg)
    made = make_provider(kind, config, env=ENV, http_client=client, monotonic=clock.monotonic, sleep=clock.sleep)
    assert isinstance(made, ResilientProvider)
    return made


def req(i: int = 1, *, prompt: str | None = None, max_tokens: int = 64) -> CompletionRequest:
    text = f"row {i}" if prompt is None else prompt
    return CompletionRequest(
        custom_id=f"t{i}:1:final", model="m", system="", prompt=text, max_tokens=max_tokens, timeout_s=5
    )


def run(provider: ResilientProvider, *requests: CompletionRequest) -> list[Completion]:
    async def go() -> list[Completion]:
        return list(await asyncio.gather(*(provider.complete(r) for r in requests)))

    return asyncio.run(go())


def fails(provider: ResilientProvider, request: CompletionRequest | None = None) -> Exception:
    async def go() -> Completion:
        return await provider.complete(request or req())

    with pytest.raises(Exception) as info:
        asyncio.run(go())
    return info.value


def windows(stamps: Sequence[float], weights: Sequence[float] | None = None, span_s: float = 60.0) -> float:
    """The most (count, or weight) that any half-open window [t, t + span) holds."""
    weights = weights or [1.0] * len(stamps)
    return max(sum(w for s, w in zip(stamps, weights, strict=True) if t <= s < t + span_s) for t in stamps)


# -- retries ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_429_waits_at_least_retry_after_then_succeeds(kind: str) -> None:
    fake, clock = FakeLLM(), FakeTime()
    fake.fail_next(429, headers={"retry-after": "7"})
    provider = build(kind, fake, clock)
    (done,) = run(provider, req())
    assert done.text == "OUTPUT for: row 1" and len(fake.requests) == 2
    assert clock.now - 1000.0 >= 7 and max(clock.slept) >= 7
    (limited, limited_details), (name, details) = provider.events  # each 429 is told, then the retry
    assert limited == "rate_limited" and limited_details == {"provider": kind, "status_code": 429, "wait_s": 7.0}
    assert name == "retry" and details["status_code"] == 429 and details["wait_s"] >= 7
    assert details["provider"] == kind and details["custom_id"] == "t1:1:final" and details["attempt"] == 1


def test_server_errors_retry_with_growing_backoff_capped_at_60s() -> None:
    fake, clock = FakeLLM(), FakeTime()
    fake.fail_next(500, times=2)
    inner = OpenAIProvider(api_key="k", base_url=None, max_retries=0, http_client=fake.async_client())
    config = ProviderConfig(max_retries=10, breaker_failures=20)
    limiter = RateLimiter(concurrency=2, rpm=None, tpm=None, monotonic=clock.monotonic, sleep=clock.sleep)
    provider = ResilientProvider(
        inner,
        name="openai",
        config=config,
        limiter=limiter,
        rng=MaxJitter(),
        monotonic=clock.monotonic,
        sleep=clock.sleep,
    )
    run(provider, req())
    assert clock.slept == [1.0, 2.0] and len(fake.requests) == 3
    fake.fail_next(503, times=9)
    clock.slept.clear()
    run(provider, req())
    assert clock.slept == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]


def test_jittered_backoff_stays_under_its_ceiling() -> None:
    fake, clock = FakeLLM(), FakeTime()
    fake.fail_next(502, times=4)
    run(build("openai", fake, clock, max_retries=4, breaker_failures=10), req())
    assert len(clock.slept) == 4
    assert all(0 <= wait <= 2**n for n, wait in enumerate(clock.slept))


@pytest.mark.parametrize("kind", KINDS)
def test_timeouts_are_retried(kind: str) -> None:
    fake, clock = FakeLLM(), FakeTime()
    fake.timeout_next(times=2)
    provider = build(kind, fake, clock)
    run(provider, req())
    assert len(fake.requests) == 3 and [e[0] for e in provider.events] == ["retry", "retry"]
    assert "did not answer within 5s" in provider.events[0][1]["error"]


@pytest.mark.parametrize("kind", KINDS)
def test_401_is_not_retried_and_names_the_variable(kind: str) -> None:
    fake, clock = FakeLLM(), FakeTime()
    fake.fail_next(401)
    error = fails(build(kind, fake, clock))
    assert isinstance(error, PermanentProviderError) and error.status_code == 401
    assert f"check the environment variable {kind.upper()}_API_KEY" in str(error)
    assert len(fake.requests) == 1 and clock.slept == []


def test_exhausted_retries_raise_the_retryable_error() -> None:
    fake, clock = FakeLLM(), FakeTime()
    fake.fail_next(503, times=5)
    error = fails(build("openai", fake, clock, max_retries=2))
    assert isinstance(error, RetryableProviderError) and error.status_code == 503
    assert "(HTTP 503)" in str(error) and str(error).endswith("(tried 3 times)")
    assert len(fake.requests) == 3


def test_the_sdk_does_not_retry_on_its_own() -> None:
    fake, clock = FakeLLM(), FakeTime()
    provider = build("openai", fake, clock, max_retries=0)
    inner = provider.inner
    assert isinstance(inner, OpenAIProvider) and inner._client.max_retries == 0
    fake.fail_next(500)
    assert isinstance(fails(provider), RetryableProviderError) and len(fake.requests) == 1
    bare = make_provider("openai", ProviderConfig(), env=ENV, resilient=False)
    assert isinstance(bare, OpenAIProvider)
    asyncio.run(bare.aclose())


# -- circuit breaker -------------------------------------------------------------------------------------
def test_circuit_opens_after_5_failures_holds_calls_then_closes_after_a_good_trial() -> None:
    fake, clock = FakeLLM(), FakeTime()
    heard: list[str] = []
    client = httpx2.AsyncClient(transport=fake.transport)
    config = ProviderConfig(max_retries=0, breaker_failures=5, breaker_cooldown_s=900)
    provider = make_provider(
        "anthropic",
        config,
        env=ENV,
        http_client=client,
        monotonic=clock.monotonic,
        sleep=clock.sleep,
        on_event=lambda name, details: heard.append(name),
    )
    assert isinstance(provider, ResilientProvider)
    fake.fail_next(500, times=5)
    for i in range(5):
        assert not provider.breaker_open
        assert isinstance(fails(provider, req(i)), RetryableProviderError)
    assert provider.breaker_open and heard == ["circuit_open"]
    error = fails(provider, req(6))
    assert isinstance(error, CircuitOpenError) and len(fake.requests) == 5
    assert str(error).startswith(
        "anthropic failed 5 calls in a row; the circuit breaker holds further calls for another 15 min "
        "(cool-down 900 s). Last error: anthropic had a server error (HTTP 500)"
    )
    clock.now += 899
    assert "for another 1 s" in str(fails(provider, req(7)))
    clock.now += 1
    assert not provider.breaker_open
    run(provider, req(8))
    assert not provider.breaker_open and heard == ["circuit_open", "circuit_half_open", "circuit_closed"]
    assert provider.failures == 0 and len(fake.requests) == 6


def test_a_failed_trial_reopens_the_circuit() -> None:
    fake, clock = FakeLLM(), FakeTime()
    provider = build("openai", fake, clock, max_retries=0, breaker_failures=2, breaker_cooldown_s=60)
    fake.fail_next(503, times=3)
    fails(provider, req(1))
    fails(provider, req(2))
    clock.now += 60
    assert isinstance(fails(provider, req(3)), RetryableProviderError)  # the trial, which fails
    assert provider.breaker_open and isinstance(fails(provider, req(4)), CircuitOpenError)
    assert [e[0] for e in provider.events] == ["circuit_open", "circuit_half_open", "circuit_open"]
    assert len(fake.requests) == 3


def test_only_one_trial_call_while_half_open_and_the_others_wait_for_its_outcome() -> None:
    fake, clock = FakeLLM(), FakeTime()

    async def go() -> None:
        hold = asyncio.Event()
        watch = Watch(fake, clock, hold=hold)
        provider = build(
            "openai", fake, clock, transport=watch, max_retries=0, breaker_failures=1, breaker_cooldown_s=10
        )
        fake.fail_next(500)
        hold.set()
        with pytest.raises(RetryableProviderError):
            await provider.complete(req(1))
        clock.now += 10
        hold.clear()
        trial = asyncio.ensure_future(provider.complete(req(2)))
        while watch.in_flight < 1:
            await asyncio.sleep(0)
        assert provider.breaker_open
        waiting = asyncio.ensure_future(provider.complete(req(3)))  # held until the trial has answered
        for _ in range(20):
            await asyncio.sleep(0)
        assert not waiting.done() and len(watch.stamps) == 2  # only the trial went out
        hold.set()
        await trial
        assert not provider.breaker_open
        await waiting  # the trial closed the circuit: the waiting call goes on

    asyncio.run(go())
    assert len(fake.requests) == 3


def test_a_failed_trial_sends_the_waiting_calls_back_to_wait_out_the_cooldown() -> None:
    fake, clock = FakeLLM(), FakeTime()

    async def go() -> None:
        hold = asyncio.Event()
        watch = Watch(fake, clock, hold=hold)
        provider = build(
            "openai", fake, clock, transport=watch, max_retries=0, breaker_failures=1, breaker_cooldown_s=10
        )
        fake.fail_next(500, times=2)
        hold.set()
        with pytest.raises(RetryableProviderError):
            await provider.complete(req(1))
        clock.now += 10
        hold.clear()
        trial = asyncio.ensure_future(provider.complete(req(2)))
        while watch.in_flight < 1:
            await asyncio.sleep(0)
        waiting = asyncio.ensure_future(provider.complete(req(3)))
        await asyncio.sleep(0)
        hold.set()
        with pytest.raises(RetryableProviderError):
            await trial
        with pytest.raises(CircuitOpenError) as info:
            await waiting
        assert info.value.retry_after_s == pytest.approx(10)

    asyncio.run(go())
    assert len(fake.requests) == 2


def test_pending_retries_stop_when_the_circuit_opens() -> None:
    fake, clock = FakeLLM(), FakeTime()
    fake.fail_next(500, times=10)
    error = fails(build("openai", fake, clock, max_retries=8, breaker_failures=3))
    assert isinstance(error, CircuitOpenError) and len(fake.requests) == 3


@pytest.mark.parametrize(("status", "opens"), [(401, True), (403, True), (400, False), (404, False), (422, False)])
def test_a_bad_key_opens_the_circuit_but_a_bad_row_does_not(status: int, opens: bool) -> None:
    fake, clock = FakeLLM(), FakeTime()
    provider = build("openai", fake, clock, breaker_failures=3)
    fake.fail_next(status, times=3)
    for i in range(3):
        assert isinstance(fails(provider, req(i)), PermanentProviderError)
    assert provider.breaker_open is opens
    if opens:  # a refused account opens it at the first refusal: the next calls are refused without a request
        assert f"HTTP {status}" in str(fails(provider, req(9))) and len(fake.requests) == 1


def test_a_success_resets_the_count() -> None:
    fake, clock = FakeLLM(), FakeTime()
    provider = build("openai", fake, clock, max_retries=0, breaker_failures=3)
    for _ in range(3):
        fake.fail_next(500, times=2)
        fails(provider, req(1))
        fails(provider, req(2))
        run(provider, req(3))
    assert not provider.breaker_open and provider.failures == 0


# -- rate limits -----------------------------------------------------------------------------------------
def test_rpm_is_never_exceeded_in_any_minute_and_is_used_in_full() -> None:
    fake, clock = FakeLLM(), FakeTime()
    watch = Watch(fake, clock)
    provider = build("openai", fake, clock, transport=watch, rpm=60, concurrency=8)
    run(provider, *(req(i) for i in range(120)))
    span = watch.stamps[-1] - watch.stamps[0]
    assert len(watch.stamps) == 120 and windows(watch.stamps) <= 60
    assert 119 - 1e-6 <= span <= 120  # paced at the limit: 60 a minute, not fewer


def test_tpm_paces_by_reservation_for_openai_and_by_real_usage_for_anthropic() -> None:
    spans = {}
    for kind in KINDS:
        fake, clock = FakeLLM(), FakeTime()
        watch = Watch(fake, clock)
        reserve = 10 + 100  # ceil(40 / 4) for the prompt, plus max_tokens
        # One call at a time, so each call's refund is in before the next one is weighed.
        provider = build(kind, fake, clock, transport=watch, tpm=60 * reserve, concurrency=1)
        done = run(provider, *(req(i, prompt="x" * 40, max_tokens=100) for i in range(30)))
        used = [c.usage.input_tokens + c.usage.output_tokens for c in done]
        assert windows(watch.stamps, [reserve] * 30 if kind == "openai" else used) <= 60 * reserve + reserve
        spans[kind] = watch.stamps[-1] - watch.stamps[0]
    assert spans["openai"] >= 29 - 1e-6  # one reservation a second
    assert spans["anthropic"] < spans["openai"] / 2  # unused max_tokens came back


def test_concurrency_never_exceeds_the_cap() -> None:
    fake, clock = FakeLLM(), FakeTime()
    watch = Watch(fake, clock)
    run(build("anthropic", fake, clock, transport=watch, concurrency=3), *(req(i) for i in range(20)))
    assert watch.peak == 3 and len(fake.requests) == 20


def test_a_slot_is_not_held_while_sleeping_in_backoff() -> None:
    fake, clock = FakeLLM(), FakeTime()
    b_done = asyncio.Event()

    async def backoff_until_b_is_done(seconds: float) -> None:
        clock.now += seconds
        await asyncio.wait_for(b_done.wait(), timeout=2)  # only reached (and fails) if A kept the slot

    async def go() -> None:
        provider = build("openai", fake, clock, concurrency=1)
        provider._sleep = backoff_until_b_is_done
        fake.fail_next(500)
        a = asyncio.ensure_future(provider.complete(req(1)))
        while not fake.requests:
            await asyncio.sleep(0)
        await provider.complete(req(2))
        b_done.set()
        await a

    asyncio.run(go())
    assert [r.json["messages"][-1]["content"] for r in fake.requests] == ["row 1", "row 2", "row 1"]


def test_retry_after_pauses_the_whole_provider() -> None:
    fake, clock = FakeLLM(), FakeTime()
    watch = Watch(fake, clock)
    provider = build("openai", fake, clock, transport=watch, max_retries=0)
    fake.fail_next(429, headers={"retry-after": "7"})
    fails(provider, req(1))
    run(provider, req(2))
    assert watch.stamps[1] - watch.stamps[0] >= 7


# -- the limiter on its own ------------------------------------------------------------------------------
def limiter(clock: FakeTime, *, concurrency: int = 1, rpm: int | None = None, tpm: int | None = None) -> RateLimiter:
    return RateLimiter(concurrency=concurrency, rpm=rpm, tpm=tpm, monotonic=clock.monotonic, sleep=clock.sleep)


def admit_all(
    lim: RateLimiter, clock: FakeTime, tokens: list[int], body: Callable[[Slot], Awaitable[None]] | None = None
) -> list[tuple[int, float]]:
    """Ask for a slot with each of ``tokens``, all at once; (index, fake time) in the order admitted."""
    stamps: list[tuple[int, float]] = []

    async def one(i: int, n: int) -> None:
        async with lim.slot(tokens=n) as slot:
            stamps.append((i, clock.now))
            if body is not None:
                await body(slot)

    async def go() -> None:
        await asyncio.gather(*(one(i, n) for i, n in enumerate(tokens)))

    asyncio.run(go())
    return stamps


def test_waiters_are_served_in_arrival_order() -> None:
    clock = FakeTime()
    stamps = admit_all(limiter(clock, rpm=60), clock, [0] * 8)
    assert [i for i, _ in stamps] == list(range(8))
    assert [t - 1000.0 for _, t in stamps] == pytest.approx(list(range(8)))


def test_a_request_bigger_than_the_tpm_bucket_waits_for_a_full_bucket_and_leaves_a_debt() -> None:
    clock = FakeTime()
    stamps = admit_all(limiter(clock, tpm=600, concurrency=4), clock, [5_000, 10, 10])  # bucket: 10 tokens
    assert [t - 1000.0 for _, t in stamps] == pytest.approx([0.0, 500.0, 501.0])


def test_settle_refunds_unused_tokens_and_charges_overruns() -> None:
    clock = FakeTime()

    async def refund(slot: Slot) -> None:
        slot.settle(2)
        slot.settle(0)  # only the first settle counts

    stamps = admit_all(limiter(clock, tpm=600), clock, [10, 10, 10], body=refund)
    assert [t - 1000.0 for _, t in stamps] == pytest.approx([0.0, 0.2, 0.4])
    lim = limiter(clock, tpm=600)
    lim.settle(10, 40)  # used 30 more than reserved: 3 s of debt
    stamps = admit_all(lim, clock, [10])
    assert stamps[0][1] - 1000.0 == pytest.approx(0.4 + 3)


def test_a_cancelled_waiter_gives_its_slot_back() -> None:
    clock = FakeTime()

    async def never(seconds: float) -> None:
        await asyncio.Event().wait()

    async def go() -> None:
        lim = RateLimiter(concurrency=1, rpm=1, tpm=None, monotonic=clock.monotonic, sleep=never)
        async with lim.slot():
            pass
        waiter = asyncio.ensure_future(lim.slot().__aenter__())
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert lim.in_flight == 0 and not lim._slots.locked()

    asyncio.run(go())


def test_a_burst_of_rate_limits_slows_down_but_never_opens_the_circuit() -> None:
    fake, clock = FakeLLM(), FakeTime()
    config = ProviderConfig(max_retries=10, breaker_failures=3, breaker_cooldown_s=900)
    provider = make_provider(
        "openai",
        config,
        env=ENV,
        http_client=httpx2.AsyncClient(transport=fake.transport),
        monotonic=clock.monotonic,
        sleep=clock.sleep,
    )
    assert isinstance(provider, ResilientProvider)
    fake.fail_next(429, times=6, headers={"retry-after": "2"})
    [done] = run(provider, req(1))
    assert done.text and not provider.breaker_open and len(fake.requests) == 7
