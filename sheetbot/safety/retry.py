"""The one retry policy every outbound call uses: a few tries, a wait between them, then the last outcome.

Five loops retry something outside the process: a model call (providers/resilient.py), a notification
(notify/retry.py), an on_approve webhook (morning/on_approve.py), a Google Sheets request
(boards/google_calls.py) and an Airtable request (boards/airtable_http.py). Each decides *what* is worth
another try and *how long* to wait; this module decides *how* a retry runs, in one place:

* **Bounded**: ``tries`` is the whole budget, the first try included.
* **Time is passed in**: ``sleep`` has no default, so no caller can forget it and no test ever sleeps.
* **Giving up hands back the last outcome**: the last error raised again as it was, or the last answer
  returned (an Airtable 429 that never cleared is returned for the caller to read), never tenacity's
  ``RetryError`` wrapped around it.
* **Anything else is not retried**: an error the ``retry_on`` test refuses is raised at once.

Why in ``safety``: it is bounded, safe outbound work, the same concern as ``safety/outbound.py`` (no
redirect, no metadata address). ``safety`` sits below boards, providers, notify and the morning, so each
may import it without an arrow running up; and tenacity is imported here alone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import tenacity
from tenacity import RetryCallState

__all__ = ["RetryCallState", "Wait", "async_retrying", "exponential", "retrying"]

#: Seconds to wait before the next try, from what happened so far (``state.outcome``, ``state.attempt_number``).
Wait = Callable[[RetryCallState], float]
#: What is worth another try: an exception class, a tuple of them, or a test on the error.
RetryOn = type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]


def exponential(*, first_s: float, cap_s: float, jitter_s: float = 0.0) -> Wait:
    """``first_s``, then twice as long each try, never more than ``cap_s``; with ``jitter_s``, up to that many
    random seconds are added before the cap (Google's and Airtable's advice: clients that failed together
    must not come back together)."""
    if jitter_s:
        return tenacity.wait_exponential_jitter(initial=first_s, max=cap_s, jitter=jitter_s)
    return tenacity.wait_exponential(multiplier=first_s, max=cap_s)


def _retry_test(retry_on: RetryOn, retry_result: Callable[[Any], bool] | None) -> tenacity.retry_base:
    if isinstance(retry_on, type | tuple):
        test: tenacity.retry_base = tenacity.retry_if_exception_type(retry_on)
    else:
        test = tenacity.retry_if_exception(retry_on)
    if retry_result is not None:
        test = tenacity.retry_if_result(retry_result) | test
    return test


def _last_outcome(state: RetryCallState) -> Any:
    """What the caller gets when the tries run out: the last answer, or the last error raised again."""
    assert state.outcome is not None  # tenacity stops only after a try
    return state.outcome.result()


def _policy(
    *,
    tries: int,
    wait: Wait,
    retry_on: RetryOn,
    retry_result: Callable[[Any], bool] | None,
    before_sleep: Callable[[RetryCallState], None] | None,
) -> dict[str, Any]:
    policy: dict[str, Any] = {
        "stop": tenacity.stop_after_attempt(tries),
        "wait": wait,
        "retry": _retry_test(retry_on, retry_result),
        "retry_error_callback": _last_outcome,
    }
    if before_sleep is not None:
        policy["before_sleep"] = before_sleep
    return policy


def retrying(
    *,
    tries: int,
    wait: Wait,
    sleep: Callable[[float], None],
    retry_on: RetryOn = Exception,
    retry_result: Callable[[Any], bool] | None = None,
    before_sleep: Callable[[RetryCallState], None] | None = None,
) -> tenacity.Retrying:
    """A policy to call as ``retrying(...)(fn, *args)``: at most ``tries`` calls of ``fn``, waiting ``wait(state)``
    through ``sleep`` between them, while ``fn`` raises what ``retry_on`` accepts (by default any Exception) or
    returns what ``retry_result`` accepts. ``before_sleep`` hears each retry before its wait."""
    return tenacity.Retrying(
        sleep=sleep,
        **_policy(tries=tries, wait=wait, retry_on=retry_on, retry_result=retry_result, before_sleep=before_sleep),
    )


def async_retrying(
    *,
    tries: int,
    wait: Wait,
    sleep: Callable[[float], Awaitable[None]],
    retry_on: RetryOn = Exception,
    retry_result: Callable[[Any], bool] | None = None,
    before_sleep: Callable[[RetryCallState], None] | None = None,
) -> tenacity.AsyncRetrying:
    """`retrying` for a coroutine function: ``await async_retrying(...)(fn, *args)``, waiting with an async
    ``sleep``. ``.statistics["attempt_number"]`` says afterwards how many tries were made."""
    return tenacity.AsyncRetrying(
        sleep=sleep,
        **_policy(tries=tries, wait=wait, retry_on=retry_on, retry_result=retry_result, before_sleep=before_sleep),
    )
