"""The transport every Airtable request passes: paced (at most 5 a second per base) and retried the way
Airtable asks (429: wait 30 s; 5xx and dropped connections: exponential backoff), and Airtable's error bodies."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import requests
import tenacity
from requests.adapters import HTTPAdapter

RATE_LIMIT_WAIT_S = 30.0  # Airtable: "wait 30 seconds before subsequent requests will succeed"

Clock = Callable[[], float]
Sleep = Callable[[float], None]


class Pacer:
    """At most ``⌊per_s⌋`` requests in any window of ``⌊per_s⌋/per_s`` seconds (5 a second by default).

    Time is passed in (a monotonic clock and a sleep), so tests measure pacing without waiting.
    """

    def __init__(self, per_s: float, *, monotonic: Clock, sleep: Sleep) -> None:
        self.burst = max(1, int(per_s))
        self.window_s = self.burst / per_s
        self.monotonic, self.sleep = monotonic, sleep
        self.sent: deque[float] = deque(maxlen=self.burst)

    def wait(self) -> None:
        now = self.monotonic()
        if len(self.sent) == self.burst and now < self.sent[0] + self.window_s:
            self.sleep(self.sent[0] + self.window_s - now)
            now = max(self.monotonic(), self.sent[0] + self.window_s)
        self.sent.append(now)


class _Transport(HTTPAdapter):
    """Every request this board sends passes here: paced, and retried the way Airtable asks."""

    def __init__(self, pacer: Pacer, *, sleep: Sleep, attempts: int) -> None:
        super().__init__()
        self.pacer, self.pause, self.attempts = pacer, sleep, attempts
        self.backoff = tenacity.wait_exponential_jitter(initial=1, max=RATE_LIMIT_WAIT_S, jitter=1)

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        method = (request.method or "GET").upper()
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.attempts),
            wait=self._wait,
            retry=tenacity.retry_if_result(
                lambda r: r.status_code == 429 or (r.status_code >= 500 and method != "POST")
            )
            | tenacity.retry_if_exception_type((requests.ConnectionError, requests.Timeout)),
            sleep=self.pause,
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        )
        return retrying(self._send_once, request, *args, **kwargs)

    def _send_once(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        self.pacer.wait()
        return super().send(request, *args, **kwargs)

    def _wait(self, state: tenacity.RetryCallState) -> float:
        outcome = state.outcome
        if outcome is not None and not outcome.failed and outcome.result().status_code == 429:
            retry_after = outcome.result().headers.get("Retry-After", "")
            return max(RATE_LIMIT_WAIT_S, float(retry_after) if retry_after.isdigit() else 0.0)
        return float(self.backoff(state))


def _error_of(response: requests.Response | None) -> tuple[str, str]:
    """(type, message) from Airtable's error bodies: {"error": {...}}, {"error": "NOT_FOUND"} or {"errors": [...]}."""
    try:
        body = response.json() if response is not None else {}
    except ValueError:
        return "", ""
    error = body.get("error") if isinstance(body, dict) else None
    if error is None and isinstance(body, dict) and body.get("errors"):
        first = body["errors"][0]
        return str(first.get("error", "")), str(first.get("message", ""))
    if isinstance(error, dict):
        return str(error.get("type", "")), str(error.get("message", ""))
    return (str(error), "") if error else ("", "")
