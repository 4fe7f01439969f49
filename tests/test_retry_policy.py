"""The shared retry policy (sheetbot/safety/retry.py): bounded tries, waits through the injected sleep, only
what the caller calls worth it retried, and the last outcome handed back when the tries run out."""

from __future__ import annotations

import asyncio

import pytest

from sheetbot.safety.retry import RetryCallState, async_retrying, exponential, retrying


class Flaky(Exception):
    """A failure worth another try."""


class Refused(Exception):
    """A failure another try would not change."""


class Calls:
    """A callable that raises or returns, in order, what it was given, and counts its calls."""

    def __init__(self, *outcomes: object) -> None:
        self.outcomes = list(outcomes)
        self.count = 0

    def __call__(self) -> object:
        outcome = self.outcomes[min(self.count, len(self.outcomes) - 1)]
        self.count += 1
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def test_gives_up_after_the_tries_with_the_last_error_itself() -> None:
    naps: list[float] = []
    errors = [Flaky("first"), Flaky("second"), Flaky("third"), Flaky("fourth")]
    fn = Calls(*errors)
    with pytest.raises(Flaky) as caught:
        retrying(tries=3, wait=exponential(first_s=1, cap_s=30), sleep=naps.append, retry_on=Flaky)(fn)
    assert fn.count == 3
    assert caught.value is errors[2]  # not tenacity's RetryError, not an earlier try's error
    assert naps == [1, 2]  # waited between tries only, through the injected sleep


def test_a_refused_error_is_raised_at_once_without_a_wait() -> None:
    naps: list[float] = []
    fn = Calls(Refused("no"), "never reached")
    with pytest.raises(Refused):
        retrying(tries=5, wait=exponential(first_s=1, cap_s=30), sleep=naps.append, retry_on=Flaky)(fn)
    assert fn.count == 1 and naps == []


def test_a_retry_that_succeeds_returns_its_answer() -> None:
    naps: list[float] = []
    fn = Calls(Flaky("once"), Flaky("twice"), "answer")
    policy = retrying(tries=3, wait=exponential(first_s=1, cap_s=30), sleep=naps.append, retry_on=(Refused, Flaky))
    assert policy(fn) == "answer"
    assert fn.count == 3 and naps == [1, 2]


def test_by_default_any_exception_is_retried() -> None:
    fn = Calls(ValueError("a"), KeyError("b"), "ok")
    assert retrying(tries=3, wait=exponential(first_s=1, cap_s=30), sleep=lambda s: None)(fn) == "ok"


def test_a_test_on_the_error_decides() -> None:
    fn = Calls(Flaky("retry me"), Flaky("stop here"), "never reached")
    with pytest.raises(Flaky, match="stop here"):
        retrying(tries=5, wait=lambda s: 0.0, sleep=lambda s: None, retry_on=lambda e: "retry" in str(e))(fn)
    assert fn.count == 2


def test_an_answer_worth_another_try_is_retried_and_the_last_one_returned() -> None:
    naps: list[float] = []
    fn = Calls(429, 503, 429, 200)
    policy = retrying(tries=3, wait=lambda s: 30.0, sleep=naps.append, retry_on=Flaky, retry_result=lambda r: r >= 400)
    assert policy(fn) == 429  # the tries ran out: the caller reads the last answer
    assert fn.count == 3 and naps == [30.0, 30.0]
    quick = retrying(tries=3, wait=lambda s: 0.0, sleep=lambda s: None, retry_result=lambda r: r >= 400)
    assert quick(Calls(200)) == 200


def test_before_sleep_hears_each_retry_with_its_wait() -> None:
    heard: list[tuple[int, float, str]] = []

    def note(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        heard.append((state.attempt_number, state.next_action.sleep if state.next_action else -1, str(error)))

    fn = Calls(Flaky("a"), Flaky("b"), "ok")
    policy = retrying(tries=4, wait=exponential(first_s=2, cap_s=3), sleep=lambda s: None, before_sleep=note)
    assert policy(fn) == "ok"
    assert heard == [(1, 2, "a"), (2, 3, "b")]  # 2 s, then 4 s capped at 3 s


def test_exponential_doubles_up_to_the_cap_and_jitter_stays_within_its_bound() -> None:
    waits: list[list[float]] = [[], []]
    plain, jittered = exponential(first_s=1, cap_s=30), exponential(first_s=1, cap_s=30, jitter_s=1)

    def record(state: RetryCallState) -> float:
        waits[0].append(plain(state))
        waits[1].append(jittered(state))
        return 0.0

    with pytest.raises(Flaky):
        retrying(tries=7, wait=record, sleep=lambda s: None)(Calls(Flaky("x")))
    assert waits[0][:7] == [1, 2, 4, 8, 16, 30, 30]  # (tenacity also asks the wait after the last try)
    assert all(low <= got <= min(low + 1, 30) for low, got in zip(waits[0], waits[1], strict=True))


def test_the_async_policy_gives_up_after_its_tries_and_counts_them() -> None:
    naps: list[float] = []

    async def nap(seconds: float) -> None:
        naps.append(seconds)

    tries = 0

    async def call() -> str:
        nonlocal tries
        tries += 1
        raise Flaky(f"try {tries}")

    async def go() -> None:
        policy = async_retrying(tries=4, wait=exponential(first_s=1, cap_s=2), sleep=nap, retry_on=Flaky)
        with pytest.raises(Flaky, match="try 4"):
            await policy(call)
        assert policy.statistics["attempt_number"] == 4

    asyncio.run(go())
    assert tries == 4 and naps == [1, 2, 2]


def test_the_async_policy_does_not_retry_a_refused_error() -> None:
    naps: list[float] = []

    async def nap(seconds: float) -> None:
        naps.append(seconds)

    async def call() -> str:
        raise Refused("permanent")

    async def go() -> None:
        with pytest.raises(Refused):
            await async_retrying(tries=4, wait=lambda s: 1.0, sleep=nap, retry_on=Flaky)(call)

    asyncio.run(go())
    assert naps == []
